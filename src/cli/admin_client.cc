#include "cli/admin_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "protocol/api_table.h"
#include "protocol/error_code.h"

namespace varve::cli {

bool split_host_port(const std::string& s, std::string* host, int* port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) return false;
  *host = s.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']')
    *host = host->substr(1, host->size() - 2);
  try {
    size_t used = 0;
    int p = std::stoi(s.substr(colon + 1), &used);
    if (used != s.size() - colon - 1 || p <= 0 || p > 65535) return false;
    *port = p;
  } catch (...) {
    return false;
  }
  return true;
}


std::string admin_client::api_name(int16_t api_key) {
  const protocol::api_info* info = protocol::find_api(api_key);
  return info ? info->name : "api " + std::to_string(api_key);
}

std::unique_ptr<admin_client> admin_client::connect(const std::string& bootstrap, int timeout_ms,
                                                    std::string* error) {
  std::string host;
  int port = 0;
  if (!split_host_port(bootstrap, &host, &port)) {
    *error = "invalid --bootstrap-server '" + bootstrap + "' (expected host:port)";
    return nullptr;
  }
  auto c = broker_connection::open(host, port, timeout_ms, error);
  if (!c) return nullptr;
  std::unique_ptr<admin_client> client(new admin_client(std::move(c), timeout_ms));
  protocol::metadata_response md;
  if (!client->metadata(std::vector<std::string>{}, &md, error)) return nullptr;
  return client;
}

broker_connection* admin_client::connection(int32_t node_id, std::string* error) {
  if (node_id < 0) return bootstrap_.get();
  auto it = nodes_.find(node_id);
  if (it != nodes_.end()) return it->second.get();
  for (const auto& b : brokers_) {
    if (b.node_id != node_id) continue;
    std::string e;
    auto c = broker_connection::open(b.host, b.port, timeout_ms_, &e);
    if (!c) {
      if (error) *error = "broker " + std::to_string(node_id) + ": " + e;
      return nullptr;
    }
    return (nodes_[node_id] = std::move(c)).get();
  }
  if (error) *error = "broker " + std::to_string(node_id) + " is not in the cluster metadata";
  return nullptr;
}

bool admin_client::metadata(const std::optional<std::vector<std::string>>& topics,
                            protocol::metadata_response* out, std::string* error) {
  using protocol::metadata_request;
  const int16_t v = version<metadata_request>();
  metadata_request req;
  if (topics) {
    std::vector<metadata_request::metadata_request_topic> list;
    for (const auto& t : *topics) {
      metadata_request::metadata_request_topic mt;
      mt.name = t;
      list.push_back(mt);
    }
    req.topics = list;
  } else {
    req.topics = std::nullopt;
  }
  req.allow_auto_topic_creation = false;
  if (!call(-1, req, v, out, error)) return false;
  brokers_.clear();
  for (const auto& b : out->brokers) brokers_.push_back({b.node_id, b.host, b.port, b.rack});
  controller_id_ = out->controller_id;
  cluster_id_ = out->cluster_id.value_or("");
  return true;
}

bool admin_client::find_group_coordinator(const std::string& group, int32_t* node_id,
                                          std::string* error) {
  using protocol::find_coordinator_request;
  const int16_t v = version<find_coordinator_request>();
  find_coordinator_request req;
  req.key_type = 0;
  if (v >= 4) {
    req.coordinator_keys = {group};
  } else {
    req.key = group;
  }
  protocol::find_coordinator_response resp;
  if (!call(-1, req, v, &resp, error)) return false;
  int16_t code = resp.error_code;
  std::optional<std::string> message = resp.error_message;
  int32_t node = resp.node_id;
  if (v >= 4) {
    if (resp.coordinators.empty()) {
      *error = "FindCoordinator returned no coordinator for group '" + group + "'";
      return false;
    }
    code = resp.coordinators[0].error_code;
    message = resp.coordinators[0].error_message;
    node = resp.coordinators[0].node_id;
  }
  if (code != 0) {
    *error = "FindCoordinator for group '" + group + "': " + describe_error(code, message);
    return false;
  }
  *node_id = node;
  return true;
}

}  // namespace varve::cli
