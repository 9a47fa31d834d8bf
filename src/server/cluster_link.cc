#include "server/cluster_link.h"

#include <algorithm>
#include <chrono>
#include <future>

#include "common/log.h"
#include "server/broker.h"

namespace varve::server {
namespace {
using protocol::error_code;
constexpr std::string_view kLog = "cluster-link";
constexpr int kTimeoutMs = 10000;
// A sender retries an undelivered request after 50 ms, doubling up to 500 ms: a broker that
// registered in ZooKeeper moments before its listener opened gets its first UpdateMetadata
// almost at once (Kafka's RequestSendThread waits a fixed 100 ms).
constexpr int kFirstBackoffMs = 50;
constexpr int kMaxBackoffMs = 500;

protocol::uuid to_uuid(const cluster::topic_id& id) {
  protocol::uuid u;
  std::copy(id.begin(), id.end(), u.bytes.begin());
  return u;
}
cluster::topic_id from_uuid(const protocol::uuid& u) {
  cluster::topic_id id;
  std::copy(u.bytes.begin(), u.bytes.end(), id.begin());
  return id;
}

bool internal_topic(const std::string& name) {
  return name == "__consumer_offsets" || name == "__transaction_state";
}

cluster::topic_result from_wire(int16_t code, const std::optional<std::string>& message) {
  cluster::topic_result r;
  r.error = static_cast<error_code>(code);
  if (message) r.message = *message;
  return r;
}
}  // namespace

// ---------------------------------------------------------------------------------------
// Wire encoding

protocol::leader_and_isr_request encode_leader_and_isr(
    int32_t controller_id, int32_t controller_epoch,
    const std::vector<cluster::partition_update>& parts) {
  protocol::leader_and_isr_request req;
  req.controller_id = controller_id;
  req.controller_epoch = controller_epoch;
  req.type = 0;
  for (const auto& u : parts) {
    protocol::leader_and_isr_request::leader_and_isr_topic_state* ts = nullptr;
    for (auto& t : req.topic_states) {
      if (t.topic_name == u.topic) ts = &t;
    }
    if (!ts) {
      ts = &req.topic_states.emplace_back();
      ts->topic_name = u.topic;
      ts->topic_id = to_uuid(u.id);
    }
    auto& ps = ts->partition_states.emplace_back();
    ps.topic_name = u.topic;
    ps.partition_index = u.state.partition;
    ps.controller_epoch = controller_epoch;
    ps.leader = u.state.leader;
    ps.leader_epoch = u.state.leader_epoch;
    ps.isr = u.state.isr;
    ps.partition_epoch = u.state.partition_epoch;
    ps.replicas = u.state.replicas;
  }
  return req;
}

std::vector<cluster::partition_update> decode_leader_and_isr(
    const protocol::leader_and_isr_request& req) {
  std::vector<cluster::partition_update> out;
  auto add = [&](const std::string& topic, const cluster::topic_id& id,
                 const protocol::leader_and_isr_request::leader_and_isr_partition_state& ps) {
    cluster::partition_update u;
    u.topic = topic;
    u.id = id;
    u.state.partition = ps.partition_index;
    u.state.leader = ps.leader;
    u.state.leader_epoch = ps.leader_epoch;
    u.state.partition_epoch = ps.partition_epoch;
    u.state.isr = ps.isr;
    u.state.replicas = ps.replicas;
    out.push_back(std::move(u));
  };
  for (const auto& ps : req.ungrouped_partition_states) add(ps.topic_name, {}, ps);
  for (const auto& t : req.topic_states) {
    for (const auto& ps : t.partition_states) add(t.topic_name, from_uuid(t.topic_id), ps);
  }
  return out;
}

protocol::update_metadata_request encode_update_metadata(int32_t controller_epoch,
                                                         const cluster::metadata_snapshot& snap) {
  protocol::update_metadata_request req;
  req.controller_id = snap.controller_id;
  req.controller_epoch = controller_epoch;
  std::set<int32_t> live;
  for (const auto& b : snap.brokers) {
    live.insert(b.id);
    auto& lb = req.live_brokers.emplace_back();
    lb.id = b.id;
    lb.v0_host = b.host;
    lb.v0_port = b.port;
    auto& ep = lb.endpoints.emplace_back();
    ep.host = b.host;
    ep.port = b.port;
    ep.listener = "PLAINTEXT";
    ep.security_protocol = 0;
    lb.rack = b.rack;
  }
  for (const auto& [name, t] : snap.topics) {
    auto& ts = req.topic_states.emplace_back();
    ts.topic_name = name;
    ts.topic_id = to_uuid(t->id);
    for (const auto& p : t->partitions) {
      auto& ps = ts.partition_states.emplace_back();
      ps.topic_name = name;
      ps.partition_index = p.partition;
      ps.controller_epoch = controller_epoch;
      ps.leader = p.leader;
      ps.leader_epoch = p.leader_epoch;
      ps.isr = p.isr;
      ps.zk_version = p.partition_epoch;
      ps.replicas = p.replicas;
      for (int32_t r : p.replicas) {
        if (!live.count(r)) ps.offline_replicas.push_back(r);
      }
    }
  }
  return req;
}

std::shared_ptr<cluster::metadata_snapshot> decode_update_metadata(
    const protocol::update_metadata_request& req) {
  auto snap = std::make_shared<cluster::metadata_snapshot>();
  snap->controller_id = req.controller_id;
  for (const auto& lb : req.live_brokers) {
    cluster::broker_endpoint b;
    b.id = lb.id;
    if (!lb.endpoints.empty()) {
      b.host = lb.endpoints.front().host;
      b.port = lb.endpoints.front().port;
    } else {
      b.host = lb.v0_host;
      b.port = lb.v0_port;
    }
    if (lb.rack && !lb.rack->empty()) b.rack = lb.rack;
    snap->brokers.push_back(std::move(b));
  }
  std::map<std::string, std::shared_ptr<cluster::topic_metadata>> topics;
  auto topic = [&](const std::string& name, const cluster::topic_id& id) {
    auto& t = topics[name];
    if (!t) {
      t = std::make_shared<cluster::topic_metadata>();
      t->name = name;
      t->id = id;
      t->internal = internal_topic(name);
    }
    return t;
  };
  auto add = [&](cluster::topic_metadata& t,
                 const protocol::update_metadata_request::update_metadata_partition_state& ps) {
    if (ps.partition_index < 0) return;
    if (static_cast<int32_t>(t.partitions.size()) <= ps.partition_index) {
      t.partitions.resize(ps.partition_index + 1);
    }
    auto& p = t.partitions[ps.partition_index];
    p.partition = ps.partition_index;
    p.leader = ps.leader;
    p.leader_epoch = ps.leader_epoch;
    p.partition_epoch = ps.zk_version;
    p.isr = ps.isr;
    p.replicas = ps.replicas;
  };
  for (const auto& t : req.topic_states) {
    auto tm = topic(t.topic_name, from_uuid(t.topic_id));
    for (const auto& ps : t.partition_states) add(*tm, ps);
  }
  for (auto& [name, t] : topics) {
    snap->names_by_id[t->id] = name;
    snap->topics[name] = t;
  }
  return snap;
}

// ---------------------------------------------------------------------------------------
// Senders

struct cluster_link::sender {
  int32_t id = -1;
  cluster::broker_endpoint endpoint;  // GUARDED_BY(cluster_link::mu_)
  std::deque<request_fn> queue;       // GUARDED_BY(cluster_link::mu_)
  bool removed = false;               // GUARDED_BY(cluster_link::mu_)
  std::condition_variable cv;
  std::thread thread;
};

cluster_link::cluster_link(broker& b) : b_(b) {
  isr_thread_ = std::thread([this] { isr_loop(); });
}

cluster_link::~cluster_link() { stop(); }

void cluster_link::stop() {
  std::map<int32_t, std::unique_ptr<sender>> senders;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& [id, s] : senders_) {
      s->removed = true;
      s->cv.notify_all();
    }
    senders = std::move(senders_);
    for (auto& s : retired_) senders[-1 - static_cast<int32_t>(senders.size())] = std::move(s);
    retired_.clear();
  }
  for (auto& [id, s] : senders) {
    if (s->thread.joinable()) s->thread.join();
  }
  {
    std::lock_guard lock(isr_mu_);
    isr_stopping_ = true;
    isr_cv_.notify_all();
  }
  if (isr_thread_.joinable()) isr_thread_.join();
}

