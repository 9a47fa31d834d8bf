#include "storage/producer_state.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "protocol/crc32c.h"
#include "protocol/record_control.h"
#include "storage/log.h"
#include "storage/txn_index.h"

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

// The entry for `pid`; a missing producer throws (GoogleTest reports it as a failure) rather
// than crashing the whole binary.
const producer_entry& entry(const producer_state& s, int64_t pid) {
  const producer_entry* e = s.find(pid);
  if (e == nullptr) throw std::runtime_error("no state for producer " + std::to_string(pid));
  return *e;
}

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
  EXPECT_EQ(entry(s, kPid).batches.size(), kProducerBatchCacheSize);
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
  EXPECT_EQ(entry(s, kPid).batches.back().last_seq, 1);
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
  EXPECT_EQ(entry(s, kPid).current_txn_first_offset, 10);
  ASSERT_EQ(append(s, control_batch(kPid, 0, 30)), sequence_check::ok);
  EXPECT_EQ(entry(s, kPid).current_txn_first_offset, -1);
  // Sequence continues across the marker within the same epoch.
  EXPECT_EQ(s.check(data_batch(kPid, 0, 4, 1, 31), nullptr), sequence_check::ok);
}

TEST(producer_state, non_transactional_batch_does_not_open_a_transaction) {
  producer_state s("/nonexistent");
  ASSERT_EQ(append(s, data_batch(kPid, 0, 0, 1, 0)), sequence_check::ok);
  EXPECT_EQ(entry(s, kPid).current_txn_first_offset, -1);
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

// ---- with a real storage::log ----------------------------------------------------------------

// Builds and appends one batch through the log, then feeds the stored header to `state`
// (as the partition's produce path does). Returns the header the log assigned.
record_batch_header log_append(log& lg, producer_state* state, int64_t pid, int16_t epoch,
                               int32_t first_seq, int records, bool transactional = false,
                               bool control = false, int64_t ts = 1000) {
  std::vector<protocol::record> recs;
  for (int i = 0; i < records; ++i) {
    protocol::record r;
    r.offset = i;
    r.timestamp = ts;
    if (control) {
      // Control record: key = version(int16 0) + type(int16: 0 abort, 1 commit).
      r.key = std::vector<uint8_t>{0, 0, 0, 1};
      r.value = std::vector<uint8_t>{0, 0, 0, 0, 0, 0};
    } else {
      r.value = std::vector<uint8_t>{'v', static_cast<uint8_t>('0' + i % 10)};
    }
    recs.push_back(std::move(r));
  }
  protocol::batch_builder_options o;
  o.producer_id = pid;
  o.producer_epoch = epoch;
  o.base_sequence = first_seq;
  o.transactional = transactional;
  o.control = control;
  auto bytes = protocol::build_batch(recs, o);
  append_info info;
  auto err = lg.append_as_leader(bytes, /*leader_epoch=*/0, /*now_ms=*/ts, &info);
  EXPECT_EQ(err, append_error::none);
  auto h = protocol::parse_batch_header(bytes);
  EXPECT_TRUE(h.has_value());
  h->base_offset = info.first_offset;
  if (state != nullptr) {
    EXPECT_EQ(state->check(*h, nullptr), sequence_check::ok);
    state->update(*h);
  }
  return *h;
}

std::unique_ptr<log> open_log(const fs::path& dir) {
  std::string error;
  auto lg = log::open(dir, log_config{}, -1, &error);
  EXPECT_NE(lg, nullptr) << error;
  return lg;
}

TEST(producer_state_log, snapshot_round_trip_restores_identical_state) {
  temp_dir dir;
  auto lg = open_log(dir.path());
  producer_state s(dir.path());
  for (int i = 0; i < 7; ++i) log_append(*lg, &s, kPid, 2, i * 3, 3, false, false, 5000 + i);
  log_append(*lg, &s, kPid + 1, 9, 0, 2, /*transactional=*/true);
  s.take_snapshot(lg->log_end_offset());

  producer_state loaded(dir.path());
  loaded.load(*lg);
  expect_same_state(s, loaded);
  producer_batch_metadata dup;
  EXPECT_EQ(loaded.check(data_batch(kPid, 2, 18, 3, 0), &dup), sequence_check::duplicate);
  EXPECT_EQ(dup.first_offset, 18);
}

TEST(producer_state_log, load_without_snapshot_replays_the_whole_log) {
  temp_dir dir;
  auto lg = open_log(dir.path());
  producer_state s(dir.path());
  for (int i = 0; i < 4; ++i) log_append(*lg, &s, kPid, 0, i * 2, 2);
  log_append(*lg, &s, -1, -1, -1, 3);  // non-idempotent batch in between
  log_append(*lg, &s, kPid + 5, 1, 0, 1, /*transactional=*/true);

  producer_state loaded(dir.path());
  loaded.load(*lg);
  expect_same_state(s, loaded);
  EXPECT_EQ(entry(loaded, kPid + 5).current_txn_first_offset, 11);
}

TEST(producer_state_log, load_replays_the_log_beyond_the_snapshot) {
  temp_dir dir;
  auto lg = open_log(dir.path());
  producer_state s(dir.path());
  for (int i = 0; i < 3; ++i) log_append(*lg, &s, kPid, 0, i, 1);
  s.take_snapshot(lg->log_end_offset());  // covers offsets 0..2
  for (int i = 3; i < 6; ++i) log_append(*lg, &s, kPid, 0, i, 1);
  log_append(*lg, &s, kPid + 1, 0, 0, 4);

  producer_state loaded(dir.path());
  loaded.load(*lg);
  expect_same_state(s, loaded);
  EXPECT_EQ(loaded.check(data_batch(kPid, 0, 6, 1, 0), nullptr), sequence_check::ok);
  EXPECT_EQ(loaded.check(data_batch(kPid + 1, 0, 4, 1, 0), nullptr), sequence_check::ok);
}

TEST(producer_state_log, snapshot_is_authoritative_for_offsets_it_covers) {
  // The snapshot's content, not the log below it, is what load() starts from: a producer that
  // was expired before the snapshot is not resurrected by replaying older batches.
  temp_dir dir;
  auto lg = open_log(dir.path());
  producer_state s(dir.path());
  log_append(*lg, &s, 7, 0, 0, 1, false, false, /*ts=*/100);
  log_append(*lg, &s, kPid, 0, 0, 1, false, false, /*ts=*/100000);
  s.expire(/*now_ms=*/100000, /*expiration_ms=*/1000);
  ASSERT_EQ(s.find(7), nullptr);
  s.take_snapshot(lg->log_end_offset());

  producer_state loaded(dir.path());
  loaded.load(*lg);
  EXPECT_EQ(loaded.find(7), nullptr);
  EXPECT_NE(loaded.find(kPid), nullptr);
}

TEST(producer_state_log, corrupt_snapshot_falls_back_to_older_snapshot) {
  temp_dir dir;
  auto lg = open_log(dir.path());
  producer_state s(dir.path());
  for (int i = 0; i < 3; ++i) log_append(*lg, &s, kPid, 0, i, 1);
  s.take_snapshot(lg->log_end_offset());  // 3
  for (int i = 3; i < 5; ++i) log_append(*lg, &s, kPid, 0, i, 1);
  s.take_snapshot(lg->log_end_offset());  // 5
  log_append(*lg, &s, kPid, 0, 5, 1);

  auto path = s.snapshot_path(5);
  auto bytes = read_file(path);
  ASSERT_GT(bytes.size(), 20u);
  bytes[bytes.size() - 3] ^= 0x40;  // flip a bit in the body
  write_file(path, bytes);

  producer_state loaded(dir.path());
  loaded.load(*lg);
  expect_same_state(s, loaded);
  EXPECT_FALSE(fs::exists(path)) << "the corrupt snapshot is removed";
  EXPECT_TRUE(fs::exists(s.snapshot_path(3)));
}

TEST(producer_state_log, every_kind_of_damaged_snapshot_is_rejected) {
  temp_dir dir;
  auto lg = open_log(dir.path());
  producer_state s(dir.path());
  for (int i = 0; i < 6; ++i) log_append(*lg, &s, kPid + (i % 2), 0, i / 2, 1);
  s.take_snapshot(lg->log_end_offset());
  const auto path = s.snapshot_path(lg->log_end_offset());
  const auto good = read_file(path);

  std::vector<std::pair<std::string, std::vector<uint8_t>>> damaged;
  damaged.push_back({"empty", {}});
  damaged.push_back({"header only", {good.begin(), good.begin() + 10}});
  damaged.push_back({"truncated body", {good.begin(), good.end() - 1}});
  auto extra = good;
  extra.push_back(0);
  damaged.push_back({"trailing byte", extra});
  auto magic = good;
  magic[0] ^= 1;
  damaged.push_back({"bad magic", magic});
  auto version = good;
  version[5] = 9;
  damaged.push_back({"future version", version});
  auto crc = good;
  crc[7] ^= 0x80;
  damaged.push_back({"bad crc", crc});

  for (const auto& [what, bytes] : damaged) {
    write_file(path, bytes);
    producer_state loaded(dir.path());
    loaded.load(*lg);  // no older snapshot: full replay
    SCOPED_TRACE(what);
    expect_same_state(s, loaded);
    EXPECT_FALSE(fs::exists(path));
  }
}

TEST(producer_state_log, snapshot_with_wrong_offset_in_name_is_rejected) {
  temp_dir dir;
  auto lg = open_log(dir.path());
  producer_state s(dir.path());
  log_append(*lg, &s, kPid, 0, 0, 2);
  s.take_snapshot(0);  // state after offset 1 stored under the name of offset 0 ...
  fs::rename(s.snapshot_path(0), s.snapshot_path(1));  // ... then renamed
  producer_state loaded(dir.path());
  loaded.load(*lg);
  expect_same_state(s, loaded);  // rebuilt from the log instead
  EXPECT_TRUE(s.snapshot_offsets().empty());
}

TEST(producer_state_log, snapshots_above_log_end_are_deleted_on_load) {
  temp_dir dir;
  auto lg = open_log(dir.path());
  producer_state s(dir.path());
  log_append(*lg, &s, kPid, 0, 0, 1);
  s.take_snapshot(1);
  s.take_snapshot(50);  // e.g. the log lost its tail in an unclean stop
  producer_state loaded(dir.path());
  loaded.load(*lg);
  EXPECT_EQ(loaded.snapshot_offsets(), (std::vector<int64_t>{1}));
  expect_same_state(s, loaded);
}

TEST(producer_state_log, truncate_and_reload_forgets_truncated_batches) {
  temp_dir dir;
  auto lg = open_log(dir.path());
  producer_state s(dir.path());
  for (int i = 0; i < 3; ++i) log_append(*lg, &s, kPid, 0, i, 1);
  s.take_snapshot(lg->log_end_offset());  // 3
  for (int i = 3; i < 6; ++i) log_append(*lg, &s, kPid, 0, i, 1);
  s.take_snapshot(lg->log_end_offset());  // 6

  lg->truncate_to(4);
  s.truncate_and_reload(*lg);
  EXPECT_EQ(s.snapshot_offsets(), (std::vector<int64_t>{3}));
  const producer_entry* e = s.find(kPid);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->batches.back().last_seq, 3);
  EXPECT_EQ(s.check(data_batch(kPid, 0, 4, 1, 0), nullptr), sequence_check::ok)
      << "seq 4 was truncated away and may be written again";
}

