#include "replication/replica_manager.h"

#include <gtest/gtest.h>

#include <asio.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/test_util.h"
#include "protocol/record_batch.h"

namespace varve::replication {
namespace {

namespace fs = std::filesystem;

cluster::metadata_snapshot snapshot_of(const std::string& topic, int partitions, int32_t leader,
                                       int32_t epoch) {
  auto t = std::make_shared<cluster::topic_metadata>();
  t->name = topic;
  for (int p = 0; p < partitions; ++p) {
    cluster::partition_state ps;
    ps.partition = p;
    ps.leader = leader;
    ps.leader_epoch = epoch;
    ps.replicas = {0};
    ps.isr = {0};
    t->partitions.push_back(ps);
  }
  cluster::metadata_snapshot s;
  s.topics[topic] = t;
  return s;
}

// A replica manager whose opener runs each job on a separate thread (as the broker's pool
// does), so partitions are installed only when the loop runs the posted completions.
struct fixture {
  test_util::temp_dir dir{"varve-rm-test"};
  asio::io_context loop;
  std::vector<std::thread> openers;
  std::vector<std::pair<topic_partition, bool>> leadership;  // hook calls, in order
  std::unique_ptr<replica_manager> rm;

  fixture() {
    replica_manager_options o;
    o.node_id = 0;
    o.log_dirs = {dir.path()};
    rm = std::make_unique<replica_manager>(loop, o, [](const cluster::topic_metadata&) {
      return partition_config{};
    });
    rm->set_hooks(nullptr, [this](const topic_partition& tp, bool leader) {
      leadership.emplace_back(tp, leader);
    }, nullptr);
    rm->set_opener([this](std::function<void()> job) { openers.emplace_back(std::move(job)); });
  }
  ~fixture() {
    join();
    rm.reset();
  }
  void join() {
    for (auto& t : openers) t.join();
    openers.clear();
  }
  // Runs the loop until every pending open is installed (bounded).
  void settle() {
    join();
    bool opened = false;
    rm->when_opened([&] { opened = true; });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!opened && std::chrono::steady_clock::now() < deadline) {
      loop.restart();
      loop.run_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(opened);
  }
};

TEST(replica_manager, opens_new_partitions_off_the_loop_and_installs_them_with_their_role) {
  fixture f;
  f.rm->apply(snapshot_of("t", 4, 0, 3));
  EXPECT_EQ(f.rm->opening(), 4u);
  EXPECT_EQ(f.rm->get({"t", 0}), nullptr);  // not installed before the loop runs
  f.settle();
  EXPECT_EQ(f.rm->opening(), 0u);
  for (int p = 0; p < 4; ++p) {
    auto* part = f.rm->get({"t", p});
    ASSERT_NE(part, nullptr);
    EXPECT_TRUE(part->is_leader());
    EXPECT_EQ(part->leader_epoch(), 3);
    EXPECT_TRUE(fs::exists(f.dir.path() / ("t-" + std::to_string(p))));
  }
  EXPECT_EQ(f.leadership.size(), 4u);  // each new leader reported once
}

TEST(replica_manager, a_newer_state_seen_while_opening_is_applied_at_install) {
  fixture f;
  f.rm->apply(snapshot_of("t", 1, 0, 1));
  f.rm->apply(snapshot_of("t", 1, 1, 2));  // leadership moved to broker 1 meanwhile
  EXPECT_EQ(f.rm->opening(), 1u);
  f.settle();
  auto* part = f.rm->get({"t", 0});
  ASSERT_NE(part, nullptr);
  EXPECT_FALSE(part->is_leader());
  EXPECT_EQ(part->leader(), 1);
  EXPECT_EQ(part->leader_epoch(), 2);
  ASSERT_FALSE(f.leadership.empty());
  EXPECT_FALSE(f.leadership.back().second);  // the last report is the current role
}

TEST(replica_manager, stop_replica_with_delete_while_opening_deletes_it_once_open) {
  fixture f;
  f.rm->apply(snapshot_of("t", 1, 0, 1));
  f.rm->remove({{"t", 0}});
  f.settle();
  EXPECT_EQ(f.rm->get({"t", 0}), nullptr);
  EXPECT_FALSE(fs::exists(f.dir.path() / "t-0"));
}

TEST(replica_manager, a_topic_re_created_while_its_deleted_partition_opens_gets_a_new_log) {
  fixture f;
  f.rm->apply(snapshot_of("t", 1, 0, 1));
  f.rm->remove({{"t", 0}});
  f.rm->apply(snapshot_of("t", 1, 0, 0));  // the new topic of the same name
  f.join();
  f.settle();  // the first open finishes, is deleted, and the second one starts
  f.settle();
  auto* part = f.rm->get({"t", 0});
  ASSERT_NE(part, nullptr);
  EXPECT_TRUE(part->is_leader());
  EXPECT_EQ(part->log_end_offset(), 0);
}

std::map<std::string, int64_t> read_checkpoint_file(const fs::path& file) {
  std::map<std::string, int64_t> out;
  std::ifstream in(file);
  int version = 0;
  size_t n = 0;
  in >> version >> n;
  std::string topic;
  int partition = 0;
  int64_t offset = 0;
  while (in >> topic >> partition >> offset) out[topic + "-" + std::to_string(partition)] = offset;
  return out;
}

TEST(replica_manager, checkpoints_are_written_off_the_loop_and_an_older_one_never_wins) {
  test_util::temp_dir dir{"varve-rm-test"};
  asio::io_context loop;
  replica_manager_options o;
  o.log_dirs = {dir.path()};
  o.housekeeping_interval_ms = 5;
  o.recovery_checkpoint_interval_ms = 0;  // every housekeeping tick
  replica_manager rm(loop, o, [](const cluster::topic_metadata&) { return partition_config{}; });
  std::vector<std::function<void()>> queued;  // the writer thread, run by hand below
  rm.set_checkpoint_writer([&](std::function<void()> job) { queued.push_back(std::move(job)); });
  rm.apply(snapshot_of("t", 1, 0, 0));
  rm.start();
  loop.run_for(std::chrono::milliseconds(50));
  ASSERT_FALSE(queued.empty());  // housekeeping handed its writes over, none written here
  const fs::path file = dir.path() / "recovery-point-offset-checkpoint.0";
  EXPECT_FALSE(fs::exists(file));

  std::vector<protocol::record> records(3);
  auto bytes = protocol::build_batch(records, protocol::batch_builder_options{});
  ASSERT_EQ(rm.get({"t", 0})->append(bytes, 1, 1700000000000).error, protocol::error_code::none);
  rm.close_all();  // flushes (recovery point 3) and writes the last checkpoint itself
  EXPECT_EQ(read_checkpoint_file(file)["t-0"], 3);
  for (auto& job : queued) job();  // older writes, recovery point 0, run late
  EXPECT_EQ(read_checkpoint_file(file)["t-0"], 3);
}

TEST(replica_manager, without_an_opener_apply_opens_inline) {
  test_util::temp_dir dir{"varve-rm-test"};
  asio::io_context loop;
  replica_manager_options o;
  o.log_dirs = {dir.path()};
  replica_manager rm(loop, o, [](const cluster::topic_metadata&) { return partition_config{}; });
  rm.apply(snapshot_of("t", 2, 0, 0));
  EXPECT_EQ(rm.opening(), 0u);
  ASSERT_NE(rm.get({"t", 1}), nullptr);
  EXPECT_TRUE(rm.get({"t", 1})->is_leader());
}

}  // namespace
}  // namespace varve::replication
