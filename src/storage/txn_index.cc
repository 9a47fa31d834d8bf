#include "storage/txn_index.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <climits>
#include <cstring>
#include <optional>
#include <string>
#include <system_error>

#include "common/log.h"
#include "storage/file_util.h"
#include "storage/log.h"
#include "storage/segment.h"

namespace varve::storage {

namespace {

constexpr std::string_view kComponent = "txn_index";

// Base offset of the segment of `log` that holds `offset`: the greatest base <= offset.
// nullopt if offset lies below every segment.
std::optional<int64_t> segment_base_for(const log& log, int64_t offset) {
  std::optional<int64_t> base;
  for (const segment* s : log.segments()) {
    if (s->base_offset() > offset) break;
    base = s->base_offset();
  }
  return base;
}

}  // namespace

void encode_txn_index_entry(const aborted_txn& e, uint8_t* out) {
  out[0] = static_cast<uint8_t>(static_cast<uint16_t>(kTxnIndexVersion) >> 8);
  out[1] = static_cast<uint8_t>(kTxnIndexVersion);
  put_be64(out + 2, static_cast<uint64_t>(e.producer_id));
  put_be64(out + 10, static_cast<uint64_t>(e.first_offset));
  put_be64(out + 18, static_cast<uint64_t>(e.last_offset));
  put_be64(out + 26, static_cast<uint64_t>(e.last_stable_offset));
}

bool decode_txn_index_entry(const uint8_t* in, aborted_txn* out) {
  const auto version = static_cast<int16_t>((uint16_t{in[0]} << 8) | in[1]);
  if (version != kTxnIndexVersion) return false;
  out->producer_id = static_cast<int64_t>(get_be64(in + 2));
  out->first_offset = static_cast<int64_t>(get_be64(in + 10));
  out->last_offset = static_cast<int64_t>(get_be64(in + 18));
  out->last_stable_offset = static_cast<int64_t>(get_be64(in + 26));
  return true;
}

txn_index::txn_index(std::filesystem::path dir) : dir_(std::move(dir)) {}

std::filesystem::path txn_index::file_path(int64_t base) const {
  return dir_ / segment_file_name(base, kTxnIndexSuffix);
}

void txn_index::load(const log& log) {
  files_.clear();
  dirty_.clear();
  dir_dirty_ = false;
  first_damaged_offset_ = INT64_MAX;
  std::vector<int64_t> bases;
  std::error_code ec;
  if (log.created()) return;  // a brand-new directory: no index files to list
  for (const auto& ent : std::filesystem::directory_iterator(dir_, ec)) {
    if (auto base = parse_segment_file_name(ent.path().filename().string(), kTxnIndexSuffix)) {
      bases.push_back(*base);
    }
  }
  if (ec) {
    VLOG_ERROR(kComponent) << "cannot list " << dir_.string() << ": " << ec.message();
  }
  std::sort(bases.begin(), bases.end());

  int64_t previous_last = -1;  // entries must increase across files too
  for (int64_t base : bases) {
    const auto path = file_path(base);
    auto data = read_small_file(path);
    if (!data) {
      VLOG_WARN(kComponent) << "cannot read " << path.string() << "; rebuilding it from the log";
      first_damaged_offset_ = std::min(first_damaged_offset_, base);
      remove_file(base);
      continue;
    }
    const auto* bytes = reinterpret_cast<const uint8_t*>(data->data());
    const size_t whole = data->size() / kTxnIndexEntrySize;
    std::vector<aborted_txn> entries;
    std::string why;
    for (size_t i = 0; i < whole; ++i) {
      aborted_txn e;
      if (!decode_txn_index_entry(bytes + i * kTxnIndexEntrySize, &e)) {
        why = "entry " + std::to_string(i) + " has an unknown version";
        break;
      }
      if (e.last_offset <= previous_last || e.last_offset < base ||
          e.first_offset > e.last_offset) {
        why = "entry " + std::to_string(i) + " is out of order";
        break;
      }
      previous_last = e.last_offset;
      entries.push_back(e);
    }
    if (why.empty() && data->size() % kTxnIndexEntrySize != 0) {
      why = "torn entry at the end (" + std::to_string(data->size()) + " bytes)";
    }
    if (!why.empty()) {
      // Entries after the damage are lost: they are rebuilt by replaying the log from a
      // snapshot at or below this point (producer_state::load).
      const int64_t damaged = entries.empty() ? base : entries.back().last_offset + 1;
      VLOG_WARN(kComponent) << path.string() << ": " << why << "; entries from offset " << damaged
                            << " will be rebuilt from the log";
      first_damaged_offset_ = std::min(first_damaged_offset_, damaged);
      files_[base] = entries;
      if (entries.empty()) files_.erase(base);
      rewrite(base);
      continue;
    }
    if (!entries.empty()) {
      files_.emplace(base, std::move(entries));
    } else {
      remove_file(base);
    }
  }
  sync_with_segments(log);
}

int64_t txn_index::last_recorded_offset() const {
  return files_.empty() ? -1 : files_.rbegin()->second.back().last_offset;
}

bool txn_index::append(const log& log, const aborted_txn& entry) {
  const auto base = segment_base_for(log, entry.last_offset);
  if (!base || entry.last_offset <= last_recorded_offset() ||
      entry.first_offset > entry.last_offset) {
    VLOG_ERROR(kComponent) << dir_.string() << ": refusing aborted transaction of producer "
                           << entry.producer_id << " [" << entry.first_offset << ", "
                           << entry.last_offset << "] (last recorded marker "
                           << last_recorded_offset() << ")";
    return false;
  }
  auto& entries = files_[*base];
  const bool created = entries.empty();
  const auto path = file_path(*base);
  std::string error;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    VLOG_ERROR(kComponent) << "cannot open " << path.string() << ": " << std::strerror(errno);
    if (created) files_.erase(*base);
    first_damaged_offset_ = std::min(first_damaged_offset_, entry.last_offset);
    return false;
  }
  uint8_t buf[kTxnIndexEntrySize];
  encode_txn_index_entry(entry, buf);
  const bool ok = pwrite_all(fd, buf, entries.size() * kTxnIndexEntrySize, &error);
  ::close(fd);
  if (!ok) {
    VLOG_ERROR(kComponent) << "cannot append to " << path.string() << ": " << error;
    if (created) files_.erase(*base);
    // The next load replays the log from before this marker to write the entry.
    first_damaged_offset_ = std::min(first_damaged_offset_, entry.last_offset);
    return false;
  }
  entries.push_back(entry);
  dirty_.insert(*base);
  dir_dirty_ = dir_dirty_ || created;
  return true;
}

