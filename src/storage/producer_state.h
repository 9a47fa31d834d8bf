#pragma once
// storage::producer_state — per-partition idempotent-producer state (Kafka's
// ProducerStateManager): for each producer id, its epoch and the metadata of its last 5
// appended batches, so a retried batch is recognised and answered with its original offset.
//
// Persistence: `<partition dir>/NNNNNNNNNNNNNNNNNNNN.snapshot` (20-digit offset = the log
// end offset the snapshot covers; format in docs/format/producer-snapshot.md). On open, the
// newest valid snapshot at or below the log end offset is loaded and the log is replayed
// from there (rebuild_from) to the log end offset.
//
// Threading: owned by the partition's event loop, like storage::log.
//
// Sequence rules (Kafka's, checked in this order for a batch with producer_id >= 0):
//   epoch < current epoch                         → invalid_producer_epoch
//   batch equal (first/last seq) to one of the last 5 cached for this epoch
//                                                 → duplicate (answer with its offsets)
//   epoch > current epoch (or unknown producer)   → first_seq must be 0, else out_of_order
//   same epoch                                    → first_seq == last_seq + 1 (mod 2^31),
//                                                   else out_of_order
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <vector>

#include "protocol/record_batch.h"

namespace varve::storage {

class log;

inline constexpr size_t kProducerBatchCacheSize = 5;
inline constexpr size_t kSnapshotsRetained = 2;  // take_snapshot keeps the newest 2 files

struct producer_batch_metadata {
  int32_t first_seq = -1;
  int32_t last_seq = -1;
  int64_t first_offset = -1;
  int64_t last_offset = -1;
  int64_t timestamp = -1;
};

struct producer_entry {
  int16_t epoch = -1;
  std::deque<producer_batch_metadata> batches;  // oldest first, at most 5
  int64_t last_timestamp = -1;
  int64_t current_txn_first_offset = -1;  // first offset of an open transaction, or -1
  int32_t coordinator_epoch = -1;
};

enum class sequence_check : uint8_t {
  ok,
  duplicate,               // *duplicate_of is filled
  out_of_order,            // OUT_OF_ORDER_SEQUENCE_NUMBER
  invalid_producer_epoch,  // INVALID_PRODUCER_EPOCH
};

class producer_state {
 public:
  explicit producer_state(std::filesystem::path dir);

  // Checks a batch before append. Batches without a producer id (-1) are always ok.
  sequence_check check(const protocol::record_batch_header& batch,
                       producer_batch_metadata* duplicate_of) const;
  // Records an appended batch (header with the offsets the log assigned).
  void update(const protocol::record_batch_header& batch);

  const producer_entry* find(int64_t producer_id) const;
  const std::map<int64_t, producer_entry>& producers() const { return producers_; }

  // Loads the newest snapshot <= log.log_end_offset(), deletes newer ones, and replays
  // the log from the snapshot's offset.
  void load(const log& log);
  // Writes a snapshot at `offset` (the log end offset) with fsync; keeps the newest 2.
  void take_snapshot(int64_t offset);
  // After truncation: drops state and reloads from the snapshot + log.
  void truncate_and_reload(const log& log);
  // Removes producers whose last write is older than `producer.id.expiration.ms`.
  void expire(int64_t now_ms, int64_t expiration_ms);

  // Records the coordinator epoch carried in a transaction marker's value (the header alone
  // does not have it). No-op for an unknown producer.
  void set_coordinator_epoch(int64_t producer_id, int32_t coordinator_epoch);
  // Offsets of the snapshot files present in the directory, ascending (tests, tools).
  std::vector<int64_t> snapshot_offsets() const;
  std::filesystem::path snapshot_path(int64_t offset) const;

 private:
  // Reads and verifies one snapshot file; false (with a warning logged) if unreadable/corrupt.
  bool read_snapshot(int64_t offset, std::map<int64_t, producer_entry>* out) const;

  std::filesystem::path dir_;
  std::map<int64_t, producer_entry> producers_;
};

}  // namespace varve::storage
