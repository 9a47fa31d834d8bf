#include "cluster/controller.h"

#include <nlohmann/json.hpp>
#include <random>

#include "common/log.h"

namespace varve::cluster {
namespace {
using json = nlohmann::json;
using protocol::error_code;
constexpr std::string_view kLog = "controller";
constexpr int64_t kProducerIdBlockSize = 1000;

topic_id random_id() {
  std::random_device rd;
  std::mt19937_64 gen(rd());
  topic_id id;
  for (;;) {
    for (size_t i = 0; i < id.size(); i += 8) {
      uint64_t v = gen();
      for (size_t j = 0; j < 8; ++j) id[i + j] = static_cast<uint8_t>(v >> (8 * j));
    }
    if (id != topic_id{}) return id;  // the zero uuid means "no id" on the wire
  }
}

// Base64 URL-safe without padding: how Kafka writes topic ids and cluster ids.
std::string to_base64url(const uint8_t* data, size_t n) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; ++i) {
    acc = (acc << 8) | data[i];
    bits += 8;
    while (bits >= 6) {
      out += kAlphabet[(acc >> (bits - 6)) & 0x3f];
      bits -= 6;
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 0x3f];
  return out;
}

bool from_base64url(const std::string& s, topic_id* out) {
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;
  for (char c : s) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '-') v = 62;
    else if (c == '_') v = 63;
    else return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      if (n >= out->size()) return false;
      (*out)[n++] = static_cast<uint8_t>(acc >> (bits - 8));
      bits -= 8;
    }
  }
  return n == out->size();
}

std::string topic_path(const std::string& name) { return "/brokers/topics/" + name; }
std::string state_path(const std::string& name, int32_t p) {
  return topic_path(name) + "/partitions/" + std::to_string(p) + "/state";
}
std::string config_path(const std::string& name) { return "/config/topics/" + name; }
}  // namespace

bool valid_topic_name(const std::string& name, std::string* why) {
  if (name.empty()) {
    *why = "Topic name is illegal, it can't be empty";
    return false;
  }
  if (name == "." || name == "..") {
    *why = "Topic name cannot be \".\" or \"..\"";
    return false;
  }
  if (name.size() > 249) {
    *why = "Topic name is illegal, it can't be longer than 249 characters";
    return false;
  }
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) {
      *why = "Topic name \"" + name +
             "\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' "
             "and '-'";
      return false;
    }
  }
  return true;
}

controller::controller(std::unique_ptr<metadata_store> store, controller_options options,
                       metadata_cache& cache, config_validator validate_configs)
    : store_(std::move(store)),
      options_(std::move(options)),
      cache_(cache),
      validate_configs_(std::move(validate_configs)) {}

void controller::load() {
  if (auto node = store_->get("/cluster/id")) {
    cluster_id_ = json::parse(node->data).at("id").get<std::string>();
  } else {
    const topic_id raw = random_id();
    cluster_id_ = to_base64url(raw.data(), raw.size());
    store_->create("/cluster/id", json{{"version", "1"}, {"id", cluster_id_}}.dump());
    VLOG_INFO(kLog) << "initialised new cluster id " << cluster_id_;
  }
  if (auto node = store_->get("/latest_producer_id_block")) {
    auto j = json::parse(node->data);
    // Never reuse a reserved block: continue after its end.
    next_producer_id_ = j.at("block_end").get<int64_t>() + 1;
    producer_id_block_end_ = next_producer_id_;
  }
  for (const auto& name : store_->children("/brokers/topics")) {
    if (auto t = read_topic(name)) topics_[name] = std::move(t);
  }
  VLOG_INFO(kLog) << "loaded metadata: cluster " << cluster_id_ << ", " << topics_.size()
                  << " topics";
  publish();
}

