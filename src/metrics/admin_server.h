#pragma once
// metrics::admin_server — the broker's HTTP admin listener (admin.listeners, default
// http://127.0.0.1:9644): a small HTTP/1.1 server for Prometheus scrapes and health checks.
//
// Requests: GET (or HEAD) of a registered path; the query string is ignored. Anything else
// is answered 404 (unknown path) or 405 (other methods). Each connection serves requests
// until the client closes it or sends "Connection: close" (Prometheus keeps connections
// alive). A request head larger than kMaxRequestHead bytes, or a request with a body, is
// answered 400 and the connection closed.
//
// Threading: everything runs on the one io_context passed in (the broker uses shard 0's
// loop); route handlers are coroutines on that loop and may co_await work on other loops.
#include <asio.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace varve::metrics {

struct http_response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using route_handler = std::function<asio::awaitable<http_response>()>;

// Parsed "http://host:port" (scheme optional). False (with *error) when malformed.
struct admin_address {
  std::string host;
  uint16_t port = 0;
};
bool parse_admin_listener(const std::string& value, admin_address* out, std::string* error);

class admin_server {
 public:
  static constexpr size_t kMaxRequestHead = 16384;

  admin_server(asio::io_context& loop, admin_address address);
  ~admin_server();

  // Routes must be added before start().
  void route(std::string path, route_handler handler);
  // Binds and starts accepting; false (with *error) if the address cannot be bound.
  bool start(std::string* error);
  void stop();
  uint16_t bound_port() const { return bound_port_; }

 private:
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(asio::ip::tcp::socket socket);
  // One request/response exchange: a route to run, or a fixed answer (errors).
  struct exchange {
    const route_handler* route = nullptr;
    http_response fixed;
    bool close = true;
    bool head_only = false;
  };
  // Parses the head in buffer[0, head_end) and removes it from `buffer`.
  exchange begin_exchange(std::string& buffer, size_t head_end, bool too_large) const;
  static asio::awaitable<http_response> respond(const exchange& ex);
  // respond(), with a route that throws answered 500 (and logged) instead of a dropped
  // connection.
  static asio::awaitable<http_response> respond_or_500(const exchange& ex);
  static asio::awaitable<http_response> immediate(http_response r);

  asio::io_context& loop_;
  admin_address address_;
  asio::ip::tcp::acceptor acceptor_;
  std::map<std::string, route_handler> routes_;
  uint16_t bound_port_ = 0;
  bool stopping_ = false;
};

// --- the request parsing and response encoding, exposed for tests ---
struct http_request {
  std::string method;
  std::string path;  // without the query string
  bool close = false;  // "Connection: close" or HTTP/1.0 without keep-alive
  bool has_body = false;
};
// Parses a request head (everything before the blank line). False if malformed.
bool parse_request_head(std::string_view head, http_request* out);
std::string encode_response(const http_response& r, bool head_only, bool close);

}  // namespace varve::metrics
