#include "config/broker_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace varve::config {
namespace {

std::optional<broker_config> from_text(std::string_view text,
                                       const std::vector<std::string>& overrides = {},
                                       std::string* error = nullptr) {
  std::string e;
  auto props = properties::parse(text, &e);
  EXPECT_TRUE(props) << e;
  auto c = broker_config::from_properties(*props, overrides, error ? error : &e);
  return c;
}

bool has_warning_about(const broker_config& c, std::string_view key, std::string_view words) {
  for (const auto& w : c.warnings())
    if (w.find(key) != std::string::npos && w.find(words) != std::string::npos) return true;
  return false;
}

constexpr std::string_view kSeedBrokerFile =
    "broker.id=0\n"
    "listeners=PLAINTEXT://localhost:9092\n"
    "log.dirs=/tmp/kafka-logs\n"
    "default.replication.factor=3\n"
    "min.insync.replicas=2\n"
    "unclean.leader.election.enable=false\n"
    "log.flush.interval.messages=10000\n"
    "log.flush.interval.ms=1000\n"
    "zookeeper.connect=localhost:2181\n";

TEST(broker_config, accepts_seed_kafka_broker_file_as_is) {
  std::string error;
  auto c = from_text(kSeedBrokerFile, {}, &error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->node_id(), 0);
  ASSERT_EQ(c->listeners().size(), 1u);
  EXPECT_EQ(c->listeners()[0], (listener{"PLAINTEXT", "localhost", 9092, "PLAINTEXT"}));
  EXPECT_EQ(c->advertised_listeners(), c->listeners());
  EXPECT_EQ(c->log_dirs(), std::vector<std::string>{"/tmp/kafka-logs"});
  EXPECT_EQ(c->default_replication_factor(), 3);
  EXPECT_EQ(c->min_insync_replicas(), 2);
  EXPECT_FALSE(c->unclean_leader_election_enable());
  EXPECT_EQ(c->get_long("log.flush.interval.messages"), 10000);
  EXPECT_EQ(c->log_flush_interval_ms(), 1000);
  EXPECT_EQ(c->zookeeper_connect(), "localhost:2181");
  EXPECT_TRUE(c->cluster_mode());
  EXPECT_TRUE(c->warnings().empty()) << c->warnings().front();
}

TEST(broker_config, defaults_are_single_node_kafka_defaults) {
  auto c = broker_config::defaults();
  EXPECT_EQ(c.node_id(), 0);
  EXPECT_FALSE(c.cluster_mode());
  EXPECT_EQ(c.listeners()[0], (listener{"PLAINTEXT", "127.0.0.1", 9092, "PLAINTEXT"}));
  EXPECT_EQ(c.log_dirs(), std::vector<std::string>{"/tmp/kafka-logs"});
  EXPECT_EQ(c.num_partitions(), 1);
  EXPECT_TRUE(c.auto_create_topics_enable());
  EXPECT_EQ(c.socket_request_max_bytes(), 104857600);
  EXPECT_EQ(c.message_max_bytes(), 1048588);
  EXPECT_EQ(c.log_retention_ms(), 168LL * 3600 * 1000);
  EXPECT_EQ(c.log_roll_ms(), 168LL * 3600 * 1000);
  EXPECT_EQ(c.log_roll_jitter_ms(), 0);
  EXPECT_EQ(c.log_flush_interval_ms(), INT64_MAX);
  EXPECT_EQ(c.get_long("log.flush.interval.messages"), INT64_MAX);
  EXPECT_EQ(c.get_int("offsets.topic.replication.factor"), 3);
  EXPECT_EQ(c.admin_listeners(), "http://127.0.0.1:9644");
  EXPECT_FALSE(c.get_optional_long("log.retention.ms"));
  EXPECT_FALSE(c.is_set("num.partitions"));
}

TEST(broker_config, invalid_number_fails_naming_key_and_value) {
  std::string error;
  EXPECT_FALSE(from_text("log.dirs=/x\nnum.partitions=abc\n", {}, &error));
  EXPECT_NE(
      error.find("Invalid value abc for configuration num.partitions: Not a number of type INT"),
      std::string::npos)
      << error;
  EXPECT_NE(error.find("line 2"), std::string::npos) << error;
}

TEST(broker_config, out_of_range_and_unknown_enum_fail) {
  std::string error;
  EXPECT_FALSE(from_text("min.insync.replicas=0\n", {}, &error));
  EXPECT_NE(error.find("min.insync.replicas"), std::string::npos) << error;
  EXPECT_FALSE(from_text("log.message.timestamp.type=Now\n", {}, &error));
  EXPECT_NE(error.find("Invalid value Now for configuration log.message.timestamp.type"),
            std::string::npos)
      << error;
  EXPECT_FALSE(from_text("log.cleanup.policy=compact,keep\n", {}, &error));
  EXPECT_NE(error.find("log.cleanup.policy"), std::string::npos) << error;
}

TEST(broker_config, unknown_key_is_kept_with_warning) {
  auto c = from_text("num.partitions=2\nmy.custom.thing = hello\n");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->unknown_keys().at("my.custom.thing"), "hello");
  EXPECT_TRUE(has_warning_about(*c, "my.custom.thing", "unknown"));
  EXPECT_EQ(c->num_partitions(), 2);
}

