#include "config/config_def.h"

#include <gtest/gtest.h>

#include <set>

namespace varve::config {
namespace {

std::string parse_error(std::string_view key, std::string_view raw) {
  const config_def* d = find_broker_def(key);
  if (!d) d = find_topic_def(key);
  EXPECT_NE(d, nullptr) << key;
  std::string error;
  EXPECT_FALSE(parse_config_value(*d, raw, nullptr, &error)) << key << "=" << raw;
  return error;
}

config_value parse_ok(const config_def* d, std::string_view raw) {
  config_value v;
  std::string error;
  EXPECT_TRUE(parse_config_value(*d, raw, &v, &error)) << error;
  return v;
}

TEST(config_def, every_default_parses_and_validates) {
  for (const auto* defs : {&broker_config_defs(), &topic_config_defs()}) {
    for (const auto& d : *defs) {
      if (!d.default_value) continue;
      std::string error;
      EXPECT_TRUE(parse_config_value(d, *d.default_value, nullptr, &error)) << error;
    }
  }
}

TEST(config_def, names_are_unique_and_server_defaults_exist) {
  std::set<std::string_view> seen;
  for (const auto& d : broker_config_defs()) EXPECT_TRUE(seen.insert(d.name).second) << d.name;
  seen.clear();
  for (const auto& d : topic_config_defs()) {
    EXPECT_TRUE(seen.insert(d.name).second) << d.name;
    if (!d.server_default.empty())
      EXPECT_NE(find_broker_def(d.server_default), nullptr) << d.name << " ← " << d.server_default;
  }
}

TEST(config_def, kafka_defaults_for_key_settings) {
  auto dflt = [](std::string_view k) { return std::string(*find_broker_def(k)->default_value); };
  EXPECT_EQ(dflt("socket.request.max.bytes"), "104857600");
  EXPECT_EQ(dflt("message.max.bytes"), "1048588");
  EXPECT_EQ(dflt("log.retention.hours"), "168");
  EXPECT_EQ(dflt("offsets.topic.num.partitions"), "50");
  EXPECT_EQ(dflt("offsets.topic.replication.factor"), "3");
  EXPECT_EQ(dflt("transaction.state.log.min.isr"), "2");
  EXPECT_EQ(dflt("group.initial.rebalance.delay.ms"), "3000");
  EXPECT_EQ(dflt("listeners"), "PLAINTEXT://127.0.0.1:9092");
  EXPECT_FALSE(find_broker_def("log.flush.interval.ms")->default_value.has_value());
  EXPECT_TRUE(find_broker_def("replica.lag.time.max.ms")->cluster_only);
  EXPECT_TRUE(find_broker_def("zookeeper.session.timeout.ms")->cluster_only);
  EXPECT_FALSE(find_broker_def("zookeeper.connect")->cluster_only);
  EXPECT_TRUE(is_sensitive(*find_broker_def("ssl.keystore.password")));
}

TEST(config_def, not_a_number_error_names_key_value_and_type) {
  EXPECT_EQ(parse_error("num.partitions", "abc"),
            "Invalid value abc for configuration num.partitions: Not a number of type INT");
  EXPECT_EQ(parse_error("log.retention.bytes", "1.5"),
            "Invalid value 1.5 for configuration log.retention.bytes: Not a number of type LONG");
  EXPECT_NE(parse_error("num.partitions", "99999999999").find("type INT"), std::string::npos);
  EXPECT_NE(parse_error("offsets.topic.replication.factor", "40000").find("type SHORT"),
            std::string::npos);
  EXPECT_NE(parse_error("min.cleanable.dirty.ratio", "half").find("type DOUBLE"),
            std::string::npos);
}

TEST(config_def, range_and_enum_violations_are_rejected) {
  EXPECT_EQ(parse_error("num.partitions", "0"),
            "Invalid value 0 for configuration num.partitions: Value must be at least 1");
  EXPECT_NE(parse_error("min.cleanable.dirty.ratio", "1.5").find("no more than"),
            std::string::npos);
  EXPECT_NE(parse_error("compression.lz4.level", "18").find("no more than 17"), std::string::npos);
  EXPECT_NE(parse_error("compression.gzip.level", "0").find("or -1"), std::string::npos);
  EXPECT_NE(parse_error("message.timestamp.type", "WallTime").find("CreateTime, LogAppendTime"),
            std::string::npos);
  EXPECT_NE(parse_error("cleanup.policy", "compact,forever").find("'forever'"), std::string::npos);
  EXPECT_NE(parse_error("unclean.leader.election.enable", "yes").find("true or false"),
            std::string::npos);
  EXPECT_NE(parse_error("remote.storage.enable", "true").find("remote.storage.enable"),
            std::string::npos);
}

TEST(config_def, values_are_trimmed_and_booleans_case_insensitive) {
  EXPECT_EQ(std::get<int64_t>(parse_ok(find_broker_def("num.partitions"), "  3 ")), 3);
  EXPECT_EQ(std::get<bool>(parse_ok(find_broker_def("delete.topic.enable"), "FALSE")), false);
  EXPECT_EQ(std::get<int64_t>(parse_ok(find_topic_def("compression.gzip.level"), "-1")), -1);
  auto list = std::get<std::vector<std::string>>(
      parse_ok(find_topic_def("cleanup.policy"), " compact , delete "));
  EXPECT_EQ(list, (std::vector<std::string>{"compact", "delete"}));
  EXPECT_TRUE(
      std::get<std::vector<std::string>>(parse_ok(find_broker_def("process.roles"), "")).empty());
}

TEST(config_def, password_errors_do_not_echo_the_secret) {
  config_def d = *find_broker_def("ssl.key.password");
  d.valid = non_empty_string();
  std::string error;
  EXPECT_TRUE(parse_config_value(d, "s3cret", nullptr, &error));
  EXPECT_FALSE(parse_config_value(d, "", nullptr, &error));
  EXPECT_NE(error.find("[hidden]"), std::string::npos) << error;
}

TEST(config_def, canonical_formatting) {
  EXPECT_EQ(format_config_value(config_value{std::monostate{}}), std::nullopt);
  EXPECT_EQ(format_config_value(config_value{true}), "true");
  EXPECT_EQ(format_config_value(config_value{int64_t{-1}}), "-1");
  EXPECT_EQ(format_config_value(config_value{0.5}), "0.5");
  EXPECT_EQ(format_config_value(config_value{1.0}), "1.0");
  EXPECT_EQ(format_config_value(config_value{std::vector<std::string>{"compact", "delete"}}),
            "compact,delete");
}

}  // namespace
}  // namespace varve::config