std::vector<aborted_producer> txn_index::collect_aborted(int64_t fetch_offset,
                                                         int64_t upper_bound) const {
  std::vector<aborted_producer> out;
  if (files_.empty() || fetch_offset >= upper_bound) return out;
  // An entry whose marker is at or after fetch_offset lives in the segment holding
  // fetch_offset or a later one; files are keyed by segment base.
  auto it = files_.upper_bound(fetch_offset);
  if (it != files_.begin()) --it;
  for (; it != files_.end(); ++it) {
    for (const auto& e : it->second) {
      if (e.last_offset >= fetch_offset && e.first_offset < upper_bound) {
        out.push_back({e.producer_id, e.first_offset});
      }
      // Every transaction open when this one ended started at or after its
      // last_stable_offset, and so does every later one: none reaches below upper_bound.
      if (e.last_stable_offset >= upper_bound) return out;
    }
  }
  return out;
}

void txn_index::truncate_to(int64_t offset) {
  for (auto it = files_.begin(); it != files_.end();) {
    auto& entries = it->second;
    const auto keep = std::find_if(entries.begin(), entries.end(), [offset](const aborted_txn& e) {
      return e.last_offset >= offset;
    });
    const int64_t base = it->first;
    ++it;
    if (keep == entries.end()) continue;
    entries.erase(keep, entries.end());
    if (entries.empty()) {
      remove_file(base);
    } else {
      const auto path = file_path(base);
      if (::truncate(path.c_str(), static_cast<off_t>(entries.size() * kTxnIndexEntrySize)) != 0) {
        VLOG_ERROR(kComponent) << "cannot truncate " << path.string() << ": "
                               << std::strerror(errno) << "; rewriting it";
        rewrite(base);
      }
      dirty_.insert(base);
    }
  }
  if (first_damaged_offset_ >= offset) first_damaged_offset_ = INT64_MAX;
}

void txn_index::sync_with_segments(const log& log) {
  // Markers past the log end were truncated away (or lost in recovery).
  truncate_to(log.log_end_offset());
  std::set<int64_t> bases;
  for (const segment* s : log.segments()) bases.insert(s->base_offset());
  std::set<int64_t> to_rewrite;
  std::vector<int64_t> orphans;
  for (const auto& [base, entries] : files_) {
    if (!bases.count(base)) orphans.push_back(base);
  }
  for (int64_t base : orphans) {
    auto covering = bases.upper_bound(base);
    if (covering == bases.begin()) {
      // Below the first segment: its markers are below the log start, no fetch needs them.
      remove_file(base);
      continue;
    }
    const int64_t target = *std::prev(covering);
    auto entries = std::move(files_[base]);
    remove_file(base);
    auto& into = files_[target];
    into.insert(into.end(), entries.begin(), entries.end());
    std::sort(into.begin(), into.end(), [](const aborted_txn& a, const aborted_txn& b) {
      return a.last_offset < b.last_offset;
    });
    to_rewrite.insert(target);
  }
  for (int64_t base : to_rewrite) rewrite(base);
}

