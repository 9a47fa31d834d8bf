#include "storage/log.h"

#include <unistd.h>

#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "storage/file_util.h"
#include "storage/format.h"

namespace varve::storage {
namespace {

namespace fs = std::filesystem;
using protocol::record;

constexpr int64_t kNow = 1'700'000'000'000;

class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "varve-log-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~temp_dir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// One uncompressed batch of `n` records with timestamps ts, ts+1, ... and `value_size`-byte values.
std::vector<uint8_t> make_batch(int n, int64_t ts = kNow, size_t value_size = 10) {
  std::vector<record> records;
  for (int i = 0; i < n; ++i) {
    record r;
    r.offset = i;
    r.timestamp = ts + i;
    r.value = std::vector<uint8_t>(value_size, static_cast<uint8_t>('a' + i % 26));
    records.push_back(std::move(r));
  }
  return protocol::build_batch(records, {});
}

std::vector<uint8_t> read_bytes(const read_info& info) {
  std::vector<uint8_t> out;
  for (const auto& r : info.regions) {
    std::vector<uint8_t> buf(r.size);
    EXPECT_EQ(::pread(r.file->fd(), buf.data(), buf.size(), static_cast<off_t>(r.position)),
              static_cast<ssize_t>(r.size));
    out.insert(out.end(), buf.begin(), buf.end());
  }
  return out;
}

// Base offsets of the batches in `bytes`.
std::vector<int64_t> batch_offsets(const std::vector<uint8_t>& bytes) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    protocol::record_batch_header h;
    EXPECT_EQ(protocol::validate_batch(std::span(bytes).subspan(pos), &h), protocol::batch_error::none);
    out.push_back(h.base_offset);
    pos += h.total_size();
  }
  return out;
}

std::unique_ptr<log> open_log(const fs::path& dir, const log_config& config = {},
                              int64_t recovery_point = -1) {
  std::string error;
  auto l = log::open(dir, config, recovery_point, &error);
  EXPECT_TRUE(l) << error;
  return l;
}

append_error append(log& l, int records, int32_t epoch = 0, int64_t ts = kNow,
                    size_t value_size = 10, append_info* info = nullptr) {
  auto b = make_batch(records, ts, value_size);
  return l.append_as_leader(b, epoch, kNow, info);
}

std::vector<fs::path> files_with_suffix(const fs::path& dir, std::string_view suffix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == suffix) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(storage_log, append_assigns_consecutive_offsets_and_read_returns_the_batches) {
  temp_dir d;
  auto l = open_log(d.path());
  append_info info;
  ASSERT_EQ(append(*l, 3, 5, kNow, 10, &info), append_error::none);
  EXPECT_EQ(info.first_offset, 0);
  EXPECT_EQ(info.last_offset, 2);
  EXPECT_EQ(info.record_count, 3);
  ASSERT_EQ(append(*l, 2, 5, kNow, 10, &info), append_error::none);
  EXPECT_EQ(info.first_offset, 3);
  EXPECT_EQ(info.last_offset, 4);
  EXPECT_EQ(l->log_end_offset(), 5);

  read_info r;
  ASSERT_TRUE(l->read(0, 1 << 20, INT64_MAX, false, &r));
  auto bytes = read_bytes(r);
  EXPECT_EQ(bytes.size(), r.size_bytes);
  EXPECT_EQ(batch_offsets(bytes), (std::vector<int64_t>{0, 3}));
  auto h = protocol::parse_batch_header(bytes);
  EXPECT_EQ(h->partition_leader_epoch, 5);
  std::vector<record> recs;
  ASSERT_TRUE(protocol::decode_records(bytes, &recs));
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[2].offset, 2);
  EXPECT_EQ(recs[2].timestamp, kNow + 2);
}

TEST(storage_log, read_from_an_offset_inside_a_batch_returns_the_whole_batch) {
  temp_dir d;
  auto l = open_log(d.path());
  append(*l, 3);
  append(*l, 3);
  read_info r;
  ASSERT_TRUE(l->read(4, 1 << 20, INT64_MAX, false, &r));
  EXPECT_EQ(r.first_batch_offset, 3);
  EXPECT_EQ(batch_offsets(read_bytes(r)), (std::vector<int64_t>{3}));
}

TEST(storage_log, read_outside_log_range_fails_and_at_log_end_is_empty) {
  temp_dir d;
  auto l = open_log(d.path());
  append(*l, 2);
  read_info r;
  EXPECT_FALSE(l->read(3, 1 << 20, INT64_MAX, false, &r));
  EXPECT_FALSE(l->read(-1, 1 << 20, INT64_MAX, false, &r));
  ASSERT_TRUE(l->read(2, 1 << 20, INT64_MAX, false, &r));
  EXPECT_TRUE(r.regions.empty());
  EXPECT_EQ(r.size_bytes, 0u);
}

