#include "storage/log.h"

#include <algorithm>
#include <cerrno>
#include <cassert>
#include <chrono>
#include <climits>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <sys/stat.h>

#include "common/log.h"
#include "storage/file_util.h"
#include "storage/format.h"
#include "storage/leader_epoch_cache.h"
#include "storage/log_cleaner.h"
#include "storage/segment.h"

namespace varve::storage {

using protocol::record_batch_header;

namespace {

int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

segment_options options_of(const log_config& c) {
  return segment_options{c.index_interval_bytes, c.segment_index_bytes};
}

append_error from_batch_error(protocol::batch_error e) {
  switch (e) {
    case protocol::batch_error::none:
      return append_error::none;
    case protocol::batch_error::invalid_record:
    case protocol::batch_error::bad_record_count:
      return append_error::invalid_record;
    default:
      return append_error::corrupt_message;
  }
}

// True if `ts` (a CreateTime) lies outside [now - before, now + after].
bool timestamp_out_of_window(int64_t ts, int64_t now, const log_config& c) {
  if (ts < 0) return false;  // NO_TIMESTAMP (-1) is not checked, as in Kafka
  __int128 diff = static_cast<__int128>(now) - ts;
  return diff > c.timestamp_before_max_ms || -diff > c.timestamp_after_max_ms;
}

}  // namespace

class log::impl {
 public:
  impl(std::filesystem::path dir, const log_config& config)
      : dir_(std::move(dir)), config_(config),
        epochs_(dir_ / std::string(kLeaderEpochCheckpointFile)), rng_(std::random_device{}()) {}

  bool open(int64_t recovery_point, std::string* error);

  // --- state ---
  std::filesystem::path dir_;
  log_config config_;
  std::map<int64_t, std::unique_ptr<segment>> segments_;  // base offset → segment
  int64_t log_start_offset_ = 0;
  int64_t recovery_point_ = 0;
  int64_t last_flush_ms_ = 0;
  int64_t roll_jitter_ms_ = 0;
  leader_epoch_cache epochs_;
  bool closed_ = false;
  bool created_ = false;  // open() made the directory
  // open() made the directory and its first segment and nothing has fsynced the directory
  // (and its entry in the log dir) yet: the next flush does. Invariant: everything below
  // recovery_point_ is durable, the directory entries that lead to it included.
  bool dir_unsynced_ = false;
  std::mt19937_64 rng_;

  segment& active() const { return *segments_.rbegin()->second; }
  int64_t leo() const { return active().next_offset(); }

  void pick_jitter() {
    roll_jitter_ms_ = config_.segment_jitter_ms > 0
                          ? static_cast<int64_t>(rng_() % static_cast<uint64_t>(config_.segment_jitter_ms))
                          : 0;
  }
  bool segment_ms_elapsed(const segment& s, int64_t now_ms) const {
    if (s.empty()) return false;
    return static_cast<__int128>(now_ms) - s.rolling_base_ms() >
           static_cast<__int128>(config_.segment_ms) - roll_jitter_ms_;
  }

  bool persist_log_start() {
    std::ostringstream out;
    out << kCheckpointVersion << "\n" << log_start_offset_ << "\n";
    std::string error;
    if (!write_file_atomically(dir_ / std::string(kLogStartOffsetFile), out.str(), &error)) {
      VLOG_ERROR("storage") << "cannot persist log start offset: " << error;
      return false;
    }
    return true;
  }

  std::optional<int64_t> read_log_start() const {
    auto text = read_small_file(dir_ / std::string(kLogStartOffsetFile));
    if (!text) return std::nullopt;
    std::istringstream in(*text);
    int version = -1;
    int64_t offset = -1;
    if (!(in >> version >> offset) || version != kCheckpointVersion || offset < 0) {
      VLOG_ERROR("storage") << "malformed " << kLogStartOffsetFile << " in " << dir_.string()
                            << "; ignoring it";
      return std::nullopt;
    }
    return offset;
  }

