#include "replication/partition.h"

#include <algorithm>

#include "common/log.h"
#include "protocol/record_batch.h"
#include "storage/log_cleaner.h"

namespace varve::replication {
namespace {
using protocol::error_code;
constexpr std::string_view kLog = "partition";

error_code to_error(storage::append_error e) {
  switch (e) {
    case storage::append_error::none: return error_code::none;
    case storage::append_error::corrupt_message: return error_code::corrupt_message;
    case storage::append_error::invalid_record: return error_code::invalid_record;
    case storage::append_error::message_too_large: return error_code::message_too_large;
    case storage::append_error::invalid_timestamp: return error_code::invalid_timestamp;
    case storage::append_error::storage_error: return error_code::kafka_storage_error;
  }
  return error_code::unknown_server_error;
}
}  // namespace

partition::partition(topic_partition tp, int32_t node_id, std::unique_ptr<storage::log> log,
                     partition_config config)
    : tp_(std::move(tp)),
      node_id_(node_id),
      log_(std::move(log)),
      producer_state_(log_->dir()),
      config_(std::move(config)) {}

partition::~partition() = default;

std::unique_ptr<partition> partition::open(topic_partition tp, const std::filesystem::path& dir,
                                           const partition_config& config, int32_t node_id,
                                           int32_t leader_epoch, std::vector<int32_t> replicas,
                                           std::vector<int32_t> isr, int64_t recovery_point,
                                           std::string* error) {
  auto log = storage::log::open(dir, config.log, recovery_point, error);
  if (!log) return nullptr;
  std::unique_ptr<partition> p(new partition(std::move(tp), node_id, std::move(log), config));
  p->producer_state_.load(*p->log_);
  p->segments_at_last_snapshot_ = p->log_->segment_count();
  p->leader_ = node_id;
  p->leader_epoch_ = leader_epoch;
  p->replicas_ = std::move(replicas);
  p->isr_ = std::move(isr);
  // Everything in a single-replica log was acknowledged (or written) by this replica: the
  // high watermark restarts at the log end offset.
  p->advance_high_watermark();
  return p;
}

error_code partition::check_leader_epoch(int32_t current_leader_epoch) const {
  if (current_leader_epoch < 0) return error_code::none;
  if (current_leader_epoch < leader_epoch_) return error_code::fenced_leader_epoch;
  if (current_leader_epoch > leader_epoch_) return error_code::unknown_leader_epoch;
  return error_code::none;
}

produce_outcome partition::append(std::span<uint8_t> records, int16_t acks, int64_t now_ms) {
  produce_outcome out;
  out.log_start_offset = log_->log_start_offset();
  if (!is_leader()) {
    out.error = error_code::not_leader_or_follower;
    return out;
  }
  if (acks == -1 && static_cast<int32_t>(isr_.size()) < config_.min_insync_replicas) {
    out.error = error_code::not_enough_replicas;
    out.error_message = "ISR size " + std::to_string(isr_.size()) +
                        " is below min.insync.replicas " +
                        std::to_string(config_.min_insync_replicas);
    return out;
  }
  auto header = protocol::parse_batch_header(records);
  if (!header) {
    out.error = error_code::corrupt_message;
    out.error_message = "record batch shorter than its header";
    return out;
  }
  if (header->magic != protocol::kMagicV2) {
    out.error = error_code::unsupported_for_message_format;
    out.error_message = "only record batch magic 2 is supported";
    return out;
  }
  if (header->total_size() < records.size()) {
    out.error = error_code::invalid_record;
    out.batch_index = 1;
    out.error_message = "produce requests may contain exactly one record batch per partition";
    return out;
  }
  if (header->records_count != header->last_offset_delta + 1 || header->records_count <= 0) {
    // A producer's batch numbers its records 0..n-1; gaps only appear after compaction.
    out.error = error_code::invalid_record;
    out.batch_index = 0;
    out.error_message = "record count " + std::to_string(header->records_count) +
                        " does not match last offset delta " +
                        std::to_string(header->last_offset_delta);
    return out;
  }
  if (header->is_transactional()) {
    out.error = error_code::invalid_txn_state;
    out.error_message = "transactional writes need the transaction coordinator";
    return out;
  }
  if (config_.log.compact) {
    // Kafka refuses records without a key on compacted topics. Only decoded here (compacted
    // topics); a batch that fails validation is answered by the log's append below.
    protocol::record_batch_header checked;
    if (protocol::validate_batch(records, &checked) == protocol::batch_error::none) {
      std::vector<protocol::record> decoded;
      bool keyless = false;
      const size_t bound = storage::cleaner_options{}.max_decompressed_batch_bytes;
      if (!protocol::decode_records(records, &decoded, bound)) {
        out.error = error_code::invalid_record;
        out.batch_index = 0;
        out.error_message = "cannot decode the records of a batch for a compacted topic";
        return out;
      }
      for (const auto& r : decoded) keyless = keyless || !r.key;
      if (keyless) {
        out.error = error_code::invalid_record;
        out.batch_index = 0;
        out.error_message =
            "Compacted topic cannot accept message without key in topic partition " + tp_.str() +
            ".";
        return out;
      }
    }
  }
  if (header->producer_id >= 0) {
    storage::producer_batch_metadata original;
    switch (producer_state_.check(*header, &original)) {
      case storage::sequence_check::ok:
        break;
      case storage::sequence_check::duplicate:
        // A retry of a batch we already have: acknowledge it again with its original offset.
        out.base_offset = original.first_offset;
        VLOG_DEBUG(kLog) << tp_.str() << ": duplicate batch from producer "
                         << header->producer_id << " seq " << header->base_sequence
                         << " answered with offset " << original.first_offset;
        return out;
      case storage::sequence_check::out_of_order:
        out.error = error_code::out_of_order_sequence_number;
        out.error_message = "out of order sequence number for producer " +
                            std::to_string(header->producer_id);
        return out;
      case storage::sequence_check::invalid_producer_epoch:
        out.error = error_code::invalid_producer_epoch;
        out.error_message = "producer epoch " + std::to_string(header->producer_epoch) +
                            " is older than the current one";
        return out;
    }
  }
  storage::append_info info;
  const auto err = log_->append_as_leader(records, leader_epoch_, now_ms, &info);
  if (err != storage::append_error::none) {
    out.error = to_error(err);
    out.batch_index = info.batch_index_in_error;
    if (err == storage::append_error::storage_error) {
      VLOG_ERROR(kLog) << tp_.str() << ": append failed with a storage error";
    }
    return out;
  }
  if (header->producer_id >= 0) {
    auto stored = protocol::parse_batch_header(records);  // now carries the assigned offsets
    producer_state_.update(*stored);
  }
  out.base_offset = info.first_offset;
  out.log_append_time = info.log_append_time;
  out.record_count = info.record_count;
  out.bytes = static_cast<int64_t>(records.size());
  bytes_in_ += records.size();
  records_in_ += static_cast<uint64_t>(info.record_count);
  advance_high_watermark();
  return out;
}

void partition::advance_high_watermark() {
  // HW = min LEO over the ISR. Only this replica's LEO is known in a single-broker build.
  const int64_t hw = log_->log_end_offset();
  if (hw != high_watermark_) {
    high_watermark_ = hw;
    notify_waiters();
  }
}

void partition::add_waiter(std::weak_ptr<void> alive, std::function<void()> fn) {
  std::erase_if(waiters_, [](const auto& w) { return w.first.expired(); });
  waiters_.emplace_back(std::move(alive), std::move(fn));
}

void partition::notify_waiters() {
  if (waiters_.empty()) return;
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (auto& [alive, fn] : waiters) {
    if (!alive.expired()) fn();
  }
}

fetch_outcome partition::read(int64_t offset, uint32_t max_bytes, bool min_one_batch,
                              isolation iso, int32_t current_leader_epoch) const {
  fetch_outcome out;
  out.high_watermark = high_watermark_;
  out.last_stable_offset = last_stable_offset();
  out.log_start_offset = log_->log_start_offset();
  if (!is_leader()) {
    out.error = error_code::not_leader_or_follower;
    return out;
  }
  if (auto e = check_leader_epoch(current_leader_epoch); e != error_code::none) {
    out.error = e;
    return out;
  }
  const int64_t limit = iso == isolation::read_committed ? last_stable_offset() : high_watermark_;
  if (offset < log_->log_start_offset() || offset > log_->log_end_offset()) {
    out.error = error_code::offset_out_of_range;
    return out;
  }
  if (offset >= limit) return out;  // nothing visible yet
  if (!log_->read(offset, max_bytes, limit, min_one_batch, &out.data)) {
    out.error = error_code::offset_out_of_range;
  }
  return out;
}

error_code partition::delete_records(int64_t offset, int64_t* new_log_start) {
  if (!is_leader()) return error_code::not_leader_or_follower;
  if (offset == -1) offset = high_watermark_;
  if (offset < 0 || offset > high_watermark_) return error_code::offset_out_of_range;
  *new_log_start = log_->delete_records_before(offset);
  return error_code::none;
}

void partition::update_config(const partition_config& config) {
  config_ = config;
  log_->update_config(config.log);
}

void partition::housekeeping(int64_t now_ms, bool retention_due) {
  log_->maybe_roll(now_ms);
  log_->maybe_flush(now_ms);
  if (retention_due && config_.log.delete_retention) {
    const int deleted = log_->enforce_retention(now_ms, high_watermark_);
    if (deleted > 0) {
      VLOG_INFO(kLog) << tp_.str() << ": retention deleted " << deleted
                      << " segment(s); log start offset now " << log_->log_start_offset();
    }
  }
  if (config_.log.compact && config_.cleaner_enable) {
    // At most one cleaning pass per tick (storage/log_cleaner.h); it logs what it cleaned.
    storage::maybe_clean(*log_, now_ms, high_watermark_);
  }
  // Kafka snapshots producer state when a segment rolls, bounding the replay on restart.
  if (log_->segment_count() != segments_at_last_snapshot_) {
    producer_state_.take_snapshot(log_->log_end_offset());
    segments_at_last_snapshot_ = log_->segment_count();
  }
}

void partition::close() {
  log_->flush();
  producer_state_.take_snapshot(log_->log_end_offset());
  log_->close();
}

void partition::remove() { log_->remove(); }

}  // namespace varve::replication
