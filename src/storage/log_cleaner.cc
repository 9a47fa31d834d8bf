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
#include "storage/file_util.h"
#include "storage/format.h"
#include "storage/log.h"
#include "storage/segment.h"

namespace varve::storage {
namespace {

constexpr std::string_view kComponent = "cleaner";
constexpr int kCleanerCheckpointVersion = 0;
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
  bool kept_new_tombstones = false;         // a tombstone in the dirty part was kept
  clean_stats stats;

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

// Rewrites one batch into `out` (appending), or drops it. Returns false on a decode error.
bool clean_batch(pass_context& ctx, const protocol::record_batch_header& h,
                 const std::vector<uint8_t>& bytes, std::vector<uint8_t>* out) {
  if (h.is_control() || h.is_transactional()) {
    // Transactions are not implemented yet: such batches are kept byte for byte.
    out->insert(out->end(), bytes.begin(), bytes.end());
    return true;
  }
  std::vector<protocol::record> records;
  if (!protocol::decode_records(bytes, &records, ctx.max_decompressed)) return false;
  ctx.stats.records_read += static_cast<int64_t>(records.size());
  std::vector<protocol::record> kept;
  kept.reserve(records.size());
  for (auto& r : records) {
    if (ctx.keep(r)) kept.push_back(std::move(r));
  }
  ctx.stats.records_removed += static_cast<int64_t>(records.size() - kept.size());
  if (kept.size() == records.size()) {
    out->insert(out->end(), bytes.begin(), bytes.end());
    return true;
  }
  const bool producer_last = h.producer_id >= 0 && ctx.producer_last_batches.count(h.base_offset);
  if (kept.empty() && !producer_last) return true;
  protocol::batch_builder_options o;
  o.compression = h.compression();
  o.ts_type = h.ts_type();
  o.producer_id = h.producer_id;
  o.producer_epoch = h.producer_epoch;
  o.base_sequence = h.base_sequence;
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
    if (b.header.is_control() || b.header.is_transactional()) return true;
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
  if (!(in >> version >> cp.first_dirty_offset >> n) || version != kCleanerCheckpointVersion ||
      cp.first_dirty_offset < 0 || n > 1000000) {
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
  return cp;
}

bool write_cleaner_checkpoint(const std::filesystem::path& dir, const cleaner_checkpoint& cp,
                              std::string* error) {
  std::ostringstream out;
  out << kCleanerCheckpointVersion << "\n"
      << cp.first_dirty_offset << "\n"
      << cp.tombstone_ranges.size() << "\n";
  for (const auto& r : cp.tombstone_ranges) out << r.end_offset << " " << r.cleaned_at_ms << "\n";
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

std::optional<clean_stats> maybe_clean(log& l, int64_t now_ms, int64_t high_watermark,
                                       const cleaner_options& options) {
  const log_config& config = l.config();
  if (!config.compact) return std::nullopt;
  const auto segments = l.segments();
  if (segments.size() < 2) return std::nullopt;

  const cleaner_checkpoint checkpoint = read_cleaner_checkpoint(l.dir()).value_or(cleaner_checkpoint{});
  const int64_t log_start = l.log_start_offset();
  const int64_t first_dirty =
      std::clamp(checkpoint.first_dirty_offset, log_start, l.log_end_offset());

  // The cleanable section: inactive segments wholly below the high watermark; from the
  // dirty part on, only segments older than min.compaction.lag.ms.
  std::vector<const segment*> cleanable;
  int64_t clean_bytes = 0, dirty_bytes = 0;
  const segment* first_dirty_segment = nullptr;
  for (size_t i = 0; i + 1 < segments.size(); ++i) {
    const segment& s = *segments[i];
    if (s.next_offset() > high_watermark) break;
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
  if (!due) return std::nullopt;

  pass_context ctx;
  ctx.config = &config;
  ctx.now_ms = now_ms;
  ctx.first_dirty = first_dirty;
  ctx.checkpoint = &checkpoint;
  ctx.max_decompressed = options.max_decompressed_batch_bytes;
  ctx.stats.first_dirty_offset = first_dirty;

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

  // The last batch of each producer in the whole log is kept (producer state rebuild).
  std::map<int64_t, int64_t> last_batch_of_producer;
  l.for_each_batch(log_start, [&](const protocol::record_batch_header& h) {
    if (h.producer_id >= 0) last_batch_of_producer[h.producer_id] = h.base_offset;
    return true;
  });
  for (const auto& [pid, base] : last_batch_of_producer) ctx.producer_last_batches.insert(base);

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
  if (!write_cleaner_checkpoint(l.dir(), next, &error)) {
    VLOG_ERROR(kComponent) << "cannot write cleaner checkpoint: " << error;
    return std::nullopt;
  }
  VLOG_INFO(kComponent) << l.dir().filename().string() << ": cleaned offsets [" << log_start
                        << ", " << ctx.stats.end_offset << ") dirty from " << first_dirty
                        << ": segments " << ctx.stats.segments_before << " -> "
                        << ctx.stats.segments_after << ", bytes " << ctx.stats.bytes_before
                        << " -> " << ctx.stats.bytes_after << ", removed "
                        << ctx.stats.records_removed << " of " << ctx.stats.records_read
                        << " records (" << ctx.stats.tombstones_removed << " tombstones)";
  return ctx.stats;
}

}  // namespace varve::storage
