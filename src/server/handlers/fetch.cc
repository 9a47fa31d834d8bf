// Fetch (consumer side): whole record batches served as file regions (sendfile), bounded
// by the high watermark (read_uncommitted) or the last stable offset (read_committed); a
// read_committed answer lists the aborted transactions overlapping the returned batches.
//
// Long poll: if fewer than min_bytes are available, the request waits until an append
// moves the high watermark of one of its partitions or max_wait_ms passes, then reads
// again. Size limits follow KIP-74: partition_max_bytes per partition and max_bytes in
// total, except that the first batch of the first non-empty partition is always returned
// whole so a consumer can make progress past a batch larger than its limits.
// Sessions (KIP-227) are not kept: every response has session_id 0, so clients send full
// fetch requests, which Kafka's protocol allows.
#include <asio/this_coro.hpp>

#include "server/handlers/handlers.h"
#include "server/handlers/util.h"

namespace varve::server::handlers {
namespace {

struct wanted_partition {
  replication::topic_partition tp;
  const fetch_request::fetch_partition* request = nullptr;
  size_t topic_index = 0;
  error_code resolve_error = error_code::none;
};

// Shared between a waiting fetch and the partitions it is registered with.
// `notified` closes the race between a wake-up and the wait: a wake posted while the fetch
// is still registering with its other partitions finds no pending wait to cancel, so it
// records the notification and the fetch skips waiting. Both run on the fetch's own loop.
struct fetch_wait {
  explicit fetch_wait(asio::any_io_executor ex) : timer(ex) {}
  bool notified = false;
  asio::steady_timer timer;
};

// Resolves topic names (v13+: topic ids) once; the response keeps the request's order.
std::vector<wanted_partition> resolve(const request_context& ctx, fetch_request& req,
                                      const cluster::metadata_snapshot& md, fetch_response& resp) {
  const bool by_id = ctx.version >= 13;
  std::vector<wanted_partition> wanted;
  for (auto& topic : req.topics) {
    auto& tr = resp.responses.emplace_back();
    tr.topic = topic.topic;
    tr.topic_id = topic.topic_id;
    std::shared_ptr<const cluster::topic_metadata> tmeta;
    if (by_id) {
      cluster::topic_id id;
      std::copy(topic.topic_id.bytes.begin(), topic.topic_id.bytes.end(), id.begin());
      tmeta = md.find(id);
    } else {
      tmeta = md.find(topic.topic);
    }
    for (auto& p : topic.partitions) {
      wanted_partition w;
      w.topic_index = resp.responses.size() - 1;
      w.request = &p;
      if (!tmeta) {
        w.resolve_error = by_id ? error_code::unknown_topic_id : error_code::unknown_topic_or_partition;
      } else {
        w.tp = {tmeta->name, p.partition};
        if (p.partition < 0 || p.partition >= static_cast<int32_t>(tmeta->partitions.size())) {
          w.resolve_error = error_code::unknown_topic_or_partition;
        }
      }
      wanted.push_back(std::move(w));
    }
  }
  return wanted;
}

// replica_id >= 0: a follower's fetch (reads to the LEO and updates its replica state).
replication::fetch_outcome read_from(replication::partition* p, int64_t offset, uint32_t limit,
                                     bool min_one, replication::isolation iso, int32_t epoch,
                                     int32_t replica_id) {
  if (!p) {
    replication::fetch_outcome o;
    o.error = error_code::not_leader_or_follower;
    return o;
  }
  if (replica_id >= 0) return p->read_for_follower(replica_id, offset, limit, epoch, now_ms());
  return p->read(offset, limit, min_one, iso, epoch);
}

// Wakes a waiting fetch from a partition's loop: posts to the fetch's own loop.
void register_waiter(replication::partition* p, uint64_t seen_seq, std::weak_ptr<fetch_wait> weak,
                     asio::any_io_executor executor) {
  if (!p) return;
  auto wake = [weak, executor] {
    asio::post(executor, [weak] {
      if (auto s = weak.lock()) {
        s->notified = true;
        s->timer.cancel();
      }
    });
  };
  // Data that arrived between our read and this registration must not be missed.
  if (p->change_seq() != seen_seq) {
    wake();
  } else {
    p->add_waiter(weak, wake);
  }
}
// Metrics: partition errors answered and record bytes returned, per topic.
void record_fetch_metrics(request_context& ctx, const std::vector<wanted_partition>& wanted,
                          const fetch_response& resp) {
  metrics::shard_probe* probe = ctx.b.probe();
  if (!probe) return;
  std::vector<size_t> next(resp.responses.size(), 0);  // partitions follow `wanted`'s order
  for (const auto& w : wanted) {
    const auto& pr = resp.responses[w.topic_index].partitions[next[w.topic_index]++];
    probe->record_error(fetch_request::api_key, pr.error_code);
    if (w.resolve_error == error_code::none) {
      probe->record_bytes_out(w.tp.topic, pr.record_set.size_bytes());
    }
  }
}

// Metrics: fetches parked in the long-poll wait (fetch purgatory size).
void note_fetch_waiting(request_context& ctx, bool waiting) {
  if (metrics::shard_probe* probe = ctx.b.probe()) {
    waiting ? probe->fetch_wait_started() : probe->fetch_wait_ended();
  }
}
}  // namespace

asio::awaitable<void> fetch(request_context& ctx, fetch_request& req, fetch_response& resp) {
  auto md = ctx.b.metadata();
  const auto iso = req.isolation_level == 1 ? replication::isolation::read_committed
                                            : replication::isolation::read_uncommitted;

  std::vector<wanted_partition> wanted = resolve(ctx, req, *md, resp);

  const int32_t replica_id = ctx.version <= 14 ? req.replica_id : req.replica_state.replica_id;
  const auto executor = co_await asio::this_coro::executor;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(req.max_wait_ms, 0));
  for (;;) {
    for (auto& tr : resp.responses) tr.partitions.clear();
    int64_t total = 0;
    bool any_error = false;
    std::vector<uint64_t> seen_seq(wanted.size(), 0);
    for (size_t i = 0; i < wanted.size(); ++i) {
      auto& w = wanted[i];
      auto& pr = resp.responses[w.topic_index].partitions.emplace_back();
      pr.partition_index = w.request->partition;
      pr.aborted_transactions = std::nullopt;
      // Errors carry empty, not null, records, as Kafka sends them: librdkafka rejects a
      // null record set (MessageSetSize -1) and retries the fetch in a tight loop.
      pr.record_set = records::empty();
      if (w.resolve_error != error_code::none) {
        pr.error_code = to_wire(w.resolve_error);
        pr.high_watermark = -1;
        any_error = true;
        continue;
      }
      const int64_t room = std::max<int64_t>(0, static_cast<int64_t>(req.max_bytes) - total);
      const uint32_t limit = static_cast<uint32_t>(
          std::min<int64_t>(std::max(w.request->partition_max_bytes, 0), room));
      const bool min_one = total == 0;
      const int64_t offset = w.request->fetch_offset;
      const int32_t epoch = w.request->current_leader_epoch;
      auto out = co_await on_partition(ctx.b, w.tp, [&](replication::partition* p) {
        return read_from(p, offset, limit, min_one, iso, epoch, replica_id);
      });
      pr.error_code = to_wire(out.error);
      pr.high_watermark = out.high_watermark;
      pr.last_stable_offset = out.last_stable_offset;
      pr.log_start_offset = out.log_start_offset;
      seen_seq[i] = out.change_seq;
      if (out.error != error_code::none) {
        any_error = true;
        continue;
      }
      pr.record_set = records::empty();
      for (auto& region : out.data.regions) pr.record_set.append(std::move(region));
      if (iso == replication::isolation::read_committed && replica_id < 0) {
        // The consumer drops these producers' records from the returned batches.
        auto& aborted = pr.aborted_transactions.emplace();
        for (const auto& a : out.aborted) {
          auto& e = aborted.emplace_back();
          e.producer_id = a.producer_id;
          e.first_offset = a.first_offset;
        }
      }
      total += static_cast<int64_t>(out.data.size_bytes);
    }
    if (total >= req.min_bytes || any_error || req.max_wait_ms <= 0 ||
        std::chrono::steady_clock::now() >= deadline) {
      break;
    }
    // Not enough data: wait for an append on any of the partitions, or the deadline.
    auto wait = std::make_shared<fetch_wait>(executor);
    wait->timer.expires_at(deadline);
    std::weak_ptr<fetch_wait> weak = wait;
    for (size_t i = 0; i < wanted.size(); ++i) {
      const auto& w = wanted[i];
      if (w.resolve_error != error_code::none) continue;
      const uint64_t seq = seen_seq[i];
      co_await on_partition(ctx.b, w.tp, [&](replication::partition* p) {
        register_waiter(p, seq, weak, executor);
        return 0;
      });
    }
    asio::error_code ec;
    if (wait->notified) continue;  // data arrived while registering: read again now
    note_fetch_waiting(ctx, true);
    co_await wait->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    note_fetch_waiting(ctx, false);
  }
  record_fetch_metrics(ctx, wanted, resp);
  resp.session_id = 0;
}

}  // namespace varve::server::handlers
