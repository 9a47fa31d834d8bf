// varve topic create|list|describe|alter-config|add-partitions|delete
#include <algorithm>
#include <map>

#include "cli/commands.h"
#include "cli/table.h"

namespace varve::cli {
namespace {

constexpr int8_t kTopicResource = 2;

// The single positional NAME of a topic command, or a usage error.
bool topic_name(const context& ctx, const char* cmd, std::string* name, int* rc) {
  if (ctx.args.positional.size() != 1) {
    *rc = usage_error(std::string("topic ") + cmd + " needs exactly one topic name");
    return false;
  }
  *name = ctx.args.positional[0];
  return true;
}

int32_t admin_node(const admin_client& c) { return c.controller_id() >= 0 ? c.controller_id() : -1; }

}  // namespace

int topic_create(context& ctx) {
  std::string name;
  int rc = 0;
  if (!topic_name(ctx, "create", &name, &rc)) return rc;
  using protocol::create_topics_request;
  create_topics_request::creatable_topic t;
  t.name = name;
  t.num_partitions = -1;
  t.replication_factor = -1;
  if (auto p = ctx.args.get("--partitions")) {
    if (!parse_int32(*p, &t.num_partitions) || t.num_partitions <= 0)
      return usage_error("--partitions must be a positive integer");
  }
  if (auto r = ctx.args.get("--replication-factor")) {
    int32_t rf = 0;
    if (!parse_int32(*r, &rf) || rf <= 0 || rf > 32767)
      return usage_error("--replication-factor must be a positive integer");
    t.replication_factor = static_cast<int16_t>(rf);
  }
  for (const auto& kv : ctx.args.all("--config")) {
    create_topics_request::creatable_topic_config c;
    std::string value;
    if (!split_key_value(kv, &c.name, &value)) return usage_error("--config expects key=value, got '" + kv + "'");
    c.value = value;
    t.configs.push_back(c);
  }
  auto client = ctx.connect();
  if (!client) return 1;
  create_topics_request req;
  req.topics.push_back(t);
  req.timeout_ms = ctx.timeout_ms;
  const int32_t node = admin_node(*client);
  protocol::create_topics_response resp;
  std::string error;
  if (!client->call(node, req, client->version<create_topics_request>(node), &resp, &error))
    return fail(error);
  if (resp.topics.size() != 1) return fail("CreateTopics returned " + std::to_string(resp.topics.size()) + " results");
  const auto& r = resp.topics[0];
  if (r.error_code == protocol::to_wire(protocol::error_code::topic_already_exists) &&
      ctx.args.has("--if-not-exists")) {
    if (ctx.json) print_json({{"topic", name}, {"created", false}});
    else std::cout << "Topic " << name << " already exists.\n";
    return 0;
  }
  if (r.error_code != 0) return fail("cannot create topic " + name + ": " + describe_error(r.error_code, r.error_message));
  if (ctx.json) {
    print_json({{"topic", name},
                {"created", true},
                {"partitions", r.num_partitions},
                {"replication_factor", r.replication_factor}});
  } else {
    std::cout << "Created topic " << name << ".\n";
  }
  return 0;
}

int topic_list(context& ctx) {
  if (!ctx.args.positional.empty()) return usage_error("topic list takes no arguments");
  auto client = ctx.connect();
  if (!client) return 1;
  protocol::metadata_response md;
  std::string error;
  if (!client->metadata(std::nullopt, &md, &error)) return fail(error);
  std::vector<const protocol::metadata_response::metadata_response_topic*> topics;
  for (const auto& t : md.topics) {
    if (ctx.args.has("--exclude-internal") && t.is_internal) continue;
    topics.push_back(&t);
  }
  std::sort(topics.begin(), topics.end(),
            [](auto* a, auto* b) { return a->name.value_or("") < b->name.value_or(""); });
  nlohmann::json j = nlohmann::json::array();
  table tbl({"NAME", "PARTITIONS", "REPLICAS", "INTERNAL"});
  for (const auto* t : topics) {
    size_t rf = t->partitions.empty() ? 0 : t->partitions[0].replica_nodes.size();
    if (ctx.json) {
      j.push_back({{"name", t->name.value_or("")},
                   {"partitions", t->partitions.size()},
                   {"replication_factor", rf},
                   {"internal", t->is_internal}});
    } else {
      tbl.add_row({t->name.value_or(""), std::to_string(t->partitions.size()), std::to_string(rf),
                   t->is_internal ? "yes" : "no"});
    }
  }
  if (ctx.json) print_json(j);
  else tbl.print(std::cout);
  return 0;
}

namespace {
std::string hex_uuid(const protocol::uuid& u) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < u.bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += digits[u.bytes[i] >> 4];
    s += digits[u.bytes[i] & 15];
  }
  return s;
}
}  // namespace

