// read_partition_records: the replay the coordinators load their state with — data records
// and transaction markers in offset order, nothing at or past the high watermark, and a
// batch that cannot be decoded reported with its offset.
#include "replication/partition_reader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/test_util.h"
#include "protocol/record_batch.h"

namespace varve::replication {
namespace {
using protocol::error_code;
using test_util::temp_dir;

constexpr int64_t kNow = 1700000000000;

// Records with keys k<first>.. and values v<first>..; transactional for producer `pid` >= 0.
std::vector<uint8_t> batch(int first, int n, int64_t pid = -1, int32_t seq = 0) {
  std::vector<protocol::record> records;
  for (int i = first; i < first + n; ++i) {
    protocol::record r;
    r.timestamp = kNow;
    const std::string k = "k" + std::to_string(i);
    const std::string v = "v" + std::to_string(i);
    r.key = std::vector<uint8_t>(k.begin(), k.end());
    r.value = std::vector<uint8_t>(v.begin(), v.end());
    records.push_back(std::move(r));
  }
  protocol::batch_builder_options o;
  if (pid >= 0) {
    o.producer_id = pid;
    o.producer_epoch = 0;
    o.base_sequence = seq;
    o.transactional = true;
  }
  return protocol::build_batch(records, o);
}

cluster::partition_state state(std::vector<int32_t> replicas) {
  cluster::partition_state ps;
  ps.partition = 0;
  ps.leader = 0;
  ps.leader_epoch = 1;
  ps.partition_epoch = 1;
  ps.replicas = replicas;
  ps.isr = replicas;
  return ps;
}

// What the reader delivered, one line per callback: "r <offset> <value> <producer id>" for a
// record, "m <producer id> commit|abort" for a marker.
struct replay {
  std::vector<std::string> events;
  int64_t next_offset = -1;
  std::string error;
  bool ok = false;

  void run(partition& p, bool with_markers = true) {
    record_fn on_record = [this](const protocol::record& r,
                                 const protocol::record_batch_header& h) {
      events.push_back("r " + std::to_string(r.offset) + " " +
                       std::string(r.value->begin(), r.value->end()) + " " +
                       std::to_string(h.producer_id));
    };
    marker_fn on_marker = [this](int64_t pid, bool commit) {
      events.push_back("m " + std::to_string(pid) + (commit ? " commit" : " abort"));
    };
    ok = read_partition_records(p, on_record, with_markers ? on_marker : nullptr, &next_offset,
                                &error);
  }
};

class partition_reader_test : public ::testing::Test {
 protected:
  void open(std::vector<int32_t> replicas) {
    std::string error;
    part_ = partition::open({"t", 0}, dir_.path() / "t-0", {}, 0, -1, 0, &error);
    ASSERT_TRUE(part_) << error;
    part_->apply_state(state(std::move(replicas)), kNow);
  }
  int64_t append(std::vector<uint8_t> b) {
    auto out = part_->append(std::span<uint8_t>(b), 1, kNow);
    EXPECT_EQ(out.error, error_code::none) << out.error_message;
    return out.last_offset;
  }

  temp_dir dir_;
  std::unique_ptr<partition> part_;
};

TEST_F(partition_reader_test, replays_records_and_markers_in_offset_order) {
  open({0});
  append(batch(0, 2));     // 0-1
  append(batch(2, 2, 7));  // 2-3, producer 7
  append(batch(4, 1, 8));  // 4, producer 8
  // 5: producer 7 commits; 6: a plain record; 7: producer 8 aborts.
  ASSERT_EQ(part_->append_txn_marker(7, 0, true, 0, kNow).error, error_code::none);
  append(batch(6, 1));
  ASSERT_EQ(part_->append_txn_marker(8, 0, false, 0, kNow).error, error_code::none);
  ASSERT_EQ(part_->high_watermark(), 8);

  replay r;
  r.run(*part_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.events,
            (std::vector<std::string>{"r 0 v0 -1", "r 1 v1 -1", "r 2 v2 7", "r 3 v3 7", "r 4 v4 8",
                                      "m 7 commit", "r 6 v6 -1", "m 8 abort"}));
  EXPECT_EQ(r.next_offset, 8);
}

TEST_F(partition_reader_test, without_a_marker_callback_markers_are_skipped) {
  open({0});
  append(batch(0, 1, 7));
  ASSERT_EQ(part_->append_txn_marker(7, 0, true, 0, kNow).error, error_code::none);
  append(batch(2, 1));

  replay r;
  r.run(*part_, /*with_markers=*/false);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.events, (std::vector<std::string>{"r 0 v0 7", "r 2 v2 -1"}));
  EXPECT_EQ(r.next_offset, 3);
}

TEST_F(partition_reader_test, nothing_at_or_past_the_high_watermark_is_delivered) {
  open({0, 1});
  append(batch(0, 3));  // 0-2
  // The follower holds offsets 0-2: HW = 3.
  ASSERT_EQ(part_->read_for_follower(1, 3, 1 << 20, 1, kNow).error, error_code::none);
  ASSERT_EQ(part_->high_watermark(), 3);
  append(batch(3, 2));  // 3-4, not replicated yet
  ASSERT_EQ(part_->log_end_offset(), 5);

  replay r;
  r.run(*part_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.events, (std::vector<std::string>{"r 0 v0 -1", "r 1 v1 -1", "r 2 v2 -1"}));
  EXPECT_EQ(r.next_offset, 3);
}

TEST_F(partition_reader_test, empty_partition_delivers_nothing_and_ends_at_the_log_start) {
  open({0});
  replay r;
  r.run(*part_);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(r.next_offset, 0);
}

TEST_F(partition_reader_test, undecodable_batch_fails_with_its_offset_after_the_batches_before_it) {
  open({0});
  const std::vector<uint8_t> first = batch(0, 2);
  append(first);        // 0-1
  append(batch(2, 2));  // 2-3
  // Corrupt the second batch's first record length (the byte after its 61-byte header):
  // the record would run past the end of the batch.
  const int fd = ::open((dir_.path() / "t-0" / "00000000000000000000.log").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const uint8_t huge = 0x7e;  // zigzag varint 63
  const off_t at = static_cast<off_t>(first.size() + protocol::kRecordBatchHeaderSize);
  ASSERT_EQ(::pwrite(fd, &huge, 1, at), 1);
  ::close(fd);

  replay r;
  r.run(*part_);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "undecodable batch at offset 2");
  EXPECT_EQ(r.events, (std::vector<std::string>{"r 0 v0 -1", "r 1 v1 -1"}));
}

}  // namespace
}  // namespace varve::replication
