#pragma once
// replication::replica_manager — the partitions one shard owns (DESIGN.md §7).
//
// Each shard has one replica_manager. apply() reconciles the shard's partitions with the
// metadata this broker learned from the controller (LeaderAndIsr / UpdateMetadata): the
// partitions assigned to this broker and owned by this shard are opened, their role
// (leader / follower, leader epoch, ISR) is applied, config changes are pushed down.
// Partition data is deleted only by remove() (StopReplica with delete, i.e. topic deletion
// or reassignment away) — never because a snapshot lacks a topic, so a broker that has not
// heard from the controller yet keeps its data.
// Role changes are reported through the hooks: followers to the replica fetcher, leadership
// of internal topics to the coordinators.
// A periodic timer runs each partition's housekeeping (flush policy, segment.ms roll,
// retention, ISR shrink) and writes the recovery-point and high-watermark checkpoints.
//
// Opening off the loop: with an opener set (set_opener: a pool for blocking file work),
// apply() hands each partition it does not have yet to the opener, which opens its log
// (creating or recovering it) and applies its first state — the fsyncs of a new log and
// of its leader-epoch checkpoint, or a long recovery, never block the loop that serves
// every other partition. The partition is installed back on this loop, with the newest
// state apply() saw meanwhile; until then it is absent here (requests for it get
// NOT_LEADER_OR_FOLLOWER, as for any partition this broker does not serve yet), and
// when_opened() tells a caller (CreateTopics) when every pending open is done. A
// StopReplica with delete that arrives meanwhile deletes it once it is open. Without an
// opener (start-up recovery, which runs before the listener opens; tests) apply() opens
// inline.
//
// Threading: every method runs on the owning shard's loop; the opener runs only
// partition::open and the first apply_state, on a partition no other thread can see yet.
#include <asio.hpp>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "cluster/metadata.h"
#include "replication/partition.h"

namespace varve::replication {

struct replica_manager_options {
  unsigned shard = 0;
  unsigned shard_count = 1;
  int32_t node_id = 0;
  std::vector<std::filesystem::path> log_dirs;
  int64_t retention_check_interval_ms = 300000;  // log.retention.check.interval.ms
  int64_t housekeeping_interval_ms = 1000;
  int64_t recovery_checkpoint_interval_ms = 60000;  // log.flush.offset.checkpoint.interval.ms
  int64_t producer_id_expiration_ms = 86400000;      // producer.id.expiration.ms
  // producer.id.expiration.check.interval.ms
  int64_t producer_id_expiration_check_interval_ms = 600000;
};

// Which shard owns a partition: a stable hash, so every loop agrees without coordination.
unsigned shard_of(const topic_partition& tp, unsigned shard_count);

class replica_manager {
 public:
  using config_fn = std::function<partition_config(const cluster::topic_metadata&)>;

  replica_manager(asio::io_context& loop, replica_manager_options options, config_fn config);
  ~replica_manager();

  partition* get(const topic_partition& tp);
  const std::map<topic_partition, std::unique_ptr<partition>>& partitions() const {
    return partitions_;
  }

  void apply(const cluster::metadata_snapshot& snapshot);
  // `run` runs a job on another thread (see the header comment). The jobs post back to
  // this loop, which must outlive them: the pool is joined before the loop is destroyed.
  using opener = std::function<void(std::function<void()>)>;
  void set_opener(opener run) { opener_ = std::move(run); }
  // Runs the periodic checkpoint writes (write, fsync, rename of the recovery-point and
  // high-watermark files) on another thread, so a slow fsync never stalls the loop; the
  // newest write always wins (older ones still queued are skipped), and close_all() writes
  // the last one on this thread. Unset: written on the loop.
  void set_checkpoint_writer(opener run) { checkpoint_writer_ = std::move(run); }
  // Calls `done` on this loop once no partition handed to the opener is still opening.
  void when_opened(std::function<void()> done);
  size_t opening() const { return pending_.size(); }
  // ISR changes of partitions led here (Kafka's IsrShrinksPerSec / IsrExpandsPerSec).
  uint64_t isr_shrinks() const { return isr_shrinks_; }
  uint64_t isr_expands() const { return isr_expands_; }
  // StopReplica with delete: closes and deletes the partitions' data.
  void remove(const std::vector<topic_partition>& tps);

