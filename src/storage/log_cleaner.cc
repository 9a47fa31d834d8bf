#include "storage/log_cleaner.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include "common/log.h"
#include "protocol/record_batch.h"
#include "protocol/record_control.h"
#include "storage/file_util.h"
#include "storage/format.h"
#include "storage/log.h"
#include "storage/segment.h"
#include "storage/txn_index.h"

namespace varve::storage {
namespace {

constexpr std::string_view kComponent = "cleaner";
// Version 1 adds the marker ranges; version 0 files (none) are still read.
constexpr int kCleanerCheckpointVersion = 1;
// Per-entry overhead assumed for the offset map's memory bound (node, hash bucket, string).
constexpr size_t kMapEntryOverhead = 64;

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Parses "<20 digits>.<20 digits>.swap".
std::optional<std::pair<int64_t, int64_t>> parse_swap_file_name(std::string_view name) {
  const size_t d = kSegmentNameDigits;
  if (name.size() != 2 * d + 1 + kSwapSuffix.size() || name[d] != '.' ||
      !ends_with(name, kSwapSuffix)) {
    return std::nullopt;
  }
  auto number = [](std::string_view digits) -> std::optional<int64_t> {
    int64_t v = 0;
    for (char c : digits) {
      if (c < '0' || c > '9' || v > (INT64_MAX - (c - '0')) / 10) return std::nullopt;
      v = v * 10 + (c - '0');
    }
    return v;
  };
  auto base = number(name.substr(0, d));
  auto end = number(name.substr(d + 1, d));
  if (!base || !end || *end <= *base) return std::nullopt;
  return std::make_pair(*base, *end);
}

int64_t largest_timestamp(const segment& s) {
  return s.max_timestamp() >= 0 ? s.max_timestamp() : s.created_ms();
}

// Offsets in [first_dirty, end) of the dirty part, key → latest offset.
struct offset_map {
  std::unordered_map<std::string, int64_t> latest;
  size_t bytes = 0;
  void put(const std::vector<uint8_t>& key, int64_t offset) {
    auto [it, inserted] = latest.try_emplace(std::string(key.begin(), key.end()), offset);
    if (inserted) {
      bytes += key.size() + kMapEntryOverhead;
    } else {
      it->second = std::max(it->second, offset);
    }
  }
  std::optional<int64_t> get(const std::vector<uint8_t>& key) const {
    auto it = latest.find(std::string(key.begin(), key.end()));
    if (it == latest.end()) return std::nullopt;
    return it->second;
  }
};

// Writes batches to a new file, then fsyncs it.
class cleaned_writer {
 public:
  ~cleaned_writer() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool open(const std::filesystem::path& path, std::string* error) {
    path_ = path;
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0 && error) *error = "open " + path.string() + ": " + std::strerror(errno);
    return fd_ >= 0;
  }
  bool write(std::span<const uint8_t> bytes, std::string* error) {
    if (!pwrite_all(fd_, bytes, size_, error)) return false;
    size_ += bytes.size();
    return true;
  }
  bool finish(std::string* error) {
    if (!fdatasync_fd(fd_, error)) return false;
    ::close(fd_);
    fd_ = -1;
    return true;
  }
  uint64_t size() const { return size_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// What one pass decides for the records of the cleanable section.
struct pass_context {
  const log_config* config = nullptr;
  int64_t now_ms = 0;
  int64_t first_dirty = 0;
  int64_t dirty_end = 0;
  const cleaner_checkpoint* checkpoint = nullptr;
  offset_map map;
  std::set<int64_t> producer_last_batches;  // base offsets of each producer's last batch
  size_t max_decompressed = 0;
  bool kept_new_tombstones = false;  // a tombstone or marker in the dirty part was kept
  clean_stats stats;

  // Transactions.
  int64_t marker_removal_limit = INT64_MAX;
  // producer id → aborted (first_offset, last_offset), ascending (from the txn index).
  std::map<int64_t, std::vector<std::pair<int64_t, int64_t>>> aborted;
  // Marker offset → whether a batch of its transaction was in the log before this pass.
  std::unordered_map<int64_t, bool> marker_had_batches;
  // producer id → a batch of its current transaction was written by this pass.
  std::unordered_map<int64_t, bool> wrote_txn_batch;
  std::set<int64_t> index_erase_after_swap;  // aborted markers whose last batch this pass removed
  std::optional<cleaner_checkpoint::marker_range> newly_removable;

  bool is_aborted(int64_t producer_id, int64_t offset) const {
    auto it = aborted.find(producer_id);
    if (it == aborted.end()) return false;
    const auto& ranges = it->second;
    auto r = std::lower_bound(
        ranges.begin(), ranges.end(), offset,
        [](const std::pair<int64_t, int64_t>& x, int64_t o) { return x.second < o; });
    return r != ranges.end() && r->first <= offset;
  }

  bool horizon_passed(int64_t removable_at_ms) const {
    return static_cast<__int128>(removable_at_ms) + config->delete_retention_ms <= now_ms;
  }

  // A removable marker at `offset` may go: first cleaned and last batch removed at least
  // delete.retention.ms ago.
  bool marker_expired(int64_t offset) const {
    if (!tombstone_expired(offset)) return false;
    for (const auto& r : checkpoint->marker_ranges) {
      if (r.first_offset <= offset && offset <= r.last_offset &&
          !horizon_passed(r.removable_at_ms)) {
        return false;
      }
    }
    return true;
  }

  void note_newly_removable(int64_t marker_offset) {
    if (!newly_removable) {
      newly_removable = cleaner_checkpoint::marker_range{marker_offset, marker_offset, now_ms};
    } else {
      newly_removable->first_offset = std::min(newly_removable->first_offset, marker_offset);
      newly_removable->last_offset = std::max(newly_removable->last_offset, marker_offset);
    }
  }

  // A tombstone at `offset` (below first_dirty: cleaned before) may go once the pass that
  // first cleaned it is delete.retention.ms old.
  bool tombstone_expired(int64_t offset) const {
    if (offset >= first_dirty) return false;
    for (const auto& r : checkpoint->tombstone_ranges) {
      if (offset < r.end_offset) {
        return static_cast<__int128>(r.cleaned_at_ms) + config->delete_retention_ms <= now_ms;
      }
    }
    // Past every recorded range: that part was cleaned without keeping tombstones (or their
    // range expired and was dropped).
    return true;
  }

  bool keep(const protocol::record& r) {
    if (!r.key) return true;  // not compactable; never dropped
    if (auto latest = map.get(*r.key); latest && *latest > r.offset) return false;
    if (!r.value) {
      if (tombstone_expired(r.offset)) {
        ++stats.tombstones_removed;
        return false;
      }
      if (r.offset >= first_dirty) kept_new_tombstones = true;
    }
    return true;
  }
};

// Decides a transaction marker (control batch): copied to `out` or dropped.
void clean_marker(pass_context& ctx, const protocol::record_batch_header& h,
                  const std::vector<uint8_t>& bytes, std::vector<uint8_t>* out) {
  const auto marker = protocol::parse_txn_marker(bytes);
  const int64_t pid = h.producer_id;
  const bool wrote_batch = ctx.wrote_txn_batch[pid];
  ctx.wrote_txn_batch[pid] = false;  // the marker ends P's transaction
  auto had = ctx.marker_had_batches.find(h.base_offset);
  if (!marker || pid < 0 || had == ctx.marker_had_batches.end()) {
    // Another kind of control record (or no producer): kept, as Kafka does.
    out->insert(out->end(), bytes.begin(), bytes.end());
    return;
  }
  const bool had_batches = had->second;
  if (!had_batches && h.base_offset < ctx.first_dirty && h.base_offset < ctx.marker_removal_limit &&
      !ctx.producer_last_batches.count(h.base_offset) && ctx.marker_expired(h.base_offset)) {
    ++ctx.stats.markers_removed;
    return;
  }
  if (had_batches && !wrote_batch) {
    // This pass removed the last batch of the transaction: the marker's horizon starts now.
    ctx.note_newly_removable(h.base_offset);
    if (marker->type == protocol::control_record_type::abort) {
      ctx.index_erase_after_swap.insert(h.base_offset);
    }
  }
  if (h.base_offset >= ctx.first_dirty) ctx.kept_new_tombstones = true;
  out->insert(out->end(), bytes.begin(), bytes.end());
}

// Rewrites one batch into `out` (appending), or drops it. Returns false on a decode error.
bool clean_batch(pass_context& ctx, const protocol::record_batch_header& h,
                 const std::vector<uint8_t>& bytes, std::vector<uint8_t>* out) {
  if (h.is_control()) {
    clean_marker(ctx, h, bytes, out);
    return true;
  }
  const bool producer_last = h.producer_id >= 0 && ctx.producer_last_batches.count(h.base_offset);
  const bool txn = h.is_transactional() && h.producer_id >= 0;
  std::vector<protocol::record> kept;
  if (txn && ctx.is_aborted(h.producer_id, h.base_offset)) {
    // Aborted: every record goes (the batch stays empty only as its producer's last batch).
    const int64_t n = std::max<int32_t>(h.records_count, 0);
    ctx.stats.records_read += n;
    ctx.stats.records_removed += n;
    ctx.stats.aborted_records_removed += n;
  } else {
    std::vector<protocol::record> records;
    if (!protocol::decode_records(bytes, &records, ctx.max_decompressed)) return false;
    ctx.stats.records_read += static_cast<int64_t>(records.size());
    kept.reserve(records.size());
    for (auto& r : records) {
      if (ctx.keep(r)) kept.push_back(std::move(r));
    }
    ctx.stats.records_removed += static_cast<int64_t>(records.size() - kept.size());
    if (kept.size() == records.size()) {
      if (txn) ctx.wrote_txn_batch[h.producer_id] = true;
      out->insert(out->end(), bytes.begin(), bytes.end());
      return true;
    }
  }
  if (kept.empty() && !producer_last) return true;
  if (txn) ctx.wrote_txn_batch[h.producer_id] = true;
  protocol::batch_builder_options o;
  o.compression = h.compression();
  o.ts_type = h.ts_type();
  o.producer_id = h.producer_id;
  o.producer_epoch = h.producer_epoch;
  o.base_sequence = h.base_sequence;
  o.transactional = h.is_transactional();
  o.partition_leader_epoch = h.partition_leader_epoch;
  auto rebuilt = protocol::build_batch_with_offsets(kept, o, h.base_offset, h.last_offset_delta);
  out->insert(out->end(), rebuilt.begin(), rebuilt.end());
  return true;
}

// Adds the keys of the dirty records of segment `s` to the map. False on a read error.
bool add_to_map(pass_context& ctx, const segment& s, std::string* error) {
  bool ok = true;
  std::vector<uint8_t> bytes;
  std::vector<protocol::record> records;
  s.for_each_from(0, [&](const batch_position& b) {
    if (b.header.last_offset() < ctx.first_dirty) return true;
    if (b.header.is_control()) return true;
    // Aborted records never were: their keys must not hide older committed values.
    if (b.header.is_transactional() && ctx.is_aborted(b.header.producer_id, b.header.base_offset)) {
      return true;
    }
    records.clear();
    if (!s.read_batch(b, &bytes) ||
        !protocol::decode_records(bytes, &records, ctx.max_decompressed)) {
      if (error) {
        *error = "cannot read batch at offset " + std::to_string(b.header.base_offset) + " of " +
                 s.log_path().string();
      }
      ok = false;
      return false;
    }
    for (const auto& r : records) {
      if (r.key && r.offset >= ctx.first_dirty) ctx.map.put(*r.key, r.offset);
    }
    return true;
  });
  return ok;
}

// Writes the cleaned form of `group` to `path`. Sets *changed if any batch differs.
bool clean_group(pass_context& ctx, const std::vector<const segment*>& group,
                 const std::filesystem::path& path, bool* changed, uint64_t* size,
                 std::string* error) {
  cleaned_writer w;
  if (!w.open(path, error)) return false;
  bool ok = true;
  std::vector<uint8_t> bytes, out;
  for (const segment* s : group) {
    s->for_each_from(0, [&](const batch_position& b) {
      out.clear();
      if (!s->read_batch(b, &bytes) || !clean_batch(ctx, b.header, bytes, &out)) {
        if (error) {
          *error = "cannot clean batch at offset " + std::to_string(b.header.base_offset) +
                   " of " + s->log_path().string();
        }
        ok = false;
        return false;
      }
      if (out.size() != bytes.size() || !std::equal(out.begin(), out.end(), bytes.begin())) {
        *changed = true;
      }
      if (!out.empty() && !w.write(out, error)) {
        ok = false;
        return false;
      }
      return true;
    });
    if (!ok) return false;
  }
  *size = w.size();
  return w.finish(error);
}

}  // namespace

std::string swap_file_name(int64_t base_offset, int64_t end_offset) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%020lld.%020lld", static_cast<long long>(base_offset),
                static_cast<long long>(end_offset));
  return std::string(buf) + std::string(kSwapSuffix);
}