TEST(storage_log, read_stops_before_a_batch_that_would_exceed_max_bytes) {
  temp_dir d;
  auto l = open_log(d.path());
  for (int i = 0; i < 4; ++i) append(*l, 1, 0, kNow, 100);
  const uint32_t one = static_cast<uint32_t>(make_batch(1, kNow, 100).size());
  read_info r;
  ASSERT_TRUE(l->read(0, 2 * one + one / 2, INT64_MAX, false, &r));
  EXPECT_EQ(r.size_bytes, 2u * one);
  EXPECT_EQ(batch_offsets(read_bytes(r)), (std::vector<int64_t>{0, 1}));
  ASSERT_EQ(r.regions.size(), 1u);  // contiguous batches share one region
}

TEST(storage_log, read_stops_at_max_offset) {
  temp_dir d;
  auto l = open_log(d.path());
  for (int i = 0; i < 4; ++i) append(*l, 2);
  read_info r;
  ASSERT_TRUE(l->read(0, 1 << 20, 4, false, &r));
  EXPECT_EQ(batch_offsets(read_bytes(r)), (std::vector<int64_t>{0, 2}));
  ASSERT_TRUE(l->read(4, 1 << 20, 4, false, &r));
  EXPECT_TRUE(r.regions.empty());
}

TEST(storage_log, min_one_batch_returns_a_batch_larger_than_max_bytes) {
  temp_dir d;
  auto l = open_log(d.path());
  append(*l, 1, 0, kNow, 1000);
  append(*l, 1, 0, kNow, 1000);
  read_info r;
  ASSERT_TRUE(l->read(0, 10, INT64_MAX, false, &r));
  EXPECT_TRUE(r.regions.empty());
  ASSERT_TRUE(l->read(0, 10, INT64_MAX, true, &r));
  EXPECT_EQ(batch_offsets(read_bytes(r)), (std::vector<int64_t>{0}));
}

TEST(storage_log, rolls_a_new_segment_when_segment_bytes_would_be_exceeded) {
  temp_dir d;
  log_config c;
  const int64_t one = static_cast<int64_t>(make_batch(1, kNow, 100).size());
  c.segment_bytes = 3 * one;
  auto l = open_log(d.path(), c);
  for (int i = 0; i < 7; ++i) ASSERT_EQ(append(*l, 1, 0, kNow, 100), append_error::none);
  EXPECT_EQ(l->segment_count(), 3u);
  auto logs = files_with_suffix(d.path(), ".log");
  ASSERT_EQ(logs.size(), 3u);
  EXPECT_EQ(logs[1].filename().string(), "00000000000000000003.log");
  EXPECT_EQ(fs::file_size(logs[0]), static_cast<uintmax_t>(3 * one));
  // Reads cross segment boundaries.
  read_info r;
  ASSERT_TRUE(l->read(2, 1 << 20, INT64_MAX, false, &r));
  EXPECT_EQ(batch_offsets(read_bytes(r)), (std::vector<int64_t>{2, 3, 4, 5, 6}));
  EXPECT_EQ(r.regions.size(), 3u);
}

TEST(storage_log, rolls_when_the_offset_index_is_full) {
  temp_dir d;
  log_config c;
  c.index_interval_bytes = 1;   // an index entry for every batch after the first
  c.segment_index_bytes = 24;   // three offset index entries (two time index entries)
  auto l = open_log(d.path(), c);
  // Equal timestamps: the time index gets one entry only, the offset index fills first.
  for (int i = 0; i < 5; ++i) ASSERT_EQ(append(*l, 1, 0, kNow), append_error::none);
  // Batches 1, 2, 3 fill the first segment's offset index; batch 4 rolls.
  EXPECT_EQ(l->segment_count(), 2u);
  EXPECT_EQ(fs::file_size(d.path() / "00000000000000000000.index"), 24u);
  EXPECT_TRUE(fs::exists(d.path() / "00000000000000000004.log"));
}

TEST(storage_log, index_lookups_find_every_offset_after_reopen) {
  temp_dir d;
  log_config c;
  c.index_interval_bytes = 200;
  {
    auto l = open_log(d.path(), c);
    for (int i = 0; i < 50; ++i) append(*l, 1 + i % 3, 0, kNow, 50);
    l->close();
  }
  auto l = open_log(d.path(), c);
  EXPECT_GT(fs::file_size(d.path() / "00000000000000000000.index"), 0u);
  std::vector<int64_t> bases;
  l->for_each_batch(0, [&](const protocol::record_batch_header& h) {
    bases.push_back(h.base_offset);
    return true;
  });
  ASSERT_EQ(bases.size(), 50u);
  for (int64_t o = 0; o < l->log_end_offset(); ++o) {
    read_info r;
    ASSERT_TRUE(l->read(o, 1, INT64_MAX, true, &r));
    auto expected = *std::prev(std::upper_bound(bases.begin(), bases.end(), o));
    EXPECT_EQ(r.first_batch_offset, expected) << "offset " << o;
  }
}

