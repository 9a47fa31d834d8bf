#include "storage/producer_state.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "protocol/crc32c.h"
#include "storage/log.h"

namespace varve::storage {
namespace {

namespace fs = std::filesystem;
using protocol::record_batch_header;

constexpr int64_t kPid = 1000;

// A header as the log would hand it to update(): offsets assigned, `count` records.
record_batch_header data_batch(int64_t pid, int16_t epoch, int32_t first_seq, int32_t count,
                               int64_t base_offset, int64_t ts = 1000) {
  record_batch_header h;
  h.base_offset = base_offset;
  h.producer_id = pid;
  h.producer_epoch = epoch;
  h.base_sequence = first_seq;
  h.last_offset_delta = count - 1;
  h.records_count = count;
  h.base_timestamp = ts;
  h.max_timestamp = ts;
  return h;
}

record_batch_header control_batch(int64_t pid, int16_t epoch, int64_t offset, int64_t ts = 1000) {
  record_batch_header h = data_batch(pid, epoch, -1, 1, offset, ts);
  h.attributes = 0x20 | 0x10;  // control + transactional
  return h;
}

class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "varve-pstate-XXXXXX").string();
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

// Appends a batch to `state` the way the produce path does: check, then update.
sequence_check append(producer_state& state, const record_batch_header& h) {
  producer_batch_metadata dup;
  auto r = state.check(h, &dup);
  if (r == sequence_check::ok) state.update(h);
  return r;
}

TEST(producer_state, batch_without_producer_id_is_always_ok) {
  producer_state s("/nonexistent");
  auto h = data_batch(-1, -1, -1, 3, 0);
  EXPECT_EQ(s.check(h, nullptr), sequence_check::ok);
  s.update(h);
  EXPECT_TRUE(s.producers().empty());
}

TEST(producer_state, in_sequence_batches_are_accepted_and_tracked) {
  producer_state s("/nonexistent");
  EXPECT_EQ(append(s, data_batch(kPid, 0, 0, 3, 0)), sequence_check::ok);
  EXPECT_EQ(append(s, data_batch(kPid, 0, 3, 2, 3)), sequence_check::ok);
  EXPECT_EQ(append(s, data_batch(kPid, 0, 5, 1, 5)), sequence_check::ok);
  const producer_entry* e = s.find(kPid);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->epoch, 0);
  ASSERT_EQ(e->batches.size(), 3u);
  EXPECT_EQ(e->batches.back().first_seq, 5);
  EXPECT_EQ(e->batches.back().last_seq, 5);
  EXPECT_EQ(e->batches.front().last_offset, 2);
}

TEST(producer_state, unknown_producer_must_start_at_sequence_zero) {
  producer_state s("/nonexistent");
  EXPECT_EQ(s.check(data_batch(kPid, 0, 7, 1, 0), nullptr), sequence_check::out_of_order);
  EXPECT_EQ(s.check(data_batch(kPid, 0, 0, 1, 0), nullptr), sequence_check::ok);
}

TEST(producer_state, duplicate_of_each_of_last_five_returns_original_offsets) {
  producer_state s("/nonexistent");
  // Seven batches of 2 records at offsets 100, 110, ... (other producers interleaved).
  for (int i = 0; i < 7; ++i) {
    ASSERT_EQ(append(s, data_batch(kPid, 3, i * 2, 2, 100 + i * 10)), sequence_check::ok);
  }
  for (int i = 2; i < 7; ++i) {
    producer_batch_metadata dup;
    auto retry = data_batch(kPid, 3, i * 2, 2, /*base_offset unassigned*/ 0);
    ASSERT_EQ(s.check(retry, &dup), sequence_check::duplicate) << "batch " << i;
    EXPECT_EQ(dup.first_offset, 100 + i * 10);
    EXPECT_EQ(dup.last_offset, 100 + i * 10 + 1);
    EXPECT_EQ(dup.first_seq, i * 2);
    EXPECT_EQ(dup.last_seq, i * 2 + 1);
  }
}

TEST(producer_state, sixth_oldest_batch_is_no_longer_cached) {
  producer_state s("/nonexistent");
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(append(s, data_batch(kPid, 0, i, 1, i)), sequence_check::ok);
  }
  EXPECT_EQ(s.find(kPid)->batches.size(), kProducerBatchCacheSize);
  producer_batch_metadata dup;
  EXPECT_EQ(s.check(data_batch(kPid, 0, 0, 1, 0), &dup), sequence_check::out_of_order);
  EXPECT_EQ(s.check(data_batch(kPid, 0, 1, 1, 0), &dup), sequence_check::duplicate);
  EXPECT_EQ(dup.first_offset, 1);
}

