#include "metrics/admin_server.h"

#include <charconv>
#include <optional>

#include "common/log.h"

namespace varve::metrics {
namespace {
constexpr std::string_view kLog = "admin";

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

const char* reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

http_response plain(int status, std::string body) {
  http_response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

// What to answer for a parsed request when no route handler needs to run; nullopt when
// the route handler must run.
std::optional<http_response> precheck(const http_request& req, bool known_path) {
  if (req.method != "GET" && req.method != "HEAD") return plain(405, "method not allowed\n");
  if (!known_path) return plain(404, "not found\n");
  return std::nullopt;
}
}  // namespace

bool parse_admin_listener(const std::string& value, admin_address* out, std::string* error) {
  std::string_view v = trim(value);
  if (auto comma = v.find(','); comma != std::string_view::npos) v = v.substr(0, comma);
  if (v.starts_with("http://")) {
    v.remove_prefix(7);
  } else if (v.find("://") != std::string_view::npos) {
    *error = "admin.listeners: only http:// is supported: " + value;
    return false;
  }
  while (!v.empty() && v.back() == '/') v.remove_suffix(1);
  const auto colon = v.rfind(':');
  if (colon == std::string_view::npos) {
    *error = "admin.listeners: expected http://host:port, got " + value;
    return false;
  }
  std::string_view host = v.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string_view port = v.substr(colon + 1);
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || ptr != port.data() + port.size() || p > 65535) {
    *error = "admin.listeners: invalid port in " + value;
    return false;
  }
  out->host = host.empty() ? "0.0.0.0" : std::string(host);
  out->port = static_cast<uint16_t>(p);
  return true;
}

bool parse_request_head(std::string_view head, http_request* out) {
  const auto eol = head.find("\r\n");
  const std::string_view line = head.substr(0, eol);
  const auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return false;
  const auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return false;
  out->method = std::string(line.substr(0, sp1));
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (out->method.empty() || target.empty() || !version.starts_with("HTTP/1.")) return false;
  if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  out->path = std::string(target);
  bool keep_alive = version != "HTTP/1.0";
  std::string_view rest = eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 2);
  while (!rest.empty()) {
    const auto e = rest.find("\r\n");
    const std::string_view h = rest.substr(0, e);
    rest = e == std::string_view::npos ? std::string_view{} : rest.substr(e + 2);
    const auto colon = h.find(':');
    if (colon == std::string_view::npos) {
      if (trim(h).empty()) continue;
      return false;
    }
    const std::string name = lower(trim(h.substr(0, colon)));
    const std::string value = lower(trim(h.substr(colon + 1)));
    if (name == "connection") keep_alive = value.find("close") == std::string::npos &&
                                           (keep_alive || value.find("keep-alive") != std::string::npos);
    if (name == "content-length" && value != "0") out->has_body = true;
    if (name == "transfer-encoding") out->has_body = true;
  }
  out->close = !keep_alive;
  return true;
}

std::string encode_response(const http_response& r, bool head_only, bool close) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + reason(r.status) + "\r\n";
  out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  if (!head_only) out += r.body;
  return out;
}

admin_server::admin_server(asio::io_context& loop, admin_address address)
    : loop_(loop), address_(std::move(address)), acceptor_(loop) {}

admin_server::~admin_server() = default;

void admin_server::route(std::string path, route_handler handler) {
  routes_[std::move(path)] = std::move(handler);
}

bool admin_server::start(std::string* error) {
  asio::error_code ec;
  const auto addr = asio::ip::make_address(address_.host, ec);
  if (ec) {
    *error = "admin.listeners: invalid address " + address_.host + ": " + ec.message();
    return false;
  }
  const asio::ip::tcp::endpoint ep(addr, address_.port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    *error = "admin.listeners: cannot listen on " + address_.host + ":" +
             std::to_string(address_.port) + ": " + ec.message();
    return false;
  }
  bound_port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(loop_, accept_loop(), asio::detached);
  VLOG_INFO(kLog) << "admin listener on http://" << address_.host << ":" << bound_port_
                  << " (/metrics, /v1/status/live, /v1/status/ready)";
  return true;
}

void admin_server::stop() {
  stopping_ = true;
  asio::error_code ec;
  acceptor_.close(ec);
}

asio::awaitable<void> admin_server::accept_loop() {
  while (!stopping_) {
    asio::error_code ec;
    auto socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted) co_return;
      continue;
    }
    asio::co_spawn(loop_, serve(std::move(socket)), asio::detached);
  }
}

admin_server::exchange admin_server::begin_exchange(std::string& buffer, size_t head_end,
                                                   bool too_large) const {
  exchange ex;
  if (too_large) {
    ex.fixed = plain(400, "request head too large\n");
    return ex;
  }
  http_request req;
  const bool parsed = parse_request_head(std::string_view(buffer).substr(0, head_end - 4), &req);
  buffer.erase(0, head_end);
  if (!parsed || req.has_body) {
    ex.fixed = plain(400, "bad request\n");
    return ex;
  }
  ex.close = req.close;
  ex.head_only = req.method == "HEAD";
  const auto it = routes_.find(req.path);
  if (auto early = precheck(req, it != routes_.end())) {
    ex.fixed = std::move(*early);
  } else {
    ex.route = &it->second;
  }
  return ex;
}

asio::awaitable<http_response> admin_server::respond(const exchange& ex) {
  if (ex.route) return (*ex.route)();
  return immediate(ex.fixed);
}

asio::awaitable<http_response> admin_server::immediate(http_response r) { co_return r; }

namespace {
http_response internal_error(const std::exception_ptr& err) {
  std::string what = "unknown error";
  try {
    std::rethrow_exception(err);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  VLOG_ERROR("admin") << "request failed: " << what;
  http_response r;
  r.status = 500;
  r.body = "internal error: " + what + "\n";
  return r;
}
}  // namespace

asio::awaitable<http_response> admin_server::respond_or_500(const exchange& ex) {
  std::exception_ptr err;
  try {
    auto op = respond(ex);
    co_return co_await std::move(op);
  } catch (...) {
    err = std::current_exception();
  }
  co_return internal_error(err);
}

// Coroutine bodies only sequence awaits; decisions live in plain functions (GCC 12
// mishandles non-trivial temporaries in branches of coroutines).
asio::awaitable<void> admin_server::serve(asio::ip::tcp::socket socket) {
  std::string buffer;
  bool open = true;
  while (open) {
    asio::error_code ec;
    const size_t n = co_await asio::async_read_until(
        socket, asio::dynamic_buffer(buffer, kMaxRequestHead), "\r\n\r\n",
        asio::redirect_error(asio::use_awaitable, ec));
    const bool too_large = ec == asio::error::not_found;
    if (ec && !too_large) co_return;
    const exchange ex = begin_exchange(buffer, n, too_large);
    auto op = respond_or_500(ex);
    const http_response resp = co_await std::move(op);
    const std::string out = encode_response(resp, ex.head_only, ex.close);
    co_await asio::async_write(socket, asio::buffer(out),
                               asio::redirect_error(asio::use_awaitable, ec));
    open = !ec && !ex.close && !stopping_;
  }
}

}  // namespace varve::metrics
