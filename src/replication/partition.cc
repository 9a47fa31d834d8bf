#include "replication/partition.h"

#include <algorithm>
#include <chrono>

#include "common/log.h"
#include "protocol/record_batch.h"
#include "protocol/record_control.h"
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
      txn_index_(log_->dir()),
      config_(std::move(config)) {}

partition::~partition() = default;

std::unique_ptr<partition> partition::open(topic_partition tp, const std::filesystem::path& dir,
                                           const partition_config& config, int32_t node_id,
                                           int64_t recovery_point, int64_t hw_checkpoint,
                                           std::string* error) {
  auto log = storage::log::open(dir, config.log, recovery_point, error);
  if (!log) return nullptr;
  std::unique_ptr<partition> p(new partition(std::move(tp), node_id, std::move(log), config));
  p->txn_index_.load(*p->log_);
  p->producer_state_.load(*p->log_, p->txn_index_);
  p->segments_at_last_snapshot_ = p->log_->segment_count();
  // The HW restarts at the checkpointed value (never above the LEO, never below the log
  // start); the role comes with the first apply_state().
  p->high_watermark_ = std::clamp<int64_t>(std::max<int64_t>(hw_checkpoint, 0),
                                           p->log_->log_start_offset(), p->log_->log_end_offset());
  p->producer_state_.on_high_watermark(p->high_watermark_);
  return p;
}

partition::state_change partition::apply_state(const cluster::partition_state& ps,
                                               int64_t now_ms) {
  if (ps.leader_epoch < leader_epoch_) return state_change::none;
  if (ps.leader_epoch == leader_epoch_) {
    if (ps.partition_epoch <= partition_epoch_ && ps.replicas == replicas_) return state_change::none;
    // Same leadership, newer ISR (AlterPartition result, or the controller removed a dead
    // follower without a leader change).
    partition_epoch_ = ps.partition_epoch;
    isr_ = ps.isr;
    replicas_ = ps.replicas;
    pending_isr_.reset();
    if (is_leader()) maybe_advance_high_watermark();
    ++change_seq_;
    notify_waiters();
    return state_change::isr_only;
  }
  const bool was_leader = is_leader();
  leader_ = ps.leader;
  leader_epoch_ = ps.leader_epoch;
  partition_epoch_ = ps.partition_epoch;
  replicas_ = ps.replicas;
  isr_ = ps.isr;
  pending_isr_.reset();
  followers_.clear();
  if (is_leader()) {
    if (!was_leader) leadership_start_epoch_ = leader_epoch_;
    log_->assign_leader_epoch(leader_epoch_);
    leader_epoch_start_offset_ = log_->log_end_offset();
    for (int32_t r : replicas_) {
      if (r == node_id_) continue;
      follower_state f;
      // Members of the ISR count as caught up now: they get a full lag period to fetch.
      f.last_caught_up_ms = std::find(isr_.begin(), isr_.end(), r) != isr_.end() ? now_ms : 0;
      followers_[r] = f;
    }
    VLOG_INFO(kLog) << tp_.str() << ": leader in epoch " << leader_epoch_ << " from offset "
                    << leader_epoch_start_offset_ << ", HW " << high_watermark_ << ", ISR "
                    << isr_.size() << " of " << replicas_.size();
    maybe_advance_high_watermark();
  } else {
    VLOG_INFO(kLog) << tp_.str() << ": follower of " << leader_ << " in epoch " << leader_epoch_
                    << (was_leader ? " (was leader)" : "") << ", LEO " << log_->log_end_offset()
                    << ", HW " << high_watermark_;
  }
  ++change_seq_;
  notify_waiters();  // parked fetches and acks=all waits re-check their partition
  return state_change::role_change;
}

std::vector<int32_t> partition::maximal_isr() const {
  std::vector<int32_t> out = isr_;
  if (pending_isr_) {
    for (int32_t r : *pending_isr_) {
      if (std::find(out.begin(), out.end(), r) == out.end()) out.push_back(r);
    }
  }
  return out;
}

