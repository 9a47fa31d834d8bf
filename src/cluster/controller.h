#pragma once
// cluster::controller — the single writer of cluster metadata (DESIGN.md §5).
//
// Every broker runs one; at most one is *active*. Single node (local_store): this broker's
// controller is always active and the only live broker is itself. Cluster (zk_store):
// controllers race to create the ephemeral /controller znode; the winner bumps
// /controller_epoch (a conditional write) and becomes active. Brokers register themselves
// as ephemeral /brokers/ids/<id>; the active controller watches that list.
//
// The active controller owns partition state (leader, leader epoch, ISR, partition epoch =
// the state znode's version, written conditionally) and tells brokers through the
// controller_channel — one code path for both modes:
//   leader_and_isr   to the replicas of partitions whose leader or ISR it changed
//   update_metadata  the whole cluster view, to every live broker (including itself)
//   stop_replica     delete a deleted topic's partitions on their replicas
// Leader election (broker failure, controlled shutdown, offline partitions):
//   clean    the first replica in assignment order that is live and in the ISR;
//   unclean  only if unclean.leader.election.enable (topic override, else broker default):
//            the first live replica; the ISR becomes {new leader}; counted in a metric
//            because records acknowledged by the old ISR may be lost.
//   none     leader -1 (offline). The ISR keeps its last members, so the partition comes
//            back when one of them does — never with a replica that missed acknowledged
//            writes (unless unclean election is enabled).
// A broker that fails is removed from the ISR of every partition it followed (with a leader
// epoch bump, so its stale fetches are fenced).
//
// Stale controllers: every request carries the controller epoch and brokers refuse older
// ones (STALE_CONTROLLER_EPOCH); state znodes are written with their expected version, so a
// deposed controller's write fails instead of overwriting the new controller's.
//
// Threading: every method must be called on the controller loop (shard 0). ZooKeeper
// watches arrive on the client's thread and are posted to that loop by the caller-supplied
// `post` function.
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cluster/metadata.h"
#include "cluster/metadata_store.h"
#include "protocol/error_code.h"

namespace varve::cluster {

class zk_store;

struct controller_options {
  int32_t node_id = 0;
  broker_endpoint self;
  int32_t default_num_partitions = 1;
  int16_t default_replication_factor = 1;
  bool unclean_leader_election_enable = false;  // broker default
};

struct topic_result {
  protocol::error_code error = protocol::error_code::none;
  std::string message;  // human-readable reason when error != none
};

// Replica lists per partition (partition i → its replicas, preferred leader first); empty
// means "the controller assigns".
using replica_assignment = std::vector<std::vector<int32_t>>;

// One partition's state as sent in LeaderAndIsr.
struct partition_update {
  std::string topic;
  topic_id id{};
  partition_state state;
};

// Delivery of the controller's decisions (implemented by the server layer: directly to this
// process, as LeaderAndIsr / UpdateMetadata / StopReplica to others). Calls must not block
// on the network: remote deliveries are queued per broker, in order.
class controller_channel {
 public:
  virtual ~controller_channel() = default;
  virtual void leader_and_isr(int32_t broker, int32_t controller_epoch,
                              std::vector<partition_update> partitions) = 0;
  virtual void update_metadata(int32_t broker, int32_t controller_epoch,
                               std::shared_ptr<const metadata_snapshot> snapshot) = 0;
  virtual void stop_replica(int32_t broker, int32_t controller_epoch,
                            std::vector<std::pair<std::string, int32_t>> partitions,
                            bool delete_partitions) = 0;
  // The live brokers changed (the channel opens / drops its queues).
  virtual void brokers_changed(const std::vector<broker_endpoint>& live) = 0;
};

// Admin operations arriving at a broker whose controller is not active are forwarded to the
// active one (implemented by the server layer over the wire). Blocking, bounded.
class controller_forwarder {
 public:
  virtual ~controller_forwarder() = default;
  virtual topic_result create_topic(int32_t controller, const std::string& name,
                                    int32_t num_partitions, int16_t replication_factor,
                                    const std::map<std::string, std::string>& configs,
                                    bool validate_only, const replica_assignment& manual) = 0;
  virtual topic_result delete_topic(int32_t controller, const std::string& name) = 0;
  virtual topic_result create_partitions(int32_t controller, const std::string& name,
                                         int32_t new_total, bool validate_only,
                                         const replica_assignment& manual) = 0;
  virtual topic_result set_topic_configs(int32_t controller, const std::string& name,
                                         const std::map<std::string, std::string>& configs,
                                         bool validate_only) = 0;
};

// Validates topic-level config overrides; returns an error message or "".
using config_validator = std::function<std::string(const std::map<std::string, std::string>&)>;

// AlterPartition outcome for one partition.
struct alter_partition_result {
  protocol::error_code error = protocol::error_code::none;
  partition_state state;  // the state now in force (valid when error is NONE)
};

// Counters for metrics: written on the controller loop, read by scrapes on any loop.
struct controller_stats {
  std::atomic<int64_t> leader_elections{0};
  std::atomic<int64_t> unclean_leader_elections{0};
  std::atomic<int64_t> isr_changes{0};
};

class controller {
 public:
  // `zk` is the same object as `store` in cluster mode, nullptr in single-node mode.
  controller(std::unique_ptr<metadata_store> store, zk_store* zk, controller_options options,
             metadata_cache& cache, config_validator validate_configs);
  ~controller();