bool txn_index::erase_markers(const std::set<int64_t>& marker_offsets) {
  if (marker_offsets.empty()) return true;
  std::vector<int64_t> changed;
  for (auto& [base, entries] : files_) {
    const size_t erased = std::erase_if(
        entries, [&](const aborted_txn& e) { return marker_offsets.count(e.last_offset) > 0; });
    if (erased > 0) changed.push_back(base);
  }
  bool ok = true;
  for (int64_t base : changed) ok = rewrite(base) && ok;
  if (!changed.empty()) ok = flush() && ok;  // an emptied file was deleted: fsync the directory
  return ok;
}

void txn_index::clear() {
  std::vector<int64_t> bases;
  for (const auto& [base, entries] : files_) bases.push_back(base);
  for (int64_t base : bases) remove_file(base);
  first_damaged_offset_ = INT64_MAX;
}

bool txn_index::rewrite(int64_t base) {
  auto it = files_.find(base);
  if (it == files_.end() || it->second.empty()) {
    remove_file(base);
    return true;
  }
  std::string content(it->second.size() * kTxnIndexEntrySize, '\0');
  for (size_t i = 0; i < it->second.size(); ++i) {
    encode_txn_index_entry(it->second[i],
                           reinterpret_cast<uint8_t*>(content.data()) + i * kTxnIndexEntrySize);
  }
  std::string error;
  if (!write_file_atomically(file_path(base), content, &error)) {
    VLOG_ERROR(kComponent) << "cannot rewrite " << file_path(base).string() << ": " << error;
    return false;
  }
  dirty_.erase(base);  // written and fsynced with its directory
  return true;
}

void txn_index::remove_file(int64_t base) {
  files_.erase(base);
  dirty_.erase(base);
  std::error_code ec;
  if (std::filesystem::remove(file_path(base), ec)) dir_dirty_ = true;
  if (ec) {
    VLOG_WARN(kComponent) << "cannot delete " << file_path(base).string() << ": " << ec.message();
  }
}

bool txn_index::flush() {
  bool ok = true;
  std::string error;
  for (auto it = dirty_.begin(); it != dirty_.end();) {
    const auto path = file_path(*it);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || !fdatasync_fd(fd, &error)) {
      VLOG_ERROR(kComponent) << "cannot flush " << path.string() << ": "
                             << (fd < 0 ? std::string(std::strerror(errno)) : error);
      if (fd >= 0) ::close(fd);
      ok = false;
      ++it;
      continue;
    }
    ::close(fd);
    it = dirty_.erase(it);
  }
  if (dir_dirty_) {
    if (fsync_dir(dir_, &error)) {
      dir_dirty_ = false;
    } else {
      VLOG_ERROR(kComponent) << "cannot flush " << dir_.string() << ": " << error;
      ok = false;
    }
  }
  return ok;
}

std::vector<aborted_txn> txn_index::entries() const {
  std::vector<aborted_txn> out;
  for (const auto& [base, entries] : files_) out.insert(out.end(), entries.begin(), entries.end());
  return out;
}

std::vector<int64_t> txn_index::file_bases() const {
  std::vector<int64_t> out;
  for (const auto& [base, entries] : files_) out.push_back(base);
  return out;
}

std::vector<aborted_producer> aborted_for_fetch(const log& log, const txn_index& index,
                                                int64_t fetch_offset, const read_info& data,
                                                int64_t limit) {
  if (data.regions.empty() || data.size_bytes == 0) return {};
  auto candidates = index.collect_aborted(fetch_offset, limit);
  if (candidates.empty()) return candidates;
  // The returned bytes are whole batches from first_batch_offset on: walk their headers to
  // find where they end.
  int64_t upper = limit;
  uint64_t covered = 0;
  log.for_each_batch(data.first_batch_offset, [&](const protocol::record_batch_header& h) {
    covered += h.total_size();
    if (covered >= data.size_bytes) {
      upper = std::min(limit, h.last_offset() + 1);
      return false;
    }
    return true;
  });
  std::erase_if(candidates, [upper](const aborted_producer& a) { return a.first_offset >= upper; });
  return candidates;
}

}  // namespace varve::storage
