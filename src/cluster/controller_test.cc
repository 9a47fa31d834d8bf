// Controller over the local store: what it writes must come back identically after a
// restart (a new controller over the same directory).
#include "cluster/controller.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace varve::cluster {
namespace {

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
    auto c = std::make_unique<controller>(std::make_unique<local_store>(dir_), o, cache,
                                          [](const std::map<std::string, std::string>& m) {
                                            return m.count("bad.key") ? std::string("Unknown topic config name: bad.key") : std::string();
                                          });
    c->load();
    return c;
  }

  std::filesystem::path dir_;
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

}  // namespace
}  // namespace varve::cluster
