#pragma once
// server::broker — wires the layers of one broker process together (DESIGN.md §1):
// configuration, one event loop per core, the controller (on shard 0), one replica manager
// per shard, and the Kafka listener whose requests go through the dispatcher.
//
// Shutdown (SIGTERM/SIGINT): stop accepting, close every partition cleanly on its own
// shard (flush + clean-shutdown marker), then stop the loops.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cluster/controller.h"
#include "cluster/metadata.h"
#include "common/shard.h"
#include "config/broker_config.h"
#include "coordinator/group_coordinator.h"
#include "metrics/admin_server.h"
#include "metrics/broker_metrics.h"
#include "metrics/probe.h"
#include "net/server.h"
#include "replication/replica_fetcher.h"
#include "replication/replica_manager.h"
#include "server/txn_wiring.h"

namespace varve::cluster {
class zk_store;
}

namespace varve::server {

class cluster_link;

class broker {
 public:
  explicit broker(config::broker_config config);
  ~broker();

  // Opens storage and metadata, starts listening. False (with *error) if it cannot start.
  bool start(std::string* error);
  // Runs the event loops until a shutdown signal.
  void run();

  // --- services for request handlers ---
  const config::broker_config& config() const { return config_; }
  int32_t node_id() const { return node_id_; }
  const cluster::broker_endpoint& advertised() const { return advertised_; }
  shard_set& shards() { return shards_; }
  std::shared_ptr<const cluster::metadata_snapshot> metadata() const { return cache_.get(); }
  replication::replica_manager& replicas(unsigned shard) { return *replica_managers_[shard]; }
  // The consumer group coordinator of `shard` (owns the groups of that shard's
  // __consumer_offsets partitions); use it on that shard's loop only.
  coordinator::group_coordinator& groups(unsigned shard) { return *group_coordinators_[shard]; }
  // The transaction coordinator of `shard` (owns the transactional ids of that shard's
  // __transaction_state partitions); use it on that shard's loop only.
  coordinator::txn_coordinator& txns(unsigned shard) { return txn_wirings_[shard]->coordinator(); }
  txn_wiring& txn_services(unsigned shard) { return *txn_wirings_[shard]; }
  unsigned shard_of(const replication::topic_partition& tp) const;

  // Runs `fn(controller&)` on the controller loop, then makes every shard apply the
  // resulting metadata before returning — so a topic is servable as soon as its
  // CreateTopics response is sent.
  //
  // (The awaitables are held in named variables and lambdas capture only references:
  // GCC 12 destroys non-trivial temporaries of a co_await full-expression twice.)
  template <typename F>
  asio::awaitable<std::invoke_result_t<F, cluster::controller&>> with_controller(F fn) {
    auto call = [this, &fn] { return fn(*controller_); };
    auto op = shards_.invoke_on(0, std::move(call));
    auto result = co_await std::move(op);
    co_await propagate_metadata();
    co_return result;
  }
  asio::awaitable<void> propagate_metadata();
  // Must run on shard 0 (the controller loop).
  int64_t allocate_producer_id_on_controller_loop() { return controller_->allocate_producer_id(); }
  cluster::controller& controller_on_loop() { return *controller_; }
  cluster_link& link() { return *link_; }
  bool cluster_mode() const { return zk_ != nullptr; }
  // True once this broker has heard from an active controller (always in single-node
  // mode). Until the first UpdateMetadata / LeaderAndIsr arrives, a cluster broker's view is
  // empty: no brokers, no controller, no topics.
  bool has_cluster_view() const { return !cluster_mode() || cache_.get()->controller_id >= 0; }
  // Waits, at most `max`, until has_cluster_view(). Metadata and DescribeCluster wait here
  // so that a client's first answer is never the empty start-up view: librdkafka's admin
  // client takes "no controller" from a Metadata response and does not ask again until
  // some broker's state changes, so one early answer failed its CreateTopics 30 s later.
  // (Kafka's ZooKeeper-mode broker answers the empty view; its KRaft broker does not open
  // its listener until it has caught up with the metadata log — this is the same promise.)
  asio::awaitable<void> await_cluster_view(std::chrono::milliseconds max);

