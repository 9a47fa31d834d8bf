#pragma once
// net::server — accepts Kafka connections and runs one connection loop per socket.
//
// Each accepted socket is handed to one of the event loops (round robin); everything about
// that connection then runs on that loop. A connection reads one request frame, awaits the
// handler, writes the response, then reads the next — Kafka's own per-connection ordering
// (the JVM broker mutes a channel until its response is sent), which gives in-order
// responses and natural back-pressure: a client can have at most one request being
// processed per connection, and at most `max_request_bytes` buffered for it.
//
// A frame larger than `max_request_bytes` (socket.request.max.bytes) or with a negative
// size closes the connection before any allocation. A handler that reports a malformed
// request closes that connection only.
#include <asio.hpp>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/frame.h"

namespace varve::net {

struct connection_info {
  uint64_t id = 0;
  std::string peer;  // "ip:port"
};

// What a handler tells the connection to do with a request.
struct handler_result {
  enum class action : uint8_t { respond, no_response, close } what = action::respond;
  response_frame response;
};

using request_handler =
    std::function<asio::awaitable<handler_result>(const connection_info&, request_frame)>;

struct server_options {
  std::string host = "127.0.0.1";
  uint16_t port = 9092;
  int32_t max_request_bytes = 104857600;   // socket.request.max.bytes
  int32_t send_buffer_bytes = -1;          // socket.send.buffer.bytes (-1: OS default)
  int32_t receive_buffer_bytes = -1;       // socket.receive.buffer.bytes
  int32_t max_connections = INT32_MAX;     // max.connections
};

class server {
 public:
  // `loops` are the event loops connections are spread over; loops[0] runs the acceptor.
  server(std::vector<asio::io_context*> loops, server_options options, request_handler handler);
  ~server();

  // Binds and starts accepting. Returns false (with *error) if the address cannot be bound.
  bool start(std::string* error);
  // Stops accepting and closes every connection.
  void stop();
  uint16_t bound_port() const { return bound_port_; }
  int64_t connection_count() const { return connections_.load(); }

 private:
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> run_connection(asio::ip::tcp::socket socket, connection_info info);

  std::vector<asio::io_context*> loops_;
  server_options options_;
  request_handler handler_;
  asio::ip::tcp::acceptor acceptor_;
  uint16_t bound_port_ = 0;
  std::atomic<int64_t> connections_{0};
  std::atomic<uint64_t> next_connection_id_{1};
  std::atomic<bool> stopping_{false};
  size_t next_loop_ = 0;
};

// Writes a response frame: the size prefix is patched in, memory parts are written with
// scatter/gather, file regions with sendfile(2) (waiting for writability on EAGAIN).
asio::awaitable<void> write_response(asio::ip::tcp::socket& socket, response_frame& frame);

}  // namespace varve::net