std::optional<cleaner_checkpoint> read_cleaner_checkpoint(const std::filesystem::path& dir) {
  auto text = read_small_file(dir / std::string(kCleanerCheckpointFile));
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  int version = -1;
  cleaner_checkpoint cp;
  size_t n = 0;
  if (!(in >> version >> cp.first_dirty_offset >> n) || version < 0 ||
      version > kCleanerCheckpointVersion || cp.first_dirty_offset < 0 || n > 1000000) {
    VLOG_WARN(kComponent) << "malformed " << kCleanerCheckpointFile << " in " << dir.string()
                          << "; cleaning from the log start";
    return std::nullopt;
  }
  for (size_t i = 0; i < n; ++i) {
    cleaner_checkpoint::tombstone_range r;
    if (!(in >> r.end_offset >> r.cleaned_at_ms) ||
        (!cp.tombstone_ranges.empty() && r.end_offset <= cp.tombstone_ranges.back().end_offset)) {
      VLOG_WARN(kComponent) << "malformed tombstone range in " << kCleanerCheckpointFile
                            << " in " << dir.string() << "; cleaning from the log start";
      return std::nullopt;
    }
    cp.tombstone_ranges.push_back(r);
  }
  size_t m = 0;
  if (version >= 1 && (!(in >> m) || m > kMaxMarkerRanges)) {
    VLOG_WARN(kComponent) << "malformed marker ranges in " << kCleanerCheckpointFile << " in "
                          << dir.string() << "; cleaning from the log start";
    return std::nullopt;
  }
  for (size_t i = 0; i < m; ++i) {
    cleaner_checkpoint::marker_range r;
    if (!(in >> r.first_offset >> r.last_offset >> r.removable_at_ms) ||
        r.first_offset > r.last_offset) {
      VLOG_WARN(kComponent) << "malformed marker range in " << kCleanerCheckpointFile << " in "
                            << dir.string() << "; cleaning from the log start";
      return std::nullopt;
    }
    cp.marker_ranges.push_back(r);
  }
  return cp;
}

