#pragma once
// The table of every configuration key Varve knows: broker keys (server.properties) and
// topic keys (CreateTopics / AlterConfigs / IncrementalAlterConfigs overrides), with Kafka's
// names, types and defaults. One row per key is the single source of truth for parsing,
// validation, DescribeConfigs answers, the startup summary and docs/configuration.md.
//
// Parsing follows Kafka's ConfigDef: surrounding whitespace is trimmed (except for
// passwords), booleans are true/false in any case, numbers must fit their type, lists are
// comma separated with blanks around commas ignored and "" meaning the empty list.
// Thread-safety: the tables are immutable statics; every function here is thread-safe.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace varve::config {

// Values match DescribeConfigs config_type (KIP-569).
enum class config_type : int8_t {
  unknown = 0,
  boolean = 1,
  string = 2,
  int32 = 3,
  int16 = 4,    // Kafka's SHORT
  int64 = 5,    // Kafka's LONG
  float64 = 6,  // Kafka's DOUBLE
  list = 7,
  class_name = 8,
  password = 9,
};

// Upper-case Kafka name of the type ("INT", "LONG", ...), used in error messages.
std::string_view type_name(config_type t);

enum class importance : uint8_t { high, medium, low };
std::string_view importance_name(importance i);

enum class config_scope : uint8_t { broker, topic };

// A value after parsing. int16/int32/int64 are all held as int64_t; null is monostate.
using config_value =
    std::variant<std::monostate, bool, int64_t, double, std::string, std::vector<std::string>>;

struct validator {
  enum class kind : uint8_t {
    none,
    range,           // integers: min_int <= v <= max_int (or v is one of also_allowed)
    range_double,    // doubles: min_double <= v <= max_double
    one_of,          // the canonical value is one of `allowed` (case-sensitive)
    list_one_of,     // every list element is one of `allowed`
    non_empty_list,  // at least one element
    non_empty_string,
  };
  kind k = kind::none;
  int64_t min_int = INT64_MIN;
  int64_t max_int = INT64_MAX;
  double min_double = 0;
  double max_double = 0;
  std::vector<std::string_view> allowed;
  std::vector<int64_t> also_allowed;  // extra integers accepted outside the range

  // A human-readable form for docs: "[1,...]", "[0,...,1]", "[CreateTime, LogAppendTime]".
  std::string describe() const;
};

validator at_least(int64_t min);
validator between(int64_t min, int64_t max);
validator between_or(int64_t min, int64_t max, std::vector<int64_t> also_allowed);
validator between_double(double min, double max);
validator one_of(std::vector<std::string_view> allowed);
validator list_one_of(std::vector<std::string_view> allowed);
validator non_empty_list();
validator non_empty_string();

struct config_def {
  std::string_view name;
  config_type type = config_type::string;
  std::optional<std::string_view> default_value;  // nullopt = Kafka's null default
  validator valid;
  importance imp = importance::medium;
  config_scope scope = config_scope::broker;
  std::string_view doc;
  // Only meaningful with several brokers (ZooKeeper mode): replication, controller,
  // ZooKeeper session, inter-broker settings. Setting one on a single node earns a warning.
  bool cluster_only = false;
  // Value must never be printed or returned by DescribeConfigs (passwords are always).
  bool sensitive = false;
  // Accepted and validated for compatibility, but Varve does not act on it (documented).
  bool accepted_only = false;
  // Topic keys: the broker key whose value is the topic default ("" = none; several
  // broker keys can stand behind one topic key, see topic_config.h).
  std::string_view server_default;
  // Marks a Varve-specific key that Kafka does not have.
  bool varve_only = false;
};

const std::vector<config_def>& broker_config_defs();
const std::vector<config_def>& topic_config_defs();
const config_def* find_broker_def(std::string_view name);
const config_def* find_topic_def(std::string_view name);

// Parses and validates `raw` for `def`. On failure `error` reads like Kafka's:
//   "Invalid value abc for configuration num.partitions: Not a number of type INT".
bool parse_config_value(const config_def& def, std::string_view raw, config_value* out,
                        std::string* error);

// The default of `def`, parsed (monostate when the default is null). The tables are
// checked by tests to hold only defaults that parse.
config_value default_value_of(const config_def& def);

// Canonical text of a parsed value, as DescribeConfigs reports it: lists joined with ",",
// booleans "true"/"false", numbers in decimal; nullopt for null.
std::optional<std::string> format_config_value(const config_value& v);

// True when `def` is a password or marked sensitive.
inline bool is_sensitive(const config_def& def) {
  return def.sensitive || def.type == config_type::password;
}

}  // namespace varve::config
