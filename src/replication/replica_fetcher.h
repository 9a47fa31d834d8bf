#pragma once
// replication::replica_fetcher_manager — the follower side of replication (DESIGN.md §4).
//
// One thread per leader broker this broker follows partitions of (Kafka's
// ReplicaFetcherThread), each with one blocking connection (net::broker_connection) to
// that leader. Per partition it keeps a fetch state:
//   truncating  just became follower (or was told its offset is out of range): ask the
//               leader OffsetForLeaderEpoch for our latest epoch and truncate to where the
//               logs diverge (KIP-101/279) — never to the HW blindly;
//   fetching    Fetch (replica_id = this broker, current_leader_epoch = the epoch we follow)
//               from our LEO; append what comes back as is, take the leader's HW.
//   delayed     the leader answered with an epoch / leadership error: wait for the
//               controller's next LeaderAndIsr (which calls add() again) or a back-off.
// The thread never touches a partition directly: `run_on_partition` runs a function on
// the partition's owning loop and waits for it. Every wait is bounded; stop() joins.
//
// Threading: add()/remove()/stop() may be called from any thread.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "cluster/metadata.h"
#include "replication/partition.h"

namespace varve::replication {

struct fetcher_options {
  int32_t node_id = 0;
  int32_t max_wait_ms = 500;               // replica.fetch.wait.max.ms
  int32_t min_bytes = 1;                   // replica.fetch.min.bytes
  int32_t max_bytes = 10 << 20;            // replica.fetch.response.max.bytes
  int32_t partition_max_bytes = 1 << 20;   // replica.fetch.max.bytes
  int32_t socket_timeout_ms = 30000;       // replica.socket.timeout.ms
  int32_t backoff_ms = 1000;               // replica.fetch.backoff.ms
};

class replica_fetcher_manager {
 public:
  // Runs fn(partition or nullptr) on the partition's loop and waits; false if it could not
  // (shutting down, or no answer within a bound).
  using run_fn = std::function<bool(const topic_partition&, const std::function<void(partition*)>&)>;
  using endpoint_fn = std::function<std::optional<cluster::broker_endpoint>(int32_t broker)>;

  replica_fetcher_manager(fetcher_options options, run_fn run, endpoint_fn endpoint);
  ~replica_fetcher_manager();

  // Follow `leader` for `tp` in `leader_epoch` (restarts with truncation). leader < 0 or
  // leader == node id: same as remove().
  void add(const topic_partition& tp, int32_t leader, int32_t leader_epoch);
  void remove(const topic_partition& tp);
  void stop();

  // For metrics: partitions currently followed.
  size_t partition_count() const;

 private:
  struct fetch_state {
    int32_t leader_epoch = -1;
    bool truncating = true;
    int64_t fetch_offset = -1;
    int64_t delayed_until_ms = 0;
    uint64_t generation = 0;  // bumped by add(): results for an older generation are dropped
  };
  struct fetcher;  // one thread per leader

  fetcher& fetcher_for(int32_t leader);  // requires mu_

  fetcher_options options_;
  run_fn run_;
  endpoint_fn endpoint_;
  mutable std::mutex mu_;
  std::map<int32_t, std::unique_ptr<fetcher>> fetchers_;  // GUARDED_BY(mu_)
  std::map<topic_partition, int32_t> leader_of_;          // GUARDED_BY(mu_)
  uint64_t next_generation_ = 1;                           // GUARDED_BY(mu_)
  std::atomic<bool> stopping_{false};
};

}  // namespace varve::replication
