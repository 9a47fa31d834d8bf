#pragma once
// storage::log — one partition's log: an ordered list of segments in
// `<log.dirs>/<topic>-<partition>/`, each `NNNNNNNNNNNNNNNNNNNN.log` (20-digit base offset)
// with a sparse `.index` (relative offset → file position) and `.timeindex`
// (timestamp → relative offset), plus `leader-epoch-checkpoint`. Formats are in
// docs/format/*.md; constants shared by reader and writer are in storage/format.h.
//
// Threading: a log is owned by exactly one event loop (its partition's shard). No method is
// thread-safe; callers on other loops post work to the owner. File I/O is synchronous
// (writes land in the page cache; fsync happens only per flush policy or on roll/close).
//
// Invariants:
//   log_start_offset <= every offset readable <= log_end_offset
//   batches are stored verbatim as validated, except base_offset, partition_leader_epoch
//     and (LogAppendTime topics) max_timestamp+CRC, which append() assigns;
//   offsets in the log strictly increase and are never reused or rewritten;
//   recovery never truncates below the last flushed offset unless the bytes there are corrupt.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "protocol/record_batch.h"

namespace varve::storage {

class segment;

struct log_config {
  int64_t segment_bytes = 1073741824;          // segment.bytes
  int64_t segment_ms = 604800000;              // segment.ms
  int64_t segment_jitter_ms = 0;               // segment.jitter.ms
  int64_t retention_ms = 604800000;            // retention.ms (-1 = unlimited)
  int64_t retention_bytes = -1;                // retention.bytes (-1 = unlimited)
  int64_t flush_messages = INT64_MAX;          // flush.messages
  int64_t flush_ms = INT64_MAX;                // flush.ms
  int32_t index_interval_bytes = 4096;         // index.interval.bytes
  int32_t segment_index_bytes = 10485760;      // segment.index.bytes (max index file size)
  int32_t max_message_bytes = 1048588;         // max.message.bytes (per batch)
  bool log_append_time = false;                // message.timestamp.type=LogAppendTime
  int64_t timestamp_before_max_ms = INT64_MAX; // message.timestamp.before.max.ms
  int64_t timestamp_after_max_ms = INT64_MAX;  // message.timestamp.after.max.ms
  int64_t file_delete_delay_ms = 60000;        // file.delete.delay.ms
  bool compact = false;                        // cleanup.policy contains compact
  bool delete_retention = true;                // cleanup.policy contains delete
  bool preallocate = false;
  // Compaction (storage/log_cleaner.h), used when `compact`:
  int64_t delete_retention_ms = 86400000;      // delete.retention.ms (tombstones)
  int64_t min_compaction_lag_ms = 0;           // min.compaction.lag.ms
  int64_t max_compaction_lag_ms = INT64_MAX;   // max.compaction.lag.ms
  double min_cleanable_dirty_ratio = 0.5;      // min.cleanable.dirty.ratio
};

enum class append_error : uint8_t {
  none,
  corrupt_message,      // CRC / length / magic failure → CORRUPT_MESSAGE
  invalid_record,       // malformed record inside a batch → INVALID_RECORD
  message_too_large,    // a batch over max_message_bytes → MESSAGE_TOO_LARGE
  invalid_timestamp,    // CreateTime outside the allowed window → INVALID_TIMESTAMP
  storage_error,        // write failed (disk full, I/O error) → KAFKA_STORAGE_ERROR
};

struct append_info {
  int64_t first_offset = -1;       // base offset assigned to the first batch
  int64_t last_offset = -1;        // last offset assigned
  int64_t log_append_time = -1;    // -1 unless LogAppendTime
  int64_t max_timestamp = -1;
  int32_t batch_count = 0;
  int32_t record_count = 0;
  int32_t batch_index_in_error = -1;  // for per-batch errors (record_errors in the response)
};

// Result of reading for a fetch: file regions that cover whole batches, in order.
struct read_info {
  std::vector<file_region> regions;
  uint64_t size_bytes = 0;
  int64_t first_batch_offset = -1;  // base offset of the first batch returned (may be < fetch offset)
};

struct offset_and_timestamp {
  int64_t offset = -1;
  int64_t timestamp = -1;
  int32_t leader_epoch = -1;
};

class log {
 public:
  // Opens (or creates) the log in `dir`. If the directory lacks a clean-shutdown marker
  // (`.kafka_cleanshutdown` written by close()), recovery re-validates every batch past the
  // recovery point and truncates at the first torn or corrupt one; indexes are rebuilt.
  // `recovery_point` is the offset below which data is known flushed (-1 = unknown: scan all).
  static std::unique_ptr<log> open(const std::filesystem::path& dir, const log_config& config,
                                   int64_t recovery_point, std::string* error);

  ~log();