TEST(producer_state_log, replay_starts_at_log_start_when_retention_passed_the_snapshot) {
  temp_dir dir;
  auto lg = open_log(dir.path());
  producer_state s(dir.path());
  log_append(*lg, &s, kPid, 0, 0, 2);  // offsets 0..1
  s.take_snapshot(lg->log_end_offset());  // 2
  log_append(*lg, &s, kPid + 1, 0, 0, 2);  // 2..3, below the new log start
  log_append(*lg, &s, kPid, 0, 2, 2);      // 4..5
  ASSERT_EQ(lg->delete_records_before(4), 4);

  producer_state loaded(dir.path());
  loaded.load(*lg);
  ASSERT_EQ(entry(loaded, kPid).batches.size(), 2u) << "snapshot + replayed batch at 4";
  EXPECT_EQ(entry(loaded, kPid).batches.back().first_offset, 4);
  EXPECT_EQ(loaded.find(kPid + 1), nullptr) << "its only batch lies below the log start";
}

TEST(producer_state_log, stale_temporary_snapshot_is_ignored_and_removed) {
  temp_dir dir;
  auto lg = open_log(dir.path());
  producer_state s(dir.path());
  log_append(*lg, &s, kPid, 0, 0, 1);
  write_file(dir.path() / "00000000000000000001.snapshot.tmp", {1, 2, 3});
  producer_state loaded(dir.path());
  loaded.load(*lg);
  expect_same_state(s, loaded);
  EXPECT_FALSE(fs::exists(dir.path() / "00000000000000000001.snapshot.tmp"));
}

