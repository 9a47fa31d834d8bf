// ListOffsets, DeleteRecords and OffsetForLeaderEpoch: per-partition offset queries and the
// log-start move, each run on the partition's owning shard.
#include "server/handlers/handlers.h"
#include "server/handlers/util.h"

namespace varve::server::handlers {
namespace {
// ListOffsets special timestamps.
constexpr int64_t kLatest = -1;
constexpr int64_t kEarliest = -2;
constexpr int64_t kMaxTimestamp = -3;
constexpr int64_t kEarliestLocal = -4;
constexpr int64_t kLatestTiered = -5;

bool known_partition(const cluster::metadata_snapshot& md, const std::string& topic, int32_t p) {
  auto t = md.find(topic);
  return t && p >= 0 && p < static_cast<int32_t>(t->partitions.size());
}
}  // namespace

asio::awaitable<void> list_offsets(request_context& ctx, list_offsets_request& req,
                                   list_offsets_response& resp) {
  auto md = ctx.b.metadata();
  const bool committed = req.isolation_level == 1;
  for (auto& topic : req.topics) {
    auto& tr = resp.topics.emplace_back();
    tr.name = topic.name;
    for (auto& p : topic.partitions) {
      auto& pr = tr.partitions.emplace_back();
      pr.partition_index = p.partition_index;
      if (!known_partition(*md, topic.name, p.partition_index)) {
        pr.error_code = to_wire(error_code::unknown_topic_or_partition);
        continue;
      }
      const replication::topic_partition tp{topic.name, p.partition_index};
      const int64_t ts = p.timestamp;
      const int32_t epoch = p.current_leader_epoch;
      co_await on_partition(ctx.b, tp, [&](replication::partition* part) {
        if (!part || !part->is_leader()) {
          pr.error_code = to_wire(error_code::not_leader_or_follower);
          return 0;
        }
        if (auto e = part->check_leader_epoch(epoch); e != error_code::none) {
          pr.error_code = to_wire(e);
          return 0;
        }
        pr.leader_epoch = part->leader_epoch();
        const auto& log = part->log();
        switch (ts) {
          case kLatest:
            pr.offset = committed ? part->last_stable_offset() : part->high_watermark();
            pr.timestamp = -1;
            break;
          case kEarliest:
          case kEarliestLocal:
            pr.offset = part->log_start_offset();
            pr.timestamp = -1;
            break;
          case kLatestTiered:  // no tiered storage: nothing is remote
            pr.offset = -1;
            pr.timestamp = -1;
            break;
          case kMaxTimestamp:
            if (auto r = log.max_timestamp_offset()) {
              pr.offset = r->offset;
              pr.timestamp = r->timestamp;
              if (r->leader_epoch >= 0) pr.leader_epoch = r->leader_epoch;
            }
            break;
          default:
            if (ts < 0) {
              pr.error_code = to_wire(error_code::invalid_request);
              break;
            }
            if (auto r = log.offset_for_timestamp(ts); r && r->offset < part->high_watermark()) {
              pr.offset = r->offset;
              pr.timestamp = r->timestamp;
              if (r->leader_epoch >= 0) pr.leader_epoch = r->leader_epoch;
            } else {
              pr.offset = -1;
              pr.timestamp = -1;
            }
        }
        return 0;
      });
    }
  }
}

asio::awaitable<void> delete_records(request_context& ctx, delete_records_request& req,
                                     delete_records_response& resp) {
  auto md = ctx.b.metadata();
  for (auto& topic : req.topics) {
    auto& tr = resp.topics.emplace_back();
    tr.name = topic.name;
    for (auto& p : topic.partitions) {
      auto& pr = tr.partitions.emplace_back();
      pr.partition_index = p.partition_index;
      pr.low_watermark = -1;
      if (!known_partition(*md, topic.name, p.partition_index)) {
        pr.error_code = to_wire(error_code::unknown_topic_or_partition);
        continue;
      }
      const replication::topic_partition tp{topic.name, p.partition_index};
      const int64_t offset = p.offset;
      co_await on_partition(ctx.b, tp, [&](replication::partition* part) {
        if (!part) {
          pr.error_code = to_wire(error_code::not_leader_or_follower);
          return 0;
        }
        int64_t low = -1;
        pr.error_code = to_wire(part->delete_records(offset, &low));
        pr.low_watermark = low;
        return 0;
      });
    }
  }
}

asio::awaitable<void> offset_for_leader_epoch(request_context& ctx,
                                              offset_for_leader_epoch_request& req,
                                              offset_for_leader_epoch_response& resp) {
  auto md = ctx.b.metadata();
  for (auto& topic : req.topics) {
    auto& tr = resp.topics.emplace_back();
    tr.topic = topic.topic;
    for (auto& p : topic.partitions) {
      auto& pr = tr.partitions.emplace_back();
      pr.partition = p.partition;
      if (!known_partition(*md, topic.topic, p.partition)) {
        pr.error_code = to_wire(error_code::unknown_topic_or_partition);
        continue;
      }
      const replication::topic_partition tp{topic.topic, p.partition};
      co_await on_partition(ctx.b, tp, [&](replication::partition* part) {
        if (!part || !part->is_leader()) {
          pr.error_code = to_wire(error_code::not_leader_or_follower);
          return 0;
        }
        if (auto e = part->check_leader_epoch(p.current_leader_epoch); e != error_code::none) {
          pr.error_code = to_wire(e);
          return 0;
        }
        // KIP-101/279: the largest epoch <= the requested one and the offset where it ends
        // (the log end offset for the current epoch).
        const auto [epoch, end] = part->log().end_offset_for_epoch(p.leader_epoch);
        pr.leader_epoch = epoch;
        pr.end_offset = end;
        return 0;
      });
    }
  }
}

}  // namespace varve::server::handlers
