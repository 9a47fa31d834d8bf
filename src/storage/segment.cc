#include "storage/segment.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "common/log.h"
#include "storage/file_util.h"
#include "storage/format.h"

namespace varve::storage {

using protocol::kLogOverhead;
using protocol::kRecordBatchHeaderSize;
using protocol::record_batch_header;

namespace {

size_t max_entries(int32_t index_bytes, size_t entry_size) {
  if (index_bytes <= 0) return 1;
  size_t n = static_cast<size_t>(index_bytes) / entry_size;
  return n == 0 ? 1 : n;
}

}  // namespace

std::unique_ptr<segment> segment::open(const std::filesystem::path& dir, int64_t base_offset,
                                       const segment_options& options, int64_t now_ms,
                                       std::string* error) {
  std::unique_ptr<segment> s(new segment(base_offset, options));
  s->log_path_ = dir / segment_file_name(base_offset, kLogSuffix);
  int fd = ::open(s->log_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (error) *error = "open " + s->log_path_.string() + ": " + std::strerror(errno);
    return nullptr;
  }
  s->file_ = std::make_shared<const file_handle>(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    if (error) *error = "fstat " + s->log_path_.string() + ": " + std::strerror(errno);
    return nullptr;
  }
  s->size_ = static_cast<uint64_t>(st.st_size);
  s->created_ms_ = s->size_ == 0 ? now_ms : static_cast<int64_t>(st.st_mtime) * 1000;
  s->next_offset_ = base_offset;
  if (!s->index_.open(dir / segment_file_name(base_offset, kIndexSuffix),
                      max_entries(options.segment_index_bytes, kOffsetIndexEntrySize), error) ||
      !s->time_index_.open(dir / segment_file_name(base_offset, kTimeIndexSuffix),
                           max_entries(options.segment_index_bytes, kTimeIndexEntrySize), error)) {
    return nullptr;
  }
  return s;
}

segment::~segment() { close_files(); }

void segment::set_options(const segment_options& options) {
  options_ = options;
  index_.file().set_max_entries(max_entries(options.segment_index_bytes, kOffsetIndexEntrySize));
  time_index_.file().set_max_entries(max_entries(options.segment_index_bytes, kTimeIndexEntrySize));
}

void segment::reset_state() {
  next_offset_ = base_offset_;
  max_timestamp_ = -1;
  offset_of_max_timestamp_ = -1;
  first_batch_timestamp_ = -1;
  bytes_since_last_index_entry_ = 0;
}

bool segment::account_batch(const record_batch_header& h, uint64_t position, std::string* error) {
  if (position == 0) first_batch_timestamp_ = h.max_timestamp;
  if (h.max_timestamp > max_timestamp_) {
    max_timestamp_ = h.max_timestamp;
    offset_of_max_timestamp_ = h.last_offset();
  }
  // Index entries are soft-limited: the log rolls when an index is full, so a segment only
  // exceeds its limit by the entries of one append.
  if (bytes_since_last_index_entry_ > static_cast<uint64_t>(options_.index_interval_bytes)) {
    if (!index_.append(h.last_offset(), static_cast<uint32_t>(position), error)) return false;
    if (max_timestamp_ >= 0 &&
        !time_index_.maybe_append(max_timestamp_, offset_of_max_timestamp_, error)) {
      return false;
    }
    bytes_since_last_index_entry_ = 0;
  }
  bytes_since_last_index_entry_ += h.total_size();
  next_offset_ = h.last_offset() + 1;
  return true;
}

std::optional<record_batch_header> segment::read_header(uint64_t position) const {
  if (position + kRecordBatchHeaderSize > size_) return std::nullopt;
  uint8_t buf[kRecordBatchHeaderSize];
  if (pread_full(file_->fd(), {buf, sizeof buf}, position, nullptr) !=
      static_cast<int64_t>(sizeof buf)) {
    return std::nullopt;
  }
  auto h = protocol::parse_batch_header({buf, sizeof buf});
  if (!h || h->batch_length < static_cast<int32_t>(kRecordBatchHeaderSize - kLogOverhead) ||
      position + h->total_size() > size_) {
    return std::nullopt;
  }
  return h;
}

void segment::for_each_from(uint64_t position,
                            const std::function<bool(const batch_position&)>& fn) const {
  while (position < size_) {
    auto h = read_header(position);
    if (!h) {
      VLOG_ERROR("storage") << "unreadable batch header in " << log_path_.string()
                            << " position=" << position;
      return;
    }
    if (!fn(batch_position{*h, position})) return;
    position += h->total_size();
  }
}

bool segment::read_batch(const batch_position& batch, std::vector<uint8_t>* out) const {
  out->resize(batch.header.total_size());
  return pread_full(file_->fd(), *out, batch.position, nullptr) ==
         static_cast<int64_t>(out->size());
}

std::optional<batch_position> segment::find_batch(int64_t offset) const {
  uint64_t start = 0;
  if (auto e = index_.floor(offset)) start = e->position;
  std::optional<batch_position> found;
  for_each_from(start, [&](const batch_position& b) {
    if (b.header.last_offset() >= offset) {
      found = b;
      return false;
    }
    return true;
  });
  return found;
}

std::optional<batch_position> segment::find_batch_by_timestamp(int64_t timestamp,
                                                               int64_t start_offset) const {
  int64_t from = start_offset;
  if (auto e = time_index_.floor(timestamp); e && e->offset > from) from = e->offset;
  auto first = find_batch(from);
  if (!first) return std::nullopt;
  std::optional<batch_position> found;
  for_each_from(first->position, [&](const batch_position& b) {
    if (b.header.max_timestamp >= timestamp) {
      found = b;
      return false;
    }
    return true;
  });
  return found;
}

bool segment::rebuild(bool validate, int64_t min_first_offset, int64_t* truncated,
                      std::string* error) {
  struct stat st {};
  if (::fstat(file_->fd(), &st) != 0) {
    if (error) *error = "fstat " + log_path_.string() + ": " + std::strerror(errno);
    return false;
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (!index_.reset(error) || !time_index_.reset(error)) return false;
  reset_state();
  size_ = file_size;  // lets read_header see the whole file while scanning
  uint64_t pos = 0;
  int64_t min_offset = std::max(min_first_offset, base_offset_);
  std::vector<uint8_t> buf;
  std::string reason;
  while (pos < file_size) {
    if (file_size - pos < kLogOverhead) {
      reason = "torn batch prefix";
      break;
    }
    uint8_t prefix[kLogOverhead];
    if (pread_full(file_->fd(), {prefix, sizeof prefix}, pos, error) != sizeof prefix) return false;
    int32_t length = static_cast<int32_t>(get_be32(prefix + protocol::kBatchLengthOffset));
    if (length < static_cast<int32_t>(kRecordBatchHeaderSize - kLogOverhead) ||
        static_cast<uint64_t>(length) > file_size - pos - kLogOverhead) {
      reason = "torn or invalid batch length " + std::to_string(length);
      break;
    }
    record_batch_header h;
    if (validate) {
      buf.resize(kLogOverhead + static_cast<size_t>(length));
      if (pread_full(file_->fd(), buf, pos, error) != static_cast<int64_t>(buf.size())) return false;
      auto err = protocol::validate_batch(buf, &h);
      if (err != protocol::batch_error::none) {
        reason = "invalid batch: " + std::string(protocol::batch_error_name(err));
        break;
      }
    } else {
      auto parsed = read_header(pos);
      if (!parsed) {
        reason = "unreadable batch header";
        break;
      }
      h = *parsed;
    }
    if (h.base_offset < min_offset || h.last_offset_delta < 0 ||
        h.last_offset() - base_offset_ > INT32_MAX || pos > static_cast<uint64_t>(INT32_MAX)) {
      reason = "batch offset " + std::to_string(h.base_offset) + " out of order or range";
      break;
    }
    if (!account_batch(h, pos, error)) return false;
    pos += h.total_size();
    min_offset = h.last_offset() + 1;
  }
  *truncated = static_cast<int64_t>(file_size - pos);
  if (pos < file_size) {
    VLOG_WARN("storage") << "truncating " << log_path_.string() << " at position " << pos
                         << " (" << *truncated << " bytes dropped): " << reason;
    if (::ftruncate(file_->fd(), static_cast<off_t>(pos)) != 0) {
      if (error) *error = "ftruncate " + log_path_.string() + ": " + std::strerror(errno);
      return false;
    }
    dirty_ = true;
  }
  size_ = pos;
  return true;
}

int64_t segment::recover(int64_t min_first_offset, std::string* error) {
  int64_t truncated = 0;
  if (!rebuild(true, min_first_offset, &truncated, error)) return -1;
  return truncated;
}

bool segment::load(std::string* error) {
  bool rebuild_needed = !index_.sane(size_) || !time_index_.sane() ||
                        (index_.file().entries() == 0 &&
                         size_ > static_cast<uint64_t>(options_.index_interval_bytes)) ||
                        (time_index_.file().entries() == 0 && index_.file().entries() > 0);
  if (!rebuild_needed) {
    reset_state();
    if (auto t = time_index_.last()) {
      max_timestamp_ = t->timestamp;
      offset_of_max_timestamp_ = t->offset;
    }
    if (auto first = read_header(0)) first_batch_timestamp_ = first->max_timestamp;
    uint64_t pos = 0;
    if (auto e = index_.last()) pos = e->position;
    bool ok = true;
    while (pos < size_) {
      auto h = read_header(pos);
      if (!h) {
        ok = false;
        break;
      }
      if (h->max_timestamp > max_timestamp_) {
        max_timestamp_ = h->max_timestamp;
        offset_of_max_timestamp_ = h->last_offset();
      }
      next_offset_ = h->last_offset() + 1;
      pos += h->total_size();
    }
    if (ok) return true;
    VLOG_WARN("storage") << "segment " << log_path_.string()
                         << " has an unreadable tail despite a clean shutdown; rescanning";
  } else {
    VLOG_WARN("storage") << "rebuilding indexes of " << log_path_.string();
  }
  int64_t truncated = 0;
  return rebuild(true, base_offset_, &truncated, error);
}

bool segment::append(std::span<const uint8_t> bytes, std::span<const record_batch_header> headers,
                     std::string* error) {
  const uint64_t start = size_;
  if (!pwrite_all(file_->fd(), bytes, start, error)) {
    if (error) *error += " (" + log_path_.string() + ")";
    if (::ftruncate(file_->fd(), static_cast<off_t>(start)) != 0) {
      VLOG_ERROR("storage") << "cannot cut " << log_path_.string() << " back to " << start;
    }
    return false;
  }
  dirty_ = true;
  size_ = start + bytes.size();
  uint64_t pos = start;
  for (const auto& h : headers) {
    if (!account_batch(h, pos, error)) {
      std::string ignored;
      truncate_to(headers.front().base_offset, &ignored);
      return false;
    }
    pos += h.total_size();
  }
  return true;
}

bool segment::truncate_to(int64_t offset, std::string* error) {
  if (offset >= next_offset_) return true;
  auto b = find_batch(offset);
  uint64_t pos = b ? b->position : size_;
  if (::ftruncate(file_->fd(), static_cast<off_t>(pos)) != 0) {
    if (error) *error = "ftruncate " + log_path_.string() + ": " + std::strerror(errno);
    return false;
  }
  dirty_ = true;
  size_ = pos;
  if (!index_.truncate_to(offset, error) || !time_index_.truncate_to(offset, error)) return false;
  // Recompute next offset and max timestamp from what remains.
  reset_state();
  if (auto t = time_index_.last()) {
    max_timestamp_ = t->timestamp;
    offset_of_max_timestamp_ = t->offset;
  }
  if (auto first = read_header(0)) first_batch_timestamp_ = first->max_timestamp;
  uint64_t from = 0;
  if (auto e = index_.last()) from = e->position;
  for_each_from(from, [&](const batch_position& bp) {
    if (bp.header.max_timestamp > max_timestamp_) {
      max_timestamp_ = bp.header.max_timestamp;
      offset_of_max_timestamp_ = bp.header.last_offset();
    }
    next_offset_ = bp.header.last_offset() + 1;
    bytes_since_last_index_entry_ += bp.header.total_size();
    return true;
  });
  return true;
}

bool segment::on_inactive(std::string* error) {
  if (max_timestamp_ < 0) return true;
  return time_index_.maybe_append(max_timestamp_, offset_of_max_timestamp_, error);
}

bool segment::flush(std::string* error) {
  if (dirty_) {
    if (!fdatasync_fd(file_->fd(), error)) {
      if (error) *error += " (" + log_path_.string() + ")";
      return false;
    }
    dirty_ = false;
  }
  return index_.file().flush(error) && time_index_.file().flush(error);
}

void segment::close_files() {
  index_.file().close();
  time_index_.file().close();
  file_.reset();
}

void segment::remove_files() {
  std::filesystem::path paths[] = {log_path_, index_.file().path(), time_index_.file().path()};
  close_files();
  for (const auto& p : paths) {
    std::filesystem::path deleted = p;
    deleted += std::string(kDeletedSuffix);
    std::error_code ec;
    std::filesystem::rename(p, deleted, ec);
    if (ec) {
      VLOG_ERROR("storage") << "cannot rename " << p.string() << ": " << ec.message();
      std::filesystem::remove(p, ec);
      continue;
    }
    std::filesystem::remove(deleted, ec);
    if (ec) {
      VLOG_ERROR("storage") << "cannot delete " << deleted.string() << ": " << ec.message();
    }
  }
}

}  // namespace varve::storage
