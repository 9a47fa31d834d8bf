// Controller over the local store: what it writes must come back identically after a
// restart (a new controller over the same directory).
#include "cluster/controller.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace varve::cluster {
namespace {

// The channel of a one-broker cluster: UpdateMetadata to this broker publishes the snapshot
// (what the broker does with it), and every message is recorded for the assertions.
class recording_channel final : public controller_channel {
 public:
  explicit recording_channel(metadata_cache& cache) : cache_(cache) {}
  void leader_and_isr(int32_t broker, int32_t, std::vector<partition_update> parts) override {
    for (auto& p : parts) leader_and_isr_.emplace_back(broker, std::move(p));
  }
  void update_metadata(int32_t, int32_t, std::shared_ptr<const metadata_snapshot> s) override {
    cache_.publish(std::move(s));
    ++update_metadata_;
  }
  void stop_replica(int32_t broker, int32_t, std::vector<std::pair<std::string, int32_t>> parts,
                    bool del) override {
    for (auto& p : parts) stop_replica_.push_back({broker, p.first, p.second, del});
  }
  void brokers_changed(const std::vector<broker_endpoint>&) override {}

  struct stop { int32_t broker; std::string topic; int32_t partition; bool del; };
  metadata_cache& cache_;
  std::vector<std::pair<int32_t, partition_update>> leader_and_isr_;
  std::vector<stop> stop_replica_;
  int update_metadata_ = 0;
};

class controller_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("varve-controller-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<controller> make(metadata_cache& cache) {
    controller_options o;
    o.node_id = 0;
    o.self = broker_endpoint{0, "127.0.0.1", 9092, std::nullopt};
    o.default_num_partitions = 2;
    auto c = std::make_unique<controller>(std::make_unique<local_store>(dir_), nullptr, o, cache,
                                          [](const std::map<std::string, std::string>& m) {
                                            return m.count("bad.key") ? std::string("Unknown topic config name: bad.key") : std::string();
                                          });
    channel_ = std::make_unique<recording_channel>(cache);
    c->set_channel(channel_.get());
    c->start();
    return c;
  }

  std::filesystem::path dir_;
  std::unique_ptr<recording_channel> channel_;
};

TEST_F(controller_test, topics_configs_and_ids_survive_a_restart) {
  topic_id id;
  {
    metadata_cache cache;
    auto c = make(cache);
    ASSERT_EQ(c->create_topic("orders", 3, 1, {{"retention.ms", "1000"}}, false).error,
              protocol::error_code::none);
    ASSERT_EQ(c->set_topic_configs("orders", {{"retention.ms", "2000"}, {"segment.bytes", "4096"}},
                                   false)
                  .error,
              protocol::error_code::none);
    ASSERT_EQ(c->create_partitions("orders", 5, false).error, protocol::error_code::none);
    id = cache.get()->find("orders")->id;
  }
  metadata_cache cache;
  auto c = make(cache);
  auto t = cache.get()->find("orders");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->id, id);
  EXPECT_EQ(t->partitions.size(), 5u);
  EXPECT_EQ(t->configs, (std::map<std::string, std::string>{{"retention.ms", "2000"},
                                                            {"segment.bytes", "4096"}}));
  EXPECT_EQ(cache.get()->find(id)->name, "orders");
}

TEST_F(controller_test, deleted_topic_stays_deleted_after_restart) {
  {
    metadata_cache cache;
    auto c = make(cache);
    ASSERT_EQ(c->create_topic("gone", -1, -1, {}, false).error, protocol::error_code::none);
    ASSERT_EQ(c->delete_topic("gone").error, protocol::error_code::none);
  }
  metadata_cache cache;
  auto c = make(cache);
  EXPECT_EQ(cache.get()->find("gone"), nullptr);
}

