#pragma once
// storage::leader_epoch_cache — the start offset of every leader epoch present in the log
// (KIP-101), persisted in `<partition dir>/leader-epoch-checkpoint`
// (docs/format/leader-epoch-checkpoint.md).
//
// Invariants: entries are sorted with strictly increasing epochs and non-decreasing start
// offsets; the checkpoint file matches the entries after every mutating call that returned
// true (writes are atomic: tmp + fsync + rename + fsync dir).
//
// Threading: owned by the partition's log; not thread-safe.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace varve::storage {

struct epoch_entry {
  int32_t epoch = 0;
  int64_t start_offset = 0;
  bool operator==(const epoch_entry&) const = default;
};

class leader_epoch_cache {
 public:
  explicit leader_epoch_cache(std::filesystem::path file) : file_(std::move(file)) {}

  // Reads the checkpoint. A missing file is an empty cache; a malformed one is logged and
  // treated as empty (the epochs are rebuilt from later appends; KIP-101 falls back to the
  // high watermark for such a replica).
  void load();
  // Records that `epoch` starts at `start_offset`. Ignored if `epoch` is not newer than the
  // latest epoch. Entries starting at or after `start_offset` are dropped first (they belong
  // to a truncated history).
  bool assign(int32_t epoch, int64_t start_offset);
  // Removes entries whose start offset >= `end_offset` (log truncated to `end_offset`).
  bool truncate_from_end(int64_t end_offset);
  // Log start moved to `start_offset`: entries wholly before it are dropped and the one
  // covering it now starts at `start_offset`.
  bool truncate_from_start(int64_t start_offset);
  bool clear();

  int32_t latest_epoch() const { return entries_.empty() ? -1 : entries_.back().epoch; }
  // KIP-279 semantics, with `log_end_offset` the log's LEO:
  //   requested == latest epoch          → (latest, log_end_offset)
  //   requested > latest or no entries   → (-1, -1)
  //   requested < first epoch            → (requested, first start offset)
  //   otherwise                          → (largest epoch <= requested, start of next epoch)
  std::pair<int32_t, int64_t> end_offset_for(int32_t requested, int64_t log_end_offset) const;
  // Epoch of the batch at `offset`: the entry with the largest start offset <= offset.
  std::optional<int32_t> epoch_for_offset(int64_t offset) const;
  const std::vector<epoch_entry>& entries() const { return entries_; }

 private:
  bool write();
  std::filesystem::path file_;
  std::vector<epoch_entry> entries_;
};

}  // namespace varve::storage