  // Makes a new empty active segment at `base` (fsyncing the one it replaces). An empty active
  // segment with another base is removed instead of being kept.
  bool roll(int64_t base, std::string* error) {
    segment& old = active();
    if (old.empty() && old.base_offset() == base) return true;
    assert(base >= old.next_offset());
    if (old.empty()) {
      old.remove_files();
      segments_.erase(old.base_offset());
    } else {
      if (!old.on_inactive(error) || !flush_segments(error)) return false;
    }
    auto s = segment::open(dir_, base, options_of(config_), wall_clock_ms(), error);
    if (!s) return false;
    if (!fsync_dir(dir_, error)) return false;
    VLOG_DEBUG("storage") << "rolled " << dir_.filename().string() << " to segment " << base;
    s->load(error);  // empty: sets next_offset = base
    segments_.emplace(base, std::move(s));
    pick_jitter();
    return true;
  }

  // fsyncs every dirty segment; on success everything below the LEO is durable.
  bool flush_segments(std::string* error) {
    for (auto& [base, s] : segments_) {
      if (s->dirty() && !s->flush(error)) return false;
    }
    if (dir_unsynced_) {
      if (!fsync_dir(dir_, error) || !fsync_dir(dir_.parent_path(), error)) return false;
      dir_unsynced_ = false;
    }
    recovery_point_ = leo();
    last_flush_ms_ = wall_clock_ms();
    return true;
  }

  void flush() {
    std::string error;
    if (!flush_segments(&error)) {
      VLOG_ERROR("storage") << "flush failed: " << error;
    }
  }

  void maybe_flush_by_messages() {
    if (config_.flush_messages != INT64_MAX && leo() - recovery_point_ >= config_.flush_messages) {
      flush();
    }
  }

  // Writes `bytes` (batches described by `headers`, offsets assigned) at the end of the log.
  append_error write(std::span<const uint8_t> bytes, std::span<const record_batch_header> headers,
                     int64_t now_ms) {
    segment& a = active();
    const int64_t first = headers.front().base_offset;
    const int64_t last = headers.back().last_offset();
    int64_t incoming_max_ts = -1;
    for (const auto& h : headers) incoming_max_ts = std::max(incoming_max_ts, h.max_timestamp);
    bool time_roll = false;
    if (!a.empty()) {
      // Kafka measures segment.ms by the incoming batch's timestamp against the segment's
      // first batch when both exist, by wall-clock against creation time otherwise.
      int64_t waited = (a.first_batch_timestamp() < 0 || incoming_max_ts < 0)
                           ? now_ms - a.rolling_base_ms()
                           : incoming_max_ts - a.first_batch_timestamp();
      time_roll = waited > config_.segment_ms - roll_jitter_ms_;
    }
    const uint64_t new_size = a.size() + bytes.size();
    bool roll_needed =
        (!a.empty() && (new_size > static_cast<uint64_t>(std::max<int64_t>(config_.segment_bytes, 0)) ||
                        new_size > static_cast<uint64_t>(INT32_MAX) || time_roll ||
                        a.index_full())) ||
        last - a.base_offset() > INT32_MAX || first < a.base_offset();
    std::string error;
    if (roll_needed && !roll(first, &error)) {
      VLOG_ERROR("storage") << "cannot roll " << dir_.string() << ": " << error;
      return append_error::storage_error;
    }
    if (!active().append(bytes, headers, &error)) {
      VLOG_ERROR("storage") << "append failed in " << dir_.string() << ": " << error;
      return append_error::storage_error;
    }
    return append_error::none;
  }

  void delete_segment(std::map<int64_t, std::unique_ptr<segment>>::iterator it) {
    VLOG_INFO("storage") << "deleting segment " << it->second->log_path().string();
    it->second->remove_files();
    segments_.erase(it);
  }

  // After segments below it were deleted, moves log start to the first segment's base.
  void after_front_deletion() {
    int64_t start = std::max(log_start_offset_, segments_.begin()->first);
    if (start != log_start_offset_) {
      log_start_offset_ = start;
      persist_log_start();
    }
    epochs_.truncate_from_start(log_start_offset_);
  }

  int64_t largest_timestamp(const segment& s) const {
    if (s.max_timestamp() >= 0) return s.max_timestamp();
    struct stat st {};
    if (::stat(s.log_path().c_str(), &st) == 0) return static_cast<int64_t>(st.st_mtime) * 1000;
    return s.created_ms();
  }

