#pragma once
// A small blocking Kafka client for the CLI's admin requests. It speaks the wire protocol
// with the generated message types (protocol/messages.h): one TCP connection per broker,
// one request in flight at a time, ApiVersions on connect so each request is sent at
// min(Varve's max, the broker's max) of its api.
//
// Usage: fill a request for the version returned by version<Req>() (fields differ between
// versions), then call(). Every failure (connect, timeout, malformed response, an api the
// broker does not support) is returned as false with a human-readable *error.
//
// Thread-safety: none; the CLI is single-threaded.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "protocol/messages.h"
#include "protocol/wire.h"
#include "net/blocking_client.h"

namespace varve::cli {

using net::broker_connection;

// A client of a cluster reached through one bootstrap address; connects to other brokers
// (controller, coordinators, partition leaders) on demand from Metadata.
class admin_client {
 public:
  // Connects to the bootstrap "host:port" and loads the broker list. nullptr on failure.
  static std::unique_ptr<admin_client> connect(const std::string& bootstrap, int timeout_ms,
                                               std::string* error);

  // Version to fill a request of type Req with for node `node_id` (-1 = bootstrap); -1 when
  // the broker does not support any version Varve knows.
  template <typename Req>
  int16_t version(int32_t node_id = -1) {
    broker_connection* c = connection(node_id, nullptr);
    return c ? c->pick_version(Req::api_key, Req::min_version, Req::max_version) : -1;
  }

  // Sends `req` at `version` to `node_id` (-1 = the bootstrap broker) and decodes the
  // response into *resp.
  template <typename Req, typename Resp>
  bool call(int32_t node_id, const Req& req, int16_t version, Resp* resp, std::string* error) {
    broker_connection* c = connection(node_id, error);
    if (!c) return false;
    if (version < 0) {
      *error = "broker " + c->address() + " does not support " + api_name(Req::api_key) +
               " in any version this client knows";
      return false;
    }
    protocol::writer w;
    req.encode(w, version);
    if (!w.ok()) {
      *error = "internal error: request not representable in " + api_name(Req::api_key) + " v" +
               std::to_string(version);
      return false;
    }
    buffer_slice body;
    if (!c->round_trip(Req::api_key, version, w, &body, error)) return false;
    protocol::reader r(body.span(), body.owner);
    if (!resp->decode(r, version) || !r.ok()) {
      *error = "malformed " + api_name(Req::api_key) + " v" + std::to_string(version) +
               " response from " + c->address();
      return false;
    }
    return true;
  }

  // The broker list and controller from the last Metadata (refresh() reloads them).
  struct broker_info {
    int32_t node_id = -1;
    std::string host;
    int32_t port = 0;
    std::optional<std::string> rack;
  };
  const std::vector<broker_info>& brokers() const { return brokers_; }
  int32_t controller_id() const { return controller_id_; }
  const std::string& cluster_id() const { return cluster_id_; }

  // Metadata for `topics` (nullopt = every topic). Also refreshes the broker list.
  bool metadata(const std::optional<std::vector<std::string>>& topics,
                protocol::metadata_response* out, std::string* error);

  // The group coordinator's node id for `group`.
  bool find_group_coordinator(const std::string& group, int32_t* node_id, std::string* error);

  static std::string api_name(int16_t api_key);

 private:
  admin_client(std::unique_ptr<broker_connection> bootstrap, int timeout_ms)
      : bootstrap_(std::move(bootstrap)), timeout_ms_(timeout_ms) {}
  broker_connection* connection(int32_t node_id, std::string* error);

  std::unique_ptr<broker_connection> bootstrap_;
  int timeout_ms_;
  std::map<int32_t, std::unique_ptr<broker_connection>> nodes_;
  std::vector<broker_info> brokers_;
  int32_t controller_id_ = -1;
  std::string cluster_id_;
};

using net::describe_error;

// Splits "host:port"; false when malformed.
bool split_host_port(const std::string& s, std::string* host, int* port);

}  // namespace varve::cli
