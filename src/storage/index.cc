#include "storage/index.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "storage/file_util.h"

namespace varve::storage {
namespace {

// Both index kinds are sorted by offset and by their lookup key, and both read entries with
// pread, which can fail. These two searches are shared by them.

// The last entry whose key(entry) <= target; stops (keeping what it found) at an entry it
// cannot read.
// `read(i)` returns entry i as an optional (nullopt when it cannot be read).
template <typename Read, typename Key>
auto floor_entry(size_t entries, int64_t target, Read read, Key key) -> decltype(read(0)) {
  size_t lo = 0, hi = entries;  // answer in [lo, hi)
  decltype(read(0)) best;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    auto e = read(mid);
    if (!e) return best;
    if (key(*e) <= target) {
      best = e;
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return best;
}

// The number of leading entries whose offset is below `offset` (an unreadable entry counts
// as not below): where truncate_to(offset) cuts the index.
template <typename Read>
size_t entries_below(size_t entries, int64_t offset, Read read) {
  size_t lo = 0, hi = entries;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    auto e = read(mid);
    if (e && e->offset < offset) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

}  // namespace

index_file::~index_file() { close(); }

bool index_file::open(const std::filesystem::path& path, size_t max_entries, std::string* error) {
  close();
  path_ = path;
  max_entries_ = max_entries;
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    if (error) *error = "open " + path.string() + ": " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    if (error) *error = "fstat " + path.string() + ": " + std::strerror(errno);
    close();
    return false;
  }
  file_bytes_ = static_cast<uint64_t>(st.st_size);
  entries_ = file_bytes_ / entry_size_;
  dirty_ = false;
  return true;
}

void index_file::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool index_file::read(size_t i, uint8_t* out) const {
  if (i >= entries_) return false;
  return pread_full(fd_, {out, entry_size_}, i * entry_size_, nullptr) ==
         static_cast<int64_t>(entry_size_);
}

bool index_file::append(const uint8_t* entry, std::string* error) {
  uint64_t pos = entries_ * entry_size_;
  if (!pwrite_all(fd_, {entry, entry_size_}, pos, error)) {
    if (error) *error += " (" + path_.string() + ")";
    return false;
  }
  ++entries_;
  file_bytes_ = entries_ * entry_size_;
  dirty_ = true;
  return true;
}

bool index_file::truncate_entries(size_t n, std::string* error) {
  if (n > entries_) n = entries_;
  uint64_t bytes = n * entry_size_;
  if (bytes == file_bytes_) {
    entries_ = n;
    return true;
  }
  if (::ftruncate(fd_, static_cast<off_t>(bytes)) != 0) {
    if (error) *error = "ftruncate " + path_.string() + ": " + std::strerror(errno);
    return false;
  }
  entries_ = n;
  file_bytes_ = bytes;
  dirty_ = true;
  return true;
}

bool index_file::flush(std::string* error) {
  if (!dirty_ || fd_ < 0) return true;
  if (!fdatasync_fd(fd_, error)) {
    if (error) *error += " (" + path_.string() + ")";
    return false;
  }
  dirty_ = false;
  return true;
}

// --- offset_index ---

std::optional<offset_entry> offset_index::entry(size_t i) const {
  uint8_t buf[8];
  if (!file_.read(i, buf)) return std::nullopt;
  return offset_entry{base_ + static_cast<int32_t>(get_be32(buf)), get_be32(buf + 4)};
}

bool offset_index::sane(uint64_t log_size) const {
  if (!file_.whole_entries()) return false;
  if (file_.entries() == 0) return true;
  auto first = entry(0);
  auto last = entry(file_.entries() - 1);
  if (!first || !last) return false;
  return first->offset >= base_ && last->offset >= first->offset &&
         last->position >= first->position && last->position < log_size;
}

bool offset_index::append(int64_t offset, uint32_t position, std::string* error) {
  uint8_t buf[8];
  put_be32(buf, static_cast<uint32_t>(static_cast<int32_t>(offset - base_)));
  put_be32(buf + 4, position);
  return file_.append(buf, error);
}

std::optional<offset_entry> offset_index::last() const {
  if (file_.entries() == 0) return std::nullopt;
  return entry(file_.entries() - 1);
}

std::optional<offset_entry> offset_index::floor(int64_t offset) const {
  return floor_entry(
      file_.entries(), offset, [this](size_t i) { return entry(i); },
      [](const offset_entry& e) { return e.offset; });
}

bool offset_index::truncate_to(int64_t offset, std::string* error) {
  return file_.truncate_entries(
      entries_below(file_.entries(), offset, [this](size_t i) { return entry(i); }), error);
}

// --- time_index ---

std::optional<time_entry> time_index::entry(size_t i) const {
  uint8_t buf[12];
  if (!file_.read(i, buf)) return std::nullopt;
  return time_entry{static_cast<int64_t>(get_be64(buf)),
                    base_ + static_cast<int32_t>(get_be32(buf + 8))};
}

bool time_index::sane() const {
  if (!file_.whole_entries()) return false;
  if (file_.entries() == 0) return true;
  auto first = entry(0);
  auto last = entry(file_.entries() - 1);
  if (!first || !last) return false;
  return first->offset >= base_ && last->offset >= first->offset &&
         last->timestamp >= first->timestamp;
}

bool time_index::maybe_append(int64_t timestamp, int64_t offset, std::string* error) {
  if (auto l = last(); l && l->timestamp >= timestamp) return true;
  uint8_t buf[12];
  put_be64(buf, static_cast<uint64_t>(timestamp));
  put_be32(buf + 8, static_cast<uint32_t>(static_cast<int32_t>(offset - base_)));
  return file_.append(buf, error);
}

std::optional<time_entry> time_index::last() const {
  if (file_.entries() == 0) return std::nullopt;
  return entry(file_.entries() - 1);
}

std::optional<time_entry> time_index::floor(int64_t timestamp) const {
  return floor_entry(
      file_.entries(), timestamp, [this](size_t i) { return entry(i); },
      [](const time_entry& e) { return e.timestamp; });
}

bool time_index::truncate_to(int64_t offset, std::string* error) {
  return file_.truncate_entries(
      entries_below(file_.entries(), offset, [this](size_t i) { return entry(i); }), error);
}

}  // namespace varve::storage