  // Narrows a batch to the record-level answer for a timestamp query: the first record (at
  // or after `min_offset`) whose timestamp satisfies `pred`. Falls back to batch-level values
  // when the records cannot be decoded.
  // `fallback_last` picks the batch's last offset (else its first) when records can't be decoded.
  offset_and_timestamp refine(const segment& s, const batch_position& b, int64_t min_offset,
                              bool fallback_last, const std::function<bool(int64_t)>& pred) const {
    offset_and_timestamp r{std::max(b.header.base_offset, min_offset), b.header.max_timestamp,
                           b.header.partition_leader_epoch};
    if (b.header.ts_type() == protocol::timestamp_type::log_append_time) return r;
    std::vector<uint8_t> bytes;
    std::vector<protocol::record> records;
    if (!s.read_batch(b, &bytes) || !protocol::decode_records(bytes, &records)) {
      if (fallback_last) r.offset = b.header.last_offset();  // documented approximation
      return r;
    }
    for (const auto& rec : records) {
      if (rec.offset >= min_offset && pred(rec.timestamp)) {
        r.offset = rec.offset;
        r.timestamp = rec.timestamp;
        return r;
      }
    }
    return r;
  }
};

bool log::impl::open(int64_t recovery_point, std::string* error) {
  // A directory this call creates holds nothing: no scan, no recovery, no marker to read.
  // (Creating a topic of 1,000 partitions spent most of its time listing empty directories.)
  if (::mkdir(dir_.c_str(), 0755) == 0) {
    created_ = true;
  } else if (errno != EEXIST) {
    std::error_code ec;
    created_ = std::filesystem::create_directories(dir_, ec);  // missing parents
    if (ec) {
      if (error) *error = "create " + dir_.string() + ": " + ec.message();
      return false;
    }
  }
  const int64_t now = wall_clock_ms();
  if (created_) {
    auto s = segment::open(dir_, 0, options_of(config_), now, error);
    if (!s || !s->load(error)) return false;
    segments_.emplace(0, std::move(s));
    // The new directory and its files become durable with the first flush (as Kafka flushes
    // the directory of new segments): nothing below the recovery point depends on them yet.
    dir_unsynced_ = true;
    recovery_point_ = 0;
    last_flush_ms_ = now;
    pick_jitter();
    VLOG_INFO("storage") << "created " << dir_.string();
    return true;
  }
  std::error_code ec;
  // A cleaner pass interrupted by a crash: finish committed swaps, drop uncommitted output.
  if (!complete_interrupted_swaps(dir_, error)) return false;
  std::set<int64_t> bases;
  std::set<std::string> index_files;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    auto ends_with = [&](std::string_view s) {
      return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    if (ends_with(kDeletedSuffix) || ends_with(kTmpSuffix)) {
      std::filesystem::remove(entry.path(), ec);
    } else if (auto base = parse_segment_file_name(name, kLogSuffix)) {
      bases.insert(*base);
    } else if (ends_with(kIndexSuffix) || ends_with(kTimeIndexSuffix)) {
      index_files.insert(name);
    }
  }
  if (ec) {
    if (error) *error = "list " + dir_.string() + ": " + ec.message();
    return false;
  }
  // Index files without a .log are leftovers of an interrupted deletion.
  for (const auto& name : index_files) {
    auto b1 = parse_segment_file_name(name, kIndexSuffix);
    auto b2 = parse_segment_file_name(name, kTimeIndexSuffix);
    int64_t base = b1 ? *b1 : (b2 ? *b2 : -1);
    if (base < 0 || !bases.count(base)) std::filesystem::remove(dir_ / name, ec);
  }

  const auto marker = dir_ / std::string(kCleanShutdownFile);
  const bool clean = std::filesystem::exists(marker);
  if (clean) {
    // Remove it first: a crash from here on must be treated as unclean.
    std::filesystem::remove(marker, ec);
    if (ec || !fsync_dir(dir_, error)) {
      if (error && ec) *error = "remove " + marker.string() + ": " + ec.message();
      return false;
    }
  }

  int64_t min_next = 0;
  bool recovered_any = false;
  for (auto it = bases.begin(); it != bases.end(); ++it) {
    const int64_t base = *it;
    auto s = segment::open(dir_, base, options_of(config_), now, error);
    if (!s) return false;
    auto next_it = std::next(it);
    const bool below_recovery_point =
        recovery_point >= 0 && next_it != bases.end() && *next_it <= recovery_point;
    if (clean || below_recovery_point) {
      if (!s->load(error)) return false;
      segments_.emplace(base, std::move(s));
      min_next = segments_.rbegin()->second->next_offset();
      continue;
    }
    recovered_any = true;
    int64_t truncated = s->recover(min_next, error);
    if (truncated < 0) return false;
    min_next = s->next_offset();
    segments_.emplace(base, std::move(s));
    if (truncated > 0) {
      // Everything after a torn or corrupt batch is unreachable: drop later segments.
      for (auto later = next_it; later != bases.end(); ++later) {
        VLOG_WARN("storage") << "recovery deletes segment " << *later << " in " << dir_.string();
        auto dead = segment::open(dir_, *later, options_of(config_), now, error);
        if (dead) dead->remove_files();
      }
      break;
    }
  }
  // A segment with no batches is only kept as the active (last) one.
  for (auto it = segments_.begin(); it != segments_.end() && std::next(it) != segments_.end();) {
    if (it->second->empty()) {
      auto dead = it++;
      delete_segment(dead);
    } else {
      ++it;
    }
  }

  auto stored_start = read_log_start();
  if (segments_.empty()) {
    int64_t base = stored_start.value_or(0);
    auto s = segment::open(dir_, base, options_of(config_), now, error);
    if (!s || !s->load(error)) return false;
    segments_.emplace(base, std::move(s));
    if (!fsync_dir(dir_, error)) return false;
  }
  log_start_offset_ = std::max(stored_start.value_or(0), segments_.begin()->first);
  if (log_start_offset_ > leo()) {
    VLOG_WARN("storage") << dir_.string() << ": log start offset " << log_start_offset_
                         << " is past the recovered log end " << leo() << "; restarting there";
    std::string ignored;
    for (auto it = segments_.begin(); it != segments_.end();) delete_segment(it++);
    auto s = segment::open(dir_, log_start_offset_, options_of(config_), now, error);
    if (!s || !s->load(error)) return false;
    segments_.emplace(log_start_offset_, std::move(s));
  }

  epochs_.load();
  epochs_.truncate_from_end(leo());
  epochs_.truncate_from_start(log_start_offset_);

  if (recovered_any) {
    // The recovered bytes may so far exist only in the page cache (a process crash): make
    // them durable before declaring them flushed.
    std::string flush_error;
    if (!flush_segments(&flush_error)) {
      if (error) *error = flush_error;
      return false;
    }
    if (recovery_point > leo()) {
      VLOG_ERROR("storage") << dir_.string() << ": recovery point " << recovery_point
                            << " is past the recovered log end " << leo()
                            << " (flushed data was corrupt)";
    }
  }
  recovery_point_ = leo();
  last_flush_ms_ = now;
  pick_jitter();
  VLOG_INFO("storage") << "opened " << dir_.string() << (clean ? " (clean)" : " (recovered)")
                       << " segments=" << segments_.size() << " log_start=" << log_start_offset_
                       << " leo=" << leo();
  return true;
}

// ---------------------------------------------------------------------------------------

std::unique_ptr<log> log::open(const std::filesystem::path& dir, const log_config& config,
                               int64_t recovery_point, std::string* error) {
  auto i = std::make_unique<impl>(dir, config);
  std::string local;
  if (!i->open(recovery_point, &local)) {
    VLOG_ERROR("storage") << "cannot open log " << dir.string() << ": " << local;
    if (error) *error = local;
    return nullptr;
  }
  return std::unique_ptr<log>(new log(std::move(i)));
}

log::log(std::unique_ptr<impl> impl) : impl_(std::move(impl)) {}

log::~log() {
  // Without close() there is no clean-shutdown marker: the next open() recovers.
  if (impl_ && !impl_->closed_) {
    for (auto& [base, s] : impl_->segments_) s->close_files();
  }
}

append_error log::append_as_leader(std::span<uint8_t> batches, int32_t leader_epoch,
                                   int64_t now_ms, append_info* info) {
  auto& m = *impl_;
  append_info local;
  if (!info) info = &local;
  *info = append_info{};
  if (m.closed_) return append_error::storage_error;
  std::vector<record_batch_header> headers;
  size_t pos = 0;
  while (pos < batches.size()) {
    record_batch_header h;
    auto err = from_batch_error(protocol::validate_batch(batches.subspan(pos), &h));
    if (err == append_error::none && h.total_size() > static_cast<size_t>(m.config_.max_message_bytes)) {
      err = append_error::message_too_large;
    }
    if (err == append_error::none && !m.config_.log_append_time &&
        (timestamp_out_of_window(h.base_timestamp, now_ms, m.config_) ||
         timestamp_out_of_window(h.max_timestamp, now_ms, m.config_))) {
      err = append_error::invalid_timestamp;
    }
    if (err != append_error::none) {
      info->batch_index_in_error = static_cast<int32_t>(headers.size());
      return err;
    }
    headers.push_back(h);
    pos += h.total_size();
  }
  if (headers.empty()) {
    info->batch_index_in_error = 0;
    return append_error::invalid_record;
  }
  // Assign offsets, epoch and (LogAppendTime) timestamps in place.
  int64_t next = m.leo();
  pos = 0;
  for (auto& h : headers) {
    auto bytes = batches.subspan(pos, h.total_size());
    protocol::set_base_offset(bytes, next);
    protocol::set_partition_leader_epoch(bytes, leader_epoch);
    h.base_offset = next;
    h.partition_leader_epoch = leader_epoch;
    if (m.config_.log_append_time) {
      protocol::set_log_append_time(bytes, now_ms);
      h.max_timestamp = now_ms;
      h.attributes = static_cast<int16_t>(h.attributes | 0x08);
    }
    next = h.last_offset() + 1;
    pos += h.total_size();
  }
  auto err = m.write(batches.first(pos), headers, now_ms);
  if (err != append_error::none) return err;
  if (leader_epoch > m.epochs_.latest_epoch()) m.epochs_.assign(leader_epoch, headers.front().base_offset);
  info->first_offset = headers.front().base_offset;
  info->last_offset = headers.back().last_offset();
  info->log_append_time = m.config_.log_append_time ? now_ms : -1;
  for (const auto& h : headers) {
    info->max_timestamp = std::max(info->max_timestamp, h.max_timestamp);
    info->record_count += h.records_count;
  }
  info->batch_count = static_cast<int32_t>(headers.size());
  m.maybe_flush_by_messages();
  return append_error::none;
}

append_error log::append_as_follower(std::span<const uint8_t> batches, append_info* info) {
  auto& m = *impl_;
  append_info local;
  if (!info) info = &local;
  *info = append_info{};
  if (m.closed_) return append_error::storage_error;
  std::vector<record_batch_header> headers;
  size_t pos = 0;
  int64_t min_offset = m.leo();
  while (pos < batches.size()) {
    record_batch_header h;
    auto err = from_batch_error(protocol::validate_batch(batches.subspan(pos), &h));
    if (err == append_error::none && (h.base_offset < min_offset || h.last_offset_delta < 0)) {
      VLOG_ERROR("storage") << m.dir_.string() << ": follower batch at offset " << h.base_offset
                            << " does not follow " << min_offset;
      err = append_error::corrupt_message;
    }
    if (err != append_error::none) {
      info->batch_index_in_error = static_cast<int32_t>(headers.size());
      return err;
    }
    headers.push_back(h);
    min_offset = h.last_offset() + 1;
    pos += h.total_size();
  }
  if (headers.empty()) return append_error::none;
  auto err = m.write(batches.first(pos), headers, wall_clock_ms());
  if (err != append_error::none) return err;
  for (const auto& h : headers) {
    if (h.partition_leader_epoch > m.epochs_.latest_epoch()) {
      m.epochs_.assign(h.partition_leader_epoch, h.base_offset);
    }
    info->max_timestamp = std::max(info->max_timestamp, h.max_timestamp);
    info->record_count += h.records_count;
  }
  info->first_offset = headers.front().base_offset;
  info->last_offset = headers.back().last_offset();
  info->batch_count = static_cast<int32_t>(headers.size());
  m.maybe_flush_by_messages();
  return append_error::none;
}

bool log::read(int64_t offset, uint32_t max_bytes, int64_t max_offset, bool min_one_batch,
               read_info* out) const {
  const auto& m = *impl_;
  *out = read_info{};
  if (m.closed_ || offset < m.log_start_offset_ || offset > m.leo()) return false;
  if (offset >= max_offset || offset == m.leo()) return true;
  auto it = std::prev(m.segments_.upper_bound(offset));
  bool done = false;
  for (; it != m.segments_.end() && !done; ++it) {
    const segment& s = *it->second;
    uint64_t start = 0;
    if (it->first <= offset) {
      auto b = s.find_batch(offset);
      if (!b) continue;
      start = b->position;
    }
    s.for_each_from(start, [&](const batch_position& b) {
      const size_t size = b.header.total_size();
      if (b.header.base_offset >= max_offset ||
          (out->size_bytes + size > max_bytes && !(out->regions.empty() && min_one_batch))) {
        done = true;
        return false;
      }
      if (out->regions.empty()) out->first_batch_offset = b.header.base_offset;
      auto& regions = out->regions;
      if (!regions.empty() && regions.back().file == s.file() &&
          regions.back().position + regions.back().size == b.position &&
          uint64_t{regions.back().size} + size <= UINT32_MAX) {
        regions.back().size += static_cast<uint32_t>(size);
      } else {
        regions.push_back(file_region{s.file(), b.position, static_cast<uint32_t>(size)});
      }
      out->size_bytes += size;
      return true;
    });
  }
  return true;
}

void log::for_each_batch(int64_t from,
                         const std::function<bool(const record_batch_header&)>& fn) const {
  const auto& m = *impl_;
  if (m.closed_) return;
  from = std::max(from, m.log_start_offset_);
  if (from >= m.leo()) return;
  bool stop = false;
  for (auto it = std::prev(m.segments_.upper_bound(from)); it != m.segments_.end() && !stop; ++it) {
    const segment& s = *it->second;
    uint64_t start = 0;
    if (it->first <= from) {
      auto b = s.find_batch(from);
      if (!b) continue;
      start = b->position;
    }
    s.for_each_from(start, [&](const batch_position& b) {
      if (!fn(b.header)) stop = true;
      return !stop;
    });
  }
}

int64_t log::log_start_offset() const { return impl_->log_start_offset_; }
int64_t log::log_end_offset() const { return impl_->leo(); }
int64_t log::recovery_point() const { return impl_->recovery_point_; }
size_t log::segment_count() const { return impl_->segments_.size(); }

int64_t log::size_bytes() const {
  int64_t total = 0;
  for (const auto& [base, s] : impl_->segments_) total += static_cast<int64_t>(s->size());
  return total;
}

std::optional<offset_and_timestamp> log::offset_for_timestamp(int64_t ts) const {
  const auto& m = *impl_;
  if (m.closed_) return std::nullopt;
  for (const auto& [base, s] : m.segments_) {
    if (s->empty() || s->max_timestamp() < ts || s->next_offset() <= m.log_start_offset_) continue;
    const int64_t start = std::max(base, m.log_start_offset_);
    auto b = s->find_batch_by_timestamp(ts, start);
    if (!b) continue;
    return m.refine(*s, *b, start, false, [ts](int64_t t) { return t >= ts; });
  }
  return std::nullopt;
}

std::optional<offset_and_timestamp> log::max_timestamp_offset() const {
  const auto& m = *impl_;
  if (m.closed_) return std::nullopt;
  const segment* best = nullptr;
  for (const auto& [base, s] : m.segments_) {
    if (s->max_timestamp() >= 0 && (!best || s->max_timestamp() > best->max_timestamp())) {
      best = s.get();
    }
  }
  if (!best) return std::nullopt;
  auto b = best->find_batch(best->offset_of_max_timestamp());
  if (!b) return std::nullopt;
  const int64_t max_ts = best->max_timestamp();
  auto r = m.refine(*best, *b, b->header.base_offset, true, [max_ts](int64_t t) { return t == max_ts; });
  r.timestamp = max_ts;
  return r;
}

int32_t log::latest_epoch() const { return impl_->epochs_.latest_epoch(); }

std::pair<int32_t, int64_t> log::end_offset_for_epoch(int32_t epoch) const {
  return impl_->epochs_.end_offset_for(epoch, impl_->leo());
}

int64_t log::delete_records_before(int64_t offset) {
  auto& m = *impl_;
  if (m.closed_) return m.log_start_offset_;
  offset = std::min(offset, m.leo());
  if (offset <= m.log_start_offset_) return m.log_start_offset_;
  m.log_start_offset_ = offset;
  m.persist_log_start();
  while (m.segments_.size() > 1 && std::next(m.segments_.begin())->first <= offset) {
    m.delete_segment(m.segments_.begin());
  }
  m.after_front_deletion();
  return m.log_start_offset_;
}

int log::enforce_retention(int64_t now_ms, int64_t high_watermark) {
  auto& m = *impl_;
  if (m.closed_) return 0;
  int64_t size_excess =
      m.config_.retention_bytes >= 0 ? size_bytes() - m.config_.retention_bytes : -1;
  std::vector<int64_t> doomed;
  for (auto it = m.segments_.begin(); it != m.segments_.end(); ++it) {
    const segment& s = *it->second;
    auto next = std::next(it);
    const int64_t upper = next != m.segments_.end() ? next->first : m.leo();
    if (s.empty() || upper > high_watermark) break;
    const bool by_start = next != m.segments_.end() && next->first <= m.log_start_offset_;
    bool by_time = false, by_size = false;
    if (m.config_.delete_retention) {
      by_time = m.config_.retention_ms >= 0 &&
                static_cast<__int128>(m.largest_timestamp(s)) <
                    static_cast<__int128>(now_ms) - m.config_.retention_ms;
      by_size = size_excess >= 0 && size_excess - static_cast<int64_t>(s.size()) >= 0;
    }
    if (!by_start && !by_time && !by_size) break;
    if (by_size) size_excess -= static_cast<int64_t>(s.size());
    doomed.push_back(it->first);
  }
  if (doomed.empty()) return 0;
  if (doomed.back() == m.active().base_offset()) {
    // Kafka rolls an expired active segment so it can be deleted like the others.
    std::string error;
    if (!m.roll(m.leo(), &error)) {
      VLOG_ERROR("storage") << "cannot roll for retention in " << m.dir_.string() << ": " << error;
      doomed.pop_back();
    }
  }
  for (int64_t base : doomed) m.delete_segment(m.segments_.find(base));
  if (!doomed.empty()) m.after_front_deletion();
  return static_cast<int>(doomed.size());
}

void log::maybe_roll(int64_t now_ms) {
  auto& m = *impl_;
  if (m.closed_ || !m.segment_ms_elapsed(m.active(), now_ms)) return;
  std::string error;
  if (!m.roll(m.leo(), &error)) {
    VLOG_ERROR("storage") << "roll failed: " << error;
  }
}

void log::maybe_flush(int64_t now_ms) {
  auto& m = *impl_;
  if (m.closed_ || m.leo() <= m.recovery_point_) return;
  if (m.config_.flush_messages != INT64_MAX && m.leo() - m.recovery_point_ >= m.config_.flush_messages) {
    m.flush();
  } else if (m.config_.flush_ms != INT64_MAX &&
             static_cast<__int128>(now_ms) - m.last_flush_ms_ >= m.config_.flush_ms) {
    m.flush();
  }
}

void log::flush() {
  if (!impl_->closed_) impl_->flush();
}

void log::assign_leader_epoch(int32_t epoch) {
  auto& m = *impl_;
  if (!m.closed_ && epoch > m.epochs_.latest_epoch()) m.epochs_.assign(epoch, m.leo());
}

void log::truncate_to(int64_t offset) {
  auto& m = *impl_;
  if (m.closed_) return;
  offset = std::max(offset, m.log_start_offset_);
  if (offset >= m.leo()) return;
  VLOG_INFO("storage") << "truncating " << m.dir_.string() << " to " << offset << " (leo "
                       << m.leo() << ")";
  while (m.segments_.size() > 1 && m.segments_.rbegin()->first > offset) {
    m.delete_segment(std::prev(m.segments_.end()));
  }
  std::string error;
  if (!m.active().truncate_to(offset, &error)) {
    VLOG_ERROR("storage") << "truncation failed: " << error;
  }
  if (m.leo() < m.log_start_offset_) {
    // The batch holding the log start offset was cut: restart the log at the start offset.
    truncate_fully_and_start_at(m.log_start_offset_);
    return;
  }
  m.recovery_point_ = std::min(m.recovery_point_, m.leo());
  m.epochs_.truncate_from_end(m.leo());
}

void log::truncate_fully_and_start_at(int64_t offset) {
  auto& m = *impl_;
  if (m.closed_) return;
  VLOG_INFO("storage") << "restarting " << m.dir_.string() << " at offset " << offset;
  for (auto it = m.segments_.begin(); it != m.segments_.end();) m.delete_segment(it++);
  std::string error;
  auto s = segment::open(m.dir_, offset, options_of(m.config_), wall_clock_ms(), &error);
  if (!s || !s->load(&error) || !fsync_dir(m.dir_, &error)) {
    VLOG_ERROR("storage") << "cannot create segment " << offset << ": " << error;
  }
  if (s) m.segments_.emplace(offset, std::move(s));
  m.log_start_offset_ = offset;
  m.persist_log_start();
  m.recovery_point_ = offset;
  m.epochs_.clear();
}

std::vector<const segment*> log::segments() const {
  std::vector<const segment*> out;
  out.reserve(impl_->segments_.size());
  for (const auto& [base, s] : impl_->segments_) out.push_back(s.get());
  return out;
}

bool log::replace_segments(int64_t first_base, int64_t end_offset,
                           const std::filesystem::path& cleaned, std::string* error) {
  auto& m = *impl_;
  auto fail = [&](const std::string& why) {
    if (error) *error = m.dir_.string() + ": " + why;
    return false;
  };
  if (m.closed_) return fail("log is closed");
  auto first = m.segments_.find(first_base);
  if (first == m.segments_.end() || end_offset <= first_base ||
      end_offset > m.active().base_offset()) {
    return fail("no inactive segments at [" + std::to_string(first_base) + ", " +
                std::to_string(end_offset) + ")");
  }
  std::vector<int64_t> bases;
  for (auto it = first; it != m.segments_.end() && it->first < end_offset; ++it) {
    bases.push_back(it->first);
  }
  const bool at_front = first == m.segments_.begin();
  std::error_code ec;
  const bool empty = std::filesystem::file_size(cleaned, ec) == 0;
  if (ec) return fail("stat " + cleaned.string() + ": " + ec.message());
  const auto swap = m.dir_ / swap_file_name(first_base, end_offset);
  std::filesystem::rename(cleaned, swap, ec);
  if (ec) return fail("rename " + cleaned.string() + ": " + ec.message());
  if (!fsync_dir(m.dir_, error)) return false;
  // Committed: from here on a crash is finished by open() (complete_interrupted_swaps).
  for (int64_t base : bases) {
    auto it = m.segments_.find(base);
    it->second->remove_files();
    m.segments_.erase(it);
  }
  if (empty) {
    std::filesystem::remove(swap, ec);
    if (!fsync_dir(m.dir_, error)) return false;
    if (at_front) m.after_front_deletion();
    return true;
  }
  std::filesystem::rename(swap, m.dir_ / segment_file_name(first_base, kLogSuffix), ec);
  if (ec) return fail("rename " + swap.string() + ": " + ec.message());
  auto s = segment::open(m.dir_, first_base, options_of(m.config_), wall_clock_ms(), error);
  if (!s || !s->load(error) || !s->on_inactive(error) || !s->flush(error) ||
      !fsync_dir(m.dir_, error)) {
    return false;
  }
  m.segments_.emplace(first_base, std::move(s));
  return true;
}

void log::update_config(const log_config& config) {
  auto& m = *impl_;
  m.config_ = config;
  for (auto& [base, s] : m.segments_) s->set_options(options_of(config));
  m.pick_jitter();
}

const log_config& log::config() const { return impl_->config_; }
const std::filesystem::path& log::dir() const { return impl_->dir_; }
bool log::created() const { return impl_->created_; }

void log::close() {
  auto& m = *impl_;
  if (m.closed_) return;
  std::string error;
  bool ok = m.active().on_inactive(&error) && m.flush_segments(&error);
  for (auto& [base, s] : m.segments_) s->close_files();
  m.closed_ = true;
  if (!ok) {
    VLOG_ERROR("storage") << "flush at close failed, no clean-shutdown marker: " << error;
    return;
  }
  if (!write_file_atomically(m.dir_ / std::string(kCleanShutdownFile), "", &error)) {
    VLOG_ERROR("storage") << "cannot write clean-shutdown marker: " << error;
  }
}

void log::remove() {
  auto& m = *impl_;
  for (auto& [base, s] : m.segments_) s->close_files();
  m.closed_ = true;
  std::error_code ec;
  std::filesystem::remove_all(m.dir_, ec);
  if (ec) {
    VLOG_ERROR("storage") << "cannot remove " << m.dir_.string() << ": " << ec.message();
  }
}

}  // namespace varve::storage
