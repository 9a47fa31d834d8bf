// The replication state of one partition (DESIGN.md §4): the high watermark over the ISR,
// acks=all completion, ISR shrink / expand proposals, follower appends and leader-epoch
// truncation (KIP-101) — driven directly, with real logs on disk.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/test_util.h"
#include "protocol/record_batch.h"
#include "replication/partition.h"

namespace varve::replication {
namespace {
namespace fs = std::filesystem;
using protocol::error_code;

using test_util::temp_dir;

constexpr int64_t kNow = 1700000000000;

std::vector<uint8_t> batch(int n) {
  std::vector<protocol::record> records;
  for (int i = 0; i < n; ++i) {
    protocol::record r;
    r.timestamp = kNow;
    r.value = std::vector<uint8_t>{static_cast<uint8_t>('a' + i % 26)};
    records.push_back(std::move(r));
  }
  return protocol::build_batch(records, protocol::batch_builder_options{});
}

cluster::partition_state state(int32_t leader, int32_t epoch, std::vector<int32_t> replicas,
                               std::vector<int32_t> isr, int32_t partition_epoch = 0) {
  cluster::partition_state ps;
  ps.partition = 0;
  ps.leader = leader;
  ps.leader_epoch = epoch;
  ps.partition_epoch = partition_epoch;
  ps.replicas = std::move(replicas);
  ps.isr = std::move(isr);
  return ps;
}

std::unique_ptr<partition> open(const fs::path& dir, int32_t node, int32_t min_isr = 1) {
  partition_config cfg;
  cfg.min_insync_replicas = min_isr;
  cfg.replica_lag_time_max_ms = 1000;
  std::string error;
  auto p = partition::open({"t", 0}, dir, cfg, node, -1, 0, &error);
  EXPECT_TRUE(p) << error;
  return p;
}

// The bytes of a fetch's file regions, as the wire would carry them.
std::vector<uint8_t> bytes_of(const fetch_outcome& f) {
  std::vector<uint8_t> out;
  for (const auto& region : f.data.regions) {
    const size_t at = out.size();
    out.resize(at + region.size);
    EXPECT_EQ(::pread(region.file->fd(), out.data() + at, region.size,
                      static_cast<off_t>(region.position)),
              static_cast<ssize_t>(region.size));
  }
  return out;
}

int64_t append(partition& p, int n, int16_t acks = -1) {
  auto b = batch(n);
  auto out = p.append(std::span<uint8_t>(b), acks, kNow);
  EXPECT_EQ(out.error, error_code::none) << out.error_message;
  return out.last_offset;
}

TEST(partition_replication, high_watermark_is_the_minimum_log_end_offset_of_the_isr) {
  temp_dir d;
  auto p = open(d.path(), 0);
  p->apply_state(state(0, 1, {0, 1, 2}, {0, 1, 2}), kNow);
  const int64_t last = append(*p, 10);
  EXPECT_EQ(last, 9);
  // Follower LEOs are unknown in a new epoch: nothing is committed yet.
  EXPECT_EQ(p->high_watermark(), 0);
  bool done = false;
  EXPECT_EQ(p->acks_all_status(last + 1, 1, &done), error_code::none);
  EXPECT_FALSE(done);

  // Follower 1 fetched everything, follower 2 only the first 4: HW = 4.
  EXPECT_EQ(p->read_for_follower(1, 10, 1 << 20, 1, kNow).error, error_code::none);
  EXPECT_EQ(p->high_watermark(), 0);  // follower 2 still unknown
  EXPECT_EQ(p->read_for_follower(2, 4, 1 << 20, 1, kNow).error, error_code::none);
  EXPECT_EQ(p->high_watermark(), 4);
  EXPECT_FALSE((p->acks_all_status(last + 1, 1, &done), done));
  // A consumer sees only below the HW.
  auto consumer = p->read(0, 1 << 20, true, isolation::read_uncommitted, -1);
  EXPECT_EQ(consumer.high_watermark, 4);

  EXPECT_EQ(p->read_for_follower(2, 10, 1 << 20, 1, kNow).error, error_code::none);
  EXPECT_EQ(p->high_watermark(), 10);
  EXPECT_EQ(p->acks_all_status(last + 1, 1, &done), error_code::none);
  EXPECT_TRUE(done);
}

TEST(partition_replication, acks_all_below_min_isr_fails_before_and_after_the_append) {
  temp_dir d;
  auto p = open(d.path(), 0, /*min_isr=*/2);
  p->apply_state(state(0, 1, {0, 1}, {0}), kNow);
  auto b = batch(1);
  auto out = p->append(std::span<uint8_t>(b), -1, kNow);
  EXPECT_EQ(out.error, error_code::not_enough_replicas);
  // acks=1 is unaffected.
  b = batch(1);
  EXPECT_EQ(p->append(std::span<uint8_t>(b), 1, kNow).error, error_code::none);

  // ISR {0,1} at append time, then the controller shrinks it to {0}: the write reaches the
  // HW but the ISR is below min.insync.replicas.
  p->apply_state(state(0, 1, {0, 1}, {0, 1}, 1), kNow);
  p->read_for_follower(1, 1, 1 << 20, 1, kNow);
  const int64_t last = append(*p, 1);
  p->read_for_follower(1, last + 1, 1 << 20, 1, kNow);
  p->apply_state(state(0, 1, {0, 1}, {0}, 2), kNow);
  bool done = false;
  EXPECT_EQ(p->acks_all_status(last + 1, 1, &done), error_code::not_enough_replicas_after_append);
  EXPECT_TRUE(done);
}

TEST(partition_replication, losing_leadership_ends_an_acks_all_wait_with_not_leader) {
  temp_dir d;
  auto p = open(d.path(), 0);
  p->apply_state(state(0, 1, {0, 1}, {0, 1}), kNow);
  const int64_t last = append(*p, 3);
  p->apply_state(state(1, 2, {0, 1}, {0, 1}), kNow);  // broker 1 leads now
  bool done = false;
  EXPECT_EQ(p->acks_all_status(last + 1, 1, &done), error_code::not_leader_or_follower);
  EXPECT_TRUE(done);
  // A produce to a follower is refused.
  auto b = batch(1);
  EXPECT_EQ(p->append(std::span<uint8_t>(b), 1, kNow).error, error_code::not_leader_or_follower);
}

TEST(partition_replication, a_same_leader_epoch_bump_keeps_waiting_writes_alive) {
  temp_dir d;
  auto p = open(d.path(), 0);
  p->apply_state(state(0, 1, {0, 1, 2}, {0, 1, 2}), kNow);
  const int64_t last = append(*p, 3);
  // The controller drops dead follower 2 from the ISR with a new epoch; 0 still leads.
  p->apply_state(state(0, 2, {0, 1, 2}, {0, 1}), kNow);
  p->read_for_follower(1, last + 1, 1 << 20, 2, kNow);
  bool done = false;
  EXPECT_EQ(p->acks_all_status(last + 1, 1, &done), error_code::none);
  EXPECT_TRUE(done);
}

TEST(partition_replication, lagging_followers_are_proposed_for_removal_and_caught_up_ones_for_return) {
  temp_dir d;
  auto p = open(d.path(), 0);
  std::vector<isr_proposal> proposals;
  p->set_isr_change_sink([&](const isr_proposal& x) { proposals.push_back(x); });
  p->apply_state(state(0, 1, {0, 1, 2}, {0, 1, 2}), kNow);
  append(*p, 5);
  p->read_for_follower(1, 5, 1 << 20, 1, kNow + 500);  // 1 is caught up
  p->maybe_shrink_isr(kNow + 1500);                    // 2 has not fetched for 1.5 s > 1 s
  ASSERT_EQ(proposals.size(), 1u);
  EXPECT_EQ(proposals[0].new_isr, (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(proposals[0].leader_epoch, 1);
  // The ISR changes only when the controller says so.
  EXPECT_EQ(p->isr().size(), 3u);
  p->apply_state(state(0, 1, {0, 1, 2}, {0, 1}, 1), kNow + 1600);
  EXPECT_EQ(p->isr(), (std::vector<int32_t>{0, 1}));

  // Follower 2 catches up to the HW: proposed back.
  p->read_for_follower(2, 5, 1 << 20, 1, kNow + 1700);
  ASSERT_EQ(proposals.size(), 2u);
  EXPECT_EQ(proposals[1].new_isr, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(proposals[1].partition_epoch, 1);
}

TEST(partition_replication, fetches_from_fenced_or_unknown_epochs_and_unassigned_replicas_fail) {
  temp_dir d;
  auto p = open(d.path(), 0);
  p->apply_state(state(0, 3, {0, 1}, {0, 1}), kNow);
  EXPECT_EQ(p->read_for_follower(1, 0, 1024, 2, kNow).error, error_code::fenced_leader_epoch);
  EXPECT_EQ(p->read_for_follower(1, 0, 1024, 4, kNow).error, error_code::unknown_leader_epoch);
  EXPECT_EQ(p->read_for_follower(7, 0, 1024, 3, kNow).error, error_code::not_leader_or_follower);
  EXPECT_EQ(p->read_for_follower(1, 99, 1024, 3, kNow).error, error_code::offset_out_of_range);
}

TEST(partition_replication, follower_appends_take_the_leaders_offsets_epochs_and_high_watermark) {
  temp_dir ld, fd;
  auto leader = open(ld.path(), 0);
  auto follower = open(fd.path(), 1);
  leader->apply_state(state(0, 1, {0, 1}, {0, 1}), kNow);
  follower->apply_state(state(0, 1, {0, 1}, {0, 1}), kNow);
  append(*leader, 4);
  append(*leader, 6);
  auto fetched = leader->read_for_follower(1, 0, 1 << 20, 1, kNow);
  ASSERT_EQ(fetched.error, error_code::none);
  const std::vector<uint8_t> bytes = bytes_of(fetched);
  EXPECT_EQ(follower->append_as_follower(bytes, 7, 0), error_code::none);
  EXPECT_EQ(follower->log_end_offset(), 10);
  EXPECT_EQ(follower->high_watermark(), 7);  // the leader's HW, not its own LEO
  EXPECT_EQ(follower->end_offset_for_epoch(1), (std::pair<int32_t, int64_t>{1, 10}));
}

TEST(partition_replication, a_diverged_replica_truncates_to_the_leaders_epoch_end_offset) {
  // KIP-101: replica A led epoch 1 and wrote 0..9, of which only 0..5 reached B; B then
  // leads epoch 2. A's epoch-1 end offset on B is 6: A truncates to 6, never to its HW.
  temp_dir ad, bd;
  auto a = open(ad.path(), 0);
  auto b = open(bd.path(), 1);
  a->apply_state(state(0, 1, {0, 1}, {0, 1}), kNow);
  b->apply_state(state(0, 1, {0, 1}, {0, 1}), kNow);
  append(*a, 6);
  auto fetched = a->read_for_follower(1, 0, 1 << 20, 1, kNow);
  const std::vector<uint8_t> bytes = bytes_of(fetched);
  ASSERT_EQ(b->append_as_follower(bytes, 0, 0), error_code::none);
  append(*a, 4);  // 6..9 never replicated
  EXPECT_EQ(a->log_end_offset(), 10);

  b->apply_state(state(1, 2, {0, 1}, {1}), kNow);
  a->apply_state(state(1, 2, {0, 1}, {1}), kNow);
  append(*b, 3);  // epoch 2 starts at 6 on B
  const auto [epoch, end] = b->end_offset_for_epoch(1);
  EXPECT_EQ(epoch, 1);
  EXPECT_EQ(end, 6);
  a->truncate_to(end);
  EXPECT_EQ(a->log_end_offset(), 6);
  EXPECT_EQ(a->log().latest_epoch(), 1);
}

}  // namespace
}  // namespace varve::replication
