#include "storage/txn_index.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "protocol/record_batch.h"
#include "protocol/record_control.h"
#include "storage/log.h"

namespace varve::storage {
namespace {

namespace fs = std::filesystem;

class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "varve-txnidx-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<uint8_t> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// A log whose segments start at 0, 10, 20, ... (`segments` of them, 10 records each).
std::unique_ptr<log> log_with_segments(const fs::path& dir, int segments) {
  log_config config;
  config.segment_bytes = 1;  // every batch after the first in a segment rolls a new one
  std::string error;
  auto lg = log::open(dir, config, -1, &error);
  EXPECT_NE(lg, nullptr) << error;
  for (int s = 0; s < segments; ++s) {
    std::vector<protocol::record> recs(10);
    for (auto& r : recs) {
      r.timestamp = 1000;
      r.value = std::vector<uint8_t>{'x'};
    }
    auto bytes = protocol::build_batch(recs, {});
    EXPECT_EQ(lg->append_as_leader(bytes, 0, 1000, nullptr), append_error::none);
  }
  EXPECT_EQ(lg->segment_count(), static_cast<size_t>(segments));
  return lg;
}

aborted_txn entry(int64_t pid, int64_t first, int64_t last, int64_t lso) {
  return aborted_txn{pid, first, last, lso};
}

// ---- transaction markers (protocol/record_control.h) ----------------------------------------

TEST(txn_marker, built_marker_batch_is_a_valid_transactional_control_batch) {
  auto bytes = protocol::build_txn_marker_batch(42, 3, {protocol::control_record_type::commit, 17},
                                                /*timestamp=*/5000);
  protocol::record_batch_header h;
  ASSERT_EQ(protocol::validate_batch(bytes, &h), protocol::batch_error::none);
  EXPECT_TRUE(h.is_control());
  EXPECT_TRUE(h.is_transactional());
  EXPECT_EQ(h.producer_id, 42);
  EXPECT_EQ(h.producer_epoch, 3);
  EXPECT_EQ(h.base_sequence, -1);
  EXPECT_EQ(h.records_count, 1);
  EXPECT_EQ(h.max_timestamp, 5000);
  auto m = protocol::parse_txn_marker(bytes);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->type, protocol::control_record_type::commit);
  EXPECT_EQ(m->coordinator_epoch, 17);
}

TEST(txn_marker, key_and_value_have_kafkas_layout) {
  EXPECT_EQ(protocol::encode_txn_marker_key(protocol::control_record_type::abort),
            (std::vector<uint8_t>{0, 0, 0, 0}));
  EXPECT_EQ(protocol::encode_txn_marker_key(protocol::control_record_type::commit),
            (std::vector<uint8_t>{0, 0, 0, 1}));
  EXPECT_EQ(protocol::encode_txn_marker_value(0x01020304),
            (std::vector<uint8_t>{0, 0, 1, 2, 3, 4}));
}

std::vector<uint8_t> control_batch_with(std::optional<std::vector<uint8_t>> key,
                                        std::optional<std::vector<uint8_t>> value,
                                        bool control = true) {
  protocol::record r;
  r.timestamp = 1;
  r.key = std::move(key);
  r.value = std::move(value);
  protocol::batch_builder_options o;
  o.producer_id = 1;
  o.producer_epoch = 0;
  o.transactional = true;
  o.control = control;
  return protocol::build_batch({r}, o);
}

TEST(txn_marker, abort_marker_with_large_coordinator_epoch_round_trips) {
  auto bytes =
      protocol::build_txn_marker_batch(1, 0, {protocol::control_record_type::abort, INT32_MAX}, 1);
  auto m = protocol::parse_txn_marker(bytes);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->type, protocol::control_record_type::abort);
  EXPECT_EQ(m->coordinator_epoch, INT32_MAX);
}

TEST(txn_marker, newer_key_and_value_versions_are_read_by_their_leading_fields) {
  auto m = protocol::parse_txn_marker(control_batch_with(
      std::vector<uint8_t>{0, 1, 0, 0, 9}, std::vector<uint8_t>{0, 1, 0, 0, 0, 5, 7, 7}));
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->type, protocol::control_record_type::abort);
  EXPECT_EQ(m->coordinator_epoch, 5);
}