TEST(producer_state, partial_overlap_with_cached_batch_is_out_of_order_not_duplicate) {
  producer_state s("/nonexistent");
  ASSERT_EQ(append(s, data_batch(kPid, 0, 0, 4, 0)), sequence_check::ok);
  EXPECT_EQ(s.check(data_batch(kPid, 0, 0, 2, 0), nullptr), sequence_check::out_of_order);
}

TEST(producer_state, sequence_gap_is_out_of_order) {
  producer_state s("/nonexistent");
  ASSERT_EQ(append(s, data_batch(kPid, 0, 0, 3, 0)), sequence_check::ok);
  EXPECT_EQ(s.check(data_batch(kPid, 0, 4, 1, 3), nullptr), sequence_check::out_of_order);
  EXPECT_EQ(s.check(data_batch(kPid, 0, 3, 1, 3), nullptr), sequence_check::ok);
}

TEST(producer_state, older_epoch_is_fenced) {
  producer_state s("/nonexistent");
  ASSERT_EQ(append(s, data_batch(kPid, 5, 0, 1, 0)), sequence_check::ok);
  EXPECT_EQ(s.check(data_batch(kPid, 4, 1, 1, 1), nullptr),
            sequence_check::invalid_producer_epoch);
  // Even a batch that would be a duplicate under the old epoch is fenced.
  EXPECT_EQ(s.check(data_batch(kPid, 4, 0, 1, 1), nullptr),
            sequence_check::invalid_producer_epoch);
}

TEST(producer_state, newer_epoch_must_restart_at_sequence_zero) {
  producer_state s("/nonexistent");
  ASSERT_EQ(append(s, data_batch(kPid, 1, 0, 5, 0)), sequence_check::ok);
  EXPECT_EQ(s.check(data_batch(kPid, 2, 5, 1, 5), nullptr), sequence_check::out_of_order);
  EXPECT_EQ(append(s, data_batch(kPid, 2, 0, 1, 5)), sequence_check::ok);
  const producer_entry* e = s.find(kPid);
  EXPECT_EQ(e->epoch, 2);
  ASSERT_EQ(e->batches.size(), 1u) << "a new epoch clears the cached batches";
  // The old epoch's batches are no longer duplicates; the old epoch is fenced.
  EXPECT_EQ(s.check(data_batch(kPid, 1, 0, 5, 0), nullptr),
            sequence_check::invalid_producer_epoch);
}

TEST(producer_state, sequence_wraps_after_int32_max) {
  producer_state s("/nonexistent");
  s.update(data_batch(kPid, 0, INT32_MAX - 3, 2, 0));  // seqs MAX-3, MAX-2 (as if replayed)
  EXPECT_EQ(s.check(data_batch(kPid, 0, INT32_MAX, 3, 2), nullptr), sequence_check::out_of_order)
      << "skipping MAX-1 is a gap";
  auto wrap = data_batch(kPid, 0, INT32_MAX - 1, 4, 2);  // MAX-1, MAX, 0, 1
  ASSERT_EQ(s.check(wrap, nullptr), sequence_check::ok);
  s.update(wrap);
  EXPECT_EQ(s.find(kPid)->batches.back().last_seq, 1);
  EXPECT_EQ(s.check(data_batch(kPid, 0, 2, 1, 6), nullptr), sequence_check::ok);
  EXPECT_EQ(s.check(data_batch(kPid, 0, 0, 1, 6), nullptr), sequence_check::out_of_order);
  // The wrapped batch is recognised as a duplicate by its (first, last) pair.
  producer_batch_metadata dup;
  EXPECT_EQ(s.check(data_batch(kPid, 0, INT32_MAX - 1, 4, 0), &dup), sequence_check::duplicate);
  EXPECT_EQ(dup.first_offset, 2);
  EXPECT_EQ(dup.last_offset, 5);
}