TEST(storage_log, open_creates_a_missing_directory_as_a_new_log_without_scanning_it) {
  temp_dir d;
  const fs::path dir = d.path() / "topic-0";
  {
    auto l = open_log(dir);
    EXPECT_TRUE(l->created());
    EXPECT_EQ(l->log_end_offset(), 0);
    EXPECT_EQ(l->log_start_offset(), 0);
    EXPECT_EQ(l->recovery_point(), 0);
    EXPECT_EQ(files_with_suffix(dir, ".log").size(), 1u);
    EXPECT_EQ(append(*l, 3, 4), append_error::none);
    EXPECT_EQ(l->log_end_offset(), 3);
    // No close(): the next open recovers it like any other log.
  }
  auto l = open_log(dir);
  EXPECT_FALSE(l->created());
  EXPECT_EQ(l->log_end_offset(), 3);
  EXPECT_EQ(l->latest_epoch(), 4);
}

TEST(storage_log, reopen_after_clean_close_preserves_offsets_data_and_epochs) {
  temp_dir d;
  log_config c;
  c.segment_bytes = 300;
  std::vector<uint8_t> before;
  {
    auto l = open_log(d.path(), c);
    for (int i = 0; i < 10; ++i) append(*l, 2, i < 5 ? 1 : 2, kNow + i * 10, 40);
    read_info r;
    ASSERT_TRUE(l->read(0, 1 << 20, INT64_MAX, false, &r));
    before = read_bytes(r);
    l->close();
  }
  EXPECT_TRUE(fs::exists(d.path() / ".kafka_cleanshutdown"));
  auto l = open_log(d.path(), c);
  EXPECT_FALSE(fs::exists(d.path() / ".kafka_cleanshutdown"));
  EXPECT_EQ(l->log_end_offset(), 20);
  EXPECT_EQ(l->recovery_point(), 20);
  EXPECT_EQ(l->latest_epoch(), 2);
  EXPECT_EQ(l->end_offset_for_epoch(1), std::make_pair(1, int64_t{10}));
  read_info r;
  ASSERT_TRUE(l->read(0, 1 << 20, INT64_MAX, false, &r));
  EXPECT_EQ(read_bytes(r), before);
  auto mx = l->max_timestamp_offset();
  ASSERT_TRUE(mx);
  EXPECT_EQ(mx->timestamp, kNow + 91);
  EXPECT_EQ(mx->offset, 19);
  ASSERT_EQ(append(*l, 1), append_error::none);
  EXPECT_EQ(l->log_end_offset(), 21);
}

// Cuts `bytes` off the end of the newest .log file (a torn write).
void tear_tail(const fs::path& dir, uintmax_t bytes) {
  auto logs = files_with_suffix(dir, ".log");
  ASSERT_FALSE(logs.empty());
  fs::resize_file(logs.back(), fs::file_size(logs.back()) - bytes);
}

TEST(storage_log, recovery_after_crash_truncates_a_torn_tail_at_the_last_whole_batch) {
  temp_dir d;
  std::vector<uint8_t> first_four;
  {
    auto l = open_log(d.path());
    for (int i = 0; i < 5; ++i) append(*l, 1, 0, kNow, 30);
    read_info r;
    ASSERT_TRUE(l->read(0, 1 << 20, 4, false, &r));
    first_four = read_bytes(r);
    // No close(): the log object goes away like a crashed process.
  }
  tear_tail(d.path(), 7);
  auto l = open_log(d.path());
  EXPECT_EQ(l->log_end_offset(), 4);
  EXPECT_EQ(fs::file_size(d.path() / "00000000000000000000.log"), first_four.size());
  read_info r;
  ASSERT_TRUE(l->read(0, 1 << 20, INT64_MAX, false, &r));
  EXPECT_EQ(read_bytes(r), first_four);
  ASSERT_EQ(append(*l, 1), append_error::none);
  EXPECT_EQ(l->log_end_offset(), 5);
}