  void set_channel(controller_channel* channel) { channel_ = channel; }
  void set_forwarder(controller_forwarder* forwarder) { forwarder_ = forwarder; }
  // Runs a function on the controller loop (used for ZooKeeper watch callbacks).
  void set_post(std::function<void(std::function<void()>)> post) { post_ = std::move(post); }

  // Single node: loads the store and becomes active. Cluster: registers this broker,
  // joins the controller election and watches for changes.
  void start();
  // Resigns; the ZooKeeper session (and with it /controller and the registration) closes
  // when the store is destroyed.
  void stop();

  bool active() const { return active_.load(); }
  int32_t epoch() const { return epoch_; }
  int32_t active_controller_id() const { return active_ ? options_.node_id : controller_id_; }
  const controller_stats& stats() const { return stats_; }

  // num_partitions / replication_factor of -1 mean "broker default". A manual assignment
  // (CreateTopics replica assignments) must name registered brokers, once per list, with
  // the same replication factor for every partition. Forwarded to the active controller
  // when this one is not active.
  topic_result create_topic(const std::string& name, int32_t num_partitions,
                            int16_t replication_factor,
                            const std::map<std::string, std::string>& configs, bool validate_only,
                            bool internal = false, const replica_assignment& manual = {});
  topic_result delete_topic(const std::string& name);
  // `manual`: replica lists of the new partitions only (CreatePartitions assignments).
  topic_result create_partitions(const std::string& name, int32_t new_total, bool validate_only,
                                 const replica_assignment& manual = {});
  // Replaces the topic's overrides with `configs` (AlterConfigs semantics).
  topic_result set_topic_configs(const std::string& name,
                                 const std::map<std::string, std::string>& configs,
                                 bool validate_only);

  // AlterPartition from a leader (active controller only).
  alter_partition_result alter_partition(int32_t broker, const std::string& topic,
                                         int32_t partition, int32_t leader_epoch,
                                         int32_t partition_epoch, std::vector<int32_t> new_isr);
  // ControlledShutdown: moves leadership away from `broker` and removes it from the ISRs.
  // Returns the partitions it still leads (could not be moved); empty = safe to stop.
  std::vector<std::pair<std::string, int32_t>> controlled_shutdown(int32_t broker,
                                                                   protocol::error_code* error);
  // Preferred leader election (ElectLeaders type 0 / auto rebalance). Empty = all.
  std::map<std::pair<std::string, int32_t>, topic_result> elect_preferred(
      const std::vector<std::pair<std::string, int32_t>>& partitions);