// ---- transactions ----------------------------------------------------------------------------

using protocol::control_record_type;

// A partition's storage side: a log, its producer state and its aborted-transaction index,
// fed the way the partition does (check, append to the log, apply_batch).
class txn_partition {
 public:
  explicit txn_partition(const fs::path& dir, int64_t segment_bytes = 1073741824)
      : dir_(dir), state_(dir), index_(dir) {
    config_.segment_bytes = segment_bytes;
    reopen();
  }

  // Simulates a restart: a new log, index and producer state loaded from the directory.
  void reopen(bool clean = true) {
    if (lg_ && clean) lg_->close();
    lg_.reset();
    std::string error;
    lg_ = log::open(dir_, config_, -1, &error);
    ASSERT_NE(lg_, nullptr) << error;
    state_ = producer_state(dir_);
    index_ = txn_index(dir_);
    index_.load(*lg_);
    state_.load(*lg_, index_);
  }

  // Appends a data batch of `records` records; returns its base offset.
  int64_t data(int64_t pid, int16_t epoch, int32_t first_seq, int records, bool transactional) {
    std::vector<protocol::record> recs(static_cast<size_t>(records));
    for (auto& r : recs) {
      r.timestamp = 1000;
      r.value = std::vector<uint8_t>{'v'};
    }
    protocol::batch_builder_options o;
    o.producer_id = pid;
    o.producer_epoch = epoch;
    o.base_sequence = first_seq;
    o.transactional = transactional;
    return append(protocol::build_batch(recs, o), nullptr);
  }

  // Appends a COMMIT/ABORT marker; returns what apply_batch reported.
  std::optional<completed_txn> marker(int64_t pid, int16_t epoch, control_record_type type,
                                      int32_t coordinator_epoch = 0) {
    EXPECT_EQ(state_.check_marker(pid, epoch, {type, coordinator_epoch}), marker_check::ok);
    std::optional<completed_txn> done;
    append(protocol::build_txn_marker_batch(pid, epoch, {type, coordinator_epoch}, 1000), &done);
    return done;
  }

  // Appends `bytes` without the leader's checks (a follower's append); returns the base offset.
  int64_t append_unchecked(std::vector<uint8_t> bytes) {
    append_info info;
    EXPECT_EQ(lg_->append_as_leader(bytes, 0, 1000, &info), append_error::none);
    state_.apply_batch(bytes, *lg_, index_);
    return info.first_offset;
  }

  void snapshot() {
    EXPECT_TRUE(index_.flush());
    state_.take_snapshot(lg_->log_end_offset());
  }

  log& lg() { return *lg_; }
  producer_state& state() { return state_; }
  txn_index& index() { return index_; }

