#pragma once
// Topic-level configuration: validation of overrides (CreateTopics, AlterConfigs,
// IncrementalAlterConfigs), resolution of a topic's effective values against the broker's
// configuration, and DescribeConfigs entries for topics and brokers.
//
// Resolution follows Kafka: a topic override wins; otherwise the broker key behind the
// topic key ("server default property", config_def::server_default) supplies the value,
// with these derived cases:
//   retention.ms      ← log.retention.ms > log.retention.minutes > log.retention.hours
//   segment.ms        ← log.roll.ms > log.roll.hours
//   segment.jitter.ms ← log.roll.jitter.ms > log.roll.jitter.hours
//   flush.ms          ← log.flush.interval.ms, else log.flush.scheduler.interval.ms
// Keys without a broker counterpart fall back to the topic table's default.
//
// Thread-safety: free functions over immutable inputs; thread-safe.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/broker_config.h"
#include "config/config_def.h"

namespace varve::config {

// Values match DescribeConfigs config_source.
enum class config_source : int8_t {
  unknown = 0,
  dynamic_topic_config = 1,
  dynamic_broker_config = 2,
  dynamic_default_broker_config = 3,
  static_broker_config = 4,
  default_config = 5,
  dynamic_broker_logger_config = 6,
  client_metrics_config = 7,
  group_config = 8,
};

struct config_synonym {
  std::string name;
  std::optional<std::string> value;  // nullopt: null or sensitive
  config_source source = config_source::unknown;
};

// One DescribeConfigs result entry.
struct config_entry {
  std::string name;
  std::optional<std::string> value;  // nullopt: null, or hidden because sensitive
  config_source source = config_source::unknown;
  bool read_only = false;
  bool sensitive = false;
  config_type type = config_type::unknown;
  std::string documentation;
  // Highest precedence first; the first synonym is the entry's own source.
  std::vector<config_synonym> synonyms;
};
using topic_config_entry = config_entry;

using topic_overrides = std::map<std::string, std::string>;

// Checks topic overrides: every key must be a topic key ("Unknown topic config name: x"),
// every value must parse and validate (message names key and value), and
// min.compaction.lag.ms must not exceed max.compaction.lag.ms. Returns "" when valid;
// callers answer INVALID_CONFIG with the message otherwise.
std::string validate_topic_configs(const topic_overrides& overrides);
// As above, but the cross-key checks also see the broker's defaults for keys not overridden.
std::string validate_topic_configs(const broker_config& broker, const topic_overrides& overrides);

// Every topic key with its effective value and source (DYNAMIC_TOPIC_CONFIG for an
// override, STATIC_BROKER_CONFIG when the broker file set the backing key, else
// DEFAULT_CONFIG). Overrides are expected to be validated; an invalid or unknown override
// is skipped (and logged) so a bad stored override cannot take a topic down.
std::vector<config_entry> resolve_topic_config(const broker_config& broker,
                                               const topic_overrides& overrides);

// Effective topic values, with the field names of storage::log_config (the lead maps one
// onto the other) plus replication and compaction settings.
struct topic_settings {
  int64_t segment_bytes = 1073741824;           // segment.bytes
  int64_t segment_ms = 604800000;               // segment.ms
  int64_t segment_jitter_ms = 0;                // segment.jitter.ms
  int64_t retention_ms = 604800000;             // retention.ms (-1 = unlimited)
  int64_t retention_bytes = -1;                 // retention.bytes (-1 = unlimited)
  int64_t flush_messages = INT64_MAX;           // flush.messages
  int64_t flush_ms = INT64_MAX;                 // flush.ms
  int32_t index_interval_bytes = 4096;          // index.interval.bytes
  int32_t segment_index_bytes = 10485760;       // segment.index.bytes
  int32_t max_message_bytes = 1048588;          // max.message.bytes
  bool log_append_time = false;                 // message.timestamp.type=LogAppendTime
  int64_t timestamp_before_max_ms = INT64_MAX;  // message.timestamp.before.max.ms
  int64_t timestamp_after_max_ms = 3600000;     // message.timestamp.after.max.ms
  int64_t file_delete_delay_ms = 60000;         // file.delete.delay.ms
  bool compact = false;                         // cleanup.policy contains compact
  bool delete_retention = true;                 // cleanup.policy contains delete
  bool preallocate = false;                     // preallocate
  // Beyond storage::log_config:
  int32_t min_insync_replicas = 1;              // min.insync.replicas
  bool unclean_leader_election_enable = false;  // unclean.leader.election.enable
  int64_t delete_retention_ms = 86400000;       // delete.retention.ms (tombstones)
  int64_t min_compaction_lag_ms = 0;            // min.compaction.lag.ms
  int64_t max_compaction_lag_ms = INT64_MAX;    // max.compaction.lag.ms
  double min_cleanable_dirty_ratio = 0.5;       // min.cleanable.dirty.ratio
  std::string compression_type = "producer";    // compression.type
};

topic_settings effective_topic_values(const broker_config& broker,
                                      const topic_overrides& overrides);

// DescribeConfigs for a broker resource: every broker key, STATIC_BROKER_CONFIG when set in
// the file (or an override) else DEFAULT_CONFIG; all read-only (no dynamic broker configs);
// sensitive values are returned as null.
std::vector<config_entry> describe_broker_configs(const broker_config& broker);

}  // namespace varve::config
