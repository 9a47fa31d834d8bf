// Transactions on a partition: transactional appends, markers (WriteTxnMarkers), the last
// stable offset, read_committed fetches with aborted transactions, KIP-890 verification,
// and producer/transaction state across restart, follower replication and truncation.
#include <gtest/gtest.h>

#include <filesystem>

#include "common/test_util.h"
#include "protocol/record_batch.h"
#include "protocol/record_control.h"
#include "replication/partition.h"

namespace varve::replication {
namespace {
using protocol::error_code;

using test_util::temp_dir;

constexpr int64_t kNow = 1700000000000;

// `n` records of producer `pid` (transactional unless `txn` is false).
std::vector<uint8_t> batch(int64_t pid, int16_t epoch, int32_t seq, int n, bool txn = true) {
  std::vector<protocol::record> records;
  for (int i = 0; i < n; ++i) {
    protocol::record r;
    r.timestamp = kNow;
    std::string v = "v" + std::to_string(seq + i);
    r.value = std::vector<uint8_t>(v.begin(), v.end());
    records.push_back(std::move(r));
  }
  protocol::batch_builder_options o;
  o.producer_id = pid;
  o.producer_epoch = epoch;
  o.base_sequence = seq;
  o.transactional = txn;
  return protocol::build_batch(records, o);
}

cluster::partition_state state(int32_t leader, int32_t epoch, std::vector<int32_t> replicas) {
  cluster::partition_state ps;
  ps.partition = 0;
  ps.leader = leader;
  ps.leader_epoch = epoch;
  ps.partition_epoch = epoch;
  ps.replicas = replicas;
  ps.isr = replicas;
  return ps;
}

class partition_txn_test : public ::testing::Test {
 protected:
  void SetUp() override { open(); }
  void open(int32_t node = 0) {
    std::string error;
    part_ = partition::open({"t", 0}, dir_.path() / "t-0", {}, node, -1, hw_checkpoint_, &error);
    ASSERT_TRUE(part_) << error;
    part_->apply_state(state(0, epoch_, {0}), 0);
  }
  void restart() {
    hw_checkpoint_ = part_->high_watermark();
    part_->close();
    part_.reset();
    ++epoch_;
    open();
  }
  produce_outcome produce(std::vector<uint8_t> b) {
    uint64_t guard = part_->start_verification(b);
    return part_->append_verified(b, 1, kNow, guard);
  }
  // Offsets of the records a read_committed consumer keeps from [from, LSO).
  std::vector<int64_t> committed_view(int64_t from, std::vector<storage::aborted_producer>* aborted) {
    auto out = part_->read(from, 1 << 20, true, isolation::read_committed, -1);
    EXPECT_EQ(out.error, error_code::none);
    *aborted = out.aborted;
    return offsets_of(out.data);
  }
  static std::vector<int64_t> offsets_of(const storage::read_info& data) {
    std::vector<int64_t> out;
    std::vector<uint8_t> buf;
    for (const auto& region : data.regions) {
      buf.resize(region.size);
      EXPECT_EQ(::pread(region.file->fd(), buf.data(), region.size, region.position),
                static_cast<ssize_t>(region.size));
      size_t pos = 0;
      while (pos < buf.size()) {
        auto h = protocol::parse_batch_header(std::span(buf).subspan(pos));
        if (!h) break;
        if (!h->is_control()) {
          for (int64_t o = h->base_offset; o <= h->last_offset(); ++o) out.push_back(o);
        }
        pos += h->total_size();
      }
    }
    return out;
  }

  temp_dir dir_;
  int64_t hw_checkpoint_ = 0;
  int32_t epoch_ = 0;
  std::unique_ptr<partition> part_;
};

TEST_F(partition_txn_test, open_transaction_holds_the_lso_until_its_commit_marker) {
  ASSERT_EQ(produce(batch(-1, -1, -1, 2, false)).error, error_code::none);  // offsets 0-1
  auto a = produce(batch(7, 0, 0, 3));                                       // offsets 2-4
  ASSERT_EQ(a.error, error_code::none);
  EXPECT_EQ(a.base_offset, 2);
  ASSERT_EQ(produce(batch(-1, -1, -1, 1, false)).error, error_code::none);  // offset 5
  EXPECT_EQ(part_->high_watermark(), 6);
  EXPECT_EQ(part_->last_stable_offset(), 2);
  std::vector<storage::aborted_producer> aborted;
  EXPECT_EQ(committed_view(0, &aborted), (std::vector<int64_t>{0, 1}));
  EXPECT_TRUE(aborted.empty());
  // read_uncommitted sees everything up to the HW.
  auto all = part_->read(0, 1 << 20, true, isolation::read_uncommitted, -1);
  EXPECT_EQ(offsets_of(all.data), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));