  // Role hooks, called on this shard's loop after the partition's state changed.
  // leader >= 0 and != node id: follow that leader from now (restart with truncation);
  // leader == node id or -1: stop fetching.
  using follower_hook = std::function<void(const topic_partition&, int32_t leader, int32_t epoch)>;
  using leadership_hook = std::function<void(const topic_partition&, bool leader)>;
  void set_hooks(follower_hook f, leadership_hook l, isr_change_sink isr) {
    on_follow_ = std::move(f);
    on_leadership_ = std::move(l);
    isr_sink_ = std::move(isr);
  }
  void start();
  // Closes every partition cleanly (flush + clean-shutdown marker).
  void close_all();

 private:
  // Where a partition's directory is (existing) or goes (new: the log dir holding the
  // fewest partitions, Kafka's rule). Counts come from partitions_per_dir_, so placing N
  // partitions costs no directory scans.
  std::filesystem::path dir_for(const topic_partition& tp) const;
  void housekeeping();
  // `here`: on this thread even with a checkpoint writer set (close_all).
  void write_recovery_checkpoints(bool here = false);
  void apply_role(partition& p, const cluster::partition_state& ps);
  // The follower / leadership hooks for the partition's current role.
  void report_role(partition& p);
  void schedule();

  // A partition being opened by the opener: the newest state and config apply() saw for it
  // meanwhile, where it goes, and whether a StopReplica with delete came in between.
  struct pending_open {
    cluster::partition_state state;
    partition_config config;
    std::string fingerprint;
    std::string opened_with;  // the fingerprint of the config it was opened with
    std::filesystem::path dir;
    bool counted = false;  // counted in partitions_per_dir_ (a new directory)
    bool remove = false;  // delete it once open
    bool reopen = false;  // wanted again after `remove` (a topic re-created): open afresh
  };
  void open_async(const topic_partition& tp, pending_open want, int64_t recovery_point,
                  int64_t hw_checkpoint);
  void finish_open(const topic_partition& tp, std::unique_ptr<partition> p,
                   partition::state_change first, const std::string& error);
  // Makes an open partition this shard's (its role is applied by the caller).
  partition& install(const topic_partition& tp, std::unique_ptr<partition> p,
                     const std::string& fingerprint);
  // One partition directory fewer in `parent` (partitions_per_dir_).
  void uncount_dir(const std::filesystem::path& parent);

  asio::io_context& loop_;
  replica_manager_options options_;
  config_fn config_;
  asio::steady_timer timer_;
  std::map<topic_partition, std::unique_ptr<partition>> partitions_;
  std::map<topic_partition, std::string> config_fingerprint_;
  std::map<std::filesystem::path, std::map<topic_partition, int64_t>> recovery_points_;
  std::map<topic_partition, int64_t> hw_checkpoints_;  // read at start
  uint64_t isr_shrinks_ = 0;
  uint64_t isr_expands_ = 0;
  follower_hook on_follow_;
  leadership_hook on_leadership_;
  isr_change_sink isr_sink_;
  // Partition directories per log dir (all shards' partitions, counted once at start and
  // kept up to date for this shard's own creations and removals).
  std::map<std::filesystem::path, size_t> partitions_per_dir_;
  int64_t last_retention_ms_ = 0;
  int64_t last_checkpoint_ms_ = 0;
  int64_t last_producer_expiry_ms_ = 0;
  bool closed_ = false;
  opener opener_;
  opener checkpoint_writer_;
  // Orders the checkpoint writes across threads: a write issued earlier than the one on
  // disk is skipped. `issued` is touched only on the loop, `written` under `mu`.
  struct checkpoint_sequence {
    std::mutex mu;
    uint64_t issued = 0;
    uint64_t written = 0;
  };
  std::shared_ptr<checkpoint_sequence> checkpoints_ = std::make_shared<checkpoint_sequence>();
  std::map<topic_partition, pending_open> pending_;
  std::vector<std::function<void()>> open_waiters_;
  // False once this manager is destroyed: an open finishing later is then only closed.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace varve::replication
