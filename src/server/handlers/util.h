#pragma once
// Helpers shared by handlers: time, and running work on the shard that owns a partition.
#include <chrono>
#include <functional>
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

}  // namespace varve::server::handlers