int topic_describe(context& ctx) {
  std::string name;
  int rc = 0;
  if (!topic_name(ctx, "describe", &name, &rc)) return rc;
  auto client = ctx.connect();
  if (!client) return 1;
  protocol::metadata_response md;
  std::string error;
  if (!client->metadata(std::vector<std::string>{name}, &md, &error)) return fail(error);
  if (md.topics.size() != 1) return fail("Metadata returned no entry for topic " + name);
  const auto& t = md.topics[0];
  if (t.error_code != 0) return fail("topic " + name + ": " + describe_error(t.error_code));

  // Overrides: configs whose source is a dynamic topic config.
  using protocol::describe_configs_request;
  describe_configs_request dreq;
  describe_configs_request::describe_configs_resource res;
  res.resource_type = kTopicResource;
  res.resource_name = name;
  res.configuration_keys = std::nullopt;
  dreq.resources.push_back(res);
  protocol::describe_configs_response dresp;
  std::map<std::string, std::string> overrides;
  if (!client->call(-1, dreq, client->version<describe_configs_request>(), &dresp, &error))
    return fail(error);
  for (const auto& r : dresp.results) {
    if (r.error_code != 0) return fail("DescribeConfigs for topic " + name + ": " + describe_error(r.error_code, r.error_message));
    for (const auto& c : r.configs)
      if (c.config_source == 1) overrides[c.name] = c.is_sensitive ? "(sensitive)" : c.value.value_or("null");
  }

  std::vector<const protocol::metadata_response::metadata_response_partition*> parts;
  for (const auto& p : t.partitions) parts.push_back(&p);
  std::sort(parts.begin(), parts.end(), [](auto* a, auto* b) { return a->partition_index < b->partition_index; });
  const size_t rf = parts.empty() ? 0 : parts[0]->replica_nodes.size();
  if (ctx.json) {
    nlohmann::json jp = nlohmann::json::array();
    for (const auto* p : parts) {
      nlohmann::json e = {{"partition", p->partition_index},   {"leader", p->leader_id},
                          {"leader_epoch", p->leader_epoch},   {"replicas", p->replica_nodes},
                          {"isr", p->isr_nodes},               {"offline_replicas", p->offline_replicas}};
      if (p->error_code != 0) e["error"] = describe_error(p->error_code);
      jp.push_back(e);
    }
    print_json({{"name", name},
                {"topic_id", hex_uuid(t.topic_id)},
                {"internal", t.is_internal},
                {"partition_count", parts.size()},
                {"replication_factor", rf},
                {"configs", overrides},
                {"partitions", jp}});
    return 0;
  }
  std::string cfg;
  for (const auto& [k, v] : overrides) cfg += (cfg.empty() ? "" : ",") + k + "=" + v;
  std::cout << "Topic: " << name << "\tTopicId: " << hex_uuid(t.topic_id) << "\tPartitionCount: " << parts.size()
            << "\tReplicationFactor: " << rf << "\tConfigs: " << cfg << "\n\n";
  table tbl({"PARTITION", "LEADER", "LEADER-EPOCH", "REPLICAS", "ISR", "OFFLINE"});
  for (const auto* p : parts)
    tbl.add_row({std::to_string(p->partition_index), p->leader_id < 0 ? "none" : std::to_string(p->leader_id),
                 std::to_string(p->leader_epoch), join_ints(p->replica_nodes), join_ints(p->isr_nodes),
                 p->offline_replicas.empty() ? "-" : join_ints(p->offline_replicas)});
  tbl.print(std::cout);
  return 0;
}