TEST(producer_state, next_sequence_after_int32_max_is_zero) {
  producer_state s("/nonexistent");
  s.update(data_batch(kPid, 0, INT32_MAX, 1, 0));
  EXPECT_EQ(s.check(data_batch(kPid, 0, 0, 1, 1), nullptr), sequence_check::ok);
  EXPECT_EQ(s.check(data_batch(kPid, 0, INT32_MAX, 1, 1), nullptr), sequence_check::duplicate);
  EXPECT_EQ(s.check(data_batch(kPid, 0, 1, 1, 1), nullptr), sequence_check::out_of_order);
}

TEST(producer_state, control_batch_checks_only_the_epoch) {
  producer_state s("/nonexistent");
  ASSERT_EQ(append(s, data_batch(kPid, 3, 0, 2, 0)), sequence_check::ok);
  EXPECT_EQ(s.check(control_batch(kPid, 3, 2), nullptr), sequence_check::ok);
  EXPECT_EQ(s.check(control_batch(kPid, 2, 2), nullptr), sequence_check::invalid_producer_epoch);
  // A marker with a newer epoch (coordinator bumped it on abort) is accepted and bumps it.
  ASSERT_EQ(append(s, control_batch(kPid, 4, 2)), sequence_check::ok);
  const producer_entry* e = s.find(kPid);
  EXPECT_EQ(e->epoch, 4);
  EXPECT_TRUE(e->batches.empty()) << "control batches are not cached as sequence data";
  EXPECT_EQ(s.check(data_batch(kPid, 3, 2, 1, 3), nullptr), sequence_check::invalid_producer_epoch);
  // First data batch in the bumped epoch starts at 0.
  EXPECT_EQ(s.check(data_batch(kPid, 4, 2, 1, 3), nullptr), sequence_check::out_of_order);
  EXPECT_EQ(s.check(data_batch(kPid, 4, 0, 1, 3), nullptr), sequence_check::ok);
}

TEST(producer_state, transaction_first_offset_is_set_by_first_data_batch_and_cleared_by_marker) {
  producer_state s("/nonexistent");
  auto t1 = data_batch(kPid, 0, 0, 2, 10);
  t1.attributes = 0x10;
  auto t2 = data_batch(kPid, 0, 2, 2, 20);
  t2.attributes = 0x10;
  ASSERT_EQ(append(s, t1), sequence_check::ok);
  ASSERT_EQ(append(s, t2), sequence_check::ok);
  EXPECT_EQ(s.find(kPid)->current_txn_first_offset, 10);
  ASSERT_EQ(append(s, control_batch(kPid, 0, 30)), sequence_check::ok);
  EXPECT_EQ(s.find(kPid)->current_txn_first_offset, -1);
  // Sequence continues across the marker within the same epoch.
  EXPECT_EQ(s.check(data_batch(kPid, 0, 4, 1, 31), nullptr), sequence_check::ok);
}

TEST(producer_state, non_transactional_batch_does_not_open_a_transaction) {
  producer_state s("/nonexistent");
  ASSERT_EQ(append(s, data_batch(kPid, 0, 0, 1, 0)), sequence_check::ok);
  EXPECT_EQ(s.find(kPid)->current_txn_first_offset, -1);
}

TEST(producer_state, expire_drops_idle_producers_without_open_transaction) {
  producer_state s("/nonexistent");
  s.update(data_batch(1, 0, 0, 1, 0, /*ts=*/1000));
  s.update(data_batch(2, 0, 0, 1, 1, /*ts=*/5000));
  auto open_txn = data_batch(3, 0, 0, 1, 2, /*ts=*/1000);
  open_txn.attributes = 0x10;
  s.update(open_txn);
  s.expire(/*now_ms=*/10000, /*expiration_ms=*/6000);  // cutoff 4000
  EXPECT_EQ(s.find(1), nullptr);
  EXPECT_NE(s.find(2), nullptr);
  EXPECT_NE(s.find(3), nullptr) << "a producer with an open transaction is kept";
  EXPECT_EQ(s.check(data_batch(1, 0, 1, 1, 3), nullptr), sequence_check::out_of_order)
      << "an expired producer is unknown again";
}

// ---- snapshots without a log -----------------------------------------------------------------

void fill_state(producer_state& s) {
  for (int i = 0; i < 7; ++i) s.update(data_batch(kPid, 2, i, 1, i, 5000 + i));
  auto t = data_batch(kPid + 1, 9, 0, 3, 7, 6000);
  t.attributes = 0x10;
  s.update(t);
  s.set_coordinator_epoch(kPid + 1, 42);
  s.update(data_batch(kPid + 2, 0, INT32_MAX, 2, 10, 7000));
}