void cluster_link::brokers_changed(const std::vector<cluster::broker_endpoint>& live) {
  std::vector<std::unique_ptr<sender>> gone;
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    std::set<int32_t> ids;
    for (const auto& e : live) {
      ids.insert(e.id);
      if (e.id == b_.node_id()) continue;
      auto& slot = senders_[e.id];
      if (!slot) {
        slot = std::make_unique<sender>();
        slot->id = e.id;
        sender* s = slot.get();
        s->endpoint = e;
        s->thread = std::thread([this, s] {
          std::unique_ptr<net::broker_connection> conn;
          int64_t failures = 0;
          for (;;) {
            request_fn fn;
            cluster::broker_endpoint ep;
            {
              std::unique_lock lock(mu_);
              s->cv.wait(lock, [&] { return s->removed || !s->queue.empty(); });
              if (s->removed) return;
              fn = s->queue.front();
              ep = s->endpoint;
            }
            std::string error;
            if (!conn) {
              conn = net::broker_connection::open(ep.host, ep.port, kTimeoutMs, &error,
                                                  "varve-controller-" + std::to_string(b_.node_id()));
            }
            const bool sent = conn && fn(*conn, &error);
            if (sent || (conn && conn->last_error_was_local())) {
              // A request this broker cannot take at all is a bug on our side: say so and
              // move on, rather than blocking every later request to it.
              if (!sent) {
                VLOG_ERROR(kLog) << "dropping a request to broker " << s->id << ": " << error;
              }
              failures = 0;
              std::lock_guard lock(mu_);
              if (!s->queue.empty()) s->queue.pop_front();
              continue;
            }
            conn.reset();
            const int backoff_ms =
                std::min(kMaxBackoffMs, kFirstBackoffMs << std::min<int64_t>(failures, 4));
            if (failures++ % 20 == 0) {
              VLOG_WARN(kLog) << "cannot reach broker " << s->id << " (" << ep.host << ":"
                              << ep.port << "): " << error << "; retrying";
            }
            std::unique_lock lock(mu_);
            s->cv.wait_for(lock, std::chrono::milliseconds(backoff_ms), [&] { return s->removed; });
          }
        });
      } else {
        slot->endpoint = e;
      }
    }
    for (auto it = senders_.begin(); it != senders_.end();) {
      if (ids.count(it->first)) {
        ++it;
        continue;
      }
      it->second->removed = true;
      it->second->cv.notify_all();
      gone.push_back(std::move(it->second));
      it = senders_.erase(it);
    }
  }
  // A sender blocked in a call finishes it within its timeout; stop() joins it.
  std::lock_guard lock(mu_);
  for (auto& s : gone) retired_.push_back(std::move(s));
}