int alter_configs(context& ctx, int8_t resource_type, const std::string& resource_name) {
  using protocol::incremental_alter_configs_request;
  incremental_alter_configs_request::alter_configs_resource res;
  res.resource_type = resource_type;
  res.resource_name = resource_name;
  for (const auto& kv : ctx.args.all("--set")) {
    incremental_alter_configs_request::alterable_config c;
    std::string value;
    if (!split_key_value(kv, &c.name, &value)) return usage_error("--set expects key=value, got '" + kv + "'");
    c.value = value;
    c.config_operation = 0;
    res.configs.push_back(c);
  }
  for (const auto& k : ctx.args.all("--delete")) {
    incremental_alter_configs_request::alterable_config c;
    c.name = k;
    c.value = std::nullopt;
    c.config_operation = 1;
    res.configs.push_back(c);
  }
  if (res.configs.empty()) return usage_error("nothing to change: give --set k=v and/or --delete k");
  auto client = ctx.connect();
  if (!client) return 1;
  int32_t node = -1;
  if (resource_type == 4) {  // a broker's configs are altered on that broker
    int32_t id = 0;
    if (!parse_int32(resource_name, &id)) return usage_error("--broker expects a broker id");
    node = id;
  }
  incremental_alter_configs_request req;
  req.resources.push_back(res);
  protocol::incremental_alter_configs_response resp;
  std::string error;
  if (!client->call(node, req, client->version<incremental_alter_configs_request>(node), &resp, &error))
    return fail(error);
  const std::string what = (resource_type == 2 ? "topic " : "broker ") + resource_name;
  for (const auto& r : resp.responses)
    if (r.error_code != 0) return fail("cannot alter configs of " + what + ": " + describe_error(r.error_code, r.error_message));
  if (ctx.json) {
    nlohmann::json set = nlohmann::json::object(), del = nlohmann::json::array();
    for (const auto& c : res.configs) {
      if (c.config_operation == 0) set[c.name] = *c.value;
      else del.push_back(c.name);
    }
    print_json({{"resource", what}, {"set", set}, {"deleted", del}});
  } else {
    std::cout << "Completed updating config for " << what << ".\n";
  }
  return 0;
}

int topic_alter_config(context& ctx) {
  std::string name;
  int rc = 0;
  if (!topic_name(ctx, "alter-config", &name, &rc)) return rc;
  return alter_configs(ctx, kTopicResource, name);
}

int topic_add_partitions(context& ctx) {
  std::string name;
  int rc = 0;
  if (!topic_name(ctx, "add-partitions", &name, &rc)) return rc;
  int32_t total = 0;
  auto t = ctx.args.get("--total");
  if (!t || !parse_int32(*t, &total) || total <= 0)
    return usage_error("topic add-partitions needs --total N (the new partition count)");
  auto client = ctx.connect();
  if (!client) return 1;
  using protocol::create_partitions_request;
  create_partitions_request req;
  create_partitions_request::create_partitions_topic pt;
  pt.name = name;
  pt.count = total;
  pt.assignments = std::nullopt;
  req.topics.push_back(pt);
  req.timeout_ms = ctx.timeout_ms;
  const int32_t node = admin_node(*client);
  protocol::create_partitions_response resp;
  std::string error;
  if (!client->call(node, req, client->version<create_partitions_request>(node), &resp, &error))
    return fail(error);
  for (const auto& r : resp.results)
    if (r.error_code != 0) return fail("cannot add partitions to " + name + ": " + describe_error(r.error_code, r.error_message));
  if (ctx.json) print_json({{"topic", name}, {"partitions", total}});
  else std::cout << "Topic " << name << " now has " << total << " partitions.\n";
  return 0;
}

int topic_delete(context& ctx) {
  std::string name;
  int rc = 0;
  if (!topic_name(ctx, "delete", &name, &rc)) return rc;
  auto client = ctx.connect();
  if (!client) return 1;
  using protocol::delete_topics_request;
  const int32_t node = admin_node(*client);
  const int16_t v = client->version<delete_topics_request>(node);
  delete_topics_request req;
  if (v >= 6) {
    delete_topics_request::delete_topic_state s;
    s.name = name;
    req.topics.push_back(s);
  } else {
    req.topic_names.push_back(name);
  }
  req.timeout_ms = ctx.timeout_ms;
  protocol::delete_topics_response resp;
  std::string error;
  if (!client->call(node, req, v, &resp, &error)) return fail(error);
  for (const auto& r : resp.responses)
    if (r.error_code != 0) return fail("cannot delete topic " + name + ": " + describe_error(r.error_code, r.error_message));
  if (ctx.json) print_json({{"topic", name}, {"deleted", true}});
  else std::cout << "Deleted topic " << name << ".\n";
  return 0;
}

}  // namespace varve::cli