std::shared_ptr<topic_metadata> controller::read_topic(const std::string& name) {
  auto node = store_->get(topic_path(name));
  if (!node || node->data.empty()) return nullptr;
  auto t = std::make_shared<topic_metadata>();
  t->name = name;
  const json j = json::parse(node->data);
  if (!from_base64url(j.at("topic_id").get<std::string>(), &t->id)) {
    VLOG_ERROR(kLog) << "topic " << name << " has a malformed topic_id; skipping it";
    return nullptr;
  }
  t->internal = j.value("internal", false);
  const auto& parts = j.at("partitions");
  for (int32_t p = 0; p < static_cast<int32_t>(parts.size()); ++p) {
    partition_state ps;
    ps.partition = p;
    ps.replicas = parts.at(std::to_string(p)).get<std::vector<int32_t>>();
    if (auto state = store_->get(state_path(name, p))) {
      const json s = json::parse(state->data);
      ps.leader = s.at("leader").get<int32_t>();
      ps.leader_epoch = s.at("leader_epoch").get<int32_t>();
      ps.isr = s.at("isr").get<std::vector<int32_t>>();
      ps.partition_epoch = state->version;
    }
    t->partitions.push_back(std::move(ps));
  }
  if (auto cfg = store_->get(config_path(name)); cfg && !cfg->data.empty()) {
    // Keep the parsed document alive for the loop: a range-for over a member of a
    // temporary would iterate a destroyed object (C++20 lifetime rules).
    const json doc = json::parse(cfg->data);
    for (const auto& [k, v] : doc.at("config").items()) t->configs[k] = v.get<std::string>();
  }
  return t;
}

void controller::write_topic(const topic_metadata& t, bool create) {
  json parts = json::object();
  for (const auto& p : t.partitions) parts[std::to_string(p.partition)] = p.replicas;
  const json assignment = {{"version", 3},
                           {"topic_id", to_base64url(t.id.data(), t.id.size())},
                           {"partitions", parts},
                           {"internal", t.internal}};
  json cfg = json::object();
  for (const auto& [k, v] : t.configs) cfg[k] = v;
  // Config first, then partition states, then the assignment: a crash part-way leaves no
  // topic node (so the topic does not exist) rather than a topic without its state.
  const std::string cfg_data = json{{"version", 1}, {"config", cfg}}.dump();
  if (!store_->create(config_path(t.name), cfg_data)) store_->set(config_path(t.name), cfg_data, -1);
  for (const auto& p : t.partitions) {
    const std::string s = json{{"controller_epoch", 1},
                               {"leader", p.leader},
                               {"version", 1},
                               {"leader_epoch", p.leader_epoch},
                               {"isr", p.isr}}
                              .dump();
    if (!store_->create(state_path(t.name, p.partition), s))
      store_->set(state_path(t.name, p.partition), s, -1);
  }
  if (create) {
    if (!store_->create(topic_path(t.name), assignment.dump()))
      store_->set(topic_path(t.name), assignment.dump(), -1);
  } else {
    store_->set(topic_path(t.name), assignment.dump(), -1);
  }
}

void controller::publish() {
  auto snap = std::make_shared<metadata_snapshot>();
  snap->cluster_id = cluster_id_;
  snap->controller_id = options_.node_id;
  snap->brokers.push_back(options_.self);
  snap->topics = topics_;
  for (const auto& [name, t] : topics_) snap->names_by_id[t->id] = name;
  std::shared_ptr<const metadata_snapshot> published = std::move(snap);
  cache_.publish(published);
  for (auto& fn : listeners_) fn(published);
}

topic_result controller::create_topic(const std::string& name, int32_t num_partitions,
                                      int16_t replication_factor,
                                      const std::map<std::string, std::string>& configs,
                                      bool validate_only, bool internal) {
  std::string why;
  if (!valid_topic_name(name, &why)) return {error_code::invalid_topic_exception, why};
  if (topics_.count(name)) {
    return {error_code::topic_already_exists, "Topic '" + name + "' already exists."};
  }
  // Kafka forbids topics that collide once '.' and '_' are considered equal (metric names).
  auto normalize = [](std::string s) {
    for (char& c : s) if (c == '.') c = '_';
    return s;
  };
  for (const auto& [existing, t] : topics_) {
    if (normalize(existing) == normalize(name)) {
      return {error_code::invalid_topic_exception,
              "Topic '" + name + "' collides with existing topic: " + existing};
    }
  }
  if (num_partitions == -1) num_partitions = options_.default_num_partitions;
  if (replication_factor == -1) replication_factor = options_.default_replication_factor;
  if (num_partitions <= 0) {
    return {error_code::invalid_partitions, "Number of partitions must be larger than 0."};
  }
  if (replication_factor <= 0) {
    return {error_code::invalid_replication_factor,
            "Replication factor must be larger than 0."};
  }
  const int32_t live_brokers = 1;
  if (replication_factor > live_brokers) {
    return {error_code::invalid_replication_factor,
            "Unable to replicate the partition " + std::to_string(replication_factor) +
                " time(s): The target replication factor of " +
                std::to_string(replication_factor) + " cannot be reached because only " +
                std::to_string(live_brokers) + " broker(s) are registered."};
  }
  if (std::string err = validate_configs_(configs); !err.empty()) {
    return {error_code::invalid_config, err};
  }
  if (validate_only) return {};

  auto t = std::make_shared<topic_metadata>();
  t->name = name;
  t->id = random_id();
  t->internal = internal;
  t->configs = configs;
  for (int32_t p = 0; p < num_partitions; ++p) {
    partition_state ps;
    ps.partition = p;
    ps.replicas = {options_.node_id};
    ps.isr = {options_.node_id};
    ps.leader = options_.node_id;
    ps.leader_epoch = 0;
    t->partitions.push_back(std::move(ps));
  }
  write_topic(*t, true);
  topics_[name] = t;
  VLOG_INFO(kLog) << "created topic " << name << " with " << num_partitions
                  << " partitions, replication factor " << replication_factor;
  publish();
  return {};
}