  auto m = part_->append_txn_marker(7, 0, true, 0, kNow);
  ASSERT_EQ(m.error, error_code::none);
  EXPECT_EQ(m.offset, 6);
  EXPECT_EQ(part_->high_watermark(), 7);
  EXPECT_EQ(part_->last_stable_offset(), 7);
  EXPECT_EQ(committed_view(0, &aborted), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_TRUE(aborted.empty());
}

TEST_F(partition_txn_test, aborted_transaction_is_listed_for_read_committed_and_survives_restart) {
  ASSERT_EQ(produce(batch(7, 0, 0, 2)).error, error_code::none);  // 0-1
  ASSERT_EQ(produce(batch(8, 0, 0, 1)).error, error_code::none);  // 2
  ASSERT_EQ(part_->append_txn_marker(7, 0, false, 0, kNow).error, error_code::none);  // 3
  EXPECT_EQ(part_->last_stable_offset(), 2);  // producer 8 still open
  ASSERT_EQ(part_->append_txn_marker(8, 0, true, 0, kNow).error, error_code::none);  // 4
  EXPECT_EQ(part_->last_stable_offset(), 5);
  std::vector<storage::aborted_producer> aborted;
  committed_view(0, &aborted);
  ASSERT_EQ(aborted.size(), 1u);
  EXPECT_EQ(aborted[0], (storage::aborted_producer{7, 0}));
  // A fetch starting after the aborted transaction's marker does not list it.
  committed_view(4, &aborted);
  EXPECT_TRUE(aborted.empty());

  restart();
  EXPECT_EQ(part_->last_stable_offset(), 5);
  committed_view(0, &aborted);
  ASSERT_EQ(aborted.size(), 1u);
  EXPECT_EQ(aborted[0], (storage::aborted_producer{7, 0}));
}

TEST_F(partition_txn_test, open_transaction_survives_restart_and_keeps_holding_the_lso) {
  ASSERT_EQ(produce(batch(-1, -1, -1, 1, false)).error, error_code::none);  // 0
  ASSERT_EQ(produce(batch(7, 0, 0, 2)).error, error_code::none);            // 1-2
  restart();
  EXPECT_EQ(part_->high_watermark(), 3);
  EXPECT_EQ(part_->last_stable_offset(), 1);
  // The producer continues its transaction with the next sequence, then commits.
  ASSERT_EQ(produce(batch(7, 0, 2, 1)).error, error_code::none);  // 3
  ASSERT_EQ(part_->append_txn_marker(7, 0, true, 0, kNow).error, error_code::none);
  EXPECT_EQ(part_->last_stable_offset(), 5);
}

TEST_F(partition_txn_test, housekeeping_expires_idle_producers_but_not_open_transactions) {
  // Batches are stamped kNow. Producer 5 is idempotent only; producer 7 has a transaction open.
  ASSERT_EQ(produce(batch(5, 0, 0, 2, false)).error, error_code::none);
  ASSERT_EQ(produce(batch(7, 0, 0, 1)).error, error_code::none);
  const int64_t day = 86400000;
  // Not due (no expiration on this tick) or not yet idle long enough: both are kept.
  part_->housekeeping(kNow + 2 * day, false, -1);
  part_->housekeeping(kNow + day - 1, false, day);
  EXPECT_NE(part_->producers().find(5), nullptr);
  EXPECT_NE(part_->producers().find(7), nullptr);

  part_->housekeeping(kNow + day + 1, false, day);
  EXPECT_EQ(part_->producers().find(5), nullptr) << "idle idempotent producer expired";
  ASSERT_NE(part_->producers().find(7), nullptr) << "a producer with an open transaction stays";
  EXPECT_EQ(part_->last_stable_offset(), 2);

  // Unknown again, producer 5 starts over at sequence 0 without an ordering error.
  EXPECT_EQ(produce(batch(5, 0, 0, 1, false)).error, error_code::none);
  ASSERT_EQ(part_->append_txn_marker(7, 0, true, 0, kNow).error, error_code::none);
  part_->housekeeping(kNow + day + 1, false, day);
  EXPECT_EQ(part_->producers().find(7), nullptr) << "expired once its transaction completed";
}

TEST_F(partition_txn_test, markers_from_an_older_epoch_or_coordinator_are_refused) {
  ASSERT_EQ(produce(batch(7, 3, 0, 1)).error, error_code::none);
  EXPECT_EQ(part_->append_txn_marker(7, 2, true, 5, kNow).error, error_code::invalid_producer_epoch);
  ASSERT_EQ(part_->append_txn_marker(7, 3, false, 5, kNow).error, error_code::none);
  ASSERT_EQ(produce(batch(7, 3, 1, 1)).error, error_code::none);
  EXPECT_EQ(part_->append_txn_marker(7, 3, true, 4, kNow).error,
            error_code::transaction_coordinator_fenced);
  // A marker with a newer epoch (coordinator-side abort that fences the producer) is taken.
  ASSERT_EQ(part_->append_txn_marker(7, 4, false, 5, kNow).error, error_code::none);
  EXPECT_EQ(produce(batch(7, 3, 2, 1)).error, error_code::invalid_producer_epoch);
}

TEST_F(partition_txn_test, batch_verified_for_a_transaction_that_ended_meanwhile_is_refused) {
  // KIP-890: a delayed write of a finished transaction must not open a new one.
  auto first = batch(7, 0, 0, 1);
  const uint64_t guard = part_->start_verification(first);
  EXPECT_NE(guard, partition::kNoVerification);
  // While the coordinator is asked, the transaction ends (a marker arrives; the producer
  // had written nothing here, so it opens nothing).
  ASSERT_EQ(part_->append_txn_marker(7, 0, false, 0, kNow).error, error_code::none);
  auto out = part_->append_verified(first, 1, kNow, guard);
  EXPECT_EQ(out.error, error_code::invalid_txn_state);
  EXPECT_EQ(part_->last_stable_offset(), part_->high_watermark());
  // Verified again, it goes in.
  const uint64_t again = part_->start_verification(first);
  EXPECT_EQ(part_->append_verified(first, 1, kNow, again).error, error_code::none);
  // Inside an open transaction no verification is needed.
  auto next = batch(7, 0, 1, 1);
  EXPECT_EQ(part_->start_verification(next), partition::kNoVerification);
}

TEST_F(partition_txn_test, control_batches_cannot_be_produced) {
  protocol::txn_marker m{protocol::control_record_type::commit, 0};
  auto b = protocol::build_txn_marker_batch(7, 0, m, kNow);
  auto out = part_->append(b, 1, kNow);
  EXPECT_EQ(out.error, error_code::invalid_record);
  EXPECT_EQ(part_->log_end_offset(), 0);
}

TEST_F(partition_txn_test, follower_applies_markers_and_truncation_reopens_the_transaction) {
  // Leader side: a transaction and its abort.
  ASSERT_EQ(produce(batch(7, 0, 0, 2)).error, error_code::none);                      // 0-1
  ASSERT_EQ(part_->append_txn_marker(7, 0, false, 0, kNow).error, error_code::none);  // 2
  auto all = part_->read(0, 1 << 20, true, isolation::read_uncommitted, -1);
  std::vector<uint8_t> bytes;
  for (const auto& region : all.data.regions) {
    const size_t at = bytes.size();
    bytes.resize(at + region.size);
    ASSERT_EQ(::pread(region.file->fd(), bytes.data() + at, region.size, region.position),
                static_cast<ssize_t>(region.size));
  }
  // Follower: a second replica on node 1.
  temp_dir fdir;
  std::string error;
  auto f = partition::open({"t", 0}, fdir.path() / "t-0", {}, 1, -1, 0, &error);
  ASSERT_TRUE(f) << error;
  f->apply_state(state(0, 1, {0, 1}), 0);
  ASSERT_EQ(f->append_as_follower(bytes, 3, 0), error_code::none);
  EXPECT_EQ(f->high_watermark(), 3);
  EXPECT_EQ(f->last_stable_offset(), 3);
  EXPECT_EQ(f->aborted_index().entries().size(), 1u);
  // Truncating the marker away reopens the transaction: the LSO falls back to its start.
  f->truncate_to(2);
  EXPECT_EQ(f->last_stable_offset(), 0);
  EXPECT_TRUE(f->aborted_index().entries().empty());
  // It becomes leader and the coordinator's retried marker closes it again.
  f->apply_state(state(1, 2, {1}), 0);
  auto m = f->append_txn_marker(7, 0, false, 0, kNow);
  ASSERT_EQ(m.error, error_code::none);
  EXPECT_EQ(f->last_stable_offset(), 3);
  f->close();
}

}  // namespace
}  // namespace varve::replication