TEST(txn_marker, non_marker_and_malformed_control_batches_are_not_markers) {
  // Not a control batch.
  EXPECT_FALSE(protocol::parse_txn_marker(control_batch_with(std::vector<uint8_t>{0, 0, 0, 1},
                                                             std::vector<uint8_t>{0, 0, 0, 0, 0, 0},
                                                             /*control=*/false)));
  // Type 2 (KRaft LEADER_CHANGE) is not a transaction marker.
  EXPECT_FALSE(protocol::parse_txn_marker(control_batch_with(
      std::vector<uint8_t>{0, 0, 0, 2}, std::vector<uint8_t>{0, 0, 0, 0, 0, 0})));
  // Negative key version.
  EXPECT_FALSE(protocol::parse_txn_marker(control_batch_with(
      std::vector<uint8_t>{0xff, 0xff, 0, 1}, std::vector<uint8_t>{0, 0, 0, 0, 0, 0})));
  // Short key, short value, missing key, missing value.
  EXPECT_FALSE(protocol::parse_txn_marker(
      control_batch_with(std::vector<uint8_t>{0, 0, 0}, std::vector<uint8_t>{0, 0, 0, 0, 0, 0})));
  EXPECT_FALSE(protocol::parse_txn_marker(
      control_batch_with(std::vector<uint8_t>{0, 0, 0, 1}, std::vector<uint8_t>{0, 0, 0, 0, 0})));
  EXPECT_FALSE(protocol::parse_txn_marker(
      control_batch_with(std::nullopt, std::vector<uint8_t>{0, 0, 0, 0, 0, 0})));
  EXPECT_FALSE(protocol::parse_txn_marker(
      control_batch_with(std::vector<uint8_t>{0, 0, 0, 1}, std::nullopt)));
  // Truncated batch.
  auto bytes =
      protocol::build_txn_marker_batch(1, 0, {protocol::control_record_type::commit, 0}, 1);
  bytes.resize(30);
  EXPECT_FALSE(protocol::parse_txn_marker(bytes));
}

// ---- entry codec -------------------------------------------------------------------------------

TEST(txn_index_entry, bytes_match_the_worked_example_in_the_format_doc) {
  uint8_t buf[kTxnIndexEntrySize];
  encode_txn_index_entry(entry(7, 100, 105, 106), buf);
  const std::vector<uint8_t> expected = {
      0x00, 0x00,                                      // version 0
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,  // producer_id 7
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x64,  // first_offset 100
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x69,  // last_offset 105
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x6a,  // last_stable_offset 106
  };
  EXPECT_EQ(std::vector<uint8_t>(buf, buf + kTxnIndexEntrySize), expected);
  aborted_txn back;
  ASSERT_TRUE(decode_txn_index_entry(buf, &back));
  EXPECT_EQ(back, entry(7, 100, 105, 106));
  buf[1] = 1;
  EXPECT_FALSE(decode_txn_index_entry(buf, &back)) << "only version 0 is known";
}

// ---- append, files, collect -------------------------------------------------------------------

TEST(txn_index, entry_goes_to_the_file_of_the_segment_holding_the_marker) {
  temp_dir dir;
  auto lg = log_with_segments(dir.path(), 3);  // segments 0, 10, 20
  txn_index idx(dir.path());
  idx.load(*lg);
  ASSERT_TRUE(idx.append(*lg, entry(1, 2, 5, 6)));
  ASSERT_TRUE(idx.append(*lg, entry(2, 3, 14, 15)));
  ASSERT_TRUE(idx.append(*lg, entry(3, 12, 15, 16)));
  ASSERT_TRUE(idx.append(*lg, entry(4, 21, 25, 26)));
  EXPECT_EQ(idx.file_bases(), (std::vector<int64_t>{0, 10, 20}));
  EXPECT_EQ(read_file(dir.path() / "00000000000000000000.txnindex").size(), 34u);
  EXPECT_EQ(read_file(dir.path() / "00000000000000000010.txnindex").size(), 68u);
  EXPECT_EQ(read_file(dir.path() / "00000000000000000020.txnindex").size(), 34u);
  EXPECT_FALSE(fs::exists(dir.path() / "00000000000000000030.txnindex"));

  // A fresh index reads the same entries back.
  txn_index again(dir.path());
  again.load(*lg);
  EXPECT_EQ(again.entries(), idx.entries());
  EXPECT_EQ(again.first_damaged_offset(), INT64_MAX);
}

