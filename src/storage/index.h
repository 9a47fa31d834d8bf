#pragma once
// The two sparse per-segment indexes (format: docs/format/index.md).
//
//   offset_index (.index):    (offset, position) — "the batch whose last offset is `offset`
//                             starts at byte `position` of the .log"; offsets and positions
//                             strictly increase.
//   time_index (.timeindex):  (timestamp, offset) — "the largest batch max_timestamp among
//                             batches up to offset `offset` is `timestamp`, first reached by
//                             the batch whose last offset is `offset`"; timestamps strictly
//                             increase, offsets do not decrease.
//
// Entries live only in the file (read with pread, binary searched); memory use is constant
// per index. The file always holds exactly the entries written (no preallocation), so there
// is nothing to trim on close. An index is only ever a hint: a lookup returns a position at
// or before the wanted batch and the caller scans batch headers forward from there.
//
// Threading: owned by the segment's log; not thread-safe.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace varve::storage {

// Fixed-size-entry append-only file.
class index_file {
 public:
  index_file(size_t entry_size) : entry_size_(entry_size) {}
  ~index_file();
  index_file(const index_file&) = delete;
  index_file& operator=(const index_file&) = delete;

  // Opens (creating if missing) `path`. A trailing partial entry is ignored by entries().
  bool open(const std::filesystem::path& path, size_t max_entries, std::string* error);
  void close();
  size_t entries() const { return entries_; }
  bool full() const { return entries_ >= max_entries_; }
  void set_max_entries(size_t n) { max_entries_ = n; }
  // True if the file size is a whole number of entries.
  bool whole_entries() const { return file_bytes_ % entry_size_ == 0; }
  bool read(size_t i, uint8_t* out) const;
  bool append(const uint8_t* entry, std::string* error);
  // Keeps the first `n` entries.
  bool truncate_entries(size_t n, std::string* error);
  bool flush(std::string* error);
  const std::filesystem::path& path() const { return path_; }
  void set_path(const std::filesystem::path& p) { path_ = p; }
  bool dirty() const { return dirty_; }

 private:
  size_t entry_size_;
  int fd_ = -1;
  std::filesystem::path path_;
  uint64_t file_bytes_ = 0;
  size_t entries_ = 0;
  size_t max_entries_ = 0;
  bool dirty_ = false;
};

struct offset_entry {
  int64_t offset = 0;     // absolute
  uint32_t position = 0;
};

class offset_index {
 public:
  explicit offset_index(int64_t base_offset) : base_(base_offset), file_(8) {}
  bool open(const std::filesystem::path& path, size_t max_entries, std::string* error) {
    return file_.open(path, max_entries, error);
  }
  // Structural check (Kafka's sanity check): whole entries, last entry after the base and
  // within a log of `log_size` bytes, first entry not after the last.
  bool sane(uint64_t log_size) const;
  bool append(int64_t offset, uint32_t position, std::string* error);
  // Entry with the largest offset <= `offset`.
  std::optional<offset_entry> floor(int64_t offset) const;
  std::optional<offset_entry> last() const;
  // Drops entries with offset >= `offset`.
  bool truncate_to(int64_t offset, std::string* error);
  bool reset(std::string* error) { return file_.truncate_entries(0, error); }
  index_file& file() { return file_; }
  const index_file& file() const { return file_; }

 private:
  std::optional<offset_entry> entry(size_t i) const;
  int64_t base_;
  index_file file_;
};

struct time_entry {
  int64_t timestamp = -1;
  int64_t offset = 0;     // absolute
};

class time_index {
 public:
  explicit time_index(int64_t base_offset) : base_(base_offset), file_(12) {}
  bool open(const std::filesystem::path& path, size_t max_entries, std::string* error) {
    return file_.open(path, max_entries, error);
  }
  bool sane() const;
  // Appends only if `timestamp` is greater than the last entry's (keeps timestamps strictly
  // increasing). Returns false only on I/O error.
  bool maybe_append(int64_t timestamp, int64_t offset, std::string* error);
  // Entry with the largest timestamp <= `timestamp`.
  std::optional<time_entry> floor(int64_t timestamp) const;
  std::optional<time_entry> last() const;
  // Drops entries with offset >= `offset`.
  bool truncate_to(int64_t offset, std::string* error);
  bool reset(std::string* error) { return file_.truncate_entries(0, error); }
  index_file& file() { return file_; }
  const index_file& file() const { return file_; }

 private:
  std::optional<time_entry> entry(size_t i) const;
  int64_t base_;
  index_file file_;
};

}  // namespace varve::storage
