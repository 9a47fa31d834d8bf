#pragma once
// Helpers shared by handlers: time, and running work on the shard that owns a partition.
#include <chrono>

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