void cluster_link::enqueue(int32_t broker, request_fn fn) {
  std::lock_guard lock(mu_);
  auto it = senders_.find(broker);
  if (it == senders_.end()) return;  // not live: it gets everything when it registers
  it->second->queue.push_back(std::move(fn));
  it->second->cv.notify_all();
}

void cluster_link::leader_and_isr(int32_t broker, int32_t controller_epoch,
                                  std::vector<cluster::partition_update> partitions) {
  if (broker == b_.node_id()) {
    b_.apply_leader_and_isr(b_.node_id(), controller_epoch, std::move(partitions));
    return;
  }
  auto req = std::make_shared<protocol::leader_and_isr_request>(
      encode_leader_and_isr(b_.node_id(), controller_epoch, partitions));
  enqueue(broker, [req](net::broker_connection& c, std::string* error) {
    protocol::leader_and_isr_response resp;
    if (!c.call(*req, &resp, error)) return false;
    if (resp.error_code != 0) {
      VLOG_WARN(kLog) << "LeaderAndIsr to " << c.address() << " answered "
                      << net::describe_error(resp.error_code);
    }
    return true;
  });
}

void cluster_link::update_metadata(int32_t broker, int32_t controller_epoch,
                                   std::shared_ptr<const cluster::metadata_snapshot> snapshot) {
  if (broker == b_.node_id()) {
    b_.apply_update_metadata(controller_epoch, std::const_pointer_cast<cluster::metadata_snapshot>(
                                                   std::make_shared<cluster::metadata_snapshot>(*snapshot)),
                             true);
    return;
  }
  auto req = std::make_shared<protocol::update_metadata_request>(
      encode_update_metadata(controller_epoch, *snapshot));
  enqueue(broker, [req](net::broker_connection& c, std::string* error) {
    protocol::update_metadata_response resp;
    if (!c.call(*req, &resp, error)) return false;
    if (resp.error_code != 0) {
      VLOG_WARN(kLog) << "UpdateMetadata to " << c.address() << " answered "
                      << net::describe_error(resp.error_code);
    }
    return true;
  });
}

