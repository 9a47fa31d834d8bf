#pragma once
// storage::txn_index — a partition's aborted-transaction index: one `<base>.txnindex` file per
// segment (Kafka's layout: 34-byte big-endian entries, docs/format/txn-index.md), listing the
// transactions whose ABORT marker lies in that segment. read_committed fetches use it to tell
// the consumer which producers' data in the returned range it must drop.
//
// Contents are derived from the log: an entry is written when an ABORT marker completes a
// transaction (producer_state::apply_batch does it), and recovery rebuilds the entries past the
// producer-state snapshot by replaying the log (producer_state::load(log, txn_index)).
//
// Invariants:
//   within a file and across files in base order, entries are in increasing last_offset
//     (marker) order, and every entry's last_offset lies in the file's segment;
//   first_offset <= last_offset, and last_stable_offset <= last_offset + 1 (it is the first
//     offset of the oldest transaction still open right after the marker, else marker + 1).
//
// Durability: append() writes to the page cache. flush() fsyncs every file written since the
// last flush (and the directory if a file was created). The caller MUST flush() before it
// writes a producer-state snapshot: entries below a snapshot's offset are never rebuilt.
//
// Threading: owned by the partition's event loop, like storage::log; not thread-safe.
//
// How a partition uses it (storage calls in order):
//   open:      log::open → txn_index::load(log) → producer_state::load(log, txn_index)
//   append (leader and follower), after the log append succeeded:
//              producer_state::apply_batches(appended_bytes, log, txn_index) (replaces the
//              header-only producer_state::update calls); WriteTxnMarkers on the leader first
//              checks producer_state::check_marker, builds protocol::build_txn_marker_batch
//   high watermark moved: producer_state::on_high_watermark(hw)
//   fetch read_committed (limit = last stable offset): log::read(..., limit, ...) →
//              aborted_for_fetch(log, txn_index, fetch_offset, read_info, limit)
//   follower truncation: log::truncate_to(o) → producer_state::truncate_and_reload(log, txn_index)
//   log::truncate_fully_and_start_at(o) → producer_state::truncate_fully(txn_index)
//   segments deleted or merged (retention, DeleteRecords, compaction):
//              txn_index::sync_with_segments(log)
//   snapshot (roll, close): txn_index::flush() → producer_state::take_snapshot(leo)
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string_view>
#include <vector>

namespace varve::storage {

class log;

inline constexpr std::string_view kTxnIndexSuffix = ".txnindex";
inline constexpr size_t kTxnIndexEntrySize = 34;  // version(2) + 4 × int64
inline constexpr int16_t kTxnIndexVersion = 0;

// One aborted transaction of one producer.
struct aborted_txn {
  int64_t producer_id = -1;
  int64_t first_offset = -1;        // offset of the producer's first batch in the transaction
  int64_t last_offset = -1;         // offset of the ABORT marker
  int64_t last_stable_offset = -1;  // first unstable offset once this transaction completed
  bool operator==(const aborted_txn&) const = default;
};

// FetchResponse's aborted_transactions element.
struct aborted_producer {
  int64_t producer_id = -1;
  int64_t first_offset = -1;
  bool operator==(const aborted_producer&) const = default;
};

// Encodes/decodes one 34-byte entry (docs/format/txn-index.md). decode returns false if the
// version is not 0.
void encode_txn_index_entry(const aborted_txn& e, uint8_t* out);
bool decode_txn_index_entry(const uint8_t* in, aborted_txn* out);

struct read_info;
class txn_index;

// The aborted_transactions of a read_committed fetch answer: the aborted transactions that
// overlap the batches `data` returned (from `fetch_offset`, read with max_offset = `limit`,
// the LSO). Empty when `data` is. The common case (no aborted transaction below `limit` from
// `fetch_offset`) costs one index lookup; otherwise the returned batch headers are read once to
// find the offset after the last batch, so the answer lists no transaction the consumer will
// not see. Same result as collect_aborted(fetch_offset, end of the returned data).
std::vector<aborted_producer> aborted_for_fetch(const log& log, const txn_index& index,
                                                int64_t fetch_offset, const read_info& data,
                                                int64_t limit);

class txn_index {
 public:
  explicit txn_index(std::filesystem::path dir);

  // Reads every `<base>.txnindex` in the directory, then sync_with_segments(log). A file whose
  // length is not a multiple of 34, or with an entry of another version or out of last_offset
  // order, is cut before the first bad entry (logged); first_damaged_offset() then tells from
  // which offset entries may be missing, and producer_state::load(log, txn_index) replays the
  // log from a snapshot at or below it.
  void load(const log& log);

  // Records an aborted transaction in the index of the segment of `log` that holds the
  // marker (entry.last_offset). Returns false (nothing written, logged) if the entry does not
  // come after every entry already recorded, or the write failed; a failed write also lowers
  // first_damaged_offset() to the marker, so the next load rebuilds the entry from the log.
  bool append(const log& log, const aborted_txn& entry);

  // Aborted transactions overlapping [fetch_offset, upper_bound): entries with
  // last_offset >= fetch_offset and first_offset < upper_bound, in marker order, searching from
  // the segment that holds fetch_offset and stopping at the first entry whose
  // last_stable_offset >= upper_bound (no later entry can overlap: see the format doc).
  std::vector<aborted_producer> collect_aborted(int64_t fetch_offset, int64_t upper_bound) const;

  // Drops every entry with last_offset >= offset (their markers were truncated away); empty
  // files are deleted.
  void truncate_to(int64_t offset);

  // Makes the files follow the log's segments: entries for markers at or past the log end are
  // dropped (truncate_to(log end)); the entries of a file whose segment no longer exists move
  // into the file of the segment that now covers its base offset (compaction merged them), or
  // are deleted if no segment does (retention, DeleteRecords).
  void sync_with_segments(const log& log);

  // Deletes every file and entry (the log restarted at a new offset).
  void clear();

  // Drops the entries whose marker (last_offset) is in `marker_offsets` (the log cleaner
  // removed all data of those transactions) and rewrites their files atomically (fsynced; an
  // emptied file is deleted). False (logged) if a rewrite failed.
  bool erase_markers(const std::set<int64_t>& marker_offsets);

  // fsyncs the files written since the last flush. False (logged) on an I/O error.
  bool flush();

  // Lowest offset from which entries may be missing (load() found a file damaged, or an
  // append failed), INT64_MAX if none. Reset by clear() and by truncate_to() at or below it.
  int64_t first_damaged_offset() const { return first_damaged_offset_; }

  // All entries, in marker order (tests, tools).
  std::vector<aborted_txn> entries() const;
  // Segment base offsets that have an index file, ascending.
  std::vector<int64_t> file_bases() const;
  std::filesystem::path file_path(int64_t base) const;

 private:
  // Rewrites the file of `base` with exactly files_[base] (or deletes it when empty).
  bool rewrite(int64_t base);
  void remove_file(int64_t base);
  int64_t last_recorded_offset() const;

  std::filesystem::path dir_;
  std::map<int64_t, std::vector<aborted_txn>> files_;  // segment base → entries (never empty)
  std::set<int64_t> dirty_;                            // written since the last flush
  bool dir_dirty_ = false;                             // a file was created or deleted
  int64_t first_damaged_offset_ = INT64_MAX;
};

}  // namespace varve::storage
