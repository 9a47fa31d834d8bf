// Produce: append each partition's record batch on its owning shard (one hop per shard,
// all shards concurrently).
// acks=0 sends no response; acks=1 answers after the leader's append; acks=-1 (all) fails
// with NOT_ENOUGH_REPLICAS before the append when the ISR is below min.insync.replicas, and
// otherwise waits (the "produce purgatory") until the high watermark passes the batch —
// every ISR member has it — or timeout_ms passes (REQUEST_TIMED_OUT: the write may or may
// not become committed, the idempotent producer's retry settles it). If the ISR shrank below
// min.insync.replicas meanwhile: NOT_ENOUGH_REPLICAS_AFTER_APPEND; if leadership moved:
// NOT_LEADER_OR_FOLLOWER.
#include <asio/this_coro.hpp>

#include "server/handlers/handlers.h"
#include "server/handlers/util.h"

namespace varve::server::handlers {

namespace {
// Checks one partition's part of the request; false (error filled in) if it cannot be
// appended. Plain function: see the note on GCC 12 in admin.cc.
bool check_partition(const produce_request& req, const cluster::topic_metadata* tmeta,
                     const produce_request::partition_produce_data& pd,
                     produce_response::partition_produce_response& pr) {
  pr.index = pd.index;
  pr.base_offset = -1;
  if (req.acks != 0 && req.acks != 1 && req.acks != -1) {
    pr.error_code = to_wire(error_code::invalid_required_acks);
    return false;
  }
  if (!tmeta || pd.index < 0 || pd.index >= static_cast<int32_t>(tmeta->partitions.size())) {
    pr.error_code = to_wire(error_code::unknown_topic_or_partition);
    return false;
  }
  if (pd.record_set.is_null() || pd.record_set.contiguous().empty()) {
    pr.error_code = to_wire(error_code::invalid_record);
    pr.error_message = "produce request without record batches";
    return false;
  }
  return true;
}

void fill_outcome(const replication::produce_outcome& out,
                  produce_response::partition_produce_response& pr) {
  pr.error_code = to_wire(out.error);
  pr.base_offset = out.base_offset;
  pr.log_append_time_ms = out.log_append_time;
  pr.log_start_offset = out.log_start_offset;
  if (!out.error_message.empty()) pr.error_message = out.error_message;
  if (out.batch_index >= 0 && out.error == error_code::invalid_record) {
    produce_response::batch_index_and_error_message e;
    e.batch_index = out.batch_index;
    e.batch_index_error_message = out.error_message;
    pr.record_errors.push_back(std::move(e));
  }
}

replication::produce_outcome append_to(replication::partition* p, std::span<uint8_t> batch,
                                       int16_t acks, int64_t now) {
  if (!p) {
    replication::produce_outcome o;
    o.error = error_code::not_leader_or_follower;
    return o;
  }
  return p->append(batch, acks, now);
}
// Metrics: a partition error answered (NONE is not counted).
void record_error(request_context& ctx, int16_t code) {
  if (metrics::shard_probe* probe = ctx.b.probe()) {
    probe->record_error(produce_request::api_key, code);
  }
}

// One partition's append, prepared on the connection's loop and run on the partition's.
struct pending_append {
  replication::topic_partition tp;
  std::span<uint8_t> batch;
  produce_response::partition_produce_response* response = nullptr;
  replication::produce_outcome outcome;
};

// Builds the whole response skeleton first (so pointers into it stay valid), answering the
// partitions that fail the request-level checks, and returns the appends to run.
std::vector<pending_append> prepare(request_context& ctx, const produce_request& req,
                                    produce_response& resp) {
  auto md = ctx.b.metadata();
  for (const auto& topic : req.topic_data) {
    auto& tr = resp.responses.emplace_back();
    tr.name = topic.name;
    tr.partition_responses.resize(topic.partition_data.size());
  }
  std::vector<pending_append> out;
  for (size_t t = 0; t < req.topic_data.size(); ++t) {
    const auto& topic = req.topic_data[t];
    auto tmeta = md->find(topic.name);
    for (size_t i = 0; i < topic.partition_data.size(); ++i) {
      const auto& pd = topic.partition_data[i];
      auto& pr = resp.responses[t].partition_responses[i];
      if (!check_partition(req, tmeta.get(), pd, pr)) {
        record_error(ctx, pr.error_code);
        if (req.acks == 0) ctx.close_connection = true;
        continue;
      }
      // The request frame is owned by this request alone: the batch header is rewritten in
      // place (offsets, leader epoch) and the same bytes go to the segment file.
      const auto bytes = pd.record_set.contiguous();
      out.push_back({{topic.name, pd.index},
                     std::span<uint8_t>(const_cast<uint8_t*>(bytes.data()), bytes.size()),
                     &pr,
                     {}});
    }
  }
  return out;
}

// Per shard, a task appending that shard's partitions in request order.
std::vector<std::function<void()>> append_tasks(broker& b, std::vector<pending_append>& items,
                                                std::vector<std::vector<pending_append*>>& by_shard,
                                                int16_t acks, int64_t now) {
  by_shard.assign(b.shards().count(), {});
  for (auto& it : items) by_shard[b.shard_of(it.tp)].push_back(&it);
  std::vector<std::function<void()>> work(by_shard.size());
  for (unsigned s = 0; s < by_shard.size(); ++s) {
    if (by_shard[s].empty()) continue;
    work[s] = [&b, &by_shard, s, acks, now] {
      for (pending_append* it : by_shard[s]) {
        it->outcome = append_to(b.replicas(s).get(it->tp), it->batch, acks, now);
      }
    };
  }
  return work;
}

// Shared between a waiting acks=all request and the partitions it waits on; touched only
// on the request's own loop (wake-ups are posted there).
struct acks_wait {
  explicit acks_wait(asio::any_io_executor ex) : timer(ex) {}
  bool notified = false;
  asio::steady_timer timer;
};

// On the partition's loop: is the append committed? If not, registers a wake-up.
bool committed_or_wait(replication::partition* p, pending_append& it,
                       std::weak_ptr<acks_wait> weak, asio::any_io_executor home) {
  if (!p) {
    it.outcome.error = error_code::not_leader_or_follower;
    return true;
  }
  bool done = false;
  const error_code e = p->acks_all_status(it.outcome.last_offset + 1, it.outcome.leader_epoch, &done);
  if (done) {
    it.outcome.error = e;
    return true;
  }
  p->add_waiter(weak, [weak, home] {
    asio::post(home, [weak] {
      if (auto w = weak.lock()) {
        w->notified = true;
        w->timer.cancel();
      }
    });
  });
  return false;
}

bool awaiting_commit(const pending_append& it) {
  return it.outcome.error == error_code::none && it.outcome.last_offset >= 0;
}

void note_produce_waiting(request_context& ctx, bool waiting) {
  if (metrics::shard_probe* probe = ctx.b.probe()) {
    waiting ? probe->produce_wait_started() : probe->produce_wait_ended();
  }
}

void finish(request_context& ctx, int16_t acks, std::vector<pending_append>& items) {
  for (auto& it : items) {
    fill_outcome(it.outcome, *it.response);
    record_error(ctx, it.response->error_code);
    if (acks == 0 && it.outcome.error != error_code::none) ctx.close_connection = true;
  }
}
}  // namespace

asio::awaitable<void> wait_for_commit(request_context& ctx, std::vector<pending_append>& items,
                                      int32_t timeout_ms) {
  const auto home = co_await asio::this_coro::executor;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
  std::vector<pending_append*> pending;
  for (auto& it : items) {
    if (awaiting_commit(it)) pending.push_back(&it);
  }
  bool counted = false;
  while (!pending.empty()) {
    auto wait = std::make_shared<acks_wait>(home);
    wait->timer.expires_at(deadline);
    std::weak_ptr<acks_wait> weak = wait;
    std::vector<pending_append*> still;
    for (pending_append* it : pending) {
      auto op = on_partition(ctx.b, it->tp, [it, weak, home](replication::partition* p) {
        return committed_or_wait(p, *it, weak, home);
      });
      const bool done = co_await std::move(op);
      if (!done) still.push_back(it);
    }
    pending = std::move(still);
    if (pending.empty()) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      for (pending_append* it : pending) it->outcome.error = error_code::request_timed_out;
      break;
    }
    if (wait->notified) continue;
    if (!counted) {
      note_produce_waiting(ctx, true);
      counted = true;
    }
    asio::error_code ec;
    co_await wait->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (counted) note_produce_waiting(ctx, false);
}

asio::awaitable<void> produce(request_context& ctx, produce_request& req, produce_response& resp) {
  if (req.acks == 0) ctx.send_response = false;
  std::vector<pending_append> items = prepare(ctx, req, resp);
  std::vector<std::vector<pending_append*>> by_shard;
  auto work = append_tasks(ctx.b, items, by_shard, req.acks, now_ms());
  co_await run_on_shards(ctx.b, work);
  if (req.acks == -1) co_await wait_for_commit(ctx, items, req.timeout_ms);
  finish(ctx, req.acks, items);
}

}  // namespace varve::server::handlers