void cluster_link::stop_replica(int32_t broker, int32_t controller_epoch,
                                std::vector<std::pair<std::string, int32_t>> partitions,
                                bool delete_partitions) {
  if (broker == b_.node_id()) {
    b_.apply_stop_replica(controller_epoch, partitions, delete_partitions);
    return;
  }
  auto req = std::make_shared<protocol::stop_replica_request>();
  req->controller_id = b_.node_id();
  req->controller_epoch = controller_epoch;
  // Only the v3+ shape (per-partition delete flags) is filled; the call is pinned to v3+.
  for (const auto& [topic, p] : partitions) {
    protocol::stop_replica_request::stop_replica_topic_state* ts = nullptr;
    for (auto& t : req->topic_states) {
      if (t.topic_name == topic) ts = &t;
    }
    if (!ts) {
      ts = &req->topic_states.emplace_back();
      ts->topic_name = topic;
    }
    auto& ps = ts->partition_states.emplace_back();
    ps.partition_index = p;
    ps.leader_epoch = -2;  // deletion: regardless of epoch, as Kafka sends it
    ps.delete_partition = delete_partitions;
  }
  enqueue(broker, [req](net::broker_connection& c, std::string* error) {
    protocol::stop_replica_response resp;
    return c.call(*req, &resp, error);
  });
}

// ---------------------------------------------------------------------------------------
// Forwarding to the active controller

std::unique_ptr<net::broker_connection> cluster_link::connect_to(int32_t node, std::string* error) {
  auto md = b_.metadata();
  for (const auto& e : md->brokers) {
    if (e.id == node) {
      return net::broker_connection::open(e.host, e.port, kTimeoutMs, error,
                                          "varve-broker-" + std::to_string(b_.node_id()));
    }
  }
  *error = "controller " + std::to_string(node) + " has no known endpoint";
  return nullptr;
}

template <typename Req, typename Resp, typename Result>
cluster::topic_result cluster_link::forward(int32_t controller, const Req& req,
                                            std::vector<Result> Resp::*results,
                                            std::string_view api, int16_t max_version) {
  std::string error;
  auto c = connect_to(controller, &error);
  if (!c) return {error_code::not_controller, error};
  Resp resp;
  if (!c->call(req, &resp, &error, max_version)) return {error_code::not_controller, error};
  const std::vector<Result>& out = resp.*results;
  if (out.empty()) {
    return {error_code::unknown_server_error, "empty " + std::string(api) + " response"};
  }
  return from_wire(out.front().error_code, out.front().error_message);
}

cluster::topic_result cluster_link::create_topic(int32_t controller, const std::string& name,
                                                 int32_t num_partitions, int16_t replication_factor,
                                                 const std::map<std::string, std::string>& configs,
                                                 bool validate_only,
                                                 const cluster::replica_assignment& manual) {
  protocol::create_topics_request req;
  auto& t = req.topics.emplace_back();
  t.name = name;
  t.num_partitions = manual.empty() ? num_partitions : -1;
  t.replication_factor = manual.empty() ? replication_factor : int16_t{-1};
  for (size_t p = 0; p < manual.size(); ++p) {
    auto& a = t.assignments.emplace_back();
    a.partition_index = static_cast<int32_t>(p);
    a.broker_ids = manual[p];
  }
  for (const auto& [k, v] : configs) {
    auto& cfg = t.configs.emplace_back();
    cfg.name = k;
    cfg.value = v;
  }
  req.timeout_ms = kTimeoutMs;
  req.validate_only = validate_only;
  return forward(controller, req, &protocol::create_topics_response::topics, "CreateTopics");
}

cluster::topic_result cluster_link::delete_topic(int32_t controller, const std::string& name) {
  protocol::delete_topics_request req;
  req.topic_names.push_back(name);
  req.timeout_ms = kTimeoutMs;
  // v5: topics by name (v6 sends them as topic states).
  return forward(controller, req, &protocol::delete_topics_response::responses, "DeleteTopics", 5);
}

cluster::topic_result cluster_link::create_partitions(int32_t controller, const std::string& name,
                                                      int32_t new_total, bool validate_only,
                                                      const cluster::replica_assignment& manual) {
  protocol::create_partitions_request req;
  auto& t = req.topics.emplace_back();
  t.name = name;
  t.count = new_total;
  if (manual.empty()) {
    t.assignments = std::nullopt;
  } else {
    t.assignments.emplace();
    for (const auto& replicas : manual) t.assignments->emplace_back().broker_ids = replicas;
  }
  req.timeout_ms = kTimeoutMs;
  req.validate_only = validate_only;
  return forward(controller, req, &protocol::create_partitions_response::results,
                 "CreatePartitions");
}

cluster::topic_result cluster_link::set_topic_configs(int32_t controller, const std::string& name,
                                                      const std::map<std::string, std::string>& configs,
                                                      bool validate_only) {
  protocol::alter_configs_request req;
  auto& r = req.resources.emplace_back();
  r.resource_type = 2;  // TOPIC
  r.resource_name = name;
  for (const auto& [k, v] : configs) {
    auto& cfg = r.configs.emplace_back();
    cfg.name = k;
    cfg.value = v;
  }
  req.validate_only = validate_only;
  return forward(controller, req, &protocol::alter_configs_response::responses, "AlterConfigs");
}

