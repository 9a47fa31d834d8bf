#pragma once
// storage::log_cleaner — log compaction for topics whose cleanup.policy contains `compact`
// (Kafka's log cleaner; docs/compaction.md is the full description).
//
// A cleaning pass over one log:
//   1. The cleanable section is the prefix of inactive segments wholly below the last stable
//      offset (the first offset of the oldest open transaction, capped at the high watermark:
//      an undecided transaction is never touched); from the first dirty offset on, a segment
//      whose largest timestamp is newer than `now - min.compaction.lag.ms` ends it. Its
//      "dirty" part starts at the first dirty offset kept in `cleaner-offset-checkpoint`
//      (below: already cleaned).
//   2. A pass runs when dirty_bytes / (clean_bytes + dirty_bytes) >= min.cleanable.dirty.ratio,
//      or the first dirty segment is older than max.compaction.lag.ms, or tombstones or
//      markers kept by an earlier pass have reached their delete horizon.
//   3. An offset map key → latest offset is built from the dirty part, skipping the records
//      of aborted transactions (bounded by cleaner_options::max_offset_map_bytes; the dirty
//      part ends at the segment where the bound is reached).
//   4. Every cleanable segment is rewritten, in groups of consecutive segments whose total
//      size fits segment.bytes (merged into one segment named by the group's first base
//      offset). A record survives iff it is the latest for its key (or its key is not in the
//      map), except tombstones (null value) whose delete horizon has passed. Records without
//      a key are kept. Transactions (see "Transactions" below): a batch of an aborted
//      transaction is removed whole; a batch of a committed one is compacted like any other;
//      a transaction marker stays while a batch of its transaction remains. The last batch
//      of each producer id in the log is kept (as an empty batch if all its records go) so
//      producer state rebuilt from the log still knows the producer's last sequence.
//      Surviving records keep their offsets, timestamps, headers and batch producer fields;
//      a batch that loses records is re-encoded with its original codec, a batch that loses
//      none is copied byte for byte.
//   5. Each group is swapped in crash-safely (log::replace_segments), then the checkpoint
//      moves to the end of the dirty part.
//
// Delete horizon: the checkpoint records, for each pass that kept tombstones (or markers) it
// saw for the first time, (end offset of that pass's dirty part, wall-clock time of the pass). A
// tombstone is removed by the first pass at or after `that time + delete.retention.ms`, i.e.
// it stays readable for at least delete.retention.ms after it was first cleaned.
//
// Transactions. A transactional data batch of producer P at offset o is aborted iff an entry
// of P in the aborted-transaction index covers o (first_offset <= o <= last_offset). A marker
// (COMMIT/ABORT control batch) is removable once no batch of its transaction (P's transactional
// data batches after P's previous marker) is left in the log; it is removed by a pass that
//   - found it removable before the pass started (no batch of its transaction in the input),
//   - runs at or after its delete horizon: delete.retention.ms after the pass that first
//     cleaned it (the tombstone ranges above) and after the pass that removed the last batch
//     of its transaction (the checkpoint's marker ranges: (first, last marker offset, time)),
//   - finds it below `marker_removal_limit()` (the oldest producer-state snapshot: a snapshot
//     taken while the transaction was open replays the log from before the marker, and
//     without the marker the transaction would stay open), and
//   - finds it is not the last batch of P (producer state keeps P's epoch).
// Index entries follow: before swapping anything in, the pass drops the index entries of
// aborted transactions that had no batch left at its start; after its swaps, those whose last
// batch it removed. So an entry never outlives its marker (a read_committed consumer that sees
// an entry without a marker would drop P's later committed data), and an entry is never gone
// while data of its transaction is still readable, whatever the pass crashes at. Replaying the
// cleaned log (producer_state::load) rebuilds exactly these entries: a marker with no batch of
// its transaction before it completes no transaction.
//
// Threading: the functions run on the log's owning loop (they call log and txn_index methods)
// and block it for the duration of a pass (reads and rewrites of the cleanable section).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace varve::storage {

class log;
class txn_index;