TEST(txn_index, append_refuses_entries_out_of_marker_order) {
  temp_dir dir;
  auto lg = log_with_segments(dir.path(), 2);
  txn_index idx(dir.path());
  idx.load(*lg);
  ASSERT_TRUE(idx.append(*lg, entry(1, 2, 15, 16)));
  EXPECT_FALSE(idx.append(*lg, entry(2, 3, 15, 16))) << "same marker offset";
  EXPECT_FALSE(idx.append(*lg, entry(2, 3, 5, 6))) << "earlier marker";
  EXPECT_FALSE(idx.append(*lg, entry(2, 17, 16, 17))) << "first offset after the marker";
  EXPECT_EQ(idx.entries().size(), 1u);
  EXPECT_EQ(read_file(dir.path() / "00000000000000000010.txnindex").size(), 34u);
}

TEST(txn_index, collect_returns_transactions_overlapping_the_fetch_range_across_segments) {
  temp_dir dir;
  auto lg = log_with_segments(dir.path(), 3);
  txn_index idx(dir.path());
  idx.load(*lg);
  // Producer 2's transaction (from 3) was still open when producer 1 aborted at 5: LSO 3.
  ASSERT_TRUE(idx.append(*lg, entry(1, 2, 5, 3)));
  ASSERT_TRUE(idx.append(*lg, entry(2, 3, 14, 15)));
  ASSERT_TRUE(idx.append(*lg, entry(3, 21, 25, 26)));

  using v = std::vector<aborted_producer>;
  EXPECT_EQ(idx.collect_aborted(0, 30), (v{{1, 2}, {2, 3}, {3, 21}}));
  EXPECT_EQ(idx.collect_aborted(6, 30), (v{{2, 3}, {3, 21}})) << "producer 1 ended before 6";
  EXPECT_EQ(idx.collect_aborted(12, 22), (v{{2, 3}, {3, 21}}))
      << "producer 2 began in an earlier segment and ended in this one";
  EXPECT_EQ(idx.collect_aborted(15, 21), v{}) << "nothing overlaps [15, 21)";
  EXPECT_EQ(idx.collect_aborted(0, 3), (v{{1, 2}})) << "producer 2 starts at the upper bound";
  EXPECT_EQ(idx.collect_aborted(25, 30), (v{{3, 21}})) << "the marker itself is in range";
  EXPECT_EQ(idx.collect_aborted(26, 30), v{});
  EXPECT_EQ(idx.collect_aborted(10, 10), v{}) << "empty range";
}

TEST(txn_index, collect_stops_at_the_first_entry_whose_last_stable_offset_reaches_the_bound) {
  temp_dir dir;
  auto lg = log_with_segments(dir.path(), 2);
  txn_index idx(dir.path());
  idx.load(*lg);
  ASSERT_TRUE(idx.append(*lg, entry(1, 2, 5, 6)));
  // Inconsistent on purpose: after an entry with LSO 6, no later transaction can start below
  // 6, so the search does not look at this one for an upper bound of 6.
  ASSERT_TRUE(idx.append(*lg, entry(2, 4, 12, 13)));
  EXPECT_EQ(idx.collect_aborted(0, 6), (std::vector<aborted_producer>{{1, 2}}));
  EXPECT_EQ(idx.collect_aborted(0, 7), (std::vector<aborted_producer>{{1, 2}, {2, 4}}));
}

// ---- truncation, segment changes ---------------------------------------------------------------

TEST(txn_index, truncate_drops_entries_at_or_after_the_offset_and_empty_files) {
  temp_dir dir;
  auto lg = log_with_segments(dir.path(), 3);
  txn_index idx(dir.path());
  idx.load(*lg);
  ASSERT_TRUE(idx.append(*lg, entry(1, 2, 5, 6)));
  ASSERT_TRUE(idx.append(*lg, entry(2, 3, 12, 13)));
  ASSERT_TRUE(idx.append(*lg, entry(3, 13, 16, 17)));
  ASSERT_TRUE(idx.append(*lg, entry(4, 21, 25, 26)));

  idx.truncate_to(16);
  EXPECT_EQ(idx.entries(), (std::vector<aborted_txn>{entry(1, 2, 5, 6), entry(2, 3, 12, 13)}));
  EXPECT_EQ(idx.file_bases(), (std::vector<int64_t>{0, 10}));
  EXPECT_EQ(read_file(dir.path() / "00000000000000000010.txnindex").size(), 34u);
  EXPECT_FALSE(fs::exists(dir.path() / "00000000000000000020.txnindex"));

  // Appending continues after the truncated entries.
  ASSERT_TRUE(idx.append(*lg, entry(5, 14, 18, 19)));
  txn_index again(dir.path());
  again.load(*lg);
  EXPECT_EQ(again.entries(), idx.entries());

  idx.truncate_to(0);
  EXPECT_TRUE(idx.entries().empty());
  EXPECT_TRUE(idx.file_bases().empty());
}