void partition::set_high_watermark(int64_t hw) {
  if (hw == high_watermark_) return;
  high_watermark_ = hw;
  producer_state_.on_high_watermark(hw);
  ++change_seq_;
  notify_waiters();
}

void partition::maybe_advance_high_watermark() {
  if (!is_leader()) return;
  int64_t hw = log_->log_end_offset();
  for (int32_t r : maximal_isr()) {
    if (r == node_id_) continue;
    auto it = followers_.find(r);
    // A member whose LEO is unknown holds the HW where it is.
    if (it == followers_.end() || it->second.log_end_offset < 0) return;
    hw = std::min(hw, it->second.log_end_offset);
  }
  if (hw > high_watermark_) set_high_watermark(hw);
}

void partition::propose_isr(std::vector<int32_t> new_isr) {
  std::sort(new_isr.begin(), new_isr.end());
  pending_isr_ = new_isr;
  pending_isr_since_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now().time_since_epoch())
                              .count();
  if (isr_sink_) isr_sink_({tp_, leader_epoch_, partition_epoch_, std::move(new_isr)});
}

void partition::maybe_expand_isr(int32_t replica_id) {
  if (pending_isr_ || std::find(isr_.begin(), isr_.end(), replica_id) != isr_.end()) return;
  if (std::find(replicas_.begin(), replicas_.end(), replica_id) == replicas_.end()) return;
  const auto& f = followers_[replica_id];
  if (f.log_end_offset < high_watermark_ || f.log_end_offset < leader_epoch_start_offset_) return;
  std::vector<int32_t> isr = isr_;
  isr.push_back(replica_id);
  VLOG_INFO(kLog) << tp_.str() << ": follower " << replica_id << " caught up (LEO "
                  << f.log_end_offset << "), proposing ISR expansion";
  propose_isr(std::move(isr));
}

void partition::maybe_shrink_isr(int64_t now_ms) {
  if (!is_leader()) return;
  const int64_t steady_now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count();
  // A proposal the controller never answered (controller moving, request lost) is retried.
  if (pending_isr_ && steady_now - pending_isr_since_ms_ > 5000) pending_isr_.reset();
  if (pending_isr_) return;
  std::vector<int32_t> keep;
  std::vector<int32_t> out;
  for (int32_t r : isr_) {
    if (r == node_id_) {
      keep.push_back(r);
      continue;
    }
    auto it = followers_.find(r);
    const int64_t caught_up = it == followers_.end() ? 0 : it->second.last_caught_up_ms;
    if (now_ms - caught_up > config_.replica_lag_time_max_ms) {
      out.push_back(r);
    } else {
      keep.push_back(r);
    }
  }
  if (out.empty()) return;
  for (int32_t r : out) {
    VLOG_WARN(kLog) << tp_.str() << ": follower " << r << " has not caught up for more than "
                    << config_.replica_lag_time_max_ms << " ms (its LEO "
                    << followers_[r].log_end_offset << ", ours " << log_->log_end_offset()
                    << "), proposing to remove it from the ISR";
  }
  propose_isr(std::move(keep));
}

