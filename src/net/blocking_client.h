#pragma once
// net::broker_connection — a small blocking Kafka client connection: one TCP connection to
// one broker, one request in flight, ApiVersions on connect so every request goes at the
// highest version both sides support. Used by the CLI's admin requests and by the broker's
// own inter-broker senders (controller channel, replica fetchers, AlterPartition), which run
// it on their own threads — never on an event loop.
//
// Timeouts: connect, send and every receive are bounded by `timeout_ms`; a peer that stops
// answering (SIGSTOP, black-holed) fails the call with a timeout error.
// Thread-safety: none; one thread uses a connection at a time.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "protocol/messages.h"
#include "protocol/wire.h"

namespace varve::net {

// One blocking connection to one broker.
class broker_connection {
 public:
  ~broker_connection();
  broker_connection(const broker_connection&) = delete;
  broker_connection& operator=(const broker_connection&) = delete;

  // Connects to host:port and negotiates api versions. nullptr (and *error) on failure.
  static std::unique_ptr<broker_connection> open(const std::string& host, int port,
                                                 int timeout_ms, std::string* error,
                                                 std::string client_id = "varve-cli");

  // The version to use for `api_key` given Varve's range [ours_min, ours_max]: the highest
  // version both sides support, or -1 when the ranges do not overlap or the broker lacks it.
  int16_t pick_version(int16_t api_key, int16_t ours_min, int16_t ours_max) const;

  // Sends one request (encoded at `version`) and reads its response. Raw form: `body` is the
  // encoded request body; *response_body is the response body after the header, a slice of
  // the received frame (not zero-filled, not copied), which the slice keeps alive — records
  // decoded from it with reader(span, owner) reference the frame instead of copying (the
  // replica fetcher appends fetched batches straight from it).
  bool round_trip(int16_t api_key, int16_t version, const protocol::writer& body,
                  buffer_slice* response_body, std::string* error);

  // Typed form: encodes `req` at the highest version both sides support and decodes the
  // response. False (and *error) on any failure, including no common version.
  template <typename Req, typename Resp>
  bool call(const Req& req, Resp* resp, std::string* error, int16_t max_version = Req::max_version) {
    local_error_ = true;  // until the request is on the wire
    const int16_t version = pick_version(Req::api_key, Req::min_version, max_version);
    if (version < 0) {
      *error = address_ + " supports no common version of api " + std::to_string(Req::api_key);
      return false;
    }
    protocol::writer w;
    req.encode(w, version);
    if (!w.ok()) {
      *error = "request not representable at version " + std::to_string(version);
      return false;
    }
    local_error_ = false;
    buffer_slice body;
    if (!round_trip(Req::api_key, version, w, &body, error)) return false;
    protocol::reader r(body.span(), body.owner);
    if (!resp->decode(r, version) || !r.ok()) {
      *error = "malformed response to api " + std::to_string(Req::api_key) + " from " + address_;
      return false;
    }
    return true;
  }

  // After a failed call(): true if the request never left this process (no common version,
  // not representable) — retrying it on the same broker cannot help.
  bool last_error_was_local() const { return local_error_; }

  const std::string& address() const { return address_; }

 private:
  broker_connection(int fd, std::string address, int timeout_ms, std::string client_id)
      : fd_(fd), address_(std::move(address)), timeout_ms_(timeout_ms),
        client_id_(std::move(client_id)) {}
  bool negotiate(std::string* error);
  bool send_all(const std::vector<uint8_t>& bytes, std::string* error);
  bool recv_all(uint8_t* data, size_t n, std::string* error);

  int fd_;
  std::string address_;
  int timeout_ms_;
  std::string client_id_;
  bool local_error_ = false;
  int32_t next_correlation_id_ = 1;
  std::map<int16_t, std::pair<int16_t, int16_t>> broker_versions_;  // api -> [min, max]
};

// "NAME (code): message" for a Kafka error code and an optional broker message.
std::string describe_error(int16_t code, const std::optional<std::string>& message = {});

}  // namespace varve::net