TEST(txn_index, files_of_deleted_segments_are_removed_when_synced) {
  temp_dir dir;
  auto lg = log_with_segments(dir.path(), 3);
  txn_index idx(dir.path());
  idx.load(*lg);
  ASSERT_TRUE(idx.append(*lg, entry(1, 2, 5, 6)));
  ASSERT_TRUE(idx.append(*lg, entry(2, 11, 12, 13)));
  ASSERT_EQ(lg->delete_records_before(10), 10);  // deletes segment 0
  idx.sync_with_segments(*lg);
  EXPECT_EQ(idx.file_bases(), (std::vector<int64_t>{10}));
  EXPECT_FALSE(fs::exists(dir.path() / "00000000000000000000.txnindex"));
}

TEST(txn_index, file_without_a_segment_is_merged_into_the_segment_covering_it) {
  // Compaction replaces segments 0 and 10 by one segment 0: the index of 10 must follow.
  temp_dir dir;
  auto lg = log_with_segments(dir.path(), 2);  // segments 0, 10
  txn_index idx(dir.path());
  idx.load(*lg);
  ASSERT_TRUE(idx.append(*lg, entry(1, 2, 5, 6)));
  ASSERT_TRUE(idx.append(*lg, entry(2, 3, 14, 15)));
  idx.flush();
  // Simulate the merged layout: entries of a segment 7 that no longer exists.
  write_file(dir.path() / "00000000000000000007.txnindex", [] {
    std::vector<uint8_t> b(kTxnIndexEntrySize);
    encode_txn_index_entry(entry(3, 6, 8, 9), b.data());
    return b;
  }());
  fs::remove(dir.path() / "00000000000000000010.txnindex");
  txn_index loaded(dir.path());
  loaded.load(*lg);
  EXPECT_EQ(loaded.file_bases(), (std::vector<int64_t>{0}));
  EXPECT_EQ(loaded.entries(), (std::vector<aborted_txn>{entry(1, 2, 5, 6), entry(3, 6, 8, 9)}));
  EXPECT_EQ(read_file(dir.path() / "00000000000000000000.txnindex").size(), 68u);
  EXPECT_FALSE(fs::exists(dir.path() / "00000000000000000007.txnindex"));
}

TEST(txn_index, clear_deletes_every_file) {
  temp_dir dir;
  auto lg = log_with_segments(dir.path(), 2);
  txn_index idx(dir.path());
  idx.load(*lg);
  ASSERT_TRUE(idx.append(*lg, entry(1, 2, 5, 6)));
  ASSERT_TRUE(idx.append(*lg, entry(2, 3, 14, 15)));
  idx.clear();
  EXPECT_TRUE(idx.entries().empty());
  for (const auto& ent : fs::directory_iterator(dir.path())) {
    EXPECT_FALSE(ent.path().string().ends_with(".txnindex")) << ent.path();
  }
  EXPECT_TRUE(idx.append(*lg, entry(3, 1, 2, 3))) << "the index starts over";
}

TEST(txn_index, flush_succeeds_and_keeps_the_files) {
  temp_dir dir;
  auto lg = log_with_segments(dir.path(), 1);
  txn_index idx(dir.path());
  idx.load(*lg);
  ASSERT_TRUE(idx.append(*lg, entry(1, 2, 5, 6)));
  EXPECT_TRUE(idx.flush());
  EXPECT_TRUE(idx.flush()) << "nothing left to flush";
  EXPECT_EQ(read_file(dir.path() / "00000000000000000000.txnindex").size(), 34u);
}

// ---- damaged files -----------------------------------------------------------------------------