  // --- what the controller tells this broker (LeaderAndIsr / UpdateMetadata / StopReplica,
  // from the wire or, for the active controller's own broker, directly). Shard 0 only. ---
  // Requests from an older controller epoch are refused with STALE_CONTROLLER_EPOCH.
  protocol::error_code apply_leader_and_isr(int32_t controller_id, int32_t controller_epoch,
                                            std::vector<cluster::partition_update> parts);
  // `has_configs`: the snapshot carries topic config overrides (from the local controller);
  // otherwise they are read from the metadata store.
  protocol::error_code apply_update_metadata(int32_t controller_epoch,
                                             std::shared_ptr<cluster::metadata_snapshot> snap,
                                             bool has_configs);
  protocol::error_code apply_stop_replica(int32_t controller_epoch,
                                          const std::vector<std::pair<std::string, int32_t>>& parts,
                                          bool delete_partitions);

  // The request-metrics probe of the calling shard; null when not called on a shard's loop.
  metrics::shard_probe* probe() {
    const int s = shard_set::current();
    return s >= 0 && static_cast<size_t>(s) < probes_.size() ? probes_[s].get() : nullptr;
  }

  // Effective settings of a topic (broker defaults + its overrides).
  replication::partition_config partition_config_for(const cluster::topic_metadata& t) const;

 private:
  void shutdown();
  // Publishes `snap` and makes every shard apply it (asynchronously).
  void publish_and_propagate(std::shared_ptr<const cluster::metadata_snapshot> snap);
  bool check_controller_epoch(int32_t epoch);
  // auto.leader.rebalance.enable: the periodic preferred-leader check (shard 0).
  void schedule_leader_rebalance();
  // Starts the HTTP admin listener (admin.listeners; empty disables it).
  bool start_admin(std::string* error);
  // The event-loop watchdog of shard s: a tick every 100 ms on the shard's loop; how late it
  // fires is the time the loop was blocked (varve_event_loop_* metrics, a warning from 500 ms).
  void watch_loop(unsigned s);

  config::broker_config config_;
  int32_t node_id_ = 0;
  cluster::broker_endpoint advertised_;
  shard_set shards_;
  cluster::metadata_cache cache_;
  std::unique_ptr<cluster::controller> controller_;
  cluster::zk_store* zk_ = nullptr;  // owned by controller_ (cluster mode only)
  int32_t known_controller_epoch_ = 0;  // shard 0
  std::unique_ptr<cluster_link> link_;
  std::optional<asio::steady_timer> rebalance_timer_;
  // One per shard, used only on that shard's loop (watch_loop).
  std::vector<std::unique_ptr<asio::steady_timer>> watchdogs_;
  std::unique_ptr<replication::replica_fetcher_manager> fetchers_;
  std::vector<std::unique_ptr<replication::replica_manager>> replica_managers_;
  // Blocking file work off the event loops: opening the partitions the controller assigns
  // after start-up (replica_manager::set_opener) and the periodic checkpoint writes
  // (set_checkpoint_writer). Joined first in ~broker: its jobs post to the loops.
  std::unique_ptr<asio::thread_pool> open_pool_;
  std::vector<std::unique_ptr<coordinator::group_coordinator>> group_coordinators_;
  std::vector<std::unique_ptr<txn_wiring>> txn_wirings_;
  std::unique_ptr<net::server> server_;
  std::vector<std::unique_ptr<metrics::shard_probe>> probes_;
  metrics::broker_sources metrics_sources_;
  std::unique_ptr<metrics::admin_server> admin_;
  std::atomic<bool> started_{false};
  std::optional<asio::signal_set> signals_;
  bool stopping_ = false;
  std::atomic<bool> stopping_flag_{false};  // read by fetcher threads
};

}  // namespace varve::server
