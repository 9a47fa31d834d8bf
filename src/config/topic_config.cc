#include "config/topic_config.h"

#include "common/log.h"

namespace varve::config {
namespace {

constexpr std::string_view kLog = "config";

// What the broker contributes to one topic key.
struct broker_side {
  config_value value;
  bool set_in_file = false;              // some backing broker key was set explicitly
  std::vector<config_synonym> synonyms;  // backing broker keys, precedence order
};

std::optional<std::string> shown(const config_def& d, const config_value& v) {
  if (is_sensitive(d)) return std::nullopt;
  return format_config_value(v);
}

// Adds the broker keys in `chain` (highest precedence first) as synonyms: the explicitly
// set ones as STATIC_BROKER_CONFIG, then the first one with a non-null default.
void add_chain(const broker_config& b, std::initializer_list<std::string_view> chain,
               broker_side* out) {
  for (auto key : chain) {
    if (!b.is_set(key)) continue;
    out->set_in_file = true;
    out->synonyms.push_back(
        {std::string(key), format_config_value(b.value(key)), config_source::static_broker_config});
  }
  for (auto key : chain) {
    const config_def* d = find_broker_def(key);
    if (b.is_set(key) || !d->default_value) continue;
    out->synonyms.push_back({std::string(key), format_config_value(default_value_of(*d)),
                             config_source::default_config});
    break;
  }
}

broker_side broker_value_for(const broker_config& b, const config_def& topic_def) {
  broker_side s;
  std::string_view name = topic_def.name;
  if (name == "retention.ms") {
    s.value = b.log_retention_ms();
    add_chain(b, {"log.retention.ms", "log.retention.minutes", "log.retention.hours"}, &s);
  } else if (name == "segment.ms") {
    s.value = b.log_roll_ms();
    add_chain(b, {"log.roll.ms", "log.roll.hours"}, &s);
  } else if (name == "segment.jitter.ms") {
    s.value = b.log_roll_jitter_ms();
    add_chain(b, {"log.roll.jitter.ms", "log.roll.jitter.hours"}, &s);
  } else if (name == "flush.ms") {
    s.value = b.log_flush_interval_ms();
    add_chain(b, {"log.flush.interval.ms", "log.flush.scheduler.interval.ms"}, &s);
  } else if (!topic_def.server_default.empty()) {
    s.value = b.value(topic_def.server_default);
    add_chain(b, {topic_def.server_default}, &s);
  } else {
    s.value = default_value_of(topic_def);
  }
  return s;
}

struct resolved {
  const config_def* def;
  config_value value;
  config_source source;
  std::vector<config_synonym> synonyms;
};

std::vector<resolved> resolve(const broker_config& b, const topic_overrides& overrides) {
  std::vector<resolved> out;
  for (const auto& d : topic_config_defs()) {
    broker_side side = broker_value_for(b, d);
    resolved r{
        &d,
        side.value,
        side.set_in_file ? config_source::static_broker_config : config_source::default_config,
        {}};
    auto it = overrides.find(std::string(d.name));
    if (it != overrides.end()) {
      config_value v;
      std::string error;
      if (parse_config_value(d, it->second, &v, &error)) {
        r.value = std::move(v);
        r.source = config_source::dynamic_topic_config;
        r.synonyms.push_back({std::string(d.name), shown(d, r.value), r.source});
      } else {
        VLOG_WARN(kLog) << "ignoring invalid topic override: " << error;
      }
    }
    for (auto& syn : side.synonyms) r.synonyms.push_back(std::move(syn));
    out.push_back(std::move(r));
  }
  for (const auto& [key, value] : overrides)
    if (!find_topic_def(key)) VLOG_WARN(kLog) << "ignoring unknown topic override " << key;
  return out;
}

int64_t as_long(const config_value& v, int64_t fallback) {
  return std::holds_alternative<int64_t>(v) ? std::get<int64_t>(v) : fallback;
}

std::string check_compaction_lags(int64_t min_lag, int64_t max_lag) {
  if (min_lag <= max_lag) return "";
  return "conflict topic config setting min.compaction.lag.ms (" + std::to_string(min_lag) +
         ") > max.compaction.lag.ms (" + std::to_string(max_lag) + ")";
}

// Parses every override; fills `parsed`. Returns the first error.
std::string parse_all(const topic_overrides& overrides,
                      std::map<std::string, config_value>* parsed) {
  for (const auto& [key, raw] : overrides) {
    const config_def* d = find_topic_def(key);
    if (!d) return "Unknown topic config name: " + key;
    config_value v;
    std::string error;
    if (!parse_config_value(*d, raw, &v, &error)) return error;
    (*parsed)[key] = std::move(v);
  }
  return "";
}

}  // namespace

std::string validate_topic_configs(const topic_overrides& overrides) {
  std::map<std::string, config_value> parsed;
  if (auto e = parse_all(overrides, &parsed); !e.empty()) return e;
  auto get = [&](const char* key) {
    auto it = parsed.find(key);
    return it != parsed.end() ? as_long(it->second, 0)
                              : as_long(default_value_of(*find_topic_def(key)), 0);
  };
  return check_compaction_lags(get("min.compaction.lag.ms"), get("max.compaction.lag.ms"));
}

std::string validate_topic_configs(const broker_config& broker, const topic_overrides& overrides) {
  std::map<std::string, config_value> parsed;
  if (auto e = parse_all(overrides, &parsed); !e.empty()) return e;
  topic_settings s = effective_topic_values(broker, overrides);
  return check_compaction_lags(s.min_compaction_lag_ms, s.max_compaction_lag_ms);
}

std::vector<config_entry> resolve_topic_config(const broker_config& broker,
                                               const topic_overrides& overrides) {
  std::vector<config_entry> out;
  for (auto& r : resolve(broker, overrides)) {
    config_entry e;
    e.name = std::string(r.def->name);
    e.value = shown(*r.def, r.value);
    e.source = r.source;
    e.read_only = false;
    e.sensitive = is_sensitive(*r.def);
    e.type = r.def->type;
    e.documentation = std::string(r.def->doc);
    e.synonyms = std::move(r.synonyms);
    out.push_back(std::move(e));
  }
  return out;
}

topic_settings effective_topic_values(const broker_config& broker,
                                      const topic_overrides& overrides) {
  std::map<std::string_view, config_value> v;
  for (auto& r : resolve(broker, overrides)) v[r.def->name] = std::move(r.value);
  auto l = [&](std::string_view k) { return as_long(v.at(k), 0); };
  auto i = [&](std::string_view k) { return static_cast<int32_t>(l(k)); };
  auto b = [&](std::string_view k) {
    return std::holds_alternative<bool>(v.at(k)) && std::get<bool>(v.at(k));
  };
  topic_settings s;
  s.segment_bytes = l("segment.bytes");
  s.segment_ms = l("segment.ms");
  s.segment_jitter_ms = l("segment.jitter.ms");
  s.retention_ms = l("retention.ms") < 0 ? -1 : l("retention.ms");
  s.retention_bytes = l("retention.bytes");
  s.flush_messages = l("flush.messages");
  s.flush_ms = l("flush.ms");
  s.index_interval_bytes = i("index.interval.bytes");
  s.segment_index_bytes = i("segment.index.bytes");
  s.max_message_bytes = i("max.message.bytes");
  s.log_append_time = std::get<std::string>(v.at("message.timestamp.type")) == "LogAppendTime";
  s.timestamp_before_max_ms = l("message.timestamp.before.max.ms");
  s.timestamp_after_max_ms = l("message.timestamp.after.max.ms");
  s.file_delete_delay_ms = l("file.delete.delay.ms");
  s.compact = false;
  s.delete_retention = false;
  for (const auto& p : std::get<std::vector<std::string>>(v.at("cleanup.policy"))) {
    if (p == "compact") s.compact = true;
    if (p == "delete") s.delete_retention = true;
  }
  s.preallocate = b("preallocate");
  s.min_insync_replicas = i("min.insync.replicas");
  s.unclean_leader_election_enable = b("unclean.leader.election.enable");
  s.delete_retention_ms = l("delete.retention.ms");
  s.min_compaction_lag_ms = l("min.compaction.lag.ms");
  s.max_compaction_lag_ms = l("max.compaction.lag.ms");
  s.min_cleanable_dirty_ratio = std::get<double>(v.at("min.cleanable.dirty.ratio"));
  s.compression_type = std::get<std::string>(v.at("compression.type"));
  return s;
}

std::vector<config_entry> describe_broker_configs(const broker_config& broker) {
  std::vector<config_entry> out;
  for (const auto& d : broker_config_defs()) {
    config_entry e;
    e.name = std::string(d.name);
    e.value = shown(d, broker.value(d.name));
    e.source =
        broker.is_set(d.name) ? config_source::static_broker_config : config_source::default_config;
    e.read_only = true;
    e.sensitive = is_sensitive(d);
    e.type = d.type;
    e.documentation = std::string(d.doc);
    e.synonyms.push_back({e.name, e.value, e.source});
    // broker.id and node.id name the same thing; report the id the broker runs with, as
    // Kafka does (STATIC_BROKER_CONFIG when either key was set).
    if ((d.name == "broker.id" || d.name == "node.id") && !broker.is_set(d.name) &&
        (broker.is_set("broker.id") || broker.is_set("node.id"))) {
      e.value = std::to_string(broker.node_id());
      e.source = config_source::static_broker_config;
      e.synonyms.insert(e.synonyms.begin(), {e.name, e.value, e.source});
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace varve::config