topic_result controller::delete_topic(const std::string& name) {
  if (!topics_.count(name)) {
    return {error_code::unknown_topic_or_partition,
            "This server does not host this topic-partition."};
  }
  // The assignment node goes first: once it is gone the topic no longer exists, even if we
  // crash before its state and config nodes are removed (load() ignores orphans).
  store_->remove_recursive(topic_path(name));
  store_->remove_recursive(config_path(name));
  topics_.erase(name);
  VLOG_INFO(kLog) << "deleted topic " << name;
  publish();
  return {};
}

topic_result controller::create_partitions(const std::string& name, int32_t new_total,
                                           bool validate_only) {
  auto it = topics_.find(name);
  if (it == topics_.end()) {
    return {error_code::unknown_topic_or_partition,
            "The topic '" + name + "' does not exist."};
  }
  const int32_t current = static_cast<int32_t>(it->second->partitions.size());
  if (new_total < current) {
    return {error_code::invalid_partitions,
            "Topic currently has " + std::to_string(current) +
                " partitions, which is higher than the requested " + std::to_string(new_total) +
                "."};
  }
  if (new_total == current) {
    return {error_code::invalid_partitions,
            "Topic already has " + std::to_string(current) + " partitions."};
  }
  if (validate_only) return {};
  auto t = std::make_shared<topic_metadata>(*it->second);
  for (int32_t p = current; p < new_total; ++p) {
    partition_state ps;
    ps.partition = p;
    ps.replicas = {options_.node_id};
    ps.isr = {options_.node_id};
    ps.leader = options_.node_id;
    t->partitions.push_back(std::move(ps));
  }
  write_topic(*t, false);
  topics_[name] = t;
  VLOG_INFO(kLog) << "topic " << name << ": partitions " << current << " -> " << new_total;
  publish();
  return {};
}

topic_result controller::set_topic_configs(const std::string& name,
                                           const std::map<std::string, std::string>& configs,
                                           bool validate_only) {
  auto it = topics_.find(name);
  if (it == topics_.end()) {
    return {error_code::unknown_topic_or_partition,
            "The topic '" + name + "' does not exist."};
  }
  if (std::string err = validate_configs_(configs); !err.empty()) {
    return {error_code::invalid_config, err};
  }
  if (validate_only) return {};
  auto t = std::make_shared<topic_metadata>(*it->second);
  t->configs = configs;
  json cfg = json::object();
  for (const auto& [k, v] : t->configs) cfg[k] = v;
  const std::string data = json{{"version", 1}, {"config", cfg}}.dump();
  if (!store_->set(config_path(name), data, -1)) store_->create(config_path(name), data);
  topics_[name] = t;
  VLOG_INFO(kLog) << "topic " << name << ": config overrides updated (" << configs.size()
                  << " keys)";
  publish();
  return {};
}

int64_t controller::allocate_producer_id() {
  if (next_producer_id_ >= producer_id_block_end_) {
    const int64_t start = producer_id_block_end_;
    const int64_t end = start + kProducerIdBlockSize - 1;  // inclusive, as Kafka writes it
    const std::string data = json{{"version", 1},
                                  {"broker", options_.node_id},
                                  {"block_start", start},
                                  {"block_end", end}}
                                 .dump();
    if (!store_->set("/latest_producer_id_block", data, -1)) {
      store_->create("/latest_producer_id_block", data);
    }
    next_producer_id_ = start;
    producer_id_block_end_ = end + 1;
  }
  return next_producer_id_++;
}

}  // namespace varve::cluster
