#pragma once
// storage::log_cleaner — log compaction for topics whose cleanup.policy contains `compact`
// (Kafka's log cleaner; docs/compaction.md is the full description).
//
// A cleaning pass over one log:
//   1. The cleanable section is the prefix of inactive segments wholly below the high
//      watermark; from the first dirty offset on, a segment whose largest timestamp is newer
//      than `now - min.compaction.lag.ms` ends it. Its "dirty" part starts at the first
//      dirty offset kept in `cleaner-offset-checkpoint` (below: already cleaned).
//   2. A pass runs when dirty_bytes / (clean_bytes + dirty_bytes) >= min.cleanable.dirty.ratio,
//      or the first dirty segment is older than max.compaction.lag.ms, or tombstones kept by
//      an earlier pass have reached their delete horizon.
//   3. An offset map key → latest offset is built from the dirty part (bounded by
//      cleaner_options::max_offset_map_bytes; the dirty part ends at the segment where the
//      bound is reached).
//   4. Every cleanable segment is rewritten, in groups of consecutive segments whose total
//      size fits segment.bytes (merged into one segment named by the group's first base
//      offset). A record survives iff it is the latest for its key (or its key is not in the
//      map), except tombstones (null value) whose delete horizon has passed. Records without
//      a key, control batches and transactional batches are kept as they are. The last batch
//      of each producer id in the log is kept (as an empty batch if all its records go) so
//      producer state rebuilt from the log still knows the producer's last sequence.
//      Surviving records keep their offsets, timestamps, headers and batch producer fields;
//      a batch that loses records is re-encoded with its original codec, a batch that loses
//      none is copied byte for byte.
//   5. Each group is swapped in crash-safely (log::replace_segments), then the checkpoint
//      moves to the end of the dirty part.
//
// Delete horizon: the checkpoint records, for each pass that kept tombstones it saw for the
// first time, (end offset of that pass's dirty part, wall-clock time of the pass). A
// tombstone is removed by the first pass at or after `that time + delete.retention.ms`, i.e.
// it stays readable for at least delete.retention.ms after it was first cleaned.
//
// Threading: the functions run on the log's owning loop (they call log methods) and block it
// for the duration of a pass (reads and rewrites of the cleanable section).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace varve::storage {

class log;

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
};

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
};

// Runs at most one cleaning pass over `l` (a no-op unless l.config().compact and a pass is
// due, see above). Returns the pass's statistics, or nullopt when nothing ran or the pass
// failed (errors are logged; a failed pass leaves the log and checkpoint as they were
// before the group that failed).
std::optional<clean_stats> maybe_clean(log& l, int64_t now_ms, int64_t high_watermark,
                                       const cleaner_options& options = {});

// Called by log::open before it lists segments: deletes `*.cleaned` leftovers and finishes
// every committed `<base>.<end>.swap` (deletes the segments it replaces, renames it to
// `<base>.log`; an empty swap file just removes them). Returns false on I/O error.
bool complete_interrupted_swaps(const std::filesystem::path& dir, std::string* error);

// "<base, 20 digits>.<end, 20 digits>.swap"
std::string swap_file_name(int64_t base_offset, int64_t end_offset);

}  // namespace varve::storage
