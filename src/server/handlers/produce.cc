// Produce: append each partition's record batch on its owning shard.
// acks=0 sends no response; acks=1 answers after the leader's append; acks=-1 also waits
// for the high watermark (immediate while the ISR is this broker alone) and fails with
// NOT_ENOUGH_REPLICAS when the ISR is below min.insync.replicas.
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
  if (req.transactional_id) {
    pr.error_code = to_wire(error_code::transactional_id_authorization_failed);
    pr.error_message = "transactions are not supported by this broker yet";
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
}  // namespace

asio::awaitable<void> produce(request_context& ctx, produce_request& req, produce_response& resp) {
  if (req.acks == 0) ctx.send_response = false;
  auto md = ctx.b.metadata();
  const int64_t now = now_ms();
  for (auto& topic : req.topic_data) {
    auto& tr = resp.responses.emplace_back();
    tr.name = topic.name;
    auto tmeta = md->find(topic.name);
    for (auto& pd : topic.partition_data) {
      auto& pr = tr.partition_responses.emplace_back();
      if (!check_partition(req, tmeta.get(), pd, pr)) {
        record_error(ctx, pr.error_code);
        if (req.acks == 0) ctx.close_connection = true;
        continue;
      }
      // The request frame is owned by this request alone: the batch header is rewritten in
      // place (offsets, leader epoch) and the same bytes go to the segment file.
      const auto bytes = pd.record_set.contiguous();
      std::span<uint8_t> batch(const_cast<uint8_t*>(bytes.data()), bytes.size());
      const replication::topic_partition tp{topic.name, pd.index};
      const int16_t acks = req.acks;
      auto out = co_await on_partition(ctx.b, tp, [&](replication::partition* p) {
        return append_to(p, batch, acks, now);
      });
      fill_outcome(out, pr);
      record_error(ctx, pr.error_code);
      if (req.acks == 0 && out.error != error_code::none) ctx.close_connection = true;
    }
  }
}

}  // namespace varve::server::handlers
