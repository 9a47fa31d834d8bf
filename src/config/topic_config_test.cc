#include "config/topic_config.h"

#include <gtest/gtest.h>

namespace varve::config {
namespace {

broker_config broker_from(std::string_view text) {
  std::string e;
  auto props = properties::parse(text, &e);
  auto b = broker_config::from_properties(*props, {}, &e);
  EXPECT_TRUE(b) << e;
  return b ? *b : broker_config::defaults();
}

const config_entry& entry(const std::vector<config_entry>& entries, std::string_view name) {
  for (const auto& e : entries)
    if (e.name == name) return e;
  ADD_FAILURE() << "no entry " << name;
  static config_entry none;
  return none;
}

TEST(topic_config, every_topic_key_is_resolved_with_defaults_as_default_config) {
  auto entries = resolve_topic_config(broker_config::defaults(), {});
  EXPECT_EQ(entries.size(), topic_config_defs().size());
  for (const auto& e : entries) {
    EXPECT_EQ(e.source, config_source::default_config) << e.name;
    EXPECT_FALSE(e.read_only) << e.name;
  }
  EXPECT_EQ(entry(entries, "retention.ms").value, "604800000");
  EXPECT_EQ(entry(entries, "segment.ms").value, "604800000");
  EXPECT_EQ(entry(entries, "cleanup.policy").value, "delete");
  EXPECT_EQ(entry(entries, "max.message.bytes").value, "1048588");
  EXPECT_EQ(entry(entries, "flush.ms").value, "9223372036854775807");
  EXPECT_EQ(entry(entries, "min.cleanable.dirty.ratio").value, "0.5");
  EXPECT_EQ(entry(entries, "cleanup.policy").type, config_type::list);
}

TEST(topic_config, broker_file_values_become_static_broker_config) {
  auto b = broker_from(
      "log.retention.minutes=10\nmessage.max.bytes=2000\nlog.cleanup.policy=compact\n"
      "log.flush.interval.ms=250\nlog.roll.hours=1\nlog.cleaner.delete.retention.ms=5\n");
  auto entries = resolve_topic_config(b, {});
  const auto& retention = entry(entries, "retention.ms");
  EXPECT_EQ(retention.value, "600000");
  EXPECT_EQ(retention.source, config_source::static_broker_config);
  ASSERT_GE(retention.synonyms.size(), 2u);
  EXPECT_EQ(retention.synonyms[0].name, "log.retention.minutes");
  EXPECT_EQ(retention.synonyms[0].source, config_source::static_broker_config);
  EXPECT_EQ(retention.synonyms[1].name, "log.retention.hours");
  EXPECT_EQ(retention.synonyms[1].source, config_source::default_config);
  EXPECT_EQ(entry(entries, "max.message.bytes").value, "2000");
  EXPECT_EQ(entry(entries, "max.message.bytes").source, config_source::static_broker_config);
  EXPECT_EQ(entry(entries, "cleanup.policy").value, "compact");
  EXPECT_EQ(entry(entries, "flush.ms").value, "250");
  EXPECT_EQ(entry(entries, "segment.ms").value, "3600000");
  EXPECT_EQ(entry(entries, "delete.retention.ms").value, "5");
  EXPECT_EQ(entry(entries, "segment.bytes").source, config_source::default_config);
}

TEST(topic_config, topic_override_beats_broker_file) {
  auto b = broker_from("log.retention.hours=1\nmin.insync.replicas=2\n");
  auto entries = resolve_topic_config(b, {{"retention.ms", "-1"}, {"min.insync.replicas", "1"}});
  const auto& retention = entry(entries, "retention.ms");
  EXPECT_EQ(retention.value, "-1");
  EXPECT_EQ(retention.source, config_source::dynamic_topic_config);
  ASSERT_EQ(retention.synonyms.size(), 2u);
  EXPECT_EQ(retention.synonyms[0].source, config_source::dynamic_topic_config);
  EXPECT_EQ(retention.synonyms[1].name, "log.retention.hours");
  EXPECT_EQ(retention.synonyms[1].value, "1");
  EXPECT_EQ(entry(entries, "min.insync.replicas").value, "1");
}

TEST(topic_config, effective_values_map_onto_log_settings) {
  auto b = broker_from("log.segment.bytes=1048576\nunclean.leader.election.enable=true\n");
  auto s = effective_topic_values(b, {{"cleanup.policy", "compact,delete"},
                                      {"message.timestamp.type", "LogAppendTime"},
                                      {"flush.messages", "1"},
                                      {"retention.bytes", "5000"},
                                      {"min.insync.replicas", "2"}});
  EXPECT_EQ(s.segment_bytes, 1048576);
  EXPECT_TRUE(s.compact);
  EXPECT_TRUE(s.delete_retention);
  EXPECT_TRUE(s.log_append_time);
  EXPECT_EQ(s.flush_messages, 1);
  EXPECT_EQ(s.flush_ms, INT64_MAX);
  EXPECT_EQ(s.retention_bytes, 5000);
  EXPECT_EQ(s.retention_ms, 604800000);
  EXPECT_EQ(s.min_insync_replicas, 2);
  EXPECT_TRUE(s.unclean_leader_election_enable);
  EXPECT_EQ(s.compression_type, "producer");

  auto d = effective_topic_values(broker_config::defaults(), {{"cleanup.policy", "compact"}});
  EXPECT_TRUE(d.compact);
  EXPECT_FALSE(d.delete_retention);
  EXPECT_FALSE(d.log_append_time);
  EXPECT_EQ(d.max_message_bytes, 1048588);
}

TEST(topic_config, seed_broker_file_flush_settings_reach_topics) {
  auto b = broker_from(
      "broker.id=0\nlog.flush.interval.messages=10000\nlog.flush.interval.ms=1000\n"
      "min.insync.replicas=2\nzookeeper.connect=localhost:2181\n");
  auto s = effective_topic_values(b, {});
  EXPECT_EQ(s.flush_messages, 10000);
  EXPECT_EQ(s.flush_ms, 1000);
  EXPECT_EQ(s.min_insync_replicas, 2);
}

TEST(topic_config, validation_accepts_good_overrides) {
  EXPECT_EQ(validate_topic_configs({}), "");
  EXPECT_EQ(validate_topic_configs({{"retention.ms", "-1"},
                                    {"cleanup.policy", "compact"},
                                    {"segment.bytes", "1048576"},
                                    {"compression.type", "zstd"}}),
            "");
}

TEST(topic_config, validation_rejects_unknown_key_naming_it) {
  EXPECT_EQ(validate_topic_configs({{"retention.mss", "1"}}),
            "Unknown topic config name: retention.mss");
  // A broker key is not a topic key.
  EXPECT_EQ(validate_topic_configs({{"log.retention.ms", "1"}}),
            "Unknown topic config name: log.retention.ms");
}

TEST(topic_config, validation_rejects_invalid_values_naming_key) {
  EXPECT_EQ(validate_topic_configs({{"retention.ms", "forever"}}),
            "Invalid value forever for configuration retention.ms: Not a number of type LONG");
  EXPECT_NE(validate_topic_configs({{"retention.ms", "-2"}}).find("retention.ms"),
            std::string::npos);
  EXPECT_NE(validate_topic_configs({{"cleanup.policy", "remove"}}).find("cleanup.policy"),
            std::string::npos);
  EXPECT_NE(validate_topic_configs({{"min.insync.replicas", "0"}}).find("min.insync.replicas"),
            std::string::npos);
  EXPECT_NE(validate_topic_configs({{"compression.type", "brotli"}}).find("compression.type"),
            std::string::npos);
}

TEST(topic_config, validation_rejects_min_compaction_lag_above_max) {
  EXPECT_NE(
      validate_topic_configs({{"min.compaction.lag.ms", "10"}, {"max.compaction.lag.ms", "5"}})
          .find("min.compaction.lag.ms"),
      std::string::npos);
  auto b = broker_from("log.cleaner.max.compaction.lag.ms=100\n");
  EXPECT_EQ(validate_topic_configs(b, {{"min.compaction.lag.ms", "50"}}), "");
  EXPECT_NE(validate_topic_configs(b, {{"min.compaction.lag.ms", "500"}}), "");
}

TEST(topic_config, invalid_stored_override_falls_back_to_broker_value) {
  auto entries = resolve_topic_config(broker_config::defaults(), {{"segment.ms", "soon"}});
  EXPECT_EQ(entry(entries, "segment.ms").value, "604800000");
  EXPECT_EQ(entry(entries, "segment.ms").source, config_source::default_config);
}

TEST(topic_config, broker_describe_reports_sources_read_only_and_hides_secrets) {
  auto b = broker_from("num.partitions=3\nssl.keystore.password=hunter2\n");
  auto entries = describe_broker_configs(b);
  EXPECT_EQ(entries.size(), broker_config_defs().size());
  const auto& np = entry(entries, "num.partitions");
  EXPECT_EQ(np.value, "3");
  EXPECT_EQ(np.source, config_source::static_broker_config);
  EXPECT_TRUE(np.read_only);
  EXPECT_EQ(np.type, config_type::int32);
  const auto& mib = entry(entries, "message.max.bytes");
  EXPECT_EQ(mib.value, "1048588");
  EXPECT_EQ(mib.source, config_source::default_config);
  const auto& pw = entry(entries, "ssl.keystore.password");
  EXPECT_TRUE(pw.sensitive);
  EXPECT_EQ(pw.value, std::nullopt);
  EXPECT_EQ(pw.source, config_source::static_broker_config);
  EXPECT_EQ(entry(entries, "broker.rack").value, std::nullopt);
}

}  // namespace
}  // namespace varve::config
