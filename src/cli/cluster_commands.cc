// varve cluster info|brokers, varve config describe|alter
#include <algorithm>

#include "cli/commands.h"
#include "cli/table.h"

namespace varve::cli {
namespace {

struct cluster_view {
  std::string cluster_id;
  int32_t controller_id = -1;
  std::vector<admin_client::broker_info> brokers;
};

// DescribeCluster when the broker has it, else Metadata.
bool load_cluster(admin_client& client, cluster_view* out, std::string* error) {
  using protocol::describe_cluster_request;
  const int16_t v = client.version<describe_cluster_request>();
  if (v >= 0) {
    describe_cluster_request req;
    protocol::describe_cluster_response resp;
    if (!client.call(-1, req, v, &resp, error)) return false;
    if (resp.error_code != 0) {
      *error = "DescribeCluster: " + describe_error(resp.error_code, resp.error_message);
      return false;
    }
    out->cluster_id = resp.cluster_id;
    out->controller_id = resp.controller_id;
    for (const auto& b : resp.brokers) out->brokers.push_back({b.broker_id, b.host, b.port, b.rack});
  } else {
    out->cluster_id = client.cluster_id();
    out->controller_id = client.controller_id();
    out->brokers = client.brokers();
  }
  std::sort(out->brokers.begin(), out->brokers.end(),
            [](const auto& a, const auto& b) { return a.node_id < b.node_id; });
  return true;
}

nlohmann::json brokers_json(const cluster_view& c) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& b : c.brokers)
    j.push_back({{"id", b.node_id},
                 {"host", b.host},
                 {"port", b.port},
                 {"rack", b.rack ? nlohmann::json(*b.rack) : nlohmann::json(nullptr)},
                 {"controller", b.node_id == c.controller_id}});
  return j;
}

void print_brokers(const cluster_view& c) {
  table tbl({"ID", "HOST", "PORT", "RACK", "CONTROLLER"});
  for (const auto& b : c.brokers)
    tbl.add_row({std::to_string(b.node_id), b.host, std::to_string(b.port), b.rack.value_or("-"),
                 b.node_id == c.controller_id ? "yes" : "no"});
  tbl.print(std::cout);
}

}  // namespace

int cluster_info(context& ctx) {
  auto client = ctx.connect();
  if (!client) return 1;
  cluster_view c;
  std::string error;
  if (!load_cluster(*client, &c, &error)) return fail(error);
  if (ctx.json) {
    print_json({{"cluster_id", c.cluster_id}, {"controller_id", c.controller_id}, {"brokers", brokers_json(c)}});
    return 0;
  }
  std::cout << "CLUSTER-ID: " << c.cluster_id << "\nCONTROLLER: " << c.controller_id << "\nBROKERS: " << c.brokers.size()
            << "\n\n";
  print_brokers(c);
  return 0;
}

int cluster_brokers(context& ctx) {
  auto client = ctx.connect();
  if (!client) return 1;
  cluster_view c;
  std::string error;
  if (!load_cluster(*client, &c, &error)) return fail(error);
  if (ctx.json) print_json(brokers_json(c));
  else print_brokers(c);
  return 0;
}

namespace {
// --topic T or --broker ID (exactly one): resource type and name.
bool config_resource(const context& ctx, int8_t* type, std::string* name, int* rc) {
  auto topic = ctx.args.get("--topic");
  auto broker = ctx.args.get("--broker");
  if (topic.has_value() == broker.has_value()) {
    *rc = usage_error("give exactly one of --topic T or --broker ID");
    return false;
  }
  if (topic) {
    *type = 2;
    *name = *topic;
  } else {
    int32_t id = 0;
    if (!parse_int32(*broker, &id) || id < 0) {
      *rc = usage_error("--broker expects a broker id");
      return false;
    }
    *type = 4;
    *name = *broker;
  }
  return true;
}
}  // namespace

int config_describe(context& ctx) {
  int8_t type = 0;
  std::string name;
  int rc = 0;
  if (!config_resource(ctx, &type, &name, &rc)) return rc;
  auto client = ctx.connect();
  if (!client) return 1;
  const int32_t node = type == 4 ? std::stoi(name) : -1;
  using protocol::describe_configs_request;
  describe_configs_request req;
  describe_configs_request::describe_configs_resource res;
  res.resource_type = type;
  res.resource_name = name;
  res.configuration_keys = std::nullopt;
  req.resources.push_back(res);
  protocol::describe_configs_response resp;
  std::string error;
  if (!client->call(node, req, client->version<describe_configs_request>(node), &resp, &error)) return fail(error);
  const std::string what = (type == 2 ? "topic " : "broker ") + name;
  if (resp.results.size() != 1) return fail("DescribeConfigs returned no result for " + what);
  const auto& r = resp.results[0];
  if (r.error_code != 0) return fail("cannot describe configs of " + what + ": " + describe_error(r.error_code, r.error_message));
  auto configs = r.configs;
  std::sort(configs.begin(), configs.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  if (ctx.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& c : configs)
      j.push_back({{"name", c.name},
                   {"value", c.is_sensitive || !c.value ? nlohmann::json(nullptr) : nlohmann::json(*c.value)},
                   {"source", config_source_name(c.config_source)},
                   {"read_only", c.read_only},
                   {"sensitive", c.is_sensitive}});
    print_json({{"resource_type", type == 2 ? "topic" : "broker"}, {"resource_name", name}, {"configs", j}});
    return 0;
  }
  table tbl({"NAME", "VALUE", "SOURCE", "READ-ONLY", "SENSITIVE"});
  for (const auto& c : configs) {
    // An empty value is shown as "" so the row keeps its columns.
    const std::string value = c.is_sensitive ? "(sensitive)" : !c.value ? "null" : c.value->empty() ? "\"\"" : *c.value;
    tbl.add_row({c.name, value, config_source_name(c.config_source),
                 c.read_only ? "yes" : "no", c.is_sensitive ? "yes" : "no"});
  }
  tbl.print(std::cout);
  return 0;
}

int config_alter(context& ctx) {
  int8_t type = 0;
  std::string name;
  int rc = 0;
  if (!config_resource(ctx, &type, &name, &rc)) return rc;
  return alter_configs(ctx, type, name);
}

}  // namespace varve::cli