TEST_F(controller_test, invalid_requests_get_kafka_errors) {
  metadata_cache cache;
  auto c = make(cache);
  EXPECT_EQ(c->create_topic("a/b", 1, 1, {}, false).error,
            protocol::error_code::invalid_topic_exception);
  EXPECT_EQ(c->create_topic("t", 0, 1, {}, false).error, protocol::error_code::invalid_partitions);
  EXPECT_EQ(c->create_topic("t", 1, 3, {}, false).error,
            protocol::error_code::invalid_replication_factor);
  EXPECT_EQ(c->create_topic("t", 1, 1, {{"bad.key", "1"}}, false).error,
            protocol::error_code::invalid_config);
  ASSERT_EQ(c->create_topic("t.x", 1, 1, {}, false).error, protocol::error_code::none);
  EXPECT_EQ(c->create_topic("t.x", 1, 1, {}, false).error,
            protocol::error_code::topic_already_exists);
  EXPECT_EQ(c->create_topic("t_x", 1, 1, {}, false).error,
            protocol::error_code::invalid_topic_exception);  // collides with t.x
  EXPECT_EQ(c->create_partitions("t.x", 1, false).error, protocol::error_code::invalid_partitions);
  EXPECT_EQ(c->create_topic("v", 1, 1, {}, true).error, protocol::error_code::none);
  EXPECT_EQ(cache.get()->find("v"), nullptr);  // validate_only creates nothing
}

TEST_F(controller_test, producer_ids_never_repeat_across_restarts) {
  int64_t last;
  {
    metadata_cache cache;
    auto c = make(cache);
    for (int i = 0; i < 1500; ++i) last = c->allocate_producer_id();
  }
  metadata_cache cache;
  auto c = make(cache);
  EXPECT_GT(c->allocate_producer_id(), last);
}

TEST_F(controller_test, new_partitions_are_announced_with_leader_and_isr_and_deletion_with_stop_replica) {
  metadata_cache cache;
  auto c = make(cache);
  ASSERT_EQ(c->create_topic("events", 2, 1, {}, false).error, protocol::error_code::none);
  ASSERT_EQ(channel_->leader_and_isr_.size(), 2u);
  for (const auto& [broker, u] : channel_->leader_and_isr_) {
    EXPECT_EQ(broker, 0);
    EXPECT_EQ(u.topic, "events");
    EXPECT_EQ(u.state.leader, 0);
    EXPECT_EQ(u.state.leader_epoch, 0);
    EXPECT_EQ(u.state.isr, std::vector<int32_t>{0});
  }
  ASSERT_EQ(c->delete_topic("events").error, protocol::error_code::none);
  ASSERT_EQ(channel_->stop_replica_.size(), 2u);
  EXPECT_TRUE(channel_->stop_replica_[0].del);
  EXPECT_EQ(cache.get()->find("events"), nullptr);
}

TEST_F(controller_test, replication_factor_above_the_live_brokers_is_refused) {
  metadata_cache cache;
  auto c = make(cache);
  auto r = c->create_topic("wide", 1, 3, {}, false);
  EXPECT_EQ(r.error, protocol::error_code::invalid_replication_factor);
  EXPECT_NE(r.message.find("only 1 broker"), std::string::npos) << r.message;
}

TEST_F(controller_test, alter_partition_checks_leader_and_partition_epochs) {
  metadata_cache cache;
  auto c = make(cache);
  ASSERT_EQ(c->create_topic("isr", 1, 1, {}, false).error, protocol::error_code::none);
  const auto ps = cache.get()->find("isr")->partitions[0];
  // Not the leader.
  EXPECT_EQ(c->alter_partition(5, "isr", 0, ps.leader_epoch, ps.partition_epoch, {5}).error,
            protocol::error_code::not_leader_or_follower);
  // A stale partition epoch (the leader's view is behind the controller's).
  EXPECT_EQ(c->alter_partition(0, "isr", 0, ps.leader_epoch, ps.partition_epoch + 7, {0}).error,
            protocol::error_code::invalid_update_version);
  // A replica that is not assigned cannot join.
  EXPECT_EQ(c->alter_partition(0, "isr", 0, ps.leader_epoch, ps.partition_epoch, {0, 9}).error,
            protocol::error_code::invalid_request);
  // The current state, re-proposed, is accepted and bumps the partition epoch.
  auto ok = c->alter_partition(0, "isr", 0, ps.leader_epoch, ps.partition_epoch, {0});
  EXPECT_EQ(ok.error, protocol::error_code::none);
  EXPECT_EQ(ok.state.partition_epoch, ps.partition_epoch + 1);
  EXPECT_EQ(cache.get()->find("isr")->partitions[0].partition_epoch, ps.partition_epoch + 1);
}

}  // namespace
}  // namespace varve::cluster
