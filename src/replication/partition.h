#pragma once
// replication::partition — one replica of a topic partition on this broker (DESIGN.md §4).
//
// Owns the partition's storage::log and storage::producer_state. Kafka's replica state:
//   log_end_offset (LEO)  next offset to be written here
//   high_watermark (HW)   min LEO over the ISR; consumers see only offsets below it, and
//                         acks=all completes once HW passes the batch
//   leader_epoch          stamped into every batch appended as leader
// Invariants: log_start_offset <= HW <= LEO; HW never moves backwards while leader.
// In this single-broker build the ISR is {this broker}, so HW == LEO after every append;
// the follower-LEO bookkeeping that generalises it comes with replication.
//
// Threading: owned by one shard's loop; every method must be called there.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "protocol/error_code.h"
#include "storage/log.h"
#include "storage/producer_state.h"

namespace varve::replication {

struct topic_partition {
  std::string topic;
  int32_t partition = 0;
  auto operator<=>(const topic_partition&) const = default;
  std::string str() const { return topic + "-" + std::to_string(partition); }
};

struct partition_config {
  storage::log_config log;
  int32_t min_insync_replicas = 1;
  bool cleaner_enable = true;  // log.cleaner.enable: compacted topics are cleaned
};

struct produce_outcome {
  protocol::error_code error = protocol::error_code::none;
  int64_t base_offset = -1;
  int64_t log_append_time = -1;
  int64_t log_start_offset = -1;
  int32_t batch_index = -1;  // which batch failed (record_errors), -1 if not batch-specific
  std::string error_message;
  int32_t record_count = 0;
  int64_t bytes = 0;
};

enum class isolation : int8_t { read_uncommitted = 0, read_committed = 1 };

struct fetch_outcome {
  protocol::error_code error = protocol::error_code::none;
  int64_t high_watermark = -1;
  int64_t last_stable_offset = -1;
  int64_t log_start_offset = -1;
  storage::read_info data;
};

class partition {
 public:
  // Opens (recovering if needed) the log in `dir` and loads producer state.
  static std::unique_ptr<partition> open(topic_partition tp, const std::filesystem::path& dir,
                                         const partition_config& config, int32_t node_id,
                                         int32_t leader_epoch, std::vector<int32_t> replicas,
                                         std::vector<int32_t> isr, int64_t recovery_point,
                                         std::string* error);
  ~partition();

  const topic_partition& tp() const { return tp_; }
  bool is_leader() const { return leader_ == node_id_; }
  int32_t leader_epoch() const { return leader_epoch_; }

  // Appends the `records` of a produce request for this partition (exactly one batch, as
  // Kafka requires from produce v3). Rewrites the batch header in place (base offset,
  // leader epoch, LogAppendTime), so `records` must be exclusively owned by the request.
  // Idempotent batches are checked against producer state first: a duplicate answers
  // with the original base offset and writes nothing.
  produce_outcome append(std::span<uint8_t> records, int16_t acks, int64_t now_ms);

  // Fetch from a consumer: whole batches from `offset`, bounded by HW (read_uncommitted)
  // or LSO (read_committed). `current_leader_epoch` (-1 = not given) is checked against
  // ours (KIP-320): older → FENCED_LEADER_EPOCH, newer → UNKNOWN_LEADER_EPOCH.
  fetch_outcome read(int64_t offset, uint32_t max_bytes, bool min_one_batch, isolation iso,
                     int32_t current_leader_epoch) const;

  protocol::error_code check_leader_epoch(int32_t current_leader_epoch) const;

  int64_t log_start_offset() const { return log_->log_start_offset(); }
  int64_t log_end_offset() const { return log_->log_end_offset(); }
  int64_t high_watermark() const { return high_watermark_; }
  int64_t last_stable_offset() const { return high_watermark_; }
  const storage::log& log() const { return *log_; }
  storage::log& log() { return *log_; }
  // Bytes and records appended by produce requests (and coordinator writes) since this
  // replica was opened; read by the metrics scrape on this partition's loop.
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t records_in() const { return records_in_; }

  // DeleteRecords: `offset` -1 means the high watermark.
  protocol::error_code delete_records(int64_t offset, int64_t* new_log_start);

  // Registers a one-shot callback run (on this partition's loop) after the next append
  // that moves the high watermark. Used by long-poll fetches. The waiter is dropped
  // without being called once `alive` has expired (the fetch finished), so idle
  // partitions polled by many consumers do not accumulate waiters.
  void add_waiter(std::weak_ptr<void> alive, std::function<void()> fn);

  void update_config(const partition_config& config);
  // Periodic work: flush policy, time-based roll, retention (when `retention_due`).
  void housekeeping(int64_t now_ms, bool retention_due);
  // Flushes, snapshots producer state and closes the log cleanly.
  void close();
  // Deletes the partition's data (topic deleted).
  void remove();

 private:
  partition(topic_partition tp, int32_t node_id, std::unique_ptr<storage::log> log,
            partition_config config);
  void advance_high_watermark();
  void notify_waiters();

  topic_partition tp_;
  int32_t node_id_;
  std::unique_ptr<storage::log> log_;
  storage::producer_state producer_state_;
  partition_config config_;
  int32_t leader_ = -1;
  int32_t leader_epoch_ = 0;
  std::vector<int32_t> replicas_;
  std::vector<int32_t> isr_;
  int64_t high_watermark_ = 0;
  uint64_t bytes_in_ = 0;
  uint64_t records_in_ = 0;
  size_t segments_at_last_snapshot_ = 0;
  std::vector<std::pair<std::weak_ptr<void>, std::function<void()>>> waiters_;
};

}  // namespace varve::replication