fetch_outcome partition::read_for_follower(int32_t replica_id, int64_t fetch_offset,
                                           uint32_t max_bytes, int32_t current_leader_epoch,
                                           int64_t now_ms) {
  fetch_outcome out;
  out.log_start_offset = log_->log_start_offset();
  if (!is_leader()) {
    out.error = error_code::not_leader_or_follower;
    return out;
  }
  if (auto e = check_leader_epoch(current_leader_epoch); e != error_code::none) {
    out.error = e;
    return out;
  }
  auto it = followers_.find(replica_id);
  if (it == followers_.end()) {
    // Not an assigned replica (reassigned away, or a stray broker).
    out.error = error_code::not_leader_or_follower;
    return out;
  }
  const int64_t leo = log_->log_end_offset();
  if (fetch_offset < log_->log_start_offset() || fetch_offset > leo) {
    out.error = error_code::offset_out_of_range;
    out.high_watermark = high_watermark_;
    return out;
  }
  follower_state& f = it->second;
  // Kafka's rule: caught up now if it asked for our LEO; caught up as of its previous fetch
  // if it reached what our LEO was then.
  if (fetch_offset >= leo) {
    f.last_caught_up_ms = now_ms;
  } else if (f.last_fetch_leader_leo >= 0 && fetch_offset >= f.last_fetch_leader_leo) {
    f.last_caught_up_ms = std::max(f.last_caught_up_ms, f.last_fetch_ms);
  }
  f.log_end_offset = fetch_offset;
  f.last_fetch_leader_leo = leo;
  f.last_fetch_ms = now_ms;
  maybe_expand_isr(replica_id);
  maybe_advance_high_watermark();
  out.high_watermark = high_watermark_;
  out.last_stable_offset = last_stable_offset();
  out.change_seq = change_seq_;
  if (fetch_offset < leo && !log_->read(fetch_offset, max_bytes, leo, true, &out.data)) {
    out.error = error_code::offset_out_of_range;
  }
  return out;
}

error_code partition::acks_all_status(int64_t required_offset, int32_t epoch_at_append,
                                      bool* done) const {
  *done = true;
  // The batch is still in this log only if this replica has led without interruption since
  // it was appended (a same-leader epoch bump, e.g. the controller dropping a dead follower
  // from the ISR, does not interrupt).
  if (!is_leader() || epoch_at_append < leadership_start_epoch_) {
    return error_code::not_leader_or_follower;
  }
  if (high_watermark_ < required_offset) {
    *done = false;
    return error_code::none;
  }
  if (static_cast<int32_t>(isr_.size()) < config_.min_insync_replicas) {
    return error_code::not_enough_replicas_after_append;
  }
  return error_code::none;
}

error_code partition::append_as_follower(std::span<const uint8_t> records, int64_t leader_hw,
                                         int64_t leader_log_start) {
  if (is_leader()) return error_code::not_leader_or_follower;
  if (!records.empty()) {
    storage::append_info info;
    const auto err = log_->append_as_follower(records, &info);
    if (err != storage::append_error::none) return to_error(err);
    // Markers close transactions (ABORTs go to the index) exactly as on the leader.
    producer_state_.apply_batches(records, *log_, txn_index_);
    bytes_in_ += records.size();
    records_in_ += static_cast<uint64_t>(info.record_count);
    ++change_seq_;
  }
  if (leader_log_start > log_->log_start_offset() && leader_log_start <= log_->log_end_offset()) {
    log_->delete_records_before(leader_log_start);
    txn_index_.sync_with_segments(*log_);
  }
  const int64_t hw = std::min(leader_hw, log_->log_end_offset());
  if (hw > high_watermark_) set_high_watermark(hw);
  return error_code::none;
}

void partition::truncate_to(int64_t offset) {
  if (offset >= log_->log_end_offset()) return;
  log_->truncate_to(offset);
  producer_state_.truncate_and_reload(*log_, txn_index_);
  if (high_watermark_ > log_->log_end_offset()) high_watermark_ = log_->log_end_offset();
  producer_state_.on_high_watermark(high_watermark_);
  ++change_seq_;
}

void partition::truncate_fully_and_start_at(int64_t offset) {
  log_->truncate_fully_and_start_at(offset);
  producer_state_.truncate_fully(txn_index_);
  high_watermark_ = offset;
  producer_state_.on_high_watermark(high_watermark_);
  ++change_seq_;
}

std::pair<int32_t, int64_t> partition::end_offset_for_epoch(int32_t epoch) const {
  return log_->end_offset_for_epoch(epoch);
}

error_code partition::check_leader_epoch(int32_t current_leader_epoch) const {
  if (current_leader_epoch < 0) return error_code::none;
  if (current_leader_epoch < leader_epoch_) return error_code::fenced_leader_epoch;
  if (current_leader_epoch > leader_epoch_) return error_code::unknown_leader_epoch;
  return error_code::none;
}

