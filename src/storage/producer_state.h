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
// Transactions: the producers' open transactions, the last stable offset, transaction markers
// and (with storage::txn_index) the aborted-transaction index; see the "Transactions" section
// of the class and docs/format/txn-index.md.
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
#include <span>
#include <vector>

#include "protocol/record_batch.h"
#include "protocol/record_control.h"

namespace varve::storage {

class log;
class txn_index;

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

// A transaction ended by a marker (producer_state::apply_marker).
struct completed_txn {
  int64_t producer_id = -1;
  int64_t first_offset = -1;  // first offset of the producer's transaction
  int64_t last_offset = -1;   // offset of the COMMIT/ABORT marker
  bool aborted = false;
  // Kafka's last stable offset for the index entry: the first offset of the oldest
  // transaction still open right after this one ended, else last_offset + 1. Derived from the
  // log alone (not the high watermark), so replay reproduces it exactly.
  int64_t last_stable_offset = -1;
  bool operator==(const completed_txn&) const = default;
};

// Checks on a transaction marker before a leader appends it (WriteTxnMarkers).
enum class marker_check : uint8_t {
  ok,
  invalid_producer_epoch,  // marker epoch older than the producer's → INVALID_PRODUCER_EPOCH
  coordinator_fenced,      // coordinator epoch older than the last marker's →
                           // TRANSACTION_COORDINATOR_FENCED
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
  // ---- Transactions (docs/format/producer-snapshot.md "Transactions") ----------------------
  //
  // A producer's transaction opens at its first transactional data batch (update() sets
  // current_txn_first_offset) and ends at its COMMIT/ABORT marker. The open transactions,
  // ordered by first offset, bound the last stable offset (LSO). A completed transaction keeps
  // bounding the LSO until the high watermark passes its marker (Kafka's "unreplicated"
  // transactions): a consumer must not read past a transaction whose outcome may still be
  // truncated away on a leader change.
  //
  // Partition calls (see also storage/txn_index.h):
  //   leader, WriteTxnMarkers: check_marker() before building/appending the marker batch
  //     (protocol::build_txn_marker_batch), then apply_batch() after the log append;
  //   leader produce and follower append: apply_batch() for each appended batch (it replaces
  //     update() for callers that have the bytes; update() alone cannot see a marker's type);
  //   every high-watermark move: on_high_watermark(hw);
  //   fetch: last_stable_offset(hw, log start) is the read_committed limit and the LSO in the
  //     response.

  // Marker checks for the leader: producer epoch (a marker may carry a newer epoch) and
  // coordinator epoch (must not go backwards).
  marker_check check_marker(int64_t producer_id, int16_t producer_epoch,
                            const protocol::txn_marker& marker) const;
  // Records an appended marker batch `batch` (header with assigned offset) carrying `marker`:
  // takes the batch epoch, records the coordinator epoch, closes the producer's transaction.
  // Returns the completed transaction, or nullopt if the producer had none open (a marker for
  // a partition it never wrote to: nothing to index, LSO unchanged), as Kafka.
  std::optional<completed_txn> apply_marker(const protocol::record_batch_header& batch,
                                            const protocol::txn_marker& marker);
  // Records one appended batch given its bytes (offsets assigned): a transaction marker goes
  // to apply_marker(), and an ABORT that completed a transaction is appended to `index` (in
  // the segment of `log` holding the marker); any other batch with a producer id goes to
  // update(). Other control batches only update the producer's epoch and timestamp.
  std::optional<completed_txn> apply_batch(std::span<const uint8_t> batch, const log& log,
                                           txn_index& index);
  // apply_batch for each batch of `batches` (the records of one append, back to back).
  std::vector<completed_txn> apply_batches(std::span<const uint8_t> batches, const log& log,
                                           txn_index& index);