  // auto.leader.rebalance.enable: for every broker whose share of partitions it prefers
  // but does not lead exceeds `imbalance_percentage`, moves those leaderships back to it
  // (when it is live and in the ISR). Returns the number of leaders moved.
  int auto_rebalance(int32_t imbalance_percentage);

  // AlterPartitionReassignments (KIP-455): `target` empty cancels a pending reassignment.
  // The replica set becomes target + original (new replicas start as followers); once every
  // target replica is in the ISR, leadership moves into the target if needed, the replica
  // set becomes the target, and the removed replicas get StopReplica with delete.
  topic_result reassign(const std::string& topic, int32_t partition,
                        const std::vector<int32_t>& target);
  // Partitions with a reassignment in progress.
  std::vector<partition_update> reassignments_in_progress() const;

  // Topic config overrides as stored (brokers that are not the controller read them).
  std::map<std::string, std::string> read_topic_configs(const std::string& name);

  // Hands out a producer id, reserving blocks of 1000 durably (conditional writes, so
  // brokers allocating concurrently never share a block: Kafka's /latest_producer_id_block).
  int64_t allocate_producer_id();

  const std::string& cluster_id() const { return cluster_id_; }

 private:
  void load();
  void elect_controller();
  void activate();
  void resign(const char* why);
  void on_brokers_changed();
  void on_session_reestablished(bool lost_controller);
  std::vector<broker_endpoint> read_live_brokers();
  std::shared_ptr<topic_metadata> read_topic(const std::string& name);
  void write_topic(const topic_metadata& t, bool create);
  // Writes one partition's new state conditionally; updates `ps.partition_epoch`.
  bool write_partition_state(const std::string& topic, partition_state& ps);
  std::vector<std::vector<int32_t>> assign_replicas(int32_t first_partition, int32_t count,
                                                    int16_t replication_factor) const;
  bool unclean_allowed(const topic_metadata& t) const;
  // Empty if `manual` is usable for `partitions` partitions, else why not.
  std::string check_assignment(const replica_assignment& manual, size_t partitions) const;
  // Elects leaders for partitions without a live leader and removes `dead` brokers from
  // ISRs; writes and collects the changed partitions.
  void reelect(const std::set<int32_t>& excluded, std::vector<partition_update>* changed);
  std::shared_ptr<const metadata_snapshot> build_snapshot() const;
  // Completes the reassignment of one partition if every target replica is in the ISR.
  void maybe_complete_reassignment(const std::string& topic, int32_t partition);
  // Writes a changed partition (assignment and state) and announces it.
  bool commit_partition_change(const std::string& topic, partition_state next,
                               const std::vector<int32_t>& stop_and_delete);
  // Sends LeaderAndIsr for `changed` to their replicas, then UpdateMetadata to everyone.
  void broadcast(const std::vector<partition_update>& changed,
                 const std::vector<int32_t>& full_leader_and_isr_to = {});
  bool live(int32_t broker) const { return live_brokers_.count(broker) > 0; }

  std::unique_ptr<metadata_store> store_;
  zk_store* zk_;
  controller_options options_;
  metadata_cache& cache_;
  config_validator validate_configs_;
  controller_channel* channel_ = nullptr;
  controller_forwarder* forwarder_ = nullptr;
  std::function<void(std::function<void()>)> post_;

  std::atomic<bool> active_{false};  // also read by metrics scrapes on other loops
  int32_t epoch_ = 0;
  int32_t controller_id_ = -1;  // the active controller as last seen (-1 unknown)
  std::string cluster_id_;
  std::map<std::string, std::shared_ptr<const topic_metadata>> topics_;
  std::map<int32_t, broker_endpoint> live_brokers_;
  std::set<int32_t> shutting_down_;
  int64_t next_producer_id_ = 0;
  int64_t producer_id_block_end_ = 0;  // exclusive
  controller_stats stats_;
};

}  // namespace varve::cluster