produce_outcome partition::append(std::span<uint8_t> records, int16_t acks, int64_t now_ms) {
  return append_verified(records, acks, now_ms, kNoVerification);
}

uint64_t partition::start_verification(std::span<const uint8_t> records) {
  auto header = protocol::parse_batch_header(records);
  if (!header || !producer_state_.needs_verification(*header)) return 0;
  return producer_state_.start_verification(header->producer_id);
}

produce_outcome partition::append_verified(std::span<uint8_t> records, int16_t acks,
                                           int64_t now_ms, uint64_t guard) {
  return append_impl(records, acks, now_ms, guard, false);
}

produce_outcome partition::append_txn_offsets(std::span<uint8_t> records, int64_t now_ms) {
  return append_impl(records, -1, now_ms, kNoVerification, true);
}

produce_outcome partition::append_impl(std::span<uint8_t> records, int16_t acks, int64_t now_ms,
                                       uint64_t guard, bool from_coordinator) {
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
  if (header->is_control()) {
    // Markers come only from the transaction coordinator (WriteTxnMarkers).
    out.error = error_code::invalid_record;
    out.batch_index = 0;
    out.error_message = "control batches cannot be produced";
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
  if (from_coordinator && (!header->is_transactional() || header->base_sequence != -1)) {
    out.error = error_code::invalid_record;
    out.error_message = "coordinator batches are transactional and carry no sequence";
    return out;
  }
  if (from_coordinator) {
    // TxnOffsetCommit records carry no sequence (Kafka's NO_SEQUENCE): only the epoch is
    // checked. The transaction coordinator fences older epochs before this is reached.
    const storage::producer_entry* e = producer_state_.find(header->producer_id);
    if (e && header->producer_epoch < e->epoch) {
      out.error = error_code::invalid_producer_epoch;
      return out;
    }
  } else if (header->producer_id >= 0) {
    storage::producer_batch_metadata original;
    switch (producer_state_.check(*header, &original)) {
      case storage::sequence_check::ok:
        break;
      case storage::sequence_check::duplicate:
        // A retry of a batch we already have: acknowledge it again with its original offset.
        out.base_offset = original.first_offset;
        out.last_offset = original.last_offset;
        out.leader_epoch = leader_epoch_;
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
  if (guard != kNoVerification && !producer_state_.verification_ok(*header, guard)) {
    // The transaction this batch was verified for ended (or the producer's epoch moved)
    // while the coordinator was asked: appending it would open a transaction nobody ends.
    out.error = error_code::invalid_txn_state;
    out.error_message = "the producer's transaction ended while this batch was being verified";
    return out;
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
  // Now carries the assigned offsets; opens the producer's transaction if transactional.
  producer_state_.apply_batches(records, *log_, txn_index_);
  out.base_offset = info.first_offset;
  out.last_offset = info.last_offset;
  out.leader_epoch = leader_epoch_;
  out.log_append_time = info.log_append_time;
  out.record_count = info.record_count;
  out.bytes = static_cast<int64_t>(records.size());
  bytes_in_ += records.size();
  records_in_ += static_cast<uint64_t>(info.record_count);
  ++change_seq_;
  notify_waiters();  // followers' long-poll fetches wait for new data, not for the HW
  maybe_advance_high_watermark();
  return out;
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
  out.change_seq = change_seq_;
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
    return out;
  }
  if (iso == isolation::read_committed) {
    out.aborted = storage::aborted_for_fetch(*log_, txn_index_, offset, out.data, limit);
  }
  return out;
}

marker_outcome partition::append_txn_marker(int64_t producer_id, int16_t producer_epoch,
                                            bool commit, int32_t coordinator_epoch,
                                            int64_t now_ms) {
  marker_outcome out;
  if (!is_leader()) {
    out.error = error_code::not_leader_or_follower;
    return out;
  }
  protocol::txn_marker marker;
  marker.type = commit ? protocol::control_record_type::commit : protocol::control_record_type::abort;
  marker.coordinator_epoch = coordinator_epoch;
  switch (producer_state_.check_marker(producer_id, producer_epoch, marker)) {
    case storage::marker_check::ok:
      break;
    case storage::marker_check::invalid_producer_epoch:
      out.error = error_code::invalid_producer_epoch;
      return out;
    case storage::marker_check::coordinator_fenced:
      out.error = error_code::transaction_coordinator_fenced;
      return out;
  }
  std::vector<uint8_t> batch =
      protocol::build_txn_marker_batch(producer_id, producer_epoch, marker, now_ms);
  storage::append_info info;
  const auto err = log_->append_as_leader(batch, leader_epoch_, now_ms, &info);
  if (err != storage::append_error::none) {
    out.error = to_error(err);
    VLOG_ERROR(kLog) << tp_.str() << ": cannot append a transaction marker for producer "
                     << producer_id;
    return out;
  }
  producer_state_.apply_batches(batch, *log_, txn_index_);
  out.offset = info.last_offset;
  out.leader_epoch = leader_epoch_;
  ++change_seq_;
  notify_waiters();
  maybe_advance_high_watermark();
  return out;
}

error_code partition::delete_records(int64_t offset, int64_t* new_log_start) {
  if (!is_leader()) return error_code::not_leader_or_follower;
  if (offset == -1) offset = high_watermark_;
  if (offset < 0 || offset > high_watermark_) return error_code::offset_out_of_range;
  *new_log_start = log_->delete_records_before(offset);
  txn_index_.sync_with_segments(*log_);
  return error_code::none;
}

void partition::update_config(const partition_config& config) {
  config_ = config;
  log_->update_config(config.log);
}

void partition::housekeeping(int64_t now_ms, bool retention_due, int64_t producer_expiration_ms) {
  maybe_shrink_isr(now_ms);
  if (producer_expiration_ms >= 0) {
    const size_t before = producer_state_.producers().size();
    producer_state_.expire(now_ms, producer_expiration_ms);
    const size_t expired = before - producer_state_.producers().size();
    if (expired > 0) {
      VLOG_INFO(kLog) << tp_.str() << ": expired " << expired << " producer id(s) idle for "
                      << producer_expiration_ms << " ms (producer.id.expiration.ms)";
    }
  }
  log_->maybe_roll(now_ms);
  log_->maybe_flush(now_ms);
  if (retention_due && config_.log.delete_retention) {
    const int deleted = log_->enforce_retention(now_ms, high_watermark_);
    if (deleted > 0) {
      txn_index_.sync_with_segments(*log_);
      VLOG_INFO(kLog) << tp_.str() << ": retention deleted " << deleted
                      << " segment(s); log start offset now " << log_->log_start_offset();
    }
  }
  if (config_.log.compact && config_.cleaner_enable) {
    // At most one cleaning pass per tick (storage/log_cleaner.h); it logs what it cleaned.
    // Never past the LSO (open transactions stay untouched); markers stay at or above the
    // oldest producer-state snapshot, which replays the log from there on a restart.
    storage::maybe_clean(*log_, now_ms, last_stable_offset(), txn_index_, [this] {
      const auto snapshots = producer_state_.snapshot_offsets();
      return snapshots.empty() ? INT64_MAX : snapshots.front();
    });
  }
  // Kafka snapshots producer state when a segment rolls, bounding the replay on restart.
  if (log_->segment_count() != segments_at_last_snapshot_) {
    txn_index_.flush();  // entries below a snapshot are never rebuilt
    producer_state_.take_snapshot(log_->log_end_offset());
    segments_at_last_snapshot_ = log_->segment_count();
  }
}

void partition::close() {
  log_->flush();
  txn_index_.flush();
  producer_state_.take_snapshot(log_->log_end_offset());
  log_->close();
}

void partition::remove() { log_->remove(); }

}  // namespace varve::replication