bool write_cleaner_checkpoint(const std::filesystem::path& dir, const cleaner_checkpoint& cp,
                              std::string* error) {
  std::ostringstream out;
  out << kCleanerCheckpointVersion << "\n"
      << cp.first_dirty_offset << "\n"
      << cp.tombstone_ranges.size() << "\n";
  for (const auto& r : cp.tombstone_ranges) out << r.end_offset << " " << r.cleaned_at_ms << "\n";
  out << cp.marker_ranges.size() << "\n";
  for (const auto& r : cp.marker_ranges) {
    out << r.first_offset << " " << r.last_offset << " " << r.removable_at_ms << "\n";
  }
  return write_file_atomically(dir / std::string(kCleanerCheckpointFile), out.str(), error);
}

bool complete_interrupted_swaps(const std::filesystem::path& dir, std::string* error) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return true;
  std::vector<std::pair<std::pair<int64_t, int64_t>, std::filesystem::path>> swaps;
  std::map<int64_t, std::filesystem::path> logs;
  bool changed = false;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (ends_with(name, kCleanedSuffix)) {
      std::filesystem::remove(entry.path(), ec);
      changed = true;
    } else if (auto range = parse_swap_file_name(name)) {
      swaps.emplace_back(*range, entry.path());
    } else if (auto base = parse_segment_file_name(name, kLogSuffix)) {
      logs.emplace(*base, entry.path());
    }
  }
  if (ec) {
    if (error) *error = "list " + dir.string() + ": " + ec.message();
    return false;
  }
  for (const auto& [range, swap] : swaps) {
    const auto [base, end] = range;
    VLOG_WARN(kComponent) << "finishing interrupted swap " << swap.string();
    for (auto it = logs.lower_bound(base); it != logs.end() && it->first < end;) {
      for (auto suffix : {kLogSuffix, kIndexSuffix, kTimeIndexSuffix}) {
        std::filesystem::remove(dir / segment_file_name(it->first, suffix), ec);
        if (ec) {
          if (error) *error = "remove segment " + std::to_string(it->first) + ": " + ec.message();
          return false;
        }
      }
      it = logs.erase(it);
    }
    if (std::filesystem::file_size(swap, ec) == 0 && !ec) {
      std::filesystem::remove(swap, ec);
    } else {
      std::filesystem::rename(swap, dir / segment_file_name(base, kLogSuffix), ec);
    }
    if (ec) {
      if (error) *error = "finish swap " + swap.string() + ": " + ec.message();
      return false;
    }
    changed = true;
  }
  return !changed || fsync_dir(dir, error);
}