  // Appends one or more validated-by-us batches (the `records` field of a produce request
  // for this partition), assigning consecutive offsets starting at log_end_offset(), stamping
  // `leader_epoch` into every batch and LogAppendTime if configured. Validates each batch
  // (validate_batch, max_message_bytes, timestamps) before writing anything: either all
  // batches are appended or none. `now_ms` is wall-clock time.
  append_error append_as_leader(std::span<uint8_t> batches, int32_t leader_epoch, int64_t now_ms,
                                append_info* info);

  // Appends batches whose offsets were assigned by a leader (replication). Offsets must
  // start at log_end_offset().
  append_error append_as_follower(std::span<const uint8_t> batches, append_info* info);

  // Reads whole batches starting at the batch containing `offset`, up to `max_bytes`
  // (at least one batch if `min_one_batch`), never past `max_offset` (exclusive; the high
  // watermark or LSO). An offset outside [log_start_offset, log_end_offset] is an error
  // the caller maps to OFFSET_OUT_OF_RANGE: returns false.
  bool read(int64_t offset, uint32_t max_bytes, int64_t max_offset, bool min_one_batch,
            read_info* out) const;

  // Calls fn(header, file_position) for each batch header from the batch containing `from`.
  // Stops when fn returns false. Used for producer-state rebuild and tools.
  void for_each_batch(int64_t from,
                      const std::function<bool(const protocol::record_batch_header&)>& fn) const;

  int64_t log_start_offset() const;
  int64_t log_end_offset() const;       // next offset to be assigned
  int64_t size_bytes() const;
  int64_t recovery_point() const;       // offsets below this are flushed to disk
  size_t segment_count() const;

  // ListOffsets: first offset whose timestamp >= ts (nullopt if none).
  std::optional<offset_and_timestamp> offset_for_timestamp(int64_t ts) const;
  // ListOffsets MAX_TIMESTAMP: the offset of the record with the largest timestamp.
  std::optional<offset_and_timestamp> max_timestamp_offset() const;

  // Leader epochs (KIP-101): start offsets per epoch, persisted in leader-epoch-checkpoint.
  int32_t latest_epoch() const;  // -1 if none
  // OffsetForLeaderEpoch: (largest epoch <= requested, end offset of that epoch), or
  // (-1, -1) when unknown.
  std::pair<int32_t, int64_t> end_offset_for_epoch(int32_t epoch) const;
  // A replica becoming leader in `epoch` records that the epoch starts at the current log
  // end offset (if `epoch` is newer than the latest), as Kafka does at LeaderAndIsr time, so
  // followers can truncate against it even before the first append of the epoch.
  void assign_leader_epoch(int32_t epoch);

  // DeleteRecords: moves log_start_offset to `offset` (<= high watermark, checked by the
  // caller) and deletes segments wholly below it. Returns the new log start offset.
  int64_t delete_records_before(int64_t offset);
  // Retention by time and size; deletes whole segments, never the active one unless empty.
  // `high_watermark` bounds deletion (never delete unreplicated data). Returns segments deleted.
  int enforce_retention(int64_t now_ms, int64_t high_watermark);
  // Rolls the active segment if segment.ms elapsed (called periodically).
  void maybe_roll(int64_t now_ms);
  // Flush policy: flushes if flush.messages / flush.ms demand it.
  void maybe_flush(int64_t now_ms);
  void flush();                         // fsync everything up to log_end_offset
  // Truncates to `offset` (followers after OffsetForLeaderEpoch). Never below log_start.
  void truncate_to(int64_t offset);
  // Removes everything and restarts the log at `offset`.
  void truncate_fully_and_start_at(int64_t offset);

  // --- For the log cleaner (storage/log_cleaner.h) ---
  // The segments in offset order, the active one last. Valid until the next call that
  // changes the segment list.
  std::vector<const segment*> segments() const;
  // Replaces the inactive segments whose base offsets lie in [first_base, end_offset) (where
  // end_offset is the base of the segment after them) with `cleaned`, a fsynced file in dir()
  // holding their surviving batches (possibly none). Crash-safe: renaming `cleaned` to
  // `<first_base>.<end_offset>.swap` is the commit point; open() finishes an interrupted swap
  // (complete_interrupted_swaps). Readers holding regions of the old files keep reading them.
  // If the replaced segments were the first ones and `cleaned` is empty, the log start
  // offset moves to the next segment. Returns false (log unchanged if before the commit point).
  bool replace_segments(int64_t first_base, int64_t end_offset,
                        const std::filesystem::path& cleaned, std::string* error);

  void update_config(const log_config& config);
  const log_config& config() const;
  const std::filesystem::path& dir() const;
  // True when open() made the directory: a brand-new log with nothing on disk to recover,
  // so the state kept beside it (producer snapshots, transaction index) need not be listed.
  bool created() const;

  // Flushes, writes the clean-shutdown marker and closes files.
  void close();
  // Deletes the directory (topic deletion).
  void remove();

  class impl;

 private:
  explicit log(std::unique_ptr<impl> impl);
  std::unique_ptr<impl> impl_;
};

}  // namespace varve::storage