// ---------------------------------------------------------------------------------------
// AlterPartition

void cluster_link::propose_isr(const replication::isr_proposal& proposal) {
  std::lock_guard lock(isr_mu_);
  isr_queue_.push_back(proposal);
  isr_cv_.notify_all();
}

void cluster_link::isr_loop() {
  std::unique_ptr<net::broker_connection> conn;
  int32_t conn_node = -1;
  for (;;) {
    std::vector<replication::isr_proposal> batch;
    {
      std::unique_lock lock(isr_mu_);
      isr_cv_.wait(lock, [&] { return isr_stopping_ || !isr_queue_.empty(); });
      if (isr_stopping_) return;
      batch.assign(isr_queue_.begin(), isr_queue_.end());
      isr_queue_.clear();
    }
    const int32_t controller = b_.metadata()->controller_id;
    if (controller == b_.node_id()) {
      // The active controller is in this process: no network hop. The closure owns what it
      // uses: this thread does not wait for it forever.
      auto owned = std::make_shared<std::vector<replication::isr_proposal>>(std::move(batch));
      auto done = std::make_shared<std::promise<void>>();
      auto fut = done->get_future();
      asio::post(b_.shards().loop(0), [this, owned, done] {
        for (const auto& p : *owned) {
          auto r = b_.controller_on_loop().alter_partition(b_.node_id(), p.tp.topic, p.tp.partition,
                                                            p.leader_epoch, p.partition_epoch,
                                                            p.new_isr);
          if (r.error != error_code::none) {
            VLOG_WARN(kLog) << p.tp.str() << ": AlterPartition refused: "
                            << protocol::error_name(r.error);
          }
        }
        done->set_value();
      });
      fut.wait_for(std::chrono::milliseconds(kTimeoutMs));
      continue;
    }
    // Proposals that fail are dropped: the leader retries after its proposal times out.
    if (controller < 0) continue;
    std::string error;
    if (!conn || conn_node != controller) {
      conn = connect_to(controller, &error);
      conn_node = controller;
      if (!conn) {
        VLOG_WARN(kLog) << "AlterPartition: " << error;
        continue;
      }
    }
    protocol::alter_partition_request req;
    req.broker_id = b_.node_id();
    for (const auto& p : batch) {
      protocol::alter_partition_request::topic_data* td = nullptr;
      for (auto& t : req.topics) {
        if (t.topic_name == p.tp.topic) td = &t;
      }
      if (!td) {
        td = &req.topics.emplace_back();
        td->topic_name = p.tp.topic;
      }
      auto& pd = td->partitions.emplace_back();
      pd.partition_index = p.tp.partition;
      pd.leader_epoch = p.leader_epoch;
      pd.partition_epoch = p.partition_epoch;
      pd.new_isr = p.new_isr;
    }
    protocol::alter_partition_response resp;
    // v1: topics by name, ISR as broker ids.
    if (!conn->call(req, &resp, &error, 1)) {
      VLOG_WARN(kLog) << "AlterPartition to controller " << controller << ": " << error;
      conn.reset();
      continue;
    }
    if (resp.error_code != 0) {
      VLOG_WARN(kLog) << "AlterPartition answered " << net::describe_error(resp.error_code);
    }
    for (const auto& t : resp.topics) {
      for (const auto& p : t.partitions) {
        if (p.error_code != 0) {
          VLOG_WARN(kLog) << t.topic_name << "-" << p.partition_index
                          << ": AlterPartition refused: " << net::describe_error(p.error_code);
        }
      }
    }
  }
}

bool cluster_link::controlled_shutdown(int attempts) {
  for (int i = 0; i < attempts; ++i) {
    const int32_t controller = b_.metadata()->controller_id;
    if (controller < 0) return false;
    if (controller == b_.node_id()) return true;  // resigning hands leadership over on expiry
    std::string error;
    auto c = connect_to(controller, &error);
    if (c) {
      protocol::controlled_shutdown_request req;
      req.broker_id = b_.node_id();
      protocol::controlled_shutdown_response resp;
      if (c->call(req, &resp, &error)) {
        if (resp.error_code == 0 && resp.remaining_partitions.empty()) return true;
        error = resp.error_code != 0 ? net::describe_error(resp.error_code)
                                     : std::to_string(resp.remaining_partitions.size()) +
                                           " partitions still led here";
      }
    }
    VLOG_WARN(kLog) << "controlled shutdown attempt " << (i + 1) << ": " << error;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return false;
}

}  // namespace varve::server