 private:
  int64_t append(std::vector<uint8_t> bytes, std::optional<completed_txn>* done) {
    auto h = protocol::parse_batch_header(bytes);
    EXPECT_TRUE(h.has_value());
    EXPECT_EQ(state_.check(*h, nullptr), sequence_check::ok);
    append_info info;
    EXPECT_EQ(lg_->append_as_leader(bytes, 0, 1000, &info), append_error::none);
    auto result = state_.apply_batch(bytes, *lg_, index_);
    if (done != nullptr) *done = result;
    return info.first_offset;
  }

  fs::path dir_;
  log_config config_;
  std::unique_ptr<log> lg_;
  producer_state state_;
  txn_index index_;
};

TEST(producer_state_txn, open_transactions_are_ordered_by_first_offset_and_bound_the_lso) {
  temp_dir dir;
  txn_partition p(dir.path());
  EXPECT_EQ(p.state().first_unstable_offset(), std::nullopt);
  EXPECT_EQ(p.state().last_stable_offset(5, 0), 5);

  EXPECT_EQ(p.data(3, 0, 0, 2, /*transactional=*/true), 0);  // 0..1
  EXPECT_EQ(p.data(9, 0, 0, 1, /*transactional=*/false), 2);
  EXPECT_EQ(p.data(1, 0, 0, 1, /*transactional=*/true), 3);
  EXPECT_EQ(p.data(3, 0, 2, 1, /*transactional=*/true), 4) << "same transaction, still from 0";
  EXPECT_EQ(p.state().ongoing_txns(), (std::map<int64_t, int64_t>{{0, 3}, {3, 1}}));
  EXPECT_EQ(entry(p.state(), 3).current_txn_first_offset, 0);
  EXPECT_EQ(p.state().first_unstable_offset(), 0);
  EXPECT_EQ(p.state().last_stable_offset(5, 0), 0);
  EXPECT_EQ(p.state().last_stable_offset(0, 0), 0) << "never above the high watermark";
}

TEST(producer_state_txn, commit_ends_the_transaction_without_an_index_entry) {
  temp_dir dir;
  txn_partition p(dir.path());
  p.data(3, 0, 0, 2, true);                                    // 0..1
  p.data(1, 0, 0, 1, true);                                    // 2
  auto done = p.marker(3, 0, control_record_type::commit, 7);  // 3
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(*done, (completed_txn{3, 0, 3, false, /*last_stable_offset=*/2}));
  EXPECT_EQ(p.state().ongoing_txns(), (std::map<int64_t, int64_t>{{2, 1}}));
  EXPECT_EQ(entry(p.state(), 3).current_txn_first_offset, -1);
  EXPECT_EQ(entry(p.state(), 3).coordinator_epoch, 7);
  EXPECT_TRUE(p.index().entries().empty());
}

TEST(producer_state_txn, abort_appends_producer_first_offset_marker_and_lso_to_the_index) {
  temp_dir dir;
  txn_partition p(dir.path());
  p.data(3, 0, 0, 2, true);                                  // 0..1
  p.data(1, 0, 0, 1, true);                                  // 2
  auto first = p.marker(3, 0, control_record_type::abort);   // 3; producer 1 still open from 2
  auto second = p.marker(1, 0, control_record_type::abort);  // 4; nothing open after it
  ASSERT_TRUE(first && second);
  EXPECT_EQ(p.index().entries(), (std::vector<aborted_txn>{{3, 0, 3, 2}, {1, 2, 4, 5}}));
  EXPECT_EQ(p.index().collect_aborted(0, 5), (std::vector<aborted_producer>{{3, 0}, {1, 2}}));
  EXPECT_TRUE(p.state().ongoing_txns().empty());
}

TEST(producer_state_txn,
     completed_transaction_bounds_the_lso_until_the_high_watermark_passes_its_marker) {
  temp_dir dir;
  txn_partition p(dir.path());
  p.data(3, 0, 0, 2, true);                     // 0..1
  p.marker(3, 0, control_record_type::commit);  // 2
  EXPECT_TRUE(p.state().ongoing_txns().empty());
  EXPECT_EQ(p.state().last_stable_offset(2, 0), 0) << "the marker is not replicated yet";
  EXPECT_EQ(p.state().last_stable_offset(3, 0), 3);
  EXPECT_EQ(p.state().first_unstable_offset(), 0);
  p.state().on_high_watermark(2);
  EXPECT_EQ(p.state().first_unstable_offset(), 0);
  p.state().on_high_watermark(3);
  EXPECT_EQ(p.state().first_unstable_offset(), std::nullopt);
  EXPECT_EQ(p.state().last_stable_offset(3, 0), 3);
}

TEST(producer_state_txn, marker_for_a_producer_without_open_transaction_completes_nothing) {
  temp_dir dir;
  txn_partition p(dir.path());
  p.data(3, 0, 0, 1, /*transactional=*/false);
  EXPECT_EQ(p.marker(3, 0, control_record_type::abort, 4), std::nullopt);
  EXPECT_EQ(p.marker(8, 2, control_record_type::abort, 4), std::nullopt) << "unknown producer";
  EXPECT_TRUE(p.index().entries().empty());
  EXPECT_EQ(entry(p.state(), 3).coordinator_epoch, 4);
  EXPECT_EQ(entry(p.state(), 8).epoch, 2);
  EXPECT_EQ(p.state().first_unstable_offset(), std::nullopt);
}

