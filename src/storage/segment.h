#pragma once
// storage::segment — one `<base>.log` file of concatenated record batches plus its
// `.index` and `.timeindex` (docs/format/segment.md, docs/format/index.md).
//
// Invariants (hold between calls):
//   size() bytes of the .log are whole, valid batches in strictly increasing offset order,
//     every offset in [base_offset, base_offset + INT32_MAX];
//   next_offset() == last batch's last_offset + 1, or base_offset() when empty;
//   the indexes refer only to batches within size().
// Bytes past size() in the file (a torn write) are never read; they are cut off by recovery.
//
// Threading: owned by its log; not thread-safe. file() may be shared with readers on other
// threads: the handle stays valid (and readable) after the segment is closed or deleted.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "common/bytes.h"
#include "protocol/record_batch.h"
#include "storage/index.h"

namespace varve::storage {

struct batch_position {
  protocol::record_batch_header header;
  uint64_t position = 0;
};

struct segment_options {
  int32_t index_interval_bytes = 4096;
  int32_t segment_index_bytes = 10485760;
};

class segment {
 public:
  // Opens the three files of segment `base_offset` in `dir`, creating missing ones. The
  // in-memory state is not usable until load() or recover() ran.
  static std::unique_ptr<segment> open(const std::filesystem::path& dir, int64_t base_offset,
                                       const segment_options& options, int64_t now_ms,
                                       std::string* error);
  ~segment();

  // Trusting the files after a clean shutdown: checks the indexes (rebuilding them from the
  // batch headers if missing or insane) and scans only the tail after the last index entry
  // to find next_offset() and the max timestamp.
  bool load(std::string* error);
  // After an unclean shutdown: validates every batch from the start (validate_batch, offsets
  // increasing, relative offsets in range), truncates the file at the first invalid or torn
  // batch, and rebuilds both indexes. `min_first_offset` is the lowest acceptable base offset
  // of the first batch. Returns the number of bytes truncated, or -1 on I/O error.
  int64_t recover(int64_t min_first_offset, std::string* error);

  // Appends batches whose headers (with assigned offsets) are `headers`, laid out back to
  // back in `bytes`. On failure the file is cut back to its previous size.
  bool append(std::span<const uint8_t> bytes,
              std::span<const protocol::record_batch_header> headers, std::string* error);

  // The batch containing `offset`, or the first batch after it; nullopt if none.
  std::optional<batch_position> find_batch(int64_t offset) const;
  // The first batch, at or after the batch containing `start_offset`, whose max_timestamp
  // >= `timestamp`.
  std::optional<batch_position> find_batch_by_timestamp(int64_t timestamp,
                                                        int64_t start_offset) const;
  // Header of the batch at `position`; nullopt past size() or on a read error.
  std::optional<protocol::record_batch_header> read_header(uint64_t position) const;
  // Calls fn for each batch from `position` until it returns false or size() is reached.
  void for_each_from(uint64_t position, const std::function<bool(const batch_position&)>& fn) const;
  // Reads the bytes of one batch.
  bool read_batch(const batch_position& batch, std::vector<uint8_t>* out) const;

  // Removes every batch containing an offset >= `offset` (whole batches; a batch that
  // straddles `offset` is removed too).
  bool truncate_to(int64_t offset, std::string* error);

  // Called when the segment stops being the active one (roll, close): appends the final
  // time-index entry (Kafka does the same), so load() finds the max timestamp.
  bool on_inactive(std::string* error);
  bool flush(std::string* error);
  bool dirty() const { return dirty_ || index_.file().dirty() || time_index_.file().dirty(); }
  // Renames the files to *.deleted and unlinks them; open handles stay readable.
  void remove_files();
  void close_files();

  void set_options(const segment_options& options);
  int64_t base_offset() const { return base_offset_; }
  uint64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  int64_t next_offset() const { return next_offset_; }
  int64_t max_timestamp() const { return max_timestamp_; }      // -1 if none
  int64_t offset_of_max_timestamp() const { return offset_of_max_timestamp_; }
  // Time from which segment.ms counts: the first batch's max timestamp, else creation time.
  int64_t rolling_base_ms() const {
    return first_batch_timestamp_ >= 0 ? first_batch_timestamp_ : created_ms_;
  }
  int64_t first_batch_timestamp() const { return first_batch_timestamp_; }  // -1 if none
  int64_t created_ms() const { return created_ms_; }
  bool index_full() const { return index_.file().full() || time_index_.file().full(); }
  const std::shared_ptr<const file_handle>& file() const { return file_; }
  const std::filesystem::path& log_path() const { return log_path_; }

 private:
  segment(int64_t base_offset, const segment_options& options)
      : base_offset_(base_offset), options_(options), index_(base_offset),
        time_index_(base_offset) {}
  // Bookkeeping for one batch stored at `position`: max timestamp, index entries.
  bool account_batch(const protocol::record_batch_header& h, uint64_t position, std::string* error);
  bool rebuild(bool validate, int64_t min_first_offset, int64_t* truncated, std::string* error);
  void reset_state();

  int64_t base_offset_;
  segment_options options_;
  std::filesystem::path log_path_;
  std::shared_ptr<const file_handle> file_;
  offset_index index_;
  time_index time_index_;
  uint64_t size_ = 0;
  int64_t next_offset_ = 0;
  int64_t max_timestamp_ = -1;
  int64_t offset_of_max_timestamp_ = -1;
  int64_t first_batch_timestamp_ = -1;
  int64_t created_ms_ = 0;
  uint64_t bytes_since_last_index_entry_ = 0;
  bool dirty_ = false;
};

}  // namespace varve::storage
