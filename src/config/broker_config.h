#pragma once
// broker_config: the broker's static configuration, from server.properties plus
// `--override key=value` arguments (overrides win over the file; the last of several
// overrides of one key wins).
//
// load() refuses a configuration Kafka would refuse: a value that does not parse or
// validate (message names key and value), conflicting node.id/broker.id, malformed
// listeners. It warns (VLOG_WARN "config", and in warnings()) about: unknown keys (kept,
// see unknown_keys()), cluster-only keys set while zookeeper.connect is unset, KRaft keys,
// and keys accepted for compatibility that Varve does not act on.
//
// Every known key has a value after load (its default when not set; null defaults are
// std::monostate). Typed getters take a key of the broker table (config_def.h); asking for
// an unknown key, the wrong type, or a null value through a non-optional getter is a
// programming error and throws std::logic_error naming the key.
//
// Thread-safety: immutable after load; all const methods may be called concurrently.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config_def.h"
#include "config/properties.h"

namespace varve::config {

// One entry of `listeners` / `advertised.listeners`: NAME://host:port.
struct listener {
  std::string name;               // e.g. PLAINTEXT, or a custom name mapped by
                                  // listener.security.protocol.map
  std::string host;               // empty = all interfaces; IPv6 without brackets
  uint16_t port = 0;              // 0 = pick an ephemeral port
  std::string security_protocol;  // PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
  bool operator==(const listener&) const = default;
};

// Parses a comma-separated listener list against a security protocol map
// ("NAME:PROTOCOL,..."). On failure `error` says what is wrong (no key prefix).
bool parse_listeners(std::string_view text, std::string_view protocol_map,
                     std::vector<listener>* out, std::string* error);

class broker_config {
 public:
  // Reads `path` (java.util.Properties syntax) and applies `overrides` ("key=value").
  static std::optional<broker_config> load(const std::string& path,
                                           const std::vector<std::string>& overrides,
                                           std::string* error);
  // As load(), from already parsed properties (tests, embedded use).
  static std::optional<broker_config> from_properties(const properties& props,
                                                      const std::vector<std::string>& overrides,
                                                      std::string* error);
  // All defaults, nothing set (never fails).
  static broker_config defaults();

  // True when the key was given in the file or an override (even if equal to the default).
  bool is_set(std::string_view key) const;
  // Line in the properties file where the key was set; 0 for overrides and unset keys.
  int line_of(std::string_view key) const;
  // The parsed value of a known key (monostate = null).
  const config_value& value(std::string_view key) const;

  int32_t get_int(std::string_view key) const;   // INT and SHORT keys
  int64_t get_long(std::string_view key) const;  // LONG, INT and SHORT keys
  bool get_bool(std::string_view key) const;
  double get_double(std::string_view key) const;
  std::string get_string(std::string_view key) const;  // STRING, CLASS, PASSWORD
  std::vector<std::string> get_list(std::string_view key) const;
  std::optional<int64_t> get_optional_long(std::string_view key) const;  // null → nullopt
  std::optional<std::string> get_optional_string(std::string_view key) const;

  // Keys not in the broker table, with their raw values, as given.
  const std::map<std::string, std::string, std::less<>>& unknown_keys() const { return unknown_; }
  // Warnings produced by load(), in order (also logged).
  const std::vector<std::string>& warnings() const { return warnings_; }

  // ---- Convenience accessors
  // node.id, else broker.id; -1 (unset) means 0.
  int32_t node_id() const;
  // Both validated at load; advertised.listeners defaults to listeners.
  std::vector<listener> listeners() const;
  std::vector<listener> advertised_listeners() const;
  // log.dirs when set, else {log.dir}. Never empty.
  std::vector<std::string> log_dirs() const;
  std::optional<std::string> zookeeper_connect() const;
  // True when zookeeper.connect is set (multi-broker mode).
  bool cluster_mode() const { return zookeeper_connect().has_value(); }
  std::optional<std::string> broker_rack() const;
  std::optional<std::string> cluster_id() const;
  std::string admin_listeners() const { return get_string("admin.listeners"); }
  std::string log_level() const { return get_string("log.level"); }
  int32_t num_partitions() const { return get_int("num.partitions"); }
  int32_t default_replication_factor() const { return get_int("default.replication.factor"); }
  bool auto_create_topics_enable() const { return get_bool("auto.create.topics.enable"); }
  bool delete_topic_enable() const { return get_bool("delete.topic.enable"); }
  int32_t socket_request_max_bytes() const { return get_int("socket.request.max.bytes"); }
  int32_t message_max_bytes() const { return get_int("message.max.bytes"); }
  int32_t min_insync_replicas() const { return get_int("min.insync.replicas"); }
  bool unclean_leader_election_enable() const { return get_bool("unclean.leader.election.enable"); }
  int64_t replica_lag_time_max_ms() const { return get_long("replica.lag.time.max.ms"); }
  int32_t request_timeout_ms() const { return get_int("request.timeout.ms"); }

  // ---- Derived values (Kafka's precedence rules)
  // log.retention.ms > log.retention.minutes > log.retention.hours; any negative → -1.
  int64_t log_retention_ms() const;
  // log.roll.ms > log.roll.hours.
  int64_t log_roll_ms() const;
  // log.roll.jitter.ms > log.roll.jitter.hours.
  int64_t log_roll_jitter_ms() const;
  // log.flush.interval.ms, else log.flush.scheduler.interval.ms.
  int64_t log_flush_interval_ms() const;

  // The effective configuration, one "key = value" per known key in table order, then
  // unknown keys; sensitive values (and unknown keys that look like secrets) as [hidden].
  std::vector<std::string> summary_lines() const;
  // Logs summary_lines() at INFO, one line per key.
  void log_summary() const;

 private:
  broker_config();
  const config_def& def_of(std::string_view key) const;
  bool apply(const std::string& key, const std::string& raw, int line, std::string* error);
  bool finish(std::string* error);

  std::map<std::string, config_value, std::less<>> values_;  // every known key
  std::map<std::string, int, std::less<>> set_lines_;        // explicitly set known keys
  std::map<std::string, std::string, std::less<>> unknown_;
  std::vector<std::string> warnings_;
  std::vector<listener> listeners_;
  std::vector<listener> advertised_;
};

}  // namespace varve::config