TEST(producer_state_txn, marker_checks_fence_old_producer_and_coordinator_epochs) {
  temp_dir dir;
  txn_partition p(dir.path());
  p.data(3, 2, 0, 1, true);
  p.marker(3, 2, control_record_type::commit, /*coordinator_epoch=*/5);
  const protocol::txn_marker commit_at_5{control_record_type::commit, 5};
  EXPECT_EQ(p.state().check_marker(3, 1, commit_at_5), marker_check::invalid_producer_epoch);
  EXPECT_EQ(p.state().check_marker(3, 2, {control_record_type::abort, 4}),
            marker_check::coordinator_fenced);
  EXPECT_EQ(p.state().check_marker(3, 2, commit_at_5), marker_check::ok);
  EXPECT_EQ(p.state().check_marker(3, 3, {control_record_type::abort, 6}), marker_check::ok)
      << "a marker may carry a newer producer epoch";
  EXPECT_EQ(p.state().check_marker(99, 0, commit_at_5), marker_check::ok) << "unknown producer";
}

TEST(producer_state_txn, marker_with_a_newer_epoch_bumps_the_epoch_and_restarts_sequences) {
  temp_dir dir;
  txn_partition p(dir.path());
  p.data(3, 0, 0, 3, true);
  p.marker(3, 1, control_record_type::abort);
  EXPECT_EQ(entry(p.state(), 3).epoch, 1);
  EXPECT_TRUE(entry(p.state(), 3).batches.empty());
  EXPECT_EQ(p.state().check(data_batch(3, 1, 3, 1, 0), nullptr), sequence_check::out_of_order);
  EXPECT_EQ(p.state().check(data_batch(3, 1, 0, 1, 0), nullptr), sequence_check::ok);
}

TEST(producer_state_txn, update_keeps_the_open_transaction_set_in_step) {
  // Callers of the header-only update() (no marker type) still keep the LSO right.
  producer_state s("/nonexistent");
  auto t = data_batch(5, 0, 0, 1, 10);
  t.attributes = 0x10;
  s.update(t);
  EXPECT_EQ(s.ongoing_txns(), (std::map<int64_t, int64_t>{{10, 5}}));
  s.update(control_batch(5, 0, 11));
  EXPECT_TRUE(s.ongoing_txns().empty());
  EXPECT_EQ(s.last_stable_offset(20, 0), 20);
}

TEST(producer_state_txn, apply_batches_handles_every_batch_of_a_follower_append) {
  temp_dir leader_dir, follower_dir;
  txn_partition leader(leader_dir.path());
  leader.data(3, 0, 0, 2, true);                    // 0..1
  leader.data(4, 0, 0, 1, true);                    // 2
  leader.marker(3, 0, control_record_type::abort);  // 3
  leader.data(-1, -1, -1, 1, false);                // 4
  read_info r;
  ASSERT_TRUE(leader.lg().read(0, 1 << 20, leader.lg().log_end_offset(), true, &r));
  std::vector<uint8_t> bytes(r.size_bytes);
  size_t pos = 0;
  for (const auto& region : r.regions) {
    ASSERT_EQ(::pread(region.file->fd(), bytes.data() + pos, region.size,
                      static_cast<off_t>(region.position)),
              static_cast<ssize_t>(region.size));
    pos += region.size;
  }

  txn_partition follower(follower_dir.path());
  ASSERT_EQ(follower.lg().append_as_follower(bytes, nullptr), append_error::none);
  auto done = follower.state().apply_batches(bytes, follower.lg(), follower.index());
  EXPECT_EQ(done, (std::vector<completed_txn>{{3, 0, 3, true, 2}}));
  EXPECT_EQ(follower.index().entries(), leader.index().entries());
  EXPECT_EQ(follower.state().ongoing_txns(), leader.state().ongoing_txns());
  expect_same_state(leader.state(), follower.state());
}

TEST(producer_state_txn, snapshot_round_trip_keeps_open_transaction_and_coordinator_epoch) {
  temp_dir dir;
  txn_partition p(dir.path());
  p.data(3, 0, 0, 2, true);                        // 0..1
  p.marker(3, 0, control_record_type::commit, 9);  // 2
  p.data(3, 0, 2, 1, true);                        // 3: a new transaction
  p.data(4, 1, 0, 1, true);                        // 4
  p.snapshot();                                    // at 5
  ASSERT_EQ(p.state().snapshot_offsets(), (std::vector<int64_t>{5}));

  producer_state loaded(dir.path());
  txn_index index(dir.path());
  index.load(p.lg());
  loaded.load(p.lg(), index);
  expect_same_state(p.state(), loaded);
  EXPECT_EQ(entry(loaded, 3).coordinator_epoch, 9);
  EXPECT_EQ(entry(loaded, 3).current_txn_first_offset, 3);
  EXPECT_EQ(loaded.ongoing_txns(), (std::map<int64_t, int64_t>{{3, 3}, {4, 4}}));
  EXPECT_EQ(loaded.last_stable_offset(5, 0), 3);
}