TEST(storage_log, recovery_drops_garbage_appended_after_the_last_batch) {
  temp_dir d;
  {
    auto l = open_log(d.path());
    for (int i = 0; i < 3; ++i) append(*l, 1);
  }
  {
    std::ofstream f(d.path() / "00000000000000000000.log", std::ios::app | std::ios::binary);
    f << std::string(100, '\xff');
  }
  auto l = open_log(d.path());
  EXPECT_EQ(l->log_end_offset(), 3);
  EXPECT_EQ(l->size_bytes(), static_cast<int64_t>(3 * make_batch(1).size()));
}

TEST(storage_log, recovery_rebuilds_deleted_index_files) {
  temp_dir d;
  log_config c;
  c.index_interval_bytes = 100;
  {
    auto l = open_log(d.path(), c);
    for (int i = 0; i < 20; ++i) append(*l, 1, 0, kNow + i, 60);
  }
  const auto index = d.path() / "00000000000000000000.index";
  const auto timeindex = d.path() / "00000000000000000000.timeindex";
  const auto index_size = fs::file_size(index);
  ASSERT_GT(index_size, 0u);
  fs::remove(index);
  fs::remove(timeindex);
  auto l = open_log(d.path(), c);
  EXPECT_EQ(l->log_end_offset(), 20);
  EXPECT_EQ(fs::file_size(index), index_size);
  EXPECT_GT(fs::file_size(timeindex), 0u);
  auto found = l->offset_for_timestamp(kNow + 13);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->offset, 13);
}

TEST(storage_log, clean_open_rebuilds_a_missing_index) {
  temp_dir d;
  log_config c;
  c.index_interval_bytes = 100;
  {
    auto l = open_log(d.path(), c);
    for (int i = 0; i < 20; ++i) append(*l, 1, 0, kNow + i, 60);
    l->close();
  }
  fs::remove(d.path() / "00000000000000000000.index");
  auto l = open_log(d.path(), c);
  EXPECT_EQ(l->log_end_offset(), 20);
  EXPECT_GT(fs::file_size(d.path() / "00000000000000000000.index"), 0u);
  read_info r;
  ASSERT_TRUE(l->read(17, 1, INT64_MAX, true, &r));
  EXPECT_EQ(r.first_batch_offset, 17);
}

TEST(storage_log, clean_open_rebuilds_an_index_that_is_not_whole_entries_or_points_past_the_log) {
  temp_dir d;
  log_config c;
  c.index_interval_bytes = 100;
  {
    auto l = open_log(d.path(), c);
    for (int i = 0; i < 20; ++i) append(*l, 1, 0, kNow + i, 60);
    l->close();
  }
  const auto index = d.path() / "00000000000000000000.index";
  const auto good_size = fs::file_size(index);
  {
    std::ofstream f(index, std::ios::app | std::ios::binary);
    f << std::string(8, '\x7f');  // entry: relative offset and position far past the log
  }
  auto l = open_log(d.path(), c);
  EXPECT_EQ(fs::file_size(index), good_size);
  read_info r;
  ASSERT_TRUE(l->read(19, 1, INT64_MAX, true, &r));
  EXPECT_EQ(r.first_batch_offset, 19);
}