  // Open transactions: first offset → producer id, ascending.
  const std::map<int64_t, int64_t>& ongoing_txns() const { return ongoing_txns_; }
  // The lowest offset that is not yet stable: the first offset of the oldest open
  // transaction, or of a completed one whose marker the high watermark has not passed yet
  // (as of the last on_high_watermark call); nullopt if none.
  std::optional<int64_t> first_unstable_offset() const;
  // min(high_watermark, max(log_start_offset, U)) where U is the lowest first offset of every
  // open transaction and every completed transaction whose marker is at or above
  // high_watermark. A transaction whose start was deleted (retention, DeleteRecords) holds the
  // LSO at the log start, as in Kafka, not below it.
  int64_t last_stable_offset(int64_t high_watermark, int64_t log_start_offset) const;
  // Forgets completed transactions whose marker lies below `high_watermark`.
  void on_high_watermark(int64_t high_watermark);

  // ---- Transaction verification (KIP-890 part 1) -------------------------------------------
  //
  // A transactional data batch from a producer with no open transaction in this partition
  // would start one. Before appending it the leader asks the transaction coordinator whether
  // the partition is part of the producer's ongoing transaction (AddPartitionsToTxn, verify
  // only). Between that question and the append, the transaction may end (its marker is
  // appended here): the guard makes such a late batch fail instead of opening a transaction
  // nobody will ever end (KAFKA-14402). Flow on the leader:
  //   if (needs_verification(h)) { g = start_verification(pid); ask coordinator;
  //     on success: if (!verification_ok(h, g)) → INVALID_TXN_STATE, else check + append }
  // Guards live in memory only; a marker for the producer, a change of epoch in update(), the
  // start of its transaction, and every load/reload clear them.

  // True if `batch` is transactional data from a producer with no open transaction here.
  bool needs_verification(const protocol::record_batch_header& batch) const;
  // A fresh guard (never 0) for the producer, replacing any earlier one.
  uint64_t start_verification(int64_t producer_id);
  // True if `batch` needs no verification, or `guard` is the producer's current guard.
  bool verification_ok(const protocol::record_batch_header& batch, uint64_t guard) const;

  // load(log) that also keeps `index` consistent: loads the newest valid snapshot at or below
  // min(log end offset, index.first_damaged_offset()), drops index entries at or above the
  // snapshot offset and rebuilds them by replaying the log through apply_batch(). Call after
  // index.load(log) at open. The index must have been flushed before every snapshot was taken.
  void load(const log& log, txn_index& index);
  // After log::truncate_to: index.truncate_to(log end), index.sync_with_segments(log), then
  // load(log, index).
  void truncate_and_reload(const log& log, txn_index& index);
  // After log::truncate_fully_and_start_at (the log restarted empty at a new offset): deletes
  // every snapshot, forgets every producer and empties the index, as Kafka does. (A snapshot
  // of the old log below the new offset must not be loaded: its open transactions would hold
  // the LSO.)
  void truncate_fully(txn_index& index);

  // Offsets of the snapshot files present in the directory, ascending (tests, tools).
  std::vector<int64_t> snapshot_offsets() const;
  std::filesystem::path snapshot_path(int64_t offset) const;

 private:
  // Reads and verifies one snapshot file; false (with a warning logged) if unreadable/corrupt.
  bool read_snapshot(int64_t offset, std::map<int64_t, producer_entry>* out) const;
  // The snapshot part of load: clears all state, deletes stale temporary files and snapshots
  // above the log end, loads the newest valid snapshot <= max_offset. Returns its offset, or
  // -1 if none was loaded.
  int64_t restore_snapshot(const log& log, int64_t max_offset);
  // Rebuilds ongoing_txns_ from producers_ (after a snapshot was loaded).
  void rebuild_ongoing_txns();
  // Sets or clears a producer's open transaction, keeping ongoing_txns_ in step.
  void set_txn_first_offset(int64_t producer_id, producer_entry& e, int64_t first_offset);

  std::filesystem::path dir_;
  std::map<int64_t, producer_entry> producers_;
  // Invariant: exactly the (current_txn_first_offset, producer id) of every producer whose
  // current_txn_first_offset >= 0.
  std::map<int64_t, int64_t> ongoing_txns_;
  // Completed transactions whose marker the high watermark has not passed: first offset →
  // transaction. Not persisted (rebuilt by replay; pruned by the first on_high_watermark).
  std::map<int64_t, completed_txn> unreplicated_txns_;
  // Verification guards (KIP-890 part 1): producer id → guard. In memory only.
  std::map<int64_t, uint64_t> verification_guards_;
  uint64_t next_guard_ = 1;
};

}  // namespace varve::storage