TEST(producer_state_txn,
     restart_reproduces_open_transactions_and_aborted_index_from_snapshot_and_log) {
  temp_dir dir;
  txn_partition p(dir.path(), /*segment_bytes=*/1);  // one batch per segment
  p.data(3, 0, 0, 2, true);                          // 0..1
  p.data(4, 0, 0, 1, true);                          // 2
  p.marker(3, 0, control_record_type::abort);        // 3
  p.snapshot();                                      // at 4: producer 4 open
  p.data(5, 0, 0, 1, true);                          // 4
  p.marker(4, 0, control_record_type::abort, 1);
  p.data(3, 0, 2, 1, true);
  p.marker(5, 0, control_record_type::commit, 1);
  const auto entries = p.index().entries();
  const auto ongoing = p.state().ongoing_txns();
  ASSERT_EQ(entries.size(), 2u);
  ASSERT_EQ(ongoing.size(), 1u);

  p.reopen(/*clean=*/true);
  EXPECT_EQ(p.index().entries(), entries);
  EXPECT_EQ(p.state().ongoing_txns(), ongoing);

  // Index files lost past the snapshot (never flushed before a crash) are rebuilt.
  for (int64_t base : p.index().file_bases()) {
    if (base >= 4) fs::remove(p.index().file_path(base));
  }
  p.reopen(/*clean=*/false);
  EXPECT_EQ(p.index().entries(), entries);
  EXPECT_EQ(p.state().ongoing_txns(), ongoing);

  // After the restart the open transaction ends like any other.
  const int64_t first = ongoing.begin()->first;
  auto done = p.marker(3, 0, control_record_type::abort, 1);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->first_offset, first);
  EXPECT_EQ(p.index().entries().back(),
            (aborted_txn{3, first, done->last_offset, done->last_offset + 1}));
}

TEST(producer_state_txn, damaged_index_below_the_snapshot_is_rebuilt_from_an_older_starting_point) {
  temp_dir dir;
  txn_partition p(dir.path());
  p.data(3, 0, 0, 2, true);                    // 0..1
  p.marker(3, 0, control_record_type::abort);  // 2
  p.data(4, 0, 0, 1, true);                    // 3
  p.marker(4, 0, control_record_type::abort);  // 4
  p.snapshot();                                // at 5: covers both aborts
  const auto entries = p.index().entries();
  ASSERT_EQ(entries.size(), 2u);

  // A torn second entry: its marker (4) lies below the snapshot, so the snapshot cannot be
  // the starting point of the rebuild.
  const auto path = p.index().file_path(0);
  fs::resize_file(path, kTxnIndexEntrySize + 10);
  p.reopen(/*clean=*/false);
  EXPECT_EQ(p.index().entries(), entries);
  EXPECT_EQ(p.index().first_damaged_offset(), INT64_MAX);
  EXPECT_EQ(p.state().snapshot_offsets(), (std::vector<int64_t>{5}))
      << "the snapshot itself is kept";
}

TEST(producer_state_txn, truncating_below_a_marker_reopens_the_transaction_and_drops_its_entry) {
  temp_dir dir;
  txn_partition p(dir.path());
  p.data(3, 0, 0, 2, true);                    // 0..1
  p.marker(3, 0, control_record_type::abort);  // 2
  p.data(4, 0, 0, 1, true);                    // 3
  p.marker(4, 0, control_record_type::abort);  // 4
  p.snapshot();                                // at 5
  ASSERT_EQ(p.index().entries().size(), 2u);

  p.lg().truncate_to(4);
  p.state().truncate_and_reload(p.lg(), p.index());
  EXPECT_EQ(p.index().entries(), (std::vector<aborted_txn>{{3, 0, 2, 3}}));
  EXPECT_EQ(p.state().ongoing_txns(), (std::map<int64_t, int64_t>{{3, 4}}));
  EXPECT_EQ(p.state().last_stable_offset(4, 0), 3);
  EXPECT_EQ(p.state().snapshot_offsets(), std::vector<int64_t>{}) << "the snapshot at 5 is gone";

  // The coordinator writes the marker again; the entry comes back the same.
  auto done = p.marker(4, 0, control_record_type::abort);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(p.index().entries(), (std::vector<aborted_txn>{{3, 0, 2, 3}, {4, 3, 4, 5}}));
}

TEST(producer_state_txn, expiry_keeps_producers_with_open_transactions_in_the_lso) {
  temp_dir dir;
  txn_partition p(dir.path());
  p.data(3, 0, 0, 1, true);
  p.data(4, 0, 0, 1, false);
  p.state().expire(/*now_ms=*/1'000'000, /*expiration_ms=*/1000);
  EXPECT_EQ(p.state().find(4), nullptr);
  EXPECT_NE(p.state().find(3), nullptr);
  EXPECT_EQ(p.state().ongoing_txns(), (std::map<int64_t, int64_t>{{0, 3}}));
}

TEST(producer_state_txn,
     only_a_transactional_batch_that_would_open_a_transaction_needs_verification) {
  temp_dir dir;
  txn_partition p(dir.path());
  auto txn = data_batch(3, 0, 0, 1, 0);
  txn.attributes = 0x10;
  EXPECT_TRUE(p.state().needs_verification(txn)) << "unknown producer";
  EXPECT_FALSE(p.state().needs_verification(data_batch(3, 0, 0, 1, 0))) << "not transactional";
  EXPECT_FALSE(p.state().needs_verification(control_batch(3, 0, 0)));
  p.data(3, 0, 0, 1, /*transactional=*/true);
  EXPECT_FALSE(p.state().needs_verification(txn)) << "its transaction is open here";
  EXPECT_TRUE(p.state().verification_ok(txn, 0));
  p.marker(3, 0, control_record_type::commit);
  EXPECT_TRUE(p.state().needs_verification(txn)) << "the next batch opens a new transaction";
}