TEST(txn_index, torn_tail_is_cut_and_reported_as_damage_after_the_last_whole_entry) {
  temp_dir dir;
  auto lg = log_with_segments(dir.path(), 2);
  {
    txn_index idx(dir.path());
    idx.load(*lg);
    ASSERT_TRUE(idx.append(*lg, entry(1, 2, 5, 6)));
    ASSERT_TRUE(idx.append(*lg, entry(2, 11, 12, 13)));
  }
  const auto path = dir.path() / "00000000000000000010.txnindex";
  auto bytes = read_file(path);
  bytes.resize(bytes.size() + 20, 0xee);  // a torn third entry
  write_file(path, bytes);

  txn_index idx(dir.path());
  idx.load(*lg);
  EXPECT_EQ(idx.entries(), (std::vector<aborted_txn>{entry(1, 2, 5, 6), entry(2, 11, 12, 13)}));
  EXPECT_EQ(idx.first_damaged_offset(), 13);
  EXPECT_EQ(read_file(path).size(), 34u) << "the torn bytes are gone from the file";
}

TEST(txn_index, unknown_version_or_disorder_cuts_the_file_at_that_entry) {
  temp_dir dir;
  auto lg = log_with_segments(dir.path(), 2);
  std::vector<uint8_t> bytes(3 * kTxnIndexEntrySize);
  encode_txn_index_entry(entry(1, 11, 12, 13), bytes.data());
  encode_txn_index_entry(entry(2, 11, 14, 15), bytes.data() + kTxnIndexEntrySize);
  encode_txn_index_entry(entry(3, 11, 16, 17), bytes.data() + 2 * kTxnIndexEntrySize);
  bytes[kTxnIndexEntrySize + 1] = 7;  // entry 1: version 7
  write_file(dir.path() / "00000000000000000010.txnindex", bytes);
  // An entry whose marker lies below its file's segment base is out of order too.
  std::vector<uint8_t> low(kTxnIndexEntrySize);
  encode_txn_index_entry(entry(9, 0, 3, 4), low.data());

  txn_index idx(dir.path());
  idx.load(*lg);
  EXPECT_EQ(idx.entries(), (std::vector<aborted_txn>{entry(1, 11, 12, 13)}));
  EXPECT_EQ(idx.first_damaged_offset(), 13);

  write_file(dir.path() / "00000000000000000010.txnindex", low);
  txn_index idx2(dir.path());
  idx2.load(*lg);
  EXPECT_TRUE(idx2.entries().empty());
  EXPECT_EQ(idx2.first_damaged_offset(), 10);
  EXPECT_FALSE(fs::exists(dir.path() / "00000000000000000010.txnindex"));
  idx2.truncate_to(10);
  EXPECT_EQ(idx2.first_damaged_offset(), INT64_MAX) << "everything from the damage on is gone";
}

TEST(txn_index, failed_append_marks_the_marker_offset_for_rebuild) {
  temp_dir dir;
  auto lg = log_with_segments(dir.path(), 2);
  txn_index idx(dir.path());
  idx.load(*lg);
  ASSERT_TRUE(idx.append(*lg, entry(1, 2, 5, 6)));
  // A directory where segment 10's file should go: opening it for writing fails.
  fs::create_directory(dir.path() / "00000000000000000010.txnindex");
  EXPECT_FALSE(idx.append(*lg, entry(2, 11, 12, 13)));
  EXPECT_EQ(idx.first_damaged_offset(), 12);
  EXPECT_EQ(idx.entries(), (std::vector<aborted_txn>{entry(1, 2, 5, 6)}));
  fs::remove(dir.path() / "00000000000000000010.txnindex");
  EXPECT_TRUE(idx.append(*lg, entry(2, 11, 12, 13))) << "the next marker can be written";
}

TEST(txn_index, files_past_the_log_end_are_dropped_not_merged) {
  // Recovery cut the log at 20 and deleted segment 20; its index file was left behind.
  temp_dir dir;
  auto lg = log_with_segments(dir.path(), 2);  // segments 0, 10; log end 20
  std::vector<uint8_t> bytes(kTxnIndexEntrySize);
  encode_txn_index_entry(entry(4, 21, 25, 26), bytes.data());
  write_file(dir.path() / "00000000000000000020.txnindex", bytes);
  txn_index idx(dir.path());
  idx.load(*lg);
  EXPECT_TRUE(idx.entries().empty());
  EXPECT_FALSE(fs::exists(dir.path() / "00000000000000000020.txnindex"));
  EXPECT_FALSE(fs::exists(dir.path() / "00000000000000000010.txnindex"));
}

}  // namespace
}  // namespace varve::storage