TEST(storage_log, crc_flip_in_a_middle_segment_truncates_there_and_deletes_later_segments) {
  temp_dir d;
  log_config c;
  const int64_t one = static_cast<int64_t>(make_batch(1, kNow, 50).size());
  c.segment_bytes = 3 * one;
  {
    auto l = open_log(d.path(), c);
    for (int i = 0; i < 9; ++i) append(*l, 1, 0, kNow, 50);
    ASSERT_EQ(l->segment_count(), 3u);
  }
  // Flip a byte inside the value of the second batch of segment 3 (offset 4).
  {
    std::fstream f(d.path() / "00000000000000000003.log",
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(one + one - 5);
    f.put('\x01');
  }
  auto l = open_log(d.path(), c);
  EXPECT_EQ(l->log_end_offset(), 4);
  EXPECT_EQ(l->segment_count(), 2u);
  EXPECT_FALSE(fs::exists(d.path() / "00000000000000000006.log"));
  EXPECT_FALSE(fs::exists(d.path() / "00000000000000000006.index"));
  EXPECT_EQ(fs::file_size(d.path() / "00000000000000000003.log"), static_cast<uintmax_t>(one));
}

TEST(storage_log, recovery_trusts_segments_below_the_recovery_point) {
  temp_dir d;
  log_config c;
  const int64_t one = static_cast<int64_t>(make_batch(1, kNow, 50).size());
  c.segment_bytes = 3 * one;
  {
    auto l = open_log(d.path(), c);
    for (int i = 0; i < 9; ++i) append(*l, 1, 0, kNow, 50);
  }
  // Corrupt a value byte in the first segment, which lies below the recovery point: it is not
  // re-validated (its pages were flushed; the scan costs are what the recovery point saves).
  {
    std::fstream f(d.path() / "00000000000000000000.log",
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(one - 5);
    f.put('\x01');
  }
  auto l = open_log(d.path(), c, /*recovery_point=*/3);
  EXPECT_EQ(l->log_end_offset(), 9);
}

TEST(storage_log, retention_by_bytes_deletes_oldest_segments_and_moves_log_start) {
  temp_dir d;
  log_config c;
  const int64_t one = static_cast<int64_t>(make_batch(1, kNow, 50).size());
  c.segment_bytes = 2 * one;
  c.retention_bytes = 3 * one;
  auto l = open_log(d.path(), c);
  for (int i = 0; i < 7; ++i) append(*l, 1, 0, kNow, 50);
  ASSERT_EQ(l->segment_count(), 4u);  // [0,1] [2,3] [4,5] [6]
  EXPECT_EQ(l->enforce_retention(kNow, l->log_end_offset()), 2);
  EXPECT_EQ(l->log_start_offset(), 4);
  EXPECT_EQ(l->size_bytes(), 3 * one);
  EXPECT_FALSE(fs::exists(d.path() / "00000000000000000000.log"));
  EXPECT_FALSE(fs::exists(d.path() / "00000000000000000002.log.deleted"));
  read_info r;
  EXPECT_FALSE(l->read(3, 1 << 20, INT64_MAX, false, &r));
  EXPECT_TRUE(l->read(4, 1 << 20, INT64_MAX, false, &r));
}

TEST(storage_log, retention_by_time_rolls_and_deletes_an_expired_active_segment) {
  temp_dir d;
  log_config c;
  const int64_t one = static_cast<int64_t>(make_batch(1, kNow, 50).size());
  c.segment_bytes = 2 * one;
  c.retention_ms = 1000;
  auto l = open_log(d.path(), c);
  for (int i = 0; i < 3; ++i) append(*l, 1, 0, kNow, 50);
  append(*l, 1, 0, kNow + 5000, 50);  // segment [2,3] has a fresh record
  EXPECT_EQ(l->enforce_retention(kNow + 3000, l->log_end_offset()), 1);
  EXPECT_EQ(l->log_start_offset(), 2);
  EXPECT_EQ(l->enforce_retention(kNow + 7000, l->log_end_offset()), 1);
  EXPECT_EQ(l->log_start_offset(), 4);
  EXPECT_EQ(l->log_end_offset(), 4);
  EXPECT_EQ(l->segment_count(), 1u);
  EXPECT_EQ(l->size_bytes(), 0);
  ASSERT_EQ(append(*l, 1), append_error::none);
  EXPECT_EQ(l->log_end_offset(), 5);
}

TEST(storage_log, retention_never_deletes_past_the_high_watermark) {
  temp_dir d;
  log_config c;
  const int64_t one = static_cast<int64_t>(make_batch(1, kNow, 50).size());
  c.segment_bytes = 2 * one;
  c.retention_ms = 0;
  auto l = open_log(d.path(), c);
  for (int i = 0; i < 6; ++i) append(*l, 1, 0, kNow, 50);
  EXPECT_EQ(l->enforce_retention(kNow + 10, /*high_watermark=*/3), 1);
  EXPECT_EQ(l->log_start_offset(), 2);
}

TEST(storage_log, a_read_in_flight_survives_deletion_of_its_segment) {
  temp_dir d;
  log_config c;
  const int64_t one = static_cast<int64_t>(make_batch(1, kNow, 50).size());
  c.segment_bytes = one;
  c.retention_bytes = 0;
  auto l = open_log(d.path(), c);
  append(*l, 1, 0, kNow, 50);
  read_info r;
  ASSERT_TRUE(l->read(0, 1 << 20, INT64_MAX, false, &r));
  append(*l, 1, 0, kNow, 50);
  EXPECT_EQ(l->enforce_retention(kNow, 2), 2);
  EXPECT_FALSE(fs::exists(d.path() / "00000000000000000000.log"));
  EXPECT_EQ(batch_offsets(read_bytes(r)), (std::vector<int64_t>{0}));
}

TEST(storage_log, delete_records_moves_log_start_deletes_whole_segments_and_survives_restart) {
  temp_dir d;
  log_config c;
  const int64_t one = static_cast<int64_t>(make_batch(1, kNow, 50).size());
  c.segment_bytes = 2 * one;
  {
    auto l = open_log(d.path(), c);
    for (int i = 0; i < 6; ++i) append(*l, 1, 0, kNow, 50);
    EXPECT_EQ(l->delete_records_before(3), 3);
    EXPECT_EQ(l->log_start_offset(), 3);
    EXPECT_EQ(l->segment_count(), 2u);  // [2,3] kept: it still holds offset 3
    EXPECT_EQ(l->delete_records_before(1), 3);  // never moves backwards
    read_info r;
    EXPECT_FALSE(l->read(2, 1 << 20, INT64_MAX, false, &r));
    ASSERT_TRUE(l->read(3, 1 << 20, INT64_MAX, false, &r));
    EXPECT_EQ(r.first_batch_offset, 3);
  }
  auto l = open_log(d.path(), c);  // unclean restart
  EXPECT_EQ(l->log_start_offset(), 3);
  EXPECT_EQ(l->log_end_offset(), 6);
}

TEST(storage_log, offset_for_timestamp_finds_the_first_record_at_or_after_the_time) {
  temp_dir d;
  log_config c;
  c.segment_bytes = 400;
  c.index_interval_bytes = 1;
  auto l = open_log(d.path(), c);
  for (int i = 0; i < 10; ++i) append(*l, 3, 0, kNow + i * 100, 30);  // ts kNow+100i+{0,1,2}
  ASSERT_GT(l->segment_count(), 1u);
  auto r = l->offset_for_timestamp(kNow + 501);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->offset, 16);
  EXPECT_EQ(r->timestamp, kNow + 501);
  r = l->offset_for_timestamp(kNow + 503);  // between batches → next batch's first record
  ASSERT_TRUE(r);
  EXPECT_EQ(r->offset, 18);
  r = l->offset_for_timestamp(0);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->offset, 0);
  EXPECT_FALSE(l->offset_for_timestamp(kNow + 10'000));
}

TEST(storage_log, max_timestamp_offset_is_the_record_with_the_largest_timestamp) {
  temp_dir d;
  auto l = open_log(d.path());
  append(*l, 2, 0, kNow);
  append(*l, 3, 7, kNow + 1000);  // record offsets 2,3,4 at kNow+1000..1002
  append(*l, 2, 7, kNow + 10);
  auto r = l->max_timestamp_offset();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->timestamp, kNow + 1002);
  EXPECT_EQ(r->offset, 4);
  EXPECT_EQ(r->leader_epoch, 7);
}

TEST(storage_log, log_append_time_stamps_now_and_keeps_a_valid_crc) {
  temp_dir d;
  log_config c;
  c.log_append_time = true;
  auto l = open_log(d.path(), c);
  append_info info;
  auto b = make_batch(2, 5);
  ASSERT_EQ(l->append_as_leader(b, 0, kNow, &info), append_error::none);
  EXPECT_EQ(info.log_append_time, kNow);
  read_info r;
  ASSERT_TRUE(l->read(0, 1 << 20, INT64_MAX, false, &r));
  auto bytes = read_bytes(r);
  protocol::record_batch_header h;
  ASSERT_EQ(protocol::validate_batch(bytes, &h), protocol::batch_error::none);
  EXPECT_EQ(h.max_timestamp, kNow);
  EXPECT_EQ(h.ts_type(), protocol::timestamp_type::log_append_time);
}

TEST(storage_log, rejects_a_corrupt_batch_and_appends_nothing_of_the_request) {
  temp_dir d;
  auto l = open_log(d.path());
  auto good = make_batch(2);
  auto bad = make_batch(2);
  bad.back() ^= 0x40;
  std::vector<uint8_t> both = good;
  both.insert(both.end(), bad.begin(), bad.end());
  append_info info;
  EXPECT_EQ(l->append_as_leader(both, 0, kNow, &info), append_error::corrupt_message);
  EXPECT_EQ(info.batch_index_in_error, 1);
  EXPECT_EQ(l->log_end_offset(), 0);
  EXPECT_EQ(l->size_bytes(), 0);
  std::vector<uint8_t> truncated(good.begin(), good.end() - 3);
  EXPECT_EQ(l->append_as_leader(truncated, 0, kNow, &info), append_error::corrupt_message);
  std::vector<uint8_t> empty;
  EXPECT_EQ(l->append_as_leader(empty, 0, kNow, &info), append_error::invalid_record);
}

TEST(storage_log, rejects_batches_over_max_message_bytes) {
  temp_dir d;
  log_config c;
  c.max_message_bytes = 200;
  auto l = open_log(d.path(), c);
  EXPECT_EQ(append(*l, 1, 0, kNow, 300), append_error::message_too_large);
  EXPECT_EQ(append(*l, 1, 0, kNow, 50), append_error::none);
}

TEST(storage_log, rejects_create_time_outside_the_allowed_window) {
  temp_dir d;
  log_config c;
  c.timestamp_before_max_ms = 1000;
  c.timestamp_after_max_ms = 500;
  auto l = open_log(d.path(), c);
  EXPECT_EQ(append(*l, 1, 0, kNow - 2000), append_error::invalid_timestamp);
  EXPECT_EQ(append(*l, 1, 0, kNow + 600), append_error::invalid_timestamp);
  EXPECT_EQ(append(*l, 1, 0, kNow - 900), append_error::none);
}

TEST(storage_log, follower_append_keeps_leader_offsets_and_learns_epochs_from_batches) {
  temp_dir leader_dir, follower_dir;
  auto leader = open_log(leader_dir.path());
  append(*leader, 2, 1);
  append(*leader, 2, 3);
  read_info r;
  ASSERT_TRUE(leader->read(0, 1 << 20, INT64_MAX, false, &r));
  auto bytes = read_bytes(r);
  auto follower = open_log(follower_dir.path());
  append_info info;
  ASSERT_EQ(follower->append_as_follower(bytes, &info), append_error::none);
  EXPECT_EQ(info.first_offset, 0);
  EXPECT_EQ(follower->log_end_offset(), 4);
  EXPECT_EQ(follower->latest_epoch(), 3);
  EXPECT_EQ(follower->end_offset_for_epoch(1), std::make_pair(1, int64_t{2}));
  // The same batches again do not follow the log end: rejected.
  EXPECT_EQ(follower->append_as_follower(bytes, &info), append_error::corrupt_message);
  EXPECT_EQ(follower->log_end_offset(), 4);
}

TEST(storage_log, follower_append_accepts_a_gap_above_the_log_end) {
  temp_dir leader_dir, follower_dir;
  auto leader = open_log(leader_dir.path());
  append(*leader, 2, 1);
  append(*leader, 2, 1);
  read_info r;
  ASSERT_TRUE(leader->read(2, 1 << 20, INT64_MAX, false, &r));  // batch at offsets 2..3 only
  auto bytes = read_bytes(r);
  auto follower = open_log(follower_dir.path());
  ASSERT_EQ(follower->append_as_follower(bytes, nullptr), append_error::none);
  EXPECT_EQ(follower->log_end_offset(), 4);
  read_info fr;
  ASSERT_TRUE(follower->read(0, 1 << 20, INT64_MAX, false, &fr));
  EXPECT_EQ(batch_offsets(read_bytes(fr)), (std::vector<int64_t>{2}));
}

TEST(storage_log, end_offset_for_epoch_follows_kip_279) {
  temp_dir d;
  auto l = open_log(d.path());
  EXPECT_EQ(l->end_offset_for_epoch(0), std::make_pair(-1, int64_t{-1}));
  append(*l, 2, 2);  // epoch 2 starts at 0
  append(*l, 3, 2);
  append(*l, 1, 4);  // epoch 4 starts at 5
  append(*l, 1, 6);  // epoch 6 starts at 6
  EXPECT_EQ(l->latest_epoch(), 6);
  EXPECT_EQ(l->end_offset_for_epoch(6), std::make_pair(6, int64_t{7}));
  EXPECT_EQ(l->end_offset_for_epoch(5), std::make_pair(4, int64_t{6}));
  EXPECT_EQ(l->end_offset_for_epoch(2), std::make_pair(2, int64_t{5}));
  EXPECT_EQ(l->end_offset_for_epoch(1), std::make_pair(1, int64_t{0}));
  EXPECT_EQ(l->end_offset_for_epoch(9), std::make_pair(-1, int64_t{-1}));
}

TEST(storage_log, leader_epoch_checkpoint_is_written_and_truncated_with_the_log) {
  temp_dir d;
  {
    auto l = open_log(d.path());
    append(*l, 2, 1);
    append(*l, 2, 2);
    append(*l, 2, 5);
    EXPECT_EQ(*read_small_file(d.path() / "leader-epoch-checkpoint"), "0\n3\n1 0\n2 2\n5 4\n");
    l->truncate_to(3);
    EXPECT_EQ(l->log_end_offset(), 2);  // the batch holding offset 3 is removed whole
    EXPECT_EQ(l->latest_epoch(), 1);
    EXPECT_EQ(*read_small_file(d.path() / "leader-epoch-checkpoint"), "0\n1\n1 0\n");
    append(*l, 1, 7);
    l->close();
  }
  auto l = open_log(d.path());
  EXPECT_EQ(l->latest_epoch(), 7);
  EXPECT_EQ(l->end_offset_for_epoch(1), std::make_pair(1, int64_t{2}));
}

TEST(storage_log, recovery_truncates_the_epoch_cache_to_the_recovered_log_end) {
  temp_dir d;
  {
    auto l = open_log(d.path());
    append(*l, 1, 1);
    append(*l, 1, 2);
  }
  tear_tail(d.path(), 1);
  auto l = open_log(d.path());
  EXPECT_EQ(l->log_end_offset(), 1);
  EXPECT_EQ(l->latest_epoch(), 1);
}

TEST(storage_log, truncate_to_removes_later_segments_and_appends_continue) {
  temp_dir d;
  log_config c;
  const int64_t one = static_cast<int64_t>(make_batch(1, kNow, 50).size());
  c.segment_bytes = 2 * one;
  auto l = open_log(d.path(), c);
  for (int i = 0; i < 7; ++i) append(*l, 1, 0, kNow, 50);
  l->truncate_to(3);
  EXPECT_EQ(l->log_end_offset(), 3);
  EXPECT_EQ(l->segment_count(), 2u);
  EXPECT_FALSE(fs::exists(d.path() / "00000000000000000004.log"));
  append_info info;
  ASSERT_EQ(append(*l, 1, 0, kNow, 50, &info), append_error::none);
  EXPECT_EQ(info.first_offset, 3);
  read_info r;
  ASSERT_TRUE(l->read(0, 1 << 20, INT64_MAX, false, &r));
  EXPECT_EQ(batch_offsets(read_bytes(r)), (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST(storage_log, truncate_fully_and_start_at_restarts_the_log) {
  temp_dir d;
  auto l = open_log(d.path());
  append(*l, 3, 1);
  l->truncate_fully_and_start_at(100);
  EXPECT_EQ(l->log_start_offset(), 100);
  EXPECT_EQ(l->log_end_offset(), 100);
  EXPECT_EQ(l->latest_epoch(), -1);
  EXPECT_FALSE(fs::exists(d.path() / "00000000000000000000.log"));
  append_info info;
  ASSERT_EQ(append(*l, 1, 2, kNow, 10, &info), append_error::none);
  EXPECT_EQ(info.first_offset, 100);
  l->close();
  auto again = open_log(d.path());
  EXPECT_EQ(again->log_start_offset(), 100);
  EXPECT_EQ(again->log_end_offset(), 101);
}

TEST(storage_log, by_default_appends_do_not_advance_the_recovery_point) {
  temp_dir d;
  auto l = open_log(d.path());
  append(*l, 5);
  l->maybe_flush(kNow + 1'000'000);
  EXPECT_EQ(l->recovery_point(), 0);
  l->flush();
  EXPECT_EQ(l->recovery_point(), 5);
}

TEST(storage_log, flush_messages_flushes_once_enough_offsets_are_unflushed) {
  temp_dir d;
  log_config c;
  c.flush_messages = 4;
  auto l = open_log(d.path(), c);
  append(*l, 3);
  EXPECT_EQ(l->recovery_point(), 0);
  append(*l, 2);
  EXPECT_EQ(l->recovery_point(), 5);
}

TEST(storage_log, flush_ms_flushes_from_maybe_flush_after_the_interval) {
  temp_dir d;
  log_config c;
  c.flush_ms = 1000;
  auto l = open_log(d.path(), c);
  append(*l, 2);
  const int64_t t0 = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  l->maybe_flush(t0 - 10'000);  // interval not elapsed since open
  EXPECT_EQ(l->recovery_point(), 0);
  l->maybe_flush(t0 + 2000);
  EXPECT_EQ(l->recovery_point(), 2);
}

TEST(storage_log, maybe_roll_rolls_after_segment_ms) {
  temp_dir d;
  log_config c;
  c.segment_ms = 1000;
  auto l = open_log(d.path(), c);
  append(*l, 1, 0, kNow);
  l->maybe_roll(kNow + 500);
  EXPECT_EQ(l->segment_count(), 1u);
  l->maybe_roll(kNow + 1500);
  EXPECT_EQ(l->segment_count(), 2u);
  l->maybe_roll(kNow + 5000);  // the new segment is empty: nothing to roll
  EXPECT_EQ(l->segment_count(), 2u);
}

TEST(storage_log, append_rolls_when_the_segment_is_older_than_segment_ms) {
  temp_dir d;
  log_config c;
  c.segment_ms = 1000;
  auto l = open_log(d.path(), c);
  append(*l, 1, 0, kNow);
  append(*l, 1, 0, kNow + 500);
  EXPECT_EQ(l->segment_count(), 1u);
  append(*l, 1, 0, kNow + 1500);
  EXPECT_EQ(l->segment_count(), 2u);
}

TEST(storage_log, remove_deletes_the_directory) {
  temp_dir d;
  auto dir = d.path() / "t-0";
  auto l = open_log(dir);
  append(*l, 1);
  l->remove();
  EXPECT_FALSE(fs::exists(dir));
}

}  // namespace
}  // namespace varve::storage