TEST(producer_state_txn, verification_guard_is_voided_by_a_marker_that_arrives_first) {
  // KAFKA-14402: the coordinator confirmed the partition, then the transaction was aborted
  // before the delayed batch reached the log; the batch must not open a new transaction.
  temp_dir dir;
  txn_partition p(dir.path());
  auto txn = data_batch(3, 0, 0, 1, 0);
  txn.attributes = 0x10;
  const uint64_t guard = p.state().start_verification(3);
  EXPECT_NE(guard, 0u);
  EXPECT_TRUE(p.state().verification_ok(txn, guard));
  EXPECT_FALSE(p.state().verification_ok(txn, 0)) << "no guard presented";
  EXPECT_FALSE(p.state().verification_ok(txn, guard + 1)) << "someone else's guard";
  p.marker(3, 0, control_record_type::abort);
  EXPECT_FALSE(p.state().verification_ok(txn, guard));
}

TEST(producer_state_txn,
     newer_verification_replaces_the_older_guard_and_opening_the_txn_clears_it) {
  temp_dir dir;
  txn_partition p(dir.path());
  auto txn = data_batch(3, 0, 0, 1, 0);
  txn.attributes = 0x10;
  const uint64_t first = p.state().start_verification(3);
  const uint64_t second = p.state().start_verification(3);
  EXPECT_FALSE(p.state().verification_ok(txn, first));
  EXPECT_TRUE(p.state().verification_ok(txn, second));
  p.data(3, 0, 0, 1, /*transactional=*/true);  // opens the transaction
  p.marker(3, 0, control_record_type::commit);
  EXPECT_FALSE(p.state().verification_ok(txn, second)) << "a guard serves one transaction";
}

TEST(producer_state_txn, epoch_bump_and_reload_void_verification_guards) {
  temp_dir dir;
  txn_partition p(dir.path());
  p.data(3, 0, 0, 1, /*transactional=*/false);
  auto txn = data_batch(3, 1, 0, 1, 0);
  txn.attributes = 0x10;
  uint64_t guard = p.state().start_verification(3);
  p.data(3, 1, 0, 1, /*transactional=*/false);  // epoch 0 → 1
  EXPECT_FALSE(p.state().verification_ok(txn, guard));
  guard = p.state().start_verification(3);
  p.state().truncate_and_reload(p.lg(), p.index());
  EXPECT_FALSE(p.state().verification_ok(txn, guard));
}

TEST(producer_state_txn, fetch_lists_only_aborted_transactions_overlapping_the_returned_batches) {
  temp_dir dir;
  txn_partition p(dir.path());
  p.data(3, 0, 0, 2, true);                    // 0..1
  p.data(4, 0, 0, 1, false);                   // 2
  p.data(5, 0, 0, 1, true);                    // 3
  p.marker(3, 0, control_record_type::abort);  // 4
  p.marker(5, 0, control_record_type::abort);  // 5
  const int64_t lso = p.state().last_stable_offset(p.lg().log_end_offset(), 0);
  ASSERT_EQ(lso, 6);
  auto fetch = [&](int64_t offset, uint32_t max_bytes) {
    read_info r;
    EXPECT_TRUE(p.lg().read(offset, max_bytes, lso, /*min_one_batch=*/true, &r));
    return aborted_for_fetch(p.lg(), p.index(), offset, r, lso);
  };
  using v = std::vector<aborted_producer>;
  EXPECT_EQ(fetch(0, 1), (v{{3, 0}})) << "only batch 0..1 returned; producer 5 starts at 3";
  EXPECT_EQ(fetch(0, 1 << 20), (v{{3, 0}, {5, 3}}));
  EXPECT_EQ(fetch(2, 1), (v{{3, 0}})) << "producer 3's transaction (0..4) spans batch 2";
  EXPECT_EQ(fetch(5, 1 << 20), (v{{5, 3}})) << "the marker alone";
  EXPECT_EQ(fetch(6, 1 << 20), v{}) << "nothing returned";
}

TEST(producer_state_txn,
     restarting_the_log_at_a_new_offset_empties_the_index_and_open_transactions) {
  temp_dir dir;
  txn_partition p(dir.path(), /*segment_bytes=*/1);
  p.data(3, 0, 0, 2, true);                    // 0..1
  p.marker(3, 0, control_record_type::abort);  // 2
  p.data(4, 0, 0, 1, true);                    // 3
  p.marker(4, 0, control_record_type::abort);  // 4
  p.data(5, 0, 0, 1, true);                    // 5
  p.snapshot();
  ASSERT_EQ(p.index().entries().size(), 2u);

  p.state().take_snapshot(3);  // an old snapshot below the new start must not be loaded
  p.lg().truncate_fully_and_start_at(4);
  p.state().truncate_fully(p.index());
  EXPECT_TRUE(p.state().snapshot_offsets().empty());
  EXPECT_TRUE(p.state().producers().empty());
  EXPECT_TRUE(p.index().entries().empty());
  EXPECT_TRUE(p.index().file_bases().empty());
  EXPECT_TRUE(p.state().ongoing_txns().empty());
  for (const auto& ent : fs::directory_iterator(dir.path())) {
    EXPECT_FALSE(ent.path().string().ends_with(".txnindex")) << ent.path();
  }
  p.reopen();
  EXPECT_TRUE(p.state().ongoing_txns().empty()) << "nothing old comes back after a restart";
  EXPECT_EQ(p.state().last_stable_offset(4, 4), 4);
}

