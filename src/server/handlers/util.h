#pragma once
// Helpers shared by handlers: time, and running work on the shard that owns a partition.
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "replication/partition.h"
#include "server/broker.h"

namespace varve::server::handlers {

inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Runs fn(partition*) on the partition's owning shard; the pointer is null when this
// broker does not host the partition. References captured by `fn` stay valid: the caller
// is suspended until fn returns.
template <typename F>
auto on_partition(broker& b, const replication::topic_partition& tp, F fn)
    -> asio::awaitable<std::invoke_result_t<F, replication::partition*>> {
  const unsigned shard = b.shard_of(tp);
  // Named awaitable, reference captures: see broker::with_controller.
  auto op = b.shards().invoke_on(shard, [&b, &tp, shard, &fn] { return fn(b.replicas(shard).get(tp)); });
  co_return co_await std::move(op);
}

}  // namespace varve::server::handlers

namespace varve::server::handlers {

// Runs work[s]() on shard s for every non-empty entry, all shards concurrently, and
// resumes the caller once every one has finished: one hop per shard instead of one per
// partition. The entry for the caller's own shard runs inline. `work` must stay alive until
// this returns (it does: the caller is suspended). An exception thrown by any entry is
// rethrown here, after all entries have finished.
asio::awaitable<void> run_on_shards(broker& b, std::vector<std::function<void()>>& work);

// The acks=all wait ("produce purgatory"): resumes once the high watermark of `tp` reaches
// `required_offset` (NONE, or NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR is below
// min.insync.replicas), when this broker stopped leading the partition since the append in
// `epoch_at_append` (NOT_LEADER_OR_FOLLOWER), or at `deadline` (REQUEST_TIMED_OUT).
// `tp` is taken by value: the coroutine must own it, callers may pass a temporary.
asio::awaitable<protocol::error_code> wait_for_commit(broker& b, replication::topic_partition tp,
                                            int64_t required_offset, int32_t epoch_at_append,
                                            std::chrono::steady_clock::time_point deadline);

// An internal topic (__consumer_offsets, __transaction_state), created compacted and
// internal on first use.
struct internal_topic_spec {
  std::string name;
  int32_t partitions = 0;
  int16_t replication_factor = 1;
  std::map<std::string, std::string> configs;
};

// A single broker holds one replica whatever the setting says; a cluster uses the setting as
// is (creation fails, and clients retry, until that many brokers are up, as in Kafka).
int16_t internal_replication_factor(const config::broker_config& cfg, int32_t configured);

// Creates `spec` through the controller unless it exists already: NONE once it exists,
// COORDINATOR_NOT_AVAILABLE (logged) when it cannot be created. `spec` is owned by the
// coroutine.
asio::awaitable<protocol::error_code> ensure_internal_topic(broker& b, internal_topic_spec spec);

}  // namespace varve::server::handlers
