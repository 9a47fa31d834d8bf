// Cluster and topic administration: ApiVersions, Metadata, CreateTopics, DeleteTopics,
// CreatePartitions, DescribeConfigs, AlterConfigs, IncrementalAlterConfigs,
// DescribeCluster and InitProducerId. Every metadata change goes through the controller
// (the single writer) and is applied on every shard before the response is sent.
#include <sstream>

#include "common/log.h"
#include "config/topic_config.h"
#include "server/handlers/handlers.h"
#include "server/handlers/util.h"

namespace varve::server::handlers {
namespace {
constexpr int8_t kResourceTopic = 2;
constexpr int8_t kResourceBroker = 4;
constexpr int8_t kResourceBrokerLogger = 8;

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

void fill_topic(metadata_response::metadata_response_topic& out, const cluster::topic_metadata& t,
                const std::vector<cluster::broker_endpoint>& live) {
  auto is_live = [&live](int32_t id) {
    return std::any_of(live.begin(), live.end(), [id](const auto& b) { return b.id == id; });
  };
  out.name = t.name;
  out.topic_id = to_uuid(t.id);
  out.is_internal = t.internal;
  for (const auto& p : t.partitions) {
    auto& pr = out.partitions.emplace_back();
    pr.partition_index = p.partition;
    pr.leader_id = p.leader;
    pr.leader_epoch = p.leader_epoch;
    pr.replica_nodes = p.replicas;
    pr.isr_nodes = p.isr;
    for (int32_t r : p.replicas) {
      if (!is_live(r)) pr.offline_replicas.push_back(r);
    }
    if (p.leader < 0) pr.error_code = to_wire(error_code::leader_not_available);
  }
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto b = item.find_first_not_of(' ');
    auto e = item.find_last_not_of(' ');
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}
}  // namespace

// GCC 12 miscompiles coroutines that hold non-trivial temporaries in branches (it can
// destroy temporaries of a branch that never ran). Handlers therefore keep their logic in
// plain functions and use the coroutine only to sequence awaits.

namespace {
void fill_api_versions(api_versions_response& resp) {
  for (const auto& e : api_table()) {
    auto& v = resp.api_keys.emplace_back();
    v.api_key = e.key;
    v.min_version = e.min_version;
    v.max_version = e.max_version;
  }
}
}  // namespace

asio::awaitable<void> api_versions(request_context& ctx, api_versions_request&,
                                   api_versions_response& resp) {
  fill_api_versions(resp);
  co_return;
}

namespace {
// How long Metadata / DescribeCluster wait for a starting cluster broker's first word from
// the controller (broker::await_cluster_view); after that they answer what the broker has.
constexpr std::chrono::milliseconds kClusterViewWait{10000};

// Names of requested topics that Metadata should auto-create.
std::vector<std::string> topics_to_auto_create(const request_context& ctx,
                                               const metadata_request& req,
                                               const cluster::metadata_snapshot& md) {
  std::vector<std::string> out;
  if (!req.topics || (ctx.version == 0 && req.topics->empty())) return out;
  if (!req.allow_auto_topic_creation || !ctx.b.config().auto_create_topics_enable()) return out;
  for (const auto& t : *req.topics) {
    std::string why;
    if (t.name && !md.find(*t.name) && cluster::valid_topic_name(*t.name, &why)) {
      out.push_back(*t.name);
    }
  }
  return out;
}

void fill_metadata(const request_context& ctx, const metadata_request& req,
                   const cluster::metadata_snapshot& md, metadata_response& resp) {
  for (const auto& b : md.brokers) {
    auto& br = resp.brokers.emplace_back();
    br.node_id = b.id;
    br.host = b.host;
    br.port = b.port;
    br.rack = b.rack;
  }
  resp.cluster_id = md.cluster_id;
  resp.controller_id = md.controller_id;
  const bool all_topics = !req.topics || (ctx.version == 0 && req.topics->empty());
  if (all_topics) {
    for (const auto& [name, t] : md.topics) fill_topic(resp.topics.emplace_back(), *t, md.brokers);
    return;
  }
  for (const auto& t : *req.topics) {
    auto& tr = resp.topics.emplace_back();
    std::shared_ptr<const cluster::topic_metadata> found;
    if (t.name) {
      found = md.find(*t.name);
      tr.name = t.name;
    } else {
      found = md.find(from_uuid(t.topic_id));
      tr.name = std::nullopt;
      tr.topic_id = t.topic_id;
    }
    if (found) {
      fill_topic(tr, *found, md.brokers);
      continue;
    }
    std::string why;
    if (t.name && !cluster::valid_topic_name(*t.name, &why)) {
      tr.error_code = to_wire(error_code::invalid_topic_exception);
    } else {
      tr.error_code = to_wire(t.name ? error_code::unknown_topic_or_partition
                                     : error_code::unknown_topic_id);
    }
  }
}

void log_auto_create_failure(const std::string& name, const cluster::topic_result& r) {
  if (r.error != error_code::none && r.error != error_code::topic_already_exists) {
    VLOG_WARN("metadata") << "auto-creating topic " << name << " failed: " << r.message;
  }
}
}  // namespace

asio::awaitable<void> metadata(request_context& ctx, metadata_request& req,
                               metadata_response& resp) {
  {
    auto wait = ctx.b.await_cluster_view(kClusterViewWait);
    co_await std::move(wait);
  }
  // Auto-creation (auto.create.topics.enable and the request's allow flag) happens first, so
  // the response can describe the new topics.
  const auto to_create = topics_to_auto_create(ctx, req, *ctx.b.metadata());
  for (const auto& name : to_create) {
    auto result = co_await ctx.b.with_controller([&name](cluster::controller& c) {
      return c.create_topic(name, -1, -1, {}, false);
    });
    log_auto_create_failure(name, result);
  }
  fill_metadata(ctx, req, *ctx.b.metadata(), resp);
}

namespace {
// Checks one CreateTopics entry before it goes to the controller; false (with the error
// filled in) if it cannot be created. Turns a manual assignment into a partition count.
bool prepare_topic(const request_context& ctx, create_topics_request::creatable_topic& t,
                   create_topics_response::creatable_topic_result& tr,
                   std::map<std::string, std::string>* configs, cluster::replica_assignment* manual) {
  tr.name = t.name;
  tr.error_message = std::nullopt;
  if (!t.assignments.empty()) {
    // Manual assignment: partitions 0..n-1, each once; the controller checks the brokers.
    manual->assign(t.assignments.size(), {});
    bool ok = true;
    for (const auto& a : t.assignments) {
      const bool in_range = a.partition_index >= 0 &&
                            a.partition_index < static_cast<int32_t>(t.assignments.size());
      ok = ok && in_range && (*manual)[a.partition_index].empty();
      if (in_range) (*manual)[a.partition_index] = a.broker_ids;
    }
    if (!ok) {
      tr.error_code = to_wire(error_code::invalid_replica_assignment);
      tr.error_message = "Replica assignments must cover partitions 0.." +
                         std::to_string(t.assignments.size() - 1) + " once each.";
      return false;
    }
    if (t.num_partitions != -1 || t.replication_factor != -1) {
      tr.error_code = to_wire(error_code::invalid_request);
      tr.error_message =
          "Both numPartitions or replicationFactor and replicasAssignments were set. Both "
          "cannot be used at the same time.";
      return false;
    }
    t.num_partitions = static_cast<int32_t>(t.assignments.size());
    t.replication_factor = static_cast<int16_t>(t.assignments.front().broker_ids.size());
  }
  for (const auto& c : t.configs) {
    if (!c.value) {
      tr.error_code = to_wire(error_code::invalid_config);
      tr.error_message = "Null value not supported for topic configs";
      return false;
    }
    (*configs)[c.name] = *c.value;
  }
  return true;
}

void fill_created_topic(const request_context& ctx, const create_topics_request::creatable_topic& t,
                        const std::map<std::string, std::string>& configs,
                        const cluster::topic_result& result,
                        create_topics_response::creatable_topic_result& tr) {
  tr.error_code = to_wire(result.error);
  if (result.error != error_code::none) {
    tr.error_message = result.message;
    tr.configs = std::nullopt;
    return;
  }
  tr.num_partitions = t.num_partitions == -1 ? ctx.b.config().num_partitions() : t.num_partitions;
  tr.replication_factor = t.replication_factor == -1
                              ? static_cast<int16_t>(ctx.b.config().default_replication_factor())
                              : t.replication_factor;
  if (auto created = ctx.b.metadata()->find(t.name)) tr.topic_id = to_uuid(created->id);
  std::vector<create_topics_response::creatable_topic_configs> out;
  for (const auto& e : config::resolve_topic_config(ctx.b.config(), configs)) {
    auto& c = out.emplace_back();
    c.name = e.name;
    c.value = e.value;
    c.read_only = e.read_only;
    c.config_source = static_cast<int8_t>(e.source);
    c.is_sensitive = e.sensitive;
  }
  tr.configs = std::move(out);
}
}  // namespace

asio::awaitable<void> create_topics(request_context& ctx, create_topics_request& req,
                                    create_topics_response& resp) {
  for (auto& t : req.topics) {
    auto& tr = resp.topics.emplace_back();
    std::map<std::string, std::string> configs;
    cluster::replica_assignment manual;
    if (!prepare_topic(ctx, t, tr, &configs, &manual)) continue;
    const bool validate_only = req.validate_only;
    auto result = co_await ctx.b.with_controller([&](cluster::controller& c) {
      return c.create_topic(t.name, t.num_partitions, t.replication_factor, configs,
                            validate_only, /*internal=*/false, manual);
    });
    fill_created_topic(ctx, t, configs, result, tr);
  }
}

namespace {
// Resolves one DeleteTopics target; returns the topic name to delete, or "" with the error
// filled in.
std::string resolve_deletion(const request_context& ctx, const std::optional<std::string>& name,
                             const protocol::uuid& id,
                             delete_topics_response::deletable_topic_result& r) {
  r.topic_id = id;
  auto md = ctx.b.metadata();
  auto t = name ? md->find(*name) : md->find(from_uuid(id));
  r.name = t ? std::optional<std::string>(t->name) : name;
  if (!ctx.b.config().delete_topic_enable()) {
    r.error_code = to_wire(error_code::topic_deletion_disabled);
    return "";
  }
  if (!t) {
    r.error_code = to_wire(name ? error_code::unknown_topic_or_partition
                                : error_code::unknown_topic_id);
    return "";
  }
  r.topic_id = to_uuid(t->id);
  return t->name;
}

void fill_result(const cluster::topic_result& result, int16_t* code,
                 std::optional<std::string>* message) {
  *code = to_wire(result.error);
  if (result.error != error_code::none) *message = result.message;
}
}  // namespace

asio::awaitable<void> delete_topics(request_context& ctx, delete_topics_request& req,
                                    delete_topics_response& resp) {
  // v6 names topics by name or id; older versions by name only.
  std::vector<std::pair<std::optional<std::string>, protocol::uuid>> targets;
  if (ctx.version >= 6) {
    for (const auto& t : req.topics) targets.emplace_back(t.name, t.topic_id);
  } else {
    for (const auto& n : req.topic_names) targets.emplace_back(n, protocol::uuid{});
  }
  for (auto& [name, id] : targets) {
    auto& r = resp.responses.emplace_back();
    const std::string topic = resolve_deletion(ctx, name, id, r);
    if (topic.empty()) continue;
    auto result = co_await ctx.b.with_controller(
        [&](cluster::controller& c) { return c.delete_topic(topic); });
    fill_result(result, &r.error_code, &r.error_message);
  }
}

namespace {
// The new partitions' replica lists; the controller checks them against the brokers.
cluster::replica_assignment partition_assignment(
    const create_partitions_request::create_partitions_topic& t,
    create_partitions_response::create_partitions_topic_result& r) {
  r.name = t.name;
  cluster::replica_assignment out;
  if (t.assignments) {
    for (const auto& a : *t.assignments) out.push_back(a.broker_ids);
  }
  return out;
}
}  // namespace

asio::awaitable<void> create_partitions(request_context& ctx, create_partitions_request& req,
                                        create_partitions_response& resp) {
  for (auto& t : req.topics) {
    auto& r = resp.results.emplace_back();
    const cluster::replica_assignment manual = partition_assignment(t, r);
    const bool validate_only = req.validate_only;
    auto result = co_await ctx.b.with_controller([&](cluster::controller& c) {
      return c.create_partitions(t.name, t.count, validate_only, manual);
    });
    fill_result(result, &r.error_code, &r.error_message);
  }
}

namespace {
void fill_describe_configs(const request_context& ctx, const describe_configs_request& req,
                           describe_configs_response& resp) {
  auto md = ctx.b.metadata();
  for (auto& res : req.resources) {
    auto& rr = resp.results.emplace_back();
    rr.resource_type = res.resource_type;
    rr.resource_name = res.resource_name;
    rr.error_message = std::nullopt;
    std::vector<config::config_entry> entries;
    if (res.resource_type == kResourceTopic) {
      auto t = md->find(res.resource_name);
      if (!t) {
        rr.error_code = to_wire(error_code::unknown_topic_or_partition);
        rr.error_message = "Topic '" + res.resource_name + "' does not exist.";
        continue;
      }
      entries = config::resolve_topic_config(ctx.b.config(), t->configs);
    } else if (res.resource_type == kResourceBroker) {
      if (!res.resource_name.empty() && res.resource_name != std::to_string(ctx.b.node_id())) {
        rr.error_code = to_wire(error_code::invalid_request);
        rr.error_message = "Unexpected broker id, expected " + std::to_string(ctx.b.node_id()) +
                           " or empty string, but received " + res.resource_name;
        continue;
      }
      entries = config::describe_broker_configs(ctx.b.config());
    } else if (res.resource_type == kResourceBrokerLogger) {
      continue;  // no per-logger levels: an empty list
    } else {
      rr.error_code = to_wire(error_code::invalid_request);
      rr.error_message = "Unsupported resource type " + std::to_string(res.resource_type);
      continue;
    }
    for (const auto& e : entries) {
      if (res.configuration_keys &&
          std::find(res.configuration_keys->begin(), res.configuration_keys->end(), e.name) ==
              res.configuration_keys->end()) {
        continue;
      }
      auto& c = rr.configs.emplace_back();
      c.name = e.name;
      c.value = e.value;
      c.read_only = e.read_only;
      c.config_source = static_cast<int8_t>(e.source);
      c.is_sensitive = e.sensitive;
      c.config_type = static_cast<int8_t>(e.type);
      c.documentation = req.include_documentation ? std::optional<std::string>(e.documentation)
                                                  : std::nullopt;
      if (req.include_synonyms) {
        for (const auto& s : e.synonyms) {
          auto& syn = c.synonyms.emplace_back();
          syn.name = s.name;
          syn.value = s.value;
          syn.source = static_cast<int8_t>(s.source);
        }
      }
    }
  }
}

}  // namespace

asio::awaitable<void> describe_configs(request_context& ctx, describe_configs_request& req,
                                       describe_configs_response& resp) {
  fill_describe_configs(ctx, req, resp);
  co_return;
}

namespace {
// Fills the error of a non-topic resource in (Incremental)AlterConfigs; false for topics.
template <typename Resource, typename Result>
bool reject_non_topic(const Resource& res, Result& rr) {
  rr.resource_type = res.resource_type;
  rr.resource_name = res.resource_name;
  rr.error_message = std::nullopt;
  if (res.resource_type == kResourceTopic) return false;
  rr.error_code = to_wire(error_code::invalid_request);
  rr.error_message = res.resource_type == kResourceBroker
                         ? "Dynamic broker configuration is not supported; edit "
                           "server.properties and restart the broker"
                         : "Unsupported resource type " + std::to_string(res.resource_type);
  return true;
}

// IncrementalAlterConfigs on a broker that only DELETEs keys: nothing is set dynamically,
// so there is nothing to delete — success (kafka-reassign-partitions --verify clears its
// replication throttles this way).
bool only_deletes_on_broker(const incremental_alter_configs_request::alter_configs_resource& res,
                            incremental_alter_configs_response::alter_configs_resource_response& rr) {
  constexpr int8_t kDelete = 1;
  if (res.resource_type != kResourceBroker) return false;
  for (const auto& c : res.configs) {
    if (c.config_operation != kDelete) return false;
  }
  rr.resource_type = res.resource_type;
  rr.resource_name = res.resource_name;
  rr.error_code = 0;
  rr.error_message = std::nullopt;
  return true;
}

std::map<std::string, std::string> alter_configs_map(
    const alter_configs_request::alter_configs_resource& res) {
  std::map<std::string, std::string> configs;
  for (const auto& c : res.configs) {
    if (c.value) configs[c.name] = *c.value;
  }
  return configs;
}

// Applies IncrementalAlterConfigs operations (SET, DELETE, APPEND, SUBTRACT) to the topic's
// current overrides. Returns false with *error set on an invalid operation.
bool incremental_configs(const request_context& ctx,
                         const incremental_alter_configs_request::alter_configs_resource& res,
                         std::map<std::string, std::string>* configs, std::string* error) {
  constexpr int8_t kSet = 0, kDelete = 1, kAppend = 2, kSubtract = 3;
  auto t = ctx.b.metadata()->find(res.resource_name);
  if (!t) {
    *error = "Topic '" + res.resource_name + "' does not exist.";
    return false;
  }
  *configs = t->configs;
  const auto effective = config::resolve_topic_config(ctx.b.config(), t->configs);
  auto current_value = [&](const std::string& key) -> std::string {
    if (auto it = configs->find(key); it != configs->end()) return it->second;
    for (const auto& e : effective) {
      if (e.name == key && e.value) return *e.value;
    }
    return "";
  };
  for (const auto& c : res.configs) {
    switch (c.config_operation) {
      case kSet:
        if (!c.value) {
          *error = "Null value not supported for " + c.name;
          return false;
        }
        (*configs)[c.name] = *c.value;
        break;
      case kDelete:
        configs->erase(c.name);
        break;
      case kAppend:
      case kSubtract: {
        auto items = split_list(current_value(c.name));
        for (const auto& v : split_list(c.value.value_or(""))) {
          auto it = std::find(items.begin(), items.end(), v);
          if (c.config_operation == kAppend && it == items.end()) items.push_back(v);
          if (c.config_operation == kSubtract && it != items.end()) items.erase(it);
        }
        std::string joined;
        for (const auto& i : items) joined += (joined.empty() ? "" : ",") + i;
        (*configs)[c.name] = joined;
        break;
      }
      default:
        *error = "Unknown config operation " + std::to_string(c.config_operation);
        return false;
    }
  }
  return true;
}

void fill_describe_cluster(const request_context& ctx, const describe_cluster_request& req,
                           describe_cluster_response& resp) {
  constexpr int8_t kBrokers = 1;
  if (ctx.version >= 1 && req.endpoint_type != kBrokers) {
    resp.error_code = to_wire(error_code::mismatched_endpoint_type);
    resp.error_message = "The request was sent to an endpoint of type BROKER";
    return;
  }
  auto md = ctx.b.metadata();
  resp.endpoint_type = kBrokers;
  resp.cluster_id = md->cluster_id;
  resp.controller_id = md->controller_id;
  for (const auto& b : md->brokers) {
    auto& br = resp.brokers.emplace_back();
    br.broker_id = b.id;
    br.host = b.host;
    br.port = b.port;
    br.rack = b.rack;
  }
}
}  // namespace

asio::awaitable<void> alter_configs(request_context& ctx, alter_configs_request& req,
                                    alter_configs_response& resp) {
  for (auto& res : req.resources) {
    auto& rr = resp.responses.emplace_back();
    if (reject_non_topic(res, rr)) continue;
    const auto configs = alter_configs_map(res);
    const bool validate_only = req.validate_only;
    auto result = co_await ctx.b.with_controller([&](cluster::controller& c) {
      return c.set_topic_configs(res.resource_name, configs, validate_only);
    });
    fill_result(result, &rr.error_code, &rr.error_message);
  }
}

asio::awaitable<void> incremental_alter_configs(request_context& ctx,
                                                incremental_alter_configs_request& req,
                                                incremental_alter_configs_response& resp) {
  for (auto& res : req.resources) {
    auto& rr = resp.responses.emplace_back();
    if (only_deletes_on_broker(res, rr) || reject_non_topic(res, rr)) continue;
    std::map<std::string, std::string> configs;
    std::string error;
    if (!incremental_configs(ctx, res, &configs, &error)) {
      rr.error_code = to_wire(ctx.b.metadata()->find(res.resource_name)
                                  ? error_code::invalid_config
                                  : error_code::unknown_topic_or_partition);
      rr.error_message = error;
      continue;
    }
    const bool validate_only = req.validate_only;
    auto result = co_await ctx.b.with_controller([&](cluster::controller& c) {
      return c.set_topic_configs(res.resource_name, configs, validate_only);
    });
    fill_result(result, &rr.error_code, &rr.error_message);
  }
}

asio::awaitable<void> describe_cluster(request_context& ctx, describe_cluster_request& req,
                                       describe_cluster_response& resp) {
  {
    auto wait = ctx.b.await_cluster_view(kClusterViewWait);
    co_await std::move(wait);
  }
  fill_describe_cluster(ctx, req, resp);
}

// InitProducerId is in txn.cc (the transaction coordinator answers transactional ids).

}  // namespace varve::server::handlers