std::optional<clean_stats> maybe_clean(log& l, int64_t now_ms, int64_t last_stable_offset,
                                       txn_index& aborted_index,
                                       const std::function<int64_t()>& marker_removal_limit,
                                       const cleaner_options& options) {
  const log_config& config = l.config();
  if (!config.compact) return std::nullopt;
  const auto segments = l.segments();
  if (segments.size() < 2) return std::nullopt;

  const cleaner_checkpoint checkpoint = read_cleaner_checkpoint(l.dir()).value_or(cleaner_checkpoint{});
  const int64_t log_start = l.log_start_offset();
  const int64_t first_dirty =
      std::clamp(checkpoint.first_dirty_offset, log_start, l.log_end_offset());

  // The cleanable section: inactive segments wholly below the LSO (so below the high
  // watermark, and no open transaction in it); from the dirty part on, only segments older
  // than min.compaction.lag.ms.
  std::vector<const segment*> cleanable;
  int64_t clean_bytes = 0, dirty_bytes = 0;
  const segment* first_dirty_segment = nullptr;
  for (size_t i = 0; i + 1 < segments.size(); ++i) {
    const segment& s = *segments[i];
    if (s.next_offset() > last_stable_offset) break;
    const bool dirty = s.next_offset() > first_dirty;
    if (dirty && static_cast<__int128>(now_ms) - largest_timestamp(s) <
                     static_cast<__int128>(config.min_compaction_lag_ms)) {
      break;
    }
    cleanable.push_back(&s);
    if (dirty) {
      dirty_bytes += static_cast<int64_t>(s.size());
      if (!first_dirty_segment) first_dirty_segment = &s;
    } else {
      clean_bytes += static_cast<int64_t>(s.size());
    }
  }
  if (cleanable.empty()) return std::nullopt;

  bool due = false;
  if (dirty_bytes > 0) {
    const double ratio = static_cast<double>(dirty_bytes) /
                         static_cast<double>(clean_bytes + dirty_bytes);
    const int64_t first_ts = first_dirty_segment->first_batch_timestamp() >= 0
                                 ? first_dirty_segment->first_batch_timestamp()
                                 : first_dirty_segment->created_ms();
    due = ratio >= config.min_cleanable_dirty_ratio ||
          static_cast<__int128>(now_ms) - first_ts > config.max_compaction_lag_ms;
  }
  for (const auto& r : checkpoint.tombstone_ranges) {
    if (r.end_offset > log_start &&
        static_cast<__int128>(r.cleaned_at_ms) + config.delete_retention_ms <= now_ms) {
      due = true;
    }
  }
  for (const auto& r : checkpoint.marker_ranges) {
    if (r.last_offset >= log_start &&
        static_cast<__int128>(r.removable_at_ms) + config.delete_retention_ms <= now_ms) {
      due = true;
    }
  }
  if (!due) return std::nullopt;

  pass_context ctx;
  ctx.config = &config;
  ctx.now_ms = now_ms;
  ctx.first_dirty = first_dirty;
  ctx.checkpoint = &checkpoint;
  ctx.max_decompressed = options.max_decompressed_batch_bytes;
  ctx.marker_removal_limit = marker_removal_limit();
  ctx.stats.first_dirty_offset = first_dirty;
  for (const aborted_txn& e : aborted_index.entries()) {
    ctx.aborted[e.producer_id].emplace_back(e.first_offset, e.last_offset);
  }
  for (auto& [pid, ranges] : ctx.aborted) std::sort(ranges.begin(), ranges.end());

  // Offset map over the dirty part, ending at a segment boundary once the bound is reached.
  std::string error;
  size_t cleanable_count = cleanable.size();
  for (size_t i = 0; i < cleanable.size(); ++i) {
    const segment& s = *cleanable[i];
    if (s.next_offset() <= first_dirty) continue;
    if (ctx.map.bytes >= options.max_offset_map_bytes && s.base_offset() > first_dirty) {
      cleanable_count = i;
      break;
    }
    if (!add_to_map(ctx, s, &error)) {
      VLOG_ERROR(kComponent) << l.dir().string() << ": cleaning aborted: " << error;
      return std::nullopt;
    }
  }
  cleanable.resize(cleanable_count);
  // The end of the cleaned section: the base of the segment after the last cleanable one.
  const size_t last_index =
      static_cast<size_t>(std::find(segments.begin(), segments.end(), cleanable.back()) -
                          segments.begin());
  ctx.dirty_end = segments[last_index + 1]->base_offset();
  ctx.stats.end_offset = std::max(ctx.dirty_end, first_dirty);

  // The last batch of each producer in the whole log is kept (producer state rebuild). In the
  // cleanable section, each control batch learns whether its transaction still has a batch.
  std::map<int64_t, int64_t> last_batch_of_producer;
  std::unordered_map<int64_t, bool> txn_has_batch;  // producer id → since its last marker
  l.for_each_batch(log_start, [&](const protocol::record_batch_header& h) {
    if (h.producer_id < 0) return true;
    last_batch_of_producer[h.producer_id] = h.base_offset;
    if (h.base_offset >= ctx.dirty_end) return true;
    if (h.is_control()) {
      ctx.marker_had_batches[h.base_offset] = txn_has_batch[h.producer_id];
      txn_has_batch[h.producer_id] = false;
    } else if (h.is_transactional()) {
      txn_has_batch[h.producer_id] = true;
    }
    return true;
  });
  for (const auto& [pid, base] : last_batch_of_producer) ctx.producer_last_batches.insert(base);

  // Entries of aborted transactions with no batch left go before any swap: a crash after a
  // swap that removes a marker must not leave its entry behind.
  std::set<int64_t> index_erase_now;
  for (const aborted_txn& e : aborted_index.entries()) {
    auto it = ctx.marker_had_batches.find(e.last_offset);
    if (it != ctx.marker_had_batches.end() && !it->second) index_erase_now.insert(e.last_offset);
  }
  if (!aborted_index.erase_markers(index_erase_now)) {
    VLOG_ERROR(kComponent) << l.dir().string() << ": cleaning aborted: cannot update the "
                           << "aborted-transaction index";
    return std::nullopt;
  }

  // Groups of consecutive segments whose sizes fit segment.bytes and offsets fit an int32.
  const uint64_t max_group_bytes =
      static_cast<uint64_t>(std::clamp<int64_t>(config.segment_bytes, 1, INT32_MAX));
  std::vector<std::vector<const segment*>> groups;
  uint64_t group_bytes = 0;
  for (const segment* s : cleanable) {
    if (!groups.empty() && group_bytes + s->size() <= max_group_bytes &&
        s->next_offset() - 1 - groups.back().front()->base_offset() <= INT32_MAX) {
      groups.back().push_back(s);
      group_bytes += s->size();
    } else {
      groups.push_back({s});
      group_bytes = s->size();
    }
  }

  // Each group's end is the base of the segment after it (computed before any swap, which
  // invalidates the pointers of the replaced segments).
  std::vector<int64_t> group_ends;
  for (const auto& group : groups) {
    const size_t after_index = static_cast<size_t>(
        std::find(segments.begin(), segments.end(), group.back()) - segments.begin() + 1);
    group_ends.push_back(segments[after_index]->base_offset());
  }

  ctx.stats.segments_before = static_cast<int>(cleanable.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& group = groups[g];
    const int64_t base = group.front()->base_offset();
    const int64_t end = group_ends[g];
    int64_t group_size = 0;
    for (const segment* s : group) group_size += static_cast<int64_t>(s->size());
    ctx.stats.bytes_before += group_size;
    const auto path = l.dir() / (segment_file_name(base, kLogSuffix) + std::string(kCleanedSuffix));
    bool changed = group.size() > 1;
    uint64_t size = 0;
    if (!clean_group(ctx, group, path, &changed, &size, &error)) {
      std::error_code ec;
      std::filesystem::remove(path, ec);
      VLOG_ERROR(kComponent) << l.dir().string() << ": cleaning aborted: " << error;
      return std::nullopt;
    }
    if (!changed) {
      // Nothing to drop and nothing to merge: keep the segment as it is.
      std::error_code ec;
      std::filesystem::remove(path, ec);
      ctx.stats.bytes_after += group_size;
      ++ctx.stats.segments_after;
      continue;
    }
    if (!l.replace_segments(base, end, path, &error)) {
      std::error_code ec;
      std::filesystem::remove(path, ec);
      VLOG_ERROR(kComponent) << "cannot swap cleaned segment: " << error;
      return std::nullopt;
    }
    ctx.stats.bytes_after += static_cast<int64_t>(size);
    if (size > 0) ++ctx.stats.segments_after;
  }
  aborted_index.sync_with_segments(l);
  if (!aborted_index.erase_markers(ctx.index_erase_after_swap)) {
    // The entries stay (with their markers, which this pass kept): the next pass erases them.
    VLOG_ERROR(kComponent) << l.dir().string() << ": cannot update the aborted-transaction index";
  }

  cleaner_checkpoint next;
  next.first_dirty_offset = ctx.stats.end_offset;
  for (const auto& r : checkpoint.tombstone_ranges) {
    // Expired ranges lost their tombstones in this pass (it rewrote every segment below).
    if (static_cast<__int128>(r.cleaned_at_ms) + config.delete_retention_ms > now_ms &&
        r.end_offset > log_start) {
      next.tombstone_ranges.push_back(r);
    }
  }
  if (ctx.kept_new_tombstones &&
      (next.tombstone_ranges.empty() || next.tombstone_ranges.back().end_offset < ctx.dirty_end)) {
    next.tombstone_ranges.push_back({ctx.dirty_end, now_ms});
  }
  for (const auto& r : checkpoint.marker_ranges) {
    if (!ctx.horizon_passed(r.removable_at_ms) && r.last_offset >= log_start) {
      next.marker_ranges.push_back(r);
    }
  }
  if (ctx.newly_removable) next.marker_ranges.push_back(*ctx.newly_removable);
  while (next.marker_ranges.size() > kMaxMarkerRanges) {
    // Merge the two oldest: covers both, waits for the later horizon.
    auto& a = next.marker_ranges[0];
    const auto& b = next.marker_ranges[1];
    a.first_offset = std::min(a.first_offset, b.first_offset);
    a.last_offset = std::max(a.last_offset, b.last_offset);
    a.removable_at_ms = std::max(a.removable_at_ms, b.removable_at_ms);
    next.marker_ranges.erase(next.marker_ranges.begin() + 1);
  }
  if (!write_cleaner_checkpoint(l.dir(), next, &error)) {
    VLOG_ERROR(kComponent) << "cannot write cleaner checkpoint: " << error;
    return std::nullopt;
  }
  VLOG_INFO(kComponent) << l.dir().filename().string() << ": cleaned offsets [" << log_start << ", "
                        << ctx.stats.end_offset << ") dirty from " << first_dirty << ": segments "
                        << ctx.stats.segments_before << " -> " << ctx.stats.segments_after
                        << ", bytes " << ctx.stats.bytes_before << " -> " << ctx.stats.bytes_after
                        << ", removed " << ctx.stats.records_removed << " of "
                        << ctx.stats.records_read << " records (" << ctx.stats.tombstones_removed
                        << " tombstones, " << ctx.stats.aborted_records_removed << " aborted), "
                        << ctx.stats.markers_removed << " transaction markers removed";
  return ctx.stats;
}

}  // namespace varve::storage