TEST(broker_config, cluster_only_key_warns_on_single_node_only) {
  auto single = from_text("replica.lag.time.max.ms=10000\nnum.replica.fetchers=2\n");
  ASSERT_TRUE(single);
  EXPECT_TRUE(has_warning_about(*single, "replica.lag.time.max.ms", "only used in a cluster"));
  EXPECT_TRUE(has_warning_about(*single, "num.replica.fetchers", "only used in a cluster"));
  EXPECT_EQ(single->replica_lag_time_max_ms(), 10000);

  auto cluster = from_text("zookeeper.connect=zk:2181\nreplica.lag.time.max.ms=10000\n");
  ASSERT_TRUE(cluster);
  EXPECT_TRUE(cluster->warnings().empty());
}

TEST(broker_config, kraft_and_accepted_only_keys_warn) {
  auto c = from_text(
      "process.roles=broker,controller\ncontroller.quorum.voters=1@localhost:9093\n"
      "num.io.threads=16\n");
  ASSERT_TRUE(c);
  EXPECT_TRUE(has_warning_about(*c, "process.roles", "KRaft"));
  EXPECT_TRUE(has_warning_about(*c, "controller.quorum.voters", "KRaft"));
  EXPECT_TRUE(has_warning_about(*c, "num.io.threads", "no effect"));
}

TEST(broker_config, overrides_beat_the_file_and_last_override_wins) {
  auto c = from_text("num.partitions=2\nlog.dirs=/a\n",
                     {"num.partitions=5", "log.dirs=/b, /c", "num.partitions=7"});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->num_partitions(), 7);
  EXPECT_EQ(c->log_dirs(), (std::vector<std::string>{"/b", "/c"}));
  EXPECT_EQ(c->line_of("num.partitions"), 0);
}

TEST(broker_config, malformed_or_invalid_override_fails) {
  std::string error;
  EXPECT_FALSE(from_text("", {"num.partitions"}, &error));
  EXPECT_NE(error.find("num.partitions"), std::string::npos);
  EXPECT_FALSE(from_text("", {"num.partitions=-3"}, &error));
  EXPECT_NE(error.find("Invalid value -3 for configuration num.partitions"), std::string::npos)
      << error;
}

TEST(broker_config, retention_ms_beats_minutes_beats_hours) {
  EXPECT_EQ(from_text("log.retention.hours=1\n")->log_retention_ms(), 3600000);
  EXPECT_EQ(from_text("log.retention.hours=1\nlog.retention.minutes=2\n")->log_retention_ms(),
            120000);
  EXPECT_EQ(from_text("log.retention.hours=1\nlog.retention.minutes=2\nlog.retention.ms=5\n")
                ->log_retention_ms(),
            5);
  EXPECT_EQ(from_text("log.retention.ms=-1\nlog.retention.hours=1\n")->log_retention_ms(), -1);
  EXPECT_EQ(from_text("log.retention.minutes=-5\n")->log_retention_ms(), -1);
}

TEST(broker_config, roll_and_jitter_ms_beat_hours) {
  auto c = from_text("log.roll.hours=2\nlog.roll.jitter.hours=1\n");
  EXPECT_EQ(c->log_roll_ms(), 7200000);
  EXPECT_EQ(c->log_roll_jitter_ms(), 3600000);
  c = from_text("log.roll.hours=2\nlog.roll.ms=1000\nlog.roll.jitter.ms=10\n");
  EXPECT_EQ(c->log_roll_ms(), 1000);
  EXPECT_EQ(c->log_roll_jitter_ms(), 10);
}

