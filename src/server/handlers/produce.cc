// Produce: append each partition's record batch on its owning shard (one hop per shard,
// all shards concurrently).
// acks=0 sends no response; acks=1 answers after the leader's append; acks=-1 (all) fails
// with NOT_ENOUGH_REPLICAS before the append when the ISR is below min.insync.replicas, and
// otherwise waits (the "produce purgatory") until the high watermark passes the batch —
// every ISR member has it — or timeout_ms passes (REQUEST_TIMED_OUT: the write may or may
// not become committed, the idempotent producer's retry settles it). If the ISR shrank below
// min.insync.replicas meanwhile: NOT_ENOUGH_REPLICAS_AFTER_APPEND; if leadership moved:
// NOT_LEADER_OR_FOLLOWER.
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
  // KIP-890: the partition's verification guard while the transaction coordinator is asked
  // (kNoVerification: appended in the first pass).
  uint64_t guard = replication::partition::kNoVerification;
};

// First pass, on the partition's shard: appends, except a transactional batch that would
// open a transaction on its partition, which takes a verification guard and is appended
// after the coordinator confirmed the partition is in the producer's transaction.
void append_or_hold(replication::partition* p, pending_append& it, int16_t acks, int64_t now,
                    bool transactional) {
  if (p && transactional) {
    it.guard = p->start_verification(it.batch);
    if (it.guard != replication::partition::kNoVerification) return;
  }
  it.outcome = append_to(p, it.batch, acks, now);
}

replication::produce_outcome append_verified_to(replication::partition* p, pending_append& it,
                                                int16_t acks, int64_t now) {
  if (!p) {
    replication::produce_outcome o;
    o.error = error_code::not_leader_or_follower;
    return o;
  }
  return p->append_verified(it.batch, acks, now, it.guard);
}

// What a producer is told when verification did not say yes (Kafka's mapping: coordinator
// trouble is retriable as NOT_ENOUGH_REPLICAS; TRANSACTION_ABORTABLE exists from v11; Produce
// reports fencing as INVALID_PRODUCER_EPOCH).
error_code verification_error(error_code e, int16_t version) {
  if (e == error_code::producer_fenced) return error_code::invalid_producer_epoch;
  return verification_answer(
      e, error_code::not_enough_replicas,
      version >= 11 ? error_code::transaction_abortable : error_code::invalid_txn_state);
}

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
                                                int16_t acks, int64_t now, bool transactional) {
  by_shard.assign(b.shards().count(), {});
  for (auto& it : items) by_shard[b.shard_of(it.tp)].push_back(&it);
  std::vector<std::function<void()>> work(by_shard.size());
  for (unsigned s = 0; s < by_shard.size(); ++s) {
    if (by_shard[s].empty()) continue;
    work[s] = [&b, &by_shard, s, acks, now, transactional] {
      for (pending_append* it : by_shard[s]) {
        append_or_hold(b.replicas(s).get(it->tp), *it, acks, now, transactional);
      }
    };
  }
  return work;
}

bool awaiting_commit(const pending_append& it) {
  return it.outcome.error == error_code::none && it.outcome.last_offset >= 0;
}

void finish(request_context& ctx, int16_t acks, std::vector<pending_append>& items) {
  for (auto& it : items) {
    fill_outcome(it.outcome, *it.response);
    record_error(ctx, it.response->error_code);
    if (acks == 0 && it.outcome.error != error_code::none) ctx.close_connection = true;
  }
}
}  // namespace

// acks=all: the partitions' waits overlap (each resumes as soon as its own HW moves), so
// waiting for them one after the other costs the slowest, not the sum.
asio::awaitable<void> wait_for_all_commits(request_context& ctx, std::vector<pending_append>& items,
                                           int32_t timeout_ms) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
  for (auto& it : items) {
    if (!awaiting_commit(it)) continue;
    auto op = wait_for_commit(ctx.b, it.tp, it.outcome.last_offset + 1, it.outcome.leader_epoch,
                              deadline);
    it.outcome.error = co_await std::move(op);
  }
}

// Second pass for the batches held by append_or_hold: one verification call for all of
// them, then each verified batch is appended (or fails if its transaction ended meanwhile).
asio::awaitable<void> verify_and_append(request_context& ctx, const produce_request& req,
                                        std::vector<pending_append>& items, int64_t now) {
  std::vector<pending_append*> held;
  std::vector<std::pair<std::string, int32_t>> tps;
  for (auto& it : items) {
    if (it.guard == replication::partition::kNoVerification) continue;
    held.push_back(&it);
    tps.emplace_back(it.tp.topic, it.tp.partition);
  }
  if (held.empty()) co_return;
  const auto header = protocol::parse_batch_header(held.front()->batch);
  const int64_t pid = header ? header->producer_id : -1;
  const int16_t epoch = header ? header->producer_epoch : -1;
  auto verify = verify_txn_partitions(ctx, *req.transactional_id, pid, epoch, tps);
  const std::vector<error_code> errors = co_await std::move(verify);
  const int16_t acks = req.acks;
  for (size_t i = 0; i < held.size(); ++i) {
    pending_append* it = held[i];
    const error_code e = verification_error(errors[i], ctx.version);
    if (e != error_code::none) {
      it->outcome.error = e;
      it->outcome.error_message = "partition is not part of the producer's ongoing transaction "
                                  "(verification: " + std::string(protocol::error_name(errors[i])) + ")";
      continue;
    }
    auto op = on_partition(ctx.b, it->tp, [it, acks, now](replication::partition* p) {
      return append_verified_to(p, *it, acks, now);
    });
    replication::produce_outcome out = co_await std::move(op);
    it->outcome = std::move(out);
  }
}

asio::awaitable<void> produce(request_context& ctx, produce_request& req, produce_response& resp) {
  if (req.acks == 0) ctx.send_response = false;
  std::vector<pending_append> items = prepare(ctx, req, resp);
  std::vector<std::vector<pending_append*>> by_shard;
  const int64_t now = now_ms();
  auto work = append_tasks(ctx.b, items, by_shard, req.acks, now, req.transactional_id.has_value());
  co_await run_on_shards(ctx.b, work);
  if (req.transactional_id) co_await verify_and_append(ctx, req, items, now);
  if (req.acks == -1) co_await wait_for_all_commits(ctx, items, req.timeout_ms);
  finish(ctx, req.acks, items);
}

}  // namespace varve::server::handlers