// Text file in the partition directory (format in docs/compaction.md).
inline constexpr std::string_view kCleanerCheckpointFile = "cleaner-offset-checkpoint";
// `<base>.log.cleaned`: a group being written; deleted at open (the pass did not commit).
inline constexpr std::string_view kCleanedSuffix = ".cleaned";
// `<base>.<end>.swap`: a committed group replacing the segments with base offsets in
// [base, end); finished at open if the swap was interrupted.
inline constexpr std::string_view kSwapSuffix = ".swap";

struct cleaner_checkpoint {
  int64_t first_dirty_offset = 0;
  // Ranges whose tombstones are still kept: offsets below `end_offset` (and at or above the
  // previous entry's end) were first cleaned at `cleaned_at_ms`. Ascending end_offset.
  struct tombstone_range {
    int64_t end_offset = 0;
    int64_t cleaned_at_ms = 0;
  };
  std::vector<tombstone_range> tombstone_ranges;
  // Markers in [first_offset, last_offset] that became removable (the pass at `removable_at_ms`
  // removed the last batch of their transaction) wait for removable_at_ms +
  // delete.retention.ms. In the order they were recorded; at most kMaxMarkerRanges (older
  // ranges are merged: wider and later, so markers are kept longer, never shorter).
  struct marker_range {
    int64_t first_offset = 0;
    int64_t last_offset = 0;
    int64_t removable_at_ms = 0;
  };
  std::vector<marker_range> marker_ranges;
};

inline constexpr size_t kMaxMarkerRanges = 64;

// nullopt when the file is missing or malformed (then everything counts as dirty).
std::optional<cleaner_checkpoint> read_cleaner_checkpoint(const std::filesystem::path& dir);
bool write_cleaner_checkpoint(const std::filesystem::path& dir, const cleaner_checkpoint& cp,
                              std::string* error);

struct cleaner_options {
  // Upper bound on the memory of the offset map (key bytes plus per-entry overhead).
  size_t max_offset_map_bytes = 64u << 20;
  // Bound on the decompressed size of one batch the cleaner decodes.
  size_t max_decompressed_batch_bytes = 64u << 20;
};

struct clean_stats {
  int64_t first_dirty_offset = 0;   // dirty part cleaned: [first_dirty_offset, end_offset)
  int64_t end_offset = 0;           // first offset not cleaned (the new checkpoint)
  int segments_before = 0;
  int segments_after = 0;
  int64_t bytes_before = 0;
  int64_t bytes_after = 0;
  int64_t records_read = 0;
  int64_t records_removed = 0;
  int64_t tombstones_removed = 0;
  int64_t aborted_records_removed = 0;  // included in records_removed
  int64_t markers_removed = 0;
};

// Runs at most one cleaning pass over `l` (a no-op unless l.config().compact and a pass is
// due, see above). `last_stable_offset` is the partition's LSO (<= its high watermark):
// nothing at or above it is cleaned. `aborted_index` is the partition's aborted-transaction
// index of `l`; on return it follows the log's segments (sync_with_segments) and has lost the
// entries of transactions whose data is gone. Markers at or above `marker_removal_limit()`
// are kept (it returns the oldest producer-state snapshot offset, INT64_MAX if there is none;
// called once, only when a pass runs).
// Returns the pass's statistics, or nullopt when nothing ran or the pass failed (errors are
// logged; a failed pass leaves the log and checkpoint as they were before the group that
// failed).
std::optional<clean_stats> maybe_clean(log& l, int64_t now_ms, int64_t last_stable_offset,
                                       txn_index& aborted_index,
                                       const std::function<int64_t()>& marker_removal_limit,
                                       const cleaner_options& options = {});

// Called by log::open before it lists segments: deletes `*.cleaned` leftovers and finishes
// every committed `<base>.<end>.swap` (deletes the segments it replaces, renames it to
// `<base>.log`; an empty swap file just removes them). Returns false on I/O error.
bool complete_interrupted_swaps(const std::filesystem::path& dir, std::string* error);

// "<base, 20 digits>.<end, 20 digits>.swap"
std::string swap_file_name(int64_t base_offset, int64_t end_offset);

}  // namespace varve::storage