TEST(producer_state_txn, lso_is_not_held_below_the_log_start) {
  temp_dir dir;
  txn_partition p(dir.path(), /*segment_bytes=*/1);
  p.data(3, 0, 0, 2, true);   // 0..1, open
  p.data(4, 0, 0, 1, false);  // 2
  p.data(4, 0, 1, 1, false);  // 3
  ASSERT_EQ(p.lg().delete_records_before(2), 2);
  EXPECT_EQ(p.state().last_stable_offset(4, p.lg().log_start_offset()), 2);
  EXPECT_EQ(p.state().last_stable_offset(4, 0), 0);
}

// Random histories of transactional writes, markers, snapshots, restarts (clean, and unclean
// with index entries after the last snapshot lost) and truncations, checked after every step
// against a model computed from the surviving log alone.
TEST(producer_state_txn, random_histories_match_a_model_of_the_log) {
  enum class op_kind { txn_data, plain_data, commit, abort };
  struct op {
    int64_t offset;
    int64_t pid;
    op_kind kind;
  };
  struct model {
    std::vector<aborted_txn> entries;
    std::map<int64_t, int64_t> ongoing;
  };
  auto compute = [](const std::vector<op>& ops) {
    model m;
    std::map<int64_t, int64_t> open;  // pid → first offset
    for (const auto& o : ops) {
      if (o.kind == op_kind::txn_data && !open.count(o.pid)) open[o.pid] = o.offset;
      if (o.kind != op_kind::commit && o.kind != op_kind::abort) continue;
      auto it = open.find(o.pid);
      if (it == open.end()) continue;
      const int64_t first = it->second;
      open.erase(it);
      if (o.kind == op_kind::abort) {
        int64_t lso = o.offset + 1;
        for (const auto& [pid, f] : open) lso = std::min(lso, f);
        m.entries.push_back({o.pid, first, o.offset, lso});
      }
    }
    for (const auto& [pid, f] : open) m.ongoing[f] = pid;
    return m;
  };

  for (uint32_t seed = 1; seed <= 4; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
    temp_dir dir;
    txn_partition p(dir.path(), /*segment_bytes=*/400);
    std::vector<op> ops;
    std::map<int64_t, int32_t> next_seq;
    for (int step = 0; step < 150; ++step) {
      const int64_t pid = 100 + pick(3);
      const int what = pick(20);
      if (what < 8) {
        protocol::record r;
        r.timestamp = 1000;
        r.value = std::vector<uint8_t>{'v'};
        protocol::batch_builder_options o;
        o.producer_id = pid;
        o.producer_epoch = 0;
        o.base_sequence = next_seq[pid]++;
        o.transactional = what < 6;
        const int64_t at = p.append_unchecked(protocol::build_batch({r}, o));
        ops.push_back({at, pid, what < 6 ? op_kind::txn_data : op_kind::plain_data});
      } else if (what < 14) {
        const auto type = what < 11 ? control_record_type::abort : control_record_type::commit;
        const int64_t at =
            p.append_unchecked(protocol::build_txn_marker_batch(pid, 0, {type, 0}, 1000));
        ops.push_back(
            {at, pid, type == control_record_type::abort ? op_kind::abort : op_kind::commit});
      } else if (what < 16) {
        p.snapshot();
      } else if (what == 16) {
        p.reopen(/*clean=*/true);
      } else if (what == 17) {
        // Unclean stop: index entries written after the newest snapshot were never flushed.
        const auto snaps = p.state().snapshot_offsets();
        const int64_t durable = snaps.empty() ? 0 : snaps.back();
        for (int64_t base : p.index().file_bases()) {
          const auto path = p.index().file_path(base);
          auto bytes = read_file(path);
          size_t keep = 0;
          while (keep + kTxnIndexEntrySize <= bytes.size()) {
            aborted_txn e;
            ASSERT_TRUE(decode_txn_index_entry(bytes.data() + keep, &e));
            if (e.last_offset >= durable) break;
            keep += kTxnIndexEntrySize;
          }
          bytes.resize(keep);
          write_file(path, bytes);
        }
        p.reopen(/*clean=*/false);
      } else {
        const int64_t leo = p.lg().log_end_offset();
        const int64_t to = leo - pick(6);
        if (to >= 0 && to < leo) {
          p.lg().truncate_to(to);
          p.state().truncate_and_reload(p.lg(), p.index());
          std::erase_if(ops, [to](const op& o) { return o.offset >= to; });
        }
      }
      const model m = compute(ops);
      ASSERT_EQ(p.index().entries(), m.entries) << "step " << step;
      ASSERT_EQ(p.state().ongoing_txns(), m.ongoing) << "step " << step;
    }
    EXPECT_GT(p.lg().segment_count(), 3u) << "the history spans several segments";
  }
}

}  // namespace
}  // namespace varve::storage
