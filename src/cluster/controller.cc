#include "cluster/controller.h"

#include <nlohmann/json.hpp>
#include <algorithm>
#include <chrono>
#include <optional>
#include <random>

#include "cluster/zk_store.h"
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
std::string broker_path(int32_t id) { return "/brokers/ids/" + std::to_string(id); }

bool contains(const std::vector<int32_t>& v, int32_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string state_json(const partition_state& p, int32_t controller_epoch) {
  return json{{"controller_epoch", controller_epoch},
              {"leader", p.leader},
              {"version", 1},
              {"leader_epoch", p.leader_epoch},
              {"isr", p.isr}}
      .dump();
}
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

controller::controller(std::unique_ptr<metadata_store> store, zk_store* zk,
                       controller_options options, metadata_cache& cache,
                       config_validator validate_configs)
    : store_(std::move(store)),
      zk_(zk),
      options_(std::move(options)),
      cache_(cache),
      validate_configs_(std::move(validate_configs)) {}

controller::~controller() = default;

void controller::start() {
  if (!zk_) {
    // Single node: the only broker is this one, and its controller is always active.
    live_brokers_[options_.node_id] = options_.self;
    active_ = true;
    controller_id_ = options_.node_id;
    epoch_ = 1;
    load();
    if (channel_) channel_->brokers_changed(read_live_brokers());
    std::vector<partition_update> all;
    broadcast(all, {options_.node_id});
    return;
  }
  // Cluster id first (any broker may create it; the first one wins).
  load();
  json reg = {{"version", 5},
              {"host", options_.self.host},
              {"port", options_.self.port},
              {"endpoints", {"PLAINTEXT://" + options_.self.host + ":" +
                             std::to_string(options_.self.port)}},
              {"listener_security_protocol_map", {{"PLAINTEXT", "PLAINTEXT"}}},
              {"jmx_port", -1},
              {"timestamp", std::to_string(wall_ms())}};
  reg["rack"] = options_.self.rack ? json(*options_.self.rack) : json(nullptr);
  if (!zk_->create_ephemeral(broker_path(options_.node_id), reg.dump())) {
    throw std::runtime_error("broker.id " + std::to_string(options_.node_id) +
                             " is already registered in ZooKeeper (" +
                             broker_path(options_.node_id) + " exists): another broker runs with "
                             "the same node.id, or this broker's previous session has not "
                             "expired yet");
  }
  VLOG_INFO(kLog) << "registered broker " << options_.node_id << " at " << options_.self.host
                  << ":" << options_.self.port;
  auto post = post_;
  zk_->watch_data("/controller", [post, this](const std::string&) {
    post([this] { elect_controller(); });
  });
  zk_->watch_children("/brokers/ids", [post, this](const std::string&) {
    post([this] { on_brokers_changed(); });
  });
  zk_->on_session_reestablished([post, this](const std::vector<std::string>& lost) {
    const bool lost_controller =
        std::find(lost.begin(), lost.end(), "/controller") != lost.end();
    post([this, lost_controller] { on_session_reestablished(lost_controller); });
  });
  elect_controller();
}

void controller::stop() {
  // No ZooKeeper call here (it may be unreachable at shutdown): closing the session, when
  // the store is destroyed, removes /controller and this broker's registration at once.
  active_ = false;
}

void controller::elect_controller() {
  if (!zk_) return;
  if (auto node = store_->get("/controller")) {
    try {
      controller_id_ = json::parse(node->data).at("brokerid").get<int32_t>();
    } catch (const std::exception&) {
      controller_id_ = -1;
    }
    if (controller_id_ != options_.node_id && active_) resign("another broker is controller");
    return;
  }
  const std::string data = json{{"version", 2},
                                {"brokerid", options_.node_id},
                                {"timestamp", std::to_string(wall_ms())}}
                               .dump();
  if (zk_->create_ephemeral("/controller", data)) {
    activate();
  } else {
    elect_controller();  // lost the race: learn the winner (bounded: the node now exists)
  }
}

void controller::activate() {
  // Bump the controller epoch with a conditional write: two brokers that both believe they
  // won cannot both succeed.
  int32_t next = 1;
  bool ok = false;
  for (int attempt = 0; attempt < 5 && !ok; ++attempt) {
    if (auto node = store_->get("/controller_epoch")) {
      next = std::stoi(node->data) + 1;
      ok = store_->set("/controller_epoch", std::to_string(next), node->version);
    } else {
      next = 1;
      ok = store_->create("/controller_epoch", "1");
    }
  }
  if (!ok) {
    resign("could not bump /controller_epoch");
    return;
  }
  epoch_ = next;
  active_ = true;
  controller_id_ = options_.node_id;
  VLOG_INFO(kLog) << "broker " << options_.node_id << " is the active controller, epoch "
                  << epoch_;
  topics_.clear();
  shutting_down_.clear();
  load();
  const auto live = read_live_brokers();
  live_brokers_.clear();
  for (const auto& b : live) live_brokers_[b.id] = b;
  if (channel_) channel_->brokers_changed(live);
  std::vector<partition_update> changed;
  reelect({}, &changed);
  std::vector<int32_t> everyone;
  for (const auto& [id, b] : live_brokers_) everyone.push_back(id);
  // A new controller tells every broker everything: LeaderAndIsr for all their partitions.
  broadcast(changed, everyone);
}

void controller::resign(const char* why) {
  if (!active_) return;
  VLOG_WARN(kLog) << "broker " << options_.node_id << " resigns as controller: " << why;
  active_ = false;
}

void controller::on_session_reestablished(bool lost_controller) {
  VLOG_WARN(kLog) << "ZooKeeper session re-established (broker registration restored)";
  if (lost_controller) resign("the session expired and another broker took /controller");
  if (active_) {
    // We kept /controller, but brokers may have come and gone unseen: start over with a
    // new epoch so stale requests are fenced.
    active_ = false;
    activate();
  } else {
    elect_controller();
  }
}

std::vector<broker_endpoint> controller::read_live_brokers() {
  std::vector<broker_endpoint> out;
  if (!zk_) {
    out.push_back(options_.self);
    return out;
  }
  for (const auto& child : store_->children("/brokers/ids")) {
    auto node = store_->get("/brokers/ids/" + child);
    if (!node) continue;
    try {
      const json j = json::parse(node->data);
      broker_endpoint b;
      b.id = std::stoi(child);
      b.host = j.at("host").get<std::string>();
      b.port = j.at("port").get<int32_t>();
      if (j.contains("rack") && j["rack"].is_string()) b.rack = j["rack"].get<std::string>();
      out.push_back(std::move(b));
    } catch (const std::exception& e) {
      VLOG_ERROR(kLog) << "ignoring malformed registration " << child << ": " << e.what();
    }
  }
  return out;
}

void controller::on_brokers_changed() {
  if (!active_) return;
  const auto live = read_live_brokers();
  std::set<int32_t> now_live;
  for (const auto& b : live) now_live.insert(b.id);
  std::set<int32_t> dead, born;
  for (const auto& [id, b] : live_brokers_) {
    if (!now_live.count(id)) dead.insert(id);
  }
  for (int32_t id : now_live) {
    if (!live_brokers_.count(id)) born.insert(id);
  }
  if (dead.empty() && born.empty()) return;
  live_brokers_.clear();
  for (const auto& b : live) live_brokers_[b.id] = b;
  for (int32_t id : dead) {
    VLOG_WARN(kLog) << "broker " << id << " is gone (its ZooKeeper session ended)";
    shutting_down_.erase(id);
  }
  for (int32_t id : born) {
    VLOG_INFO(kLog) << "broker " << id << " registered";
    shutting_down_.erase(id);
  }
  if (channel_) channel_->brokers_changed(live);
  std::vector<partition_update> changed;
  reelect(dead, &changed);
  // New brokers learn all their partitions (they start as followers and catch up).
  broadcast(changed, std::vector<int32_t>(born.begin(), born.end()));
}

bool controller::unclean_allowed(const topic_metadata& t) const {
  if (auto it = t.configs.find("unclean.leader.election.enable"); it != t.configs.end()) {
    return it->second == "true";
  }
  return options_.unclean_leader_election_enable;
}

void controller::reelect(const std::set<int32_t>& excluded, std::vector<partition_update>* changed) {
  store_batch batch(*store_);  // durable (one fsync in single-node mode) before the caller
                               // broadcasts `changed`
  for (auto& [name, tconst] : topics_) {
    std::shared_ptr<topic_metadata> t;
    for (size_t i = 0; i < tconst->partitions.size(); ++i) {
      const partition_state& cur = tconst->partitions[i];
      auto eligible = [&](int32_t r) {
        return live(r) && !excluded.count(r) && !shutting_down_.count(r);
      };
      partition_state next = cur;
      // Followers that are gone leave the ISR (the leader's own fate is decided below).
      std::vector<int32_t> isr;
      for (int32_t r : cur.isr) {
        if (r == cur.leader || eligible(r)) isr.push_back(r);
      }
      next.isr = isr;
      if (cur.leader < 0 || !eligible(cur.leader)) {
        int32_t leader = -1;
        bool unclean = false;
        for (int32_t r : cur.replicas) {
          if (eligible(r) && contains(cur.isr, r)) {
            leader = r;
            break;
          }
        }
        if (leader < 0 && unclean_allowed(*tconst)) {
          for (int32_t r : cur.replicas) {
            if (eligible(r)) {
              leader = r;
              unclean = true;
              break;
            }
          }
        }
        if (leader >= 0) {
          next.leader = leader;
          std::vector<int32_t> new_isr;
          if (unclean) {
            new_isr = {leader};
          } else {
            for (int32_t r : cur.isr) {
              if (eligible(r)) new_isr.push_back(r);
            }
          }
          next.isr = new_isr;
          ++stats_.leader_elections;
          if (unclean) {
            ++stats_.unclean_leader_elections;
            VLOG_WARN(kLog) << name << "-" << cur.partition << ": UNCLEAN leader election of "
                            << leader << " (not in the ISR); records acknowledged by the old "
                            << "ISR may be lost";
          } else {
            VLOG_INFO(kLog) << name << "-" << cur.partition << ": leader " << cur.leader
                            << " -> " << leader;
          }
        } else {
          next.leader = -1;
          // Keep the last ISR members: the partition returns with them, and only with them.
          if (next.isr.empty() || (next.isr.size() == 1 && next.isr[0] == cur.leader)) {
            next.isr = cur.isr;
          } else {
            std::erase(next.isr, cur.leader);
          }
          if (cur.leader >= 0) {
            VLOG_WARN(kLog) << name << "-" << cur.partition << ": OFFLINE (no live replica in "
                            << "the ISR; unclean leader election is disabled)";
          }
        }
      }
      if (next.leader == cur.leader && next.isr == cur.isr) continue;
      next.leader_epoch = cur.leader_epoch + 1;
      if (!t) t = std::make_shared<topic_metadata>(*tconst);
      if (!write_partition_state(name, next)) continue;
      t->partitions[i] = next;
      changed->push_back({name, t->id, next});
    }
    if (t) tconst = t;
  }
}

bool controller::write_partition_state(const std::string& topic, partition_state& ps) {
  const std::string path = state_path(topic, ps.partition);
  if (store_->set(path, state_json(ps, epoch_), ps.partition_epoch)) {
    ps.partition_epoch += 1;
    return true;
  }
  if (!store_->get(path) && store_->create(path, state_json(ps, epoch_))) {
    ps.partition_epoch = 0;
    return true;
  }
  VLOG_ERROR(kLog) << topic << "-" << ps.partition << ": partition state changed under us "
                   << "(expected version " << ps.partition_epoch << "); another controller?";
  if (zk_) post_([this] { elect_controller(); });
  return false;
}

std::shared_ptr<const metadata_snapshot> controller::build_snapshot() const {
  auto snap = std::make_shared<metadata_snapshot>();
  snap->cluster_id = cluster_id_;
  snap->controller_id = options_.node_id;
  for (const auto& [id, b] : live_brokers_) snap->brokers.push_back(b);
  snap->topics = topics_;
  for (const auto& [name, t] : topics_) snap->names_by_id[t->id] = name;
  return snap;
}

void controller::broadcast(const std::vector<partition_update>& changed,
                           const std::vector<int32_t>& full_leader_and_isr_to) {
  if (!channel_) return;
  std::map<int32_t, std::vector<partition_update>> per_broker;
  for (int32_t b : full_leader_and_isr_to) {
    auto& list = per_broker[b];
    for (const auto& [name, t] : topics_) {
      for (const auto& ps : t->partitions) {
        if (contains(ps.replicas, b)) list.push_back({name, t->id, ps});
      }
    }
  }
  const std::set<int32_t> full(full_leader_and_isr_to.begin(), full_leader_and_isr_to.end());
  for (const auto& u : changed) {
    for (int32_t r : u.state.replicas) {
      if (!full.count(r)) per_broker[r].push_back(u);
    }
  }
  for (auto& [b, list] : per_broker) {
    if (live(b) && !list.empty()) channel_->leader_and_isr(b, epoch_, std::move(list));
  }
  auto snapshot = build_snapshot();
  for (const auto& [id, b] : live_brokers_) channel_->update_metadata(id, epoch_, snapshot);
}

void controller::load() {
  if (auto node = store_->get("/cluster/id")) {
    cluster_id_ = json::parse(node->data).at("id").get<std::string>();
  } else {
    const topic_id raw = random_id();
    const std::string id = to_base64url(raw.data(), raw.size());
    if (store_->create("/cluster/id", json{{"version", "1"}, {"id", id}}.dump())) {
      cluster_id_ = id;
      VLOG_INFO(kLog) << "initialised new cluster id " << cluster_id_;
    } else if (auto again = store_->get("/cluster/id")) {
      cluster_id_ = json::parse(again->data).at("id").get<std::string>();
    }
  }
  if (!active_) return;  // partition state is the active controller's business
  for (const auto& name : store_->children("/brokers/topics")) {
    if (auto t = read_topic(name)) topics_[name] = std::move(t);
  }
  VLOG_INFO(kLog) << "loaded metadata: cluster " << cluster_id_ << ", " << topics_.size()
                  << " topics";
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
    const std::string key = std::to_string(p);
    if (j.contains("adding_replicas") && j["adding_replicas"].contains(key)) {
      ps.adding_replicas = j["adding_replicas"][key].get<std::vector<int32_t>>();
    }
    if (j.contains("removing_replicas") && j["removing_replicas"].contains(key)) {
      ps.removing_replicas = j["removing_replicas"][key].get<std::vector<int32_t>>();
    }
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
  json adding = json::object();
  json removing = json::object();
  for (const auto& p : t.partitions) {
    parts[std::to_string(p.partition)] = p.replicas;
    if (!p.adding_replicas.empty()) adding[std::to_string(p.partition)] = p.adding_replicas;
    if (!p.removing_replicas.empty()) removing[std::to_string(p.partition)] = p.removing_replicas;
  }
  const json assignment = {{"version", 3},
                           {"topic_id", to_base64url(t.id.data(), t.id.size())},
                           {"partitions", parts},
                           {"adding_replicas", adding},
                           {"removing_replicas", removing},
                           {"internal", t.internal}};
  json cfg = json::object();
  for (const auto& [k, v] : t.configs) cfg[k] = v;
  // Config first, then partition states, then the assignment: a crash part-way leaves no
  // topic node (so the topic does not exist) rather than a topic without its state.
  // Existing partition states are left alone: they change only through
  // write_partition_state(), whose conditional writes track each node's version.
  const std::string cfg_data = json{{"version", 1}, {"config", cfg}}.dump();
  store_batch batch(*store_);  // one fsync for all of a topic's nodes in single-node mode
  if (!store_->create(config_path(t.name), cfg_data)) store_->set(config_path(t.name), cfg_data, -1);
  for (const auto& p : t.partitions) {
    store_->create(state_path(t.name, p.partition), state_json(p, epoch_));
  }
  if (create) {
    if (!store_->create(topic_path(t.name), assignment.dump()))
      store_->set(topic_path(t.name), assignment.dump(), -1);
  } else {
    store_->set(topic_path(t.name), assignment.dump(), -1);
  }
}

std::vector<std::vector<int32_t>> controller::assign_replicas(int32_t first_partition,
                                                              int32_t count,
                                                              int16_t replication_factor) const {
  // Kafka's rule: brokers in a rack-alternating order (r1b1, r2b1, r3b1, r1b2, ...), each
  // partition's leader is the next broker round-robin from a random start, followers follow
  // it with a per-round shift so leaders and followers spread evenly.
  std::map<std::string, std::vector<int32_t>> by_rack;
  bool racks = false;
  for (const auto& [id, b] : live_brokers_) {
    by_rack[b.rack.value_or("")].push_back(id);
    racks = racks || b.rack.has_value();
  }
  std::vector<int32_t> order;
  if (racks) {
    for (size_t i = 0;; ++i) {
      bool any = false;
      for (auto& [rack, ids] : by_rack) {
        if (i < ids.size()) {
          order.push_back(ids[i]);
          any = true;
        }
      }
      if (!any) break;
    }
  } else {
    for (const auto& [id, b] : live_brokers_) order.push_back(id);
  }
  const int32_t n = static_cast<int32_t>(order.size());
  std::vector<std::vector<int32_t>> out;
  if (n == 0) return out;
  static thread_local std::mt19937 gen(std::random_device{}());
  const int32_t start = static_cast<int32_t>(gen() % static_cast<uint32_t>(n));
  int32_t shift = static_cast<int32_t>(gen() % static_cast<uint32_t>(n));
  for (int32_t i = 0; i < count; ++i) {
    const int32_t p = first_partition + i;
    if (p > 0 && p % n == 0) ++shift;
    const int32_t first = (p + start) % n;
    std::vector<int32_t> replicas{order[first]};
    for (int32_t j = 0; j < replication_factor - 1; ++j) {
      const int32_t s = 1 + (shift + j) % std::max(n - 1, 1);
      replicas.push_back(order[(first + s) % n]);
    }
    out.push_back(std::move(replicas));
  }
  return out;
}

std::string controller::check_assignment(const replica_assignment& manual,
                                         size_t partitions) const {
  if (manual.size() != partitions) return "one replica list per partition is needed";
  for (const auto& replicas : manual) {
    if (replicas.empty()) return "a replica list is empty";
    if (replicas.size() != manual.front().size()) {
      return "all partitions must have the same number of replicas";
    }
    std::set<int32_t> seen;
    for (int32_t r : replicas) {
      if (!seen.insert(r).second) return "broker " + std::to_string(r) + " is listed twice";
      if (!live(r)) {
        return "Replica assignment names broker " + std::to_string(r) +
               ", which is not in the cluster.";
      }
    }
  }
  return "";
}

topic_result controller::create_topic(const std::string& name, int32_t num_partitions,
                                      int16_t replication_factor,
                                      const std::map<std::string, std::string>& configs,
                                      bool validate_only, bool internal,
                                      const replica_assignment& manual) {
  if (!active_) {
    if (!forwarder_ || controller_id_ < 0) {
      return {error_code::not_controller, "no active controller is known yet"};
    }
    return forwarder_->create_topic(controller_id_, name, num_partitions, replication_factor,
                                    configs, validate_only, manual);
  }
  if (!manual.empty()) {
    if (std::string why = check_assignment(manual, manual.size()); !why.empty()) {
      return {error_code::invalid_replica_assignment, why};
    }
    num_partitions = static_cast<int32_t>(manual.size());
    replication_factor = static_cast<int16_t>(manual.front().size());
  }
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
  const int32_t live_brokers = static_cast<int32_t>(live_brokers_.size());
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
  const auto assignment =
      manual.empty() ? assign_replicas(0, num_partitions, replication_factor) : manual;
  for (int32_t p = 0; p < num_partitions; ++p) {
    partition_state ps;
    ps.partition = p;
    ps.replicas = assignment[p];
    ps.isr = ps.replicas;
    ps.leader = ps.replicas.front();
    ps.leader_epoch = 0;
    ps.partition_epoch = 0;
    t->partitions.push_back(std::move(ps));
  }
  write_topic(*t, true);
  topics_[name] = t;
  VLOG_INFO(kLog) << "created topic " << name << " with " << num_partitions
                  << " partitions, replication factor " << replication_factor;
  std::vector<partition_update> changed;
  for (const auto& ps : t->partitions) changed.push_back({name, t->id, ps});
  broadcast(changed);
  return {};
}

topic_result controller::delete_topic(const std::string& name) {
  if (!active_) {
    if (!forwarder_ || controller_id_ < 0) {
      return {error_code::not_controller, "no active controller is known yet"};
    }
    return forwarder_->delete_topic(controller_id_, name);
  }
  auto it = topics_.find(name);
  if (it == topics_.end()) {
    return {error_code::unknown_topic_or_partition,
            "This server does not host this topic-partition."};
  }
  const auto topic = it->second;
  // The assignment node goes first: once it is gone the topic no longer exists, even if we
  // crash before its state and config nodes are removed (load() ignores orphans).
  {
    store_batch batch(*store_);
    store_->remove_recursive(topic_path(name));
    store_->remove_recursive(config_path(name));
  }
  topics_.erase(name);
  VLOG_INFO(kLog) << "deleted topic " << name;
  std::map<int32_t, std::vector<std::pair<std::string, int32_t>>> per_broker;
  for (const auto& ps : topic->partitions) {
    for (int32_t r : ps.replicas) per_broker[r].emplace_back(name, ps.partition);
  }
  if (channel_) {
    for (auto& [b, parts] : per_broker) {
      if (live(b)) channel_->stop_replica(b, epoch_, std::move(parts), true);
    }
  }
  broadcast({});
  return {};
}

topic_result controller::create_partitions(const std::string& name, int32_t new_total,
                                           bool validate_only, const replica_assignment& manual) {
  if (!active_) {
    if (!forwarder_ || controller_id_ < 0) {
      return {error_code::not_controller, "no active controller is known yet"};
    }
    return forwarder_->create_partitions(controller_id_, name, new_total, validate_only, manual);
  }
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
  const int16_t rf = static_cast<int16_t>(it->second->partitions.front().replicas.size());
  if (!manual.empty()) {
    if (std::string why = check_assignment(manual, static_cast<size_t>(new_total - current));
        !why.empty()) {
      return {error_code::invalid_replica_assignment, why};
    }
  } else if (rf > static_cast<int32_t>(live_brokers_.size())) {
    return {error_code::invalid_replication_factor,
            "Replication factor " + std::to_string(rf) + " exceeds the " +
                std::to_string(live_brokers_.size()) + " live broker(s)."};
  }
  if (validate_only) return {};
  auto t = std::make_shared<topic_metadata>(*it->second);
  const auto assignment = manual.empty() ? assign_replicas(current, new_total - current, rf) : manual;
  std::vector<partition_update> changed;
  for (int32_t p = current; p < new_total; ++p) {
    partition_state ps;
    ps.partition = p;
    ps.replicas = assignment[p - current];
    ps.isr = ps.replicas;
    ps.leader = ps.replicas.front();
    t->partitions.push_back(ps);
    changed.push_back({name, t->id, ps});
  }
  write_topic(*t, false);
  topics_[name] = t;
  VLOG_INFO(kLog) << "topic " << name << ": partitions " << current << " -> " << new_total;
  broadcast(changed);
  return {};
}

topic_result controller::set_topic_configs(const std::string& name,
                                           const std::map<std::string, std::string>& configs,
                                           bool validate_only) {
  if (!active_) {
    if (!forwarder_ || controller_id_ < 0) {
      return {error_code::not_controller, "no active controller is known yet"};
    }
    return forwarder_->set_topic_configs(controller_id_, name, configs, validate_only);
  }
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
  // Brokers re-read overrides with every UpdateMetadata; unclean election may now be allowed.
  std::vector<partition_update> changed;
  if (unclean_allowed(*t)) reelect({}, &changed);
  broadcast(changed);
  return {};
}

int controller::auto_rebalance(int32_t imbalance_percentage) {
  if (!active_) return 0;
  // Kafka's rule: per preferred broker, (partitions it prefers but does not lead) /
  // (partitions it prefers) > leader.imbalance.per.broker.percentage triggers elections.
  std::map<int32_t, std::pair<int, int>> per_broker;  // preferred → (not led, total)
  for (const auto& [name, t] : topics_) {
    for (const auto& ps : t->partitions) {
      if (ps.replicas.empty()) continue;
      auto& c = per_broker[ps.replicas.front()];
      ++c.second;
      if (ps.leader != ps.replicas.front()) ++c.first;
    }
  }
  std::vector<std::pair<std::string, int32_t>> wanted;
  for (const auto& [name, t] : topics_) {
    for (const auto& ps : t->partitions) {
      if (ps.replicas.empty() || ps.leader == ps.replicas.front()) continue;
      const auto& c = per_broker[ps.replicas.front()];
      if (c.first * 100 > c.second * imbalance_percentage) wanted.emplace_back(name, ps.partition);
    }
  }
  if (wanted.empty()) return 0;
  int moved = 0;
  for (const auto& [key, r] : elect_preferred(wanted)) {
    if (r.error == error_code::none) ++moved;
  }
  if (moved > 0) VLOG_INFO(kLog) << "auto leader rebalance moved " << moved << " leader(s)";
  return moved;
}

bool controller::commit_partition_change(const std::string& topic, partition_state next,
                                         const std::vector<int32_t>& stop_and_delete) {
  auto it = topics_.find(topic);
  if (it == topics_.end()) return false;
  if (!write_partition_state(topic, next)) return false;
  auto t = std::make_shared<topic_metadata>(*it->second);
  t->partitions[next.partition] = next;
  write_topic(*t, false);
  it->second = t;
  if (channel_) {
    for (int32_t r : stop_and_delete) {
      if (live(r)) channel_->stop_replica(r, epoch_, {{topic, next.partition}}, true);
    }
  }
  broadcast({{topic, t->id, next}});
  return true;
}

topic_result controller::reassign(const std::string& topic, int32_t partition,
                                  const std::vector<int32_t>& target) {
  if (!active_) return {error_code::not_controller, "not the active controller"};
  auto it = topics_.find(topic);
  if (it == topics_.end() || partition < 0 ||
      partition >= static_cast<int32_t>(it->second->partitions.size())) {
    return {error_code::unknown_topic_or_partition, "no such partition"};
  }
  const partition_state cur = it->second->partitions[partition];
  const bool ongoing = !cur.adding_replicas.empty() || !cur.removing_replicas.empty();
  // The replica set before any reassignment in progress.
  std::vector<int32_t> original;
  for (int32_t r : cur.replicas) {
    if (!contains(cur.adding_replicas, r)) original.push_back(r);
  }
  partition_state next = cur;
  std::vector<int32_t> stop;
  if (target.empty()) {
    if (!ongoing) return {error_code::no_reassignment_in_progress, "no reassignment in progress"};
    next.replicas = original;
    stop = cur.adding_replicas;
  } else {
    if (std::string why = check_assignment({target}, 1); !why.empty()) {
      return {error_code::invalid_replica_assignment, why};
    }
    next.replicas = target;
    for (int32_t r : original) {
      if (!contains(target, r)) next.replicas.push_back(r);
    }
    for (int32_t r : cur.adding_replicas) {
      if (!contains(target, r)) stop.push_back(r);  // an earlier target no longer wanted
    }
  }
  next.adding_replicas.clear();
  next.removing_replicas.clear();
  if (!target.empty()) {
    for (int32_t r : target) {
      if (!contains(original, r)) next.adding_replicas.push_back(r);
    }
    for (int32_t r : original) {
      if (!contains(target, r)) next.removing_replicas.push_back(r);
    }
  }
  std::erase_if(next.isr, [&](int32_t r) { return !contains(next.replicas, r); });
  if (next.leader >= 0 && !contains(next.replicas, next.leader)) next.leader = -1;
  if (next.leader < 0) {
    for (int32_t r : next.replicas) {
      if (live(r) && contains(next.isr, r)) {
        next.leader = r;
        break;
      }
    }
  }
  if (next.replicas == cur.replicas && next.adding_replicas == cur.adding_replicas &&
      next.removing_replicas == cur.removing_replicas) {
    return {};
  }
  // A new epoch: the leader rebuilds its follower set, stale fetches are fenced.
  next.leader_epoch = cur.leader_epoch + 1;
  VLOG_INFO(kLog) << topic << "-" << partition << ": reassignment "
                  << (target.empty() ? "cancelled" : "started") << ", replicas now "
                  << next.replicas.size() << " (" << next.adding_replicas.size() << " adding, "
                  << next.removing_replicas.size() << " removing)";
  if (!commit_partition_change(topic, next, stop)) {
    return {error_code::unknown_server_error, "partition state changed concurrently"};
  }
  maybe_complete_reassignment(topic, partition);
  return {};
}

void controller::maybe_complete_reassignment(const std::string& topic, int32_t partition) {
  auto it = topics_.find(topic);
  if (it == topics_.end() || partition >= static_cast<int32_t>(it->second->partitions.size())) {
    return;
  }
  const partition_state cur = it->second->partitions[partition];
  if (cur.adding_replicas.empty() && cur.removing_replicas.empty()) return;
  std::vector<int32_t> target;
  for (int32_t r : cur.replicas) {
    if (!contains(cur.removing_replicas, r)) target.push_back(r);
  }
  for (int32_t r : target) {
    if (!contains(cur.isr, r)) return;  // still catching up
  }
  partition_state next = cur;
  next.replicas = target;
  next.adding_replicas.clear();
  next.removing_replicas.clear();
  std::erase_if(next.isr, [&](int32_t r) { return !contains(target, r); });
  if (!contains(target, next.leader) || !live(next.leader)) {
    next.leader = -1;
    for (int32_t r : target) {
      if (live(r) && contains(next.isr, r)) {
        next.leader = r;
        break;
      }
    }
    ++stats_.leader_elections;
  }
  next.leader_epoch = cur.leader_epoch + 1;
  VLOG_INFO(kLog) << topic << "-" << partition << ": reassignment complete, leader "
                  << next.leader;
  commit_partition_change(topic, next, cur.removing_replicas);
}

std::vector<partition_update> controller::reassignments_in_progress() const {
  std::vector<partition_update> out;
  for (const auto& [name, t] : topics_) {
    for (const auto& ps : t->partitions) {
      if (!ps.adding_replicas.empty() || !ps.removing_replicas.empty()) {
        out.push_back({name, t->id, ps});
      }
    }
  }
  return out;
}

std::map<std::string, std::string> controller::read_topic_configs(const std::string& name) {
  std::map<std::string, std::string> out;
  if (auto cfg = store_->get(config_path(name)); cfg && !cfg->data.empty()) {
    try {
      const json doc = json::parse(cfg->data);
      for (const auto& [k, v] : doc.at("config").items()) out[k] = v.get<std::string>();
    } catch (const std::exception& e) {
      VLOG_ERROR(kLog) << "malformed config overrides of topic " << name << ": " << e.what();
    }
  }
  return out;
}

alter_partition_result controller::alter_partition(int32_t broker, const std::string& topic,
                                                   int32_t partition, int32_t leader_epoch,
                                                   int32_t partition_epoch,
                                                   std::vector<int32_t> new_isr) {
  alter_partition_result out;
  if (!active_) {
    out.error = error_code::not_controller;
    return out;
  }
  auto it = topics_.find(topic);
  if (it == topics_.end() || partition < 0 ||
      partition >= static_cast<int32_t>(it->second->partitions.size())) {
    out.error = error_code::unknown_topic_or_partition;
    return out;
  }
  const partition_state& cur = it->second->partitions[partition];
  out.state = cur;
  if (cur.leader != broker) {
    out.error = error_code::not_leader_or_follower;
    return out;
  }
  if (leader_epoch < cur.leader_epoch) {
    out.error = error_code::fenced_leader_epoch;
    return out;
  }
  if (partition_epoch != cur.partition_epoch || leader_epoch != cur.leader_epoch) {
    out.error = error_code::invalid_update_version;
    return out;
  }
  std::sort(new_isr.begin(), new_isr.end());
  new_isr.erase(std::unique(new_isr.begin(), new_isr.end()), new_isr.end());
  for (int32_t r : new_isr) {
    if (!contains(cur.replicas, r)) {
      out.error = error_code::invalid_request;
      return out;
    }
    // Only live replicas may join (KIP-841: not one that is shutting down or gone).
    if (!contains(cur.isr, r) && (!live(r) || shutting_down_.count(r))) {
      out.error = error_code::ineligible_replica;
      return out;
    }
  }
  if (!contains(new_isr, broker)) {
    out.error = error_code::invalid_request;
    return out;
  }
  partition_state next = cur;
  next.isr = new_isr;
  if (!write_partition_state(topic, next)) {
    out.error = error_code::invalid_update_version;
    return out;
  }
  auto t = std::make_shared<topic_metadata>(*it->second);
  t->partitions[partition] = next;
  it->second = t;
  ++stats_.isr_changes;
  VLOG_INFO(kLog) << topic << "-" << partition << ": ISR " << cur.isr.size() << " -> "
                  << next.isr.size() << " replicas (leader " << broker << ", epoch "
                  << next.leader_epoch << ")";
  out.state = next;
  broadcast({{topic, t->id, next}});
  maybe_complete_reassignment(topic, partition);
  if (auto again = topics_.find(topic); again != topics_.end()) {
    out.state = again->second->partitions[partition];
  }
  return out;
}

std::vector<std::pair<std::string, int32_t>> controller::controlled_shutdown(
    int32_t broker, protocol::error_code* error) {
  *error = error_code::none;
  std::vector<std::pair<std::string, int32_t>> remaining;
  if (!active_) {
    *error = error_code::not_controller;
    return remaining;
  }
  if (!live(broker)) {
    *error = error_code::broker_not_available;
    return remaining;
  }
  VLOG_INFO(kLog) << "controlled shutdown of broker " << broker;
  shutting_down_.insert(broker);
  std::vector<partition_update> changed;
  reelect({broker}, &changed);
  for (const auto& [name, t] : topics_) {
    for (const auto& ps : t->partitions) {
      if (ps.leader == broker && ps.replicas.size() > 1) remaining.emplace_back(name, ps.partition);
    }
  }
  broadcast(changed);
  return remaining;
}

std::map<std::pair<std::string, int32_t>, topic_result> controller::elect_preferred(
    const std::vector<std::pair<std::string, int32_t>>& partitions) {
  std::map<std::pair<std::string, int32_t>, topic_result> out;
  std::vector<std::pair<std::string, int32_t>> wanted = partitions;
  if (wanted.empty()) {
    for (const auto& [name, t] : topics_) {
      for (const auto& ps : t->partitions) wanted.emplace_back(name, ps.partition);
    }
  }
  std::vector<partition_update> changed;
  std::optional<store_batch> batch;  // the states written below, durable before the broadcast
  batch.emplace(*store_);
  for (const auto& key : wanted) {
    auto& result = out[key];
    if (!active_) {
      result = {error_code::not_controller, "not the active controller"};
      continue;
    }
    auto it = topics_.find(key.first);
    if (it == topics_.end() || key.second < 0 ||
        key.second >= static_cast<int32_t>(it->second->partitions.size())) {
      result = {error_code::unknown_topic_or_partition, "no such partition"};
      continue;
    }
    const partition_state& cur = it->second->partitions[key.second];
    const int32_t preferred = cur.replicas.front();
    if (cur.leader == preferred) {
      result = {error_code::election_not_needed, "the preferred replica already leads"};
      continue;
    }
    if (!live(preferred) || shutting_down_.count(preferred) || !contains(cur.isr, preferred)) {
      result = {error_code::preferred_leader_not_available,
                "the preferred replica " + std::to_string(preferred) +
                    " is not live or not in the ISR"};
      continue;
    }
    partition_state next = cur;
    next.leader = preferred;
    next.leader_epoch = cur.leader_epoch + 1;
    if (!write_partition_state(key.first, next)) {
      result = {error_code::unknown_server_error, "partition state changed concurrently"};
      continue;
    }
    auto t = std::make_shared<topic_metadata>(*it->second);
    t->partitions[key.second] = next;
    it->second = t;
    ++stats_.leader_elections;
    changed.push_back({key.first, t->id, next});
    VLOG_INFO(kLog) << key.first << "-" << key.second << ": preferred leader " << preferred
                    << " elected (was " << cur.leader << ")";
  }
  batch.reset();
  if (!changed.empty()) broadcast(changed);
  return out;
}

int64_t controller::allocate_producer_id() {
  if (next_producer_id_ >= producer_id_block_end_) {
    // Conditional update: brokers allocating at the same time each get their own block.
    for (int attempt = 0; attempt < 100; ++attempt) {
      auto node = store_->get("/latest_producer_id_block");
      int64_t start = 0;
      if (node && !node->data.empty()) {
        start = json::parse(node->data).at("block_end").get<int64_t>() + 1;
      }
      start = std::max(start, producer_id_block_end_);
      const int64_t end = start + kProducerIdBlockSize - 1;  // inclusive, as Kafka writes it
      const std::string data = json{{"version", 1},
                                    {"broker", options_.node_id},
                                    {"block_start", start},
                                    {"block_end", end}}
                                   .dump();
      const bool ok = node ? store_->set("/latest_producer_id_block", data, node->version)
                           : store_->create("/latest_producer_id_block", data);
      if (ok) {
        next_producer_id_ = start;
        producer_id_block_end_ = end + 1;
        break;
      }
    }
    if (next_producer_id_ >= producer_id_block_end_) {
      throw std::runtime_error("could not reserve a producer id block");
    }
  }
  return next_producer_id_++;
}

}  // namespace varve::cluster