TEST(broker_config, flush_interval_falls_back_to_scheduler_interval) {
  EXPECT_EQ(from_text("log.flush.scheduler.interval.ms=2000\n")->log_flush_interval_ms(), 2000);
  EXPECT_EQ(from_text("log.flush.scheduler.interval.ms=2000\nlog.flush.interval.ms=50\n")
                ->log_flush_interval_ms(),
            50);
}

TEST(broker_config, node_id_and_broker_id_are_synonyms_that_must_agree) {
  EXPECT_EQ(from_text("node.id=4\n")->node_id(), 4);
  EXPECT_EQ(from_text("broker.id=3\n")->node_id(), 3);
  EXPECT_EQ(from_text("broker.id=3\nnode.id=3\n")->node_id(), 3);
  std::string error;
  EXPECT_FALSE(from_text("broker.id=3\nnode.id=4\n", {}, &error));
  EXPECT_NE(error.find("node.id"), std::string::npos);
}

TEST(broker_config, listeners_parse_names_hosts_ports_and_protocols) {
  auto c = from_text(
      "listeners=PLAINTEXT://:9092, internal://[::1]:9093,EXTERNAL://0.0.0.0:0\n"
      "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,EXTERNAL:SSL\n"
      "advertised.listeners=PLAINTEXT://broker1:9092\n");
  ASSERT_TRUE(c);
  auto l = c->listeners();
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l[0], (listener{"PLAINTEXT", "", 9092, "PLAINTEXT"}));
  EXPECT_EQ(l[1], (listener{"INTERNAL", "::1", 9093, "PLAINTEXT"}));
  EXPECT_EQ(l[2], (listener{"EXTERNAL", "0.0.0.0", 0, "SSL"}));
  ASSERT_EQ(c->advertised_listeners().size(), 1u);
  EXPECT_EQ(c->advertised_listeners()[0].host, "broker1");
}

TEST(broker_config, bad_listeners_fail_naming_the_key) {
  for (std::string_view bad :
       {"listeners=localhost:9092\n", "listeners=PLAINTEXT://localhost\n",
        "listeners=PLAINTEXT://localhost:99999\n", "listeners=FOO://localhost:1\n",
        "listeners=PLAINTEXT://a:1,PLAINTEXT://b:2\n", "listeners=\n"}) {
    std::string error;
    EXPECT_FALSE(from_text(bad, {}, &error)) << bad;
    EXPECT_NE(error.find("for configuration listeners"), std::string::npos) << error;
  }
  std::string error;
  EXPECT_FALSE(
      from_text("advertised.listeners=OTHER://x:1\n"
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT\n",
                {}, &error));
  EXPECT_NE(error.find("advertised.listeners"), std::string::npos);
}

TEST(broker_config, summary_masks_sensitive_values) {
  auto c =
      from_text("ssl.keystore.password=hunter2\nmy.secret.password=topsecret\nnum.partitions=3\n");
  ASSERT_TRUE(c);
  bool saw_hidden = false, saw_partitions = false;
  for (const auto& line : c->summary_lines()) {
    EXPECT_EQ(line.find("hunter2"), std::string::npos) << line;
    EXPECT_EQ(line.find("topsecret"), std::string::npos) << line;
    if (line == "ssl.keystore.password = [hidden]") saw_hidden = true;
    if (line == "num.partitions = 3") saw_partitions = true;
  }
  EXPECT_TRUE(saw_hidden);
  EXPECT_TRUE(saw_partitions);
  c->log_summary();
}

TEST(broker_config, typed_getter_misuse_throws_naming_the_key) {
  auto c = broker_config::defaults();
  EXPECT_THROW(c.get_int("no.such.key"), std::logic_error);
  EXPECT_THROW(c.get_bool("num.partitions"), std::logic_error);
  EXPECT_THROW(c.get_long("log.retention.ms"), std::logic_error);  // null
}

TEST(broker_config, load_reads_file_and_reports_path_on_error) {
  char path[] = "/tmp/varve_config_testXXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path);
    out << "node.id=2\nlog.dirs=./data\nnum.partitions = 4\n";
  }
  std::string error;
  auto c = broker_config::load(path, {"num.partitions=6"}, &error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->node_id(), 2);
  EXPECT_EQ(c->num_partitions(), 6);
  {
    std::ofstream out(path);
    out << "num.partitions=x\n";
  }
  EXPECT_FALSE(broker_config::load(path, {}, &error));
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("num.partitions"), std::string::npos) << error;
  std::remove(path);
}

}  // namespace
}  // namespace varve::config