std::vector<uint8_t> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void expect_same_state(const producer_state& a, const producer_state& b) {
  ASSERT_EQ(a.producers().size(), b.producers().size());
  for (const auto& [id, ea] : a.producers()) {
    const producer_entry* eb = b.find(id);
    ASSERT_NE(eb, nullptr) << id;
    EXPECT_EQ(ea.epoch, eb->epoch);
    EXPECT_EQ(ea.last_timestamp, eb->last_timestamp);
    EXPECT_EQ(ea.current_txn_first_offset, eb->current_txn_first_offset);
    EXPECT_EQ(ea.coordinator_epoch, eb->coordinator_epoch);
    ASSERT_EQ(ea.batches.size(), eb->batches.size());
    for (size_t i = 0; i < ea.batches.size(); ++i) {
      EXPECT_EQ(ea.batches[i].first_seq, eb->batches[i].first_seq);
      EXPECT_EQ(ea.batches[i].last_seq, eb->batches[i].last_seq);
      EXPECT_EQ(ea.batches[i].first_offset, eb->batches[i].first_offset);
      EXPECT_EQ(ea.batches[i].last_offset, eb->batches[i].last_offset);
      EXPECT_EQ(ea.batches[i].timestamp, eb->batches[i].timestamp);
    }
  }
}

TEST(producer_state_snapshot, file_is_named_by_twenty_digit_offset_and_keeps_newest_two) {
  temp_dir dir;
  producer_state s(dir.path());
  fill_state(s);
  s.take_snapshot(12);
  EXPECT_TRUE(fs::exists(dir.path() / "00000000000000000012.snapshot"));
  s.take_snapshot(20);
  s.take_snapshot(35);
  EXPECT_EQ(s.snapshot_offsets(), (std::vector<int64_t>{20, 35}));
  for (const auto& ent : fs::directory_iterator(dir.path())) {
    EXPECT_FALSE(ent.path().string().ends_with(".tmp")) << ent.path();
  }
}

TEST(producer_state_snapshot, bytes_match_the_worked_example_in_the_format_doc) {
  temp_dir dir;
  producer_state s(dir.path());
  s.update(data_batch(7, 0, 0, 3, 0, /*ts=*/1000));
  s.take_snapshot(3);
  const std::vector<uint8_t> body = {
      0, 0, 0, 0, 0, 0, 0, 3,                  // offset
      0, 0, 0, 1,                              // producer count
      0, 0, 0, 0, 0, 0, 0, 7,                  // producer id
      0, 0,                                    // epoch
      0xff, 0xff, 0xff, 0xff,                  // coordinator epoch
      0, 0, 0, 0, 0, 0, 0x03, 0xe8,            // last timestamp
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  // txn first offset
      1,                                       // batch count
      0, 0, 0, 0, 0, 0, 0, 2,                  // first/last seq
      0, 0, 0, 0, 0, 0, 0, 0,                  // first offset
      0, 0, 0, 0, 0, 0, 0, 2,                  // last offset
      0, 0, 0, 0, 0, 0, 0x03, 0xe8,            // max timestamp
  };
  ASSERT_EQ(body.size(), 75u);
  const uint32_t crc = protocol::crc32c(body);
  EXPECT_EQ(crc, 0xe26e3012u) << "the value printed in docs/format/producer-snapshot.md";
  std::vector<uint8_t> expected = {0x56, 0x50, 0x53, 0x53, 0, 1,
                                   static_cast<uint8_t>(crc >> 24), static_cast<uint8_t>(crc >> 16),
                                   static_cast<uint8_t>(crc >> 8), static_cast<uint8_t>(crc)};
  expected.insert(expected.end(), body.begin(), body.end());
  EXPECT_EQ(read_file(s.snapshot_path(3)), expected);
}

TEST(producer_state_snapshot, encoding_is_deterministic) {
  temp_dir a, b;
  producer_state sa(a.path()), sb(b.path());
  fill_state(sa);
  fill_state(sb);
  sa.take_snapshot(12);
  sb.take_snapshot(12);
  EXPECT_EQ(read_file(sa.snapshot_path(12)), read_file(sb.snapshot_path(12)));
}

}  // namespace
}  // namespace varve::storage
