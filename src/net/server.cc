#include "net/server.h"

#include <sys/sendfile.h>

#include <cassert>

#include <algorithm>
#include <cerrno>

#include "common/log.h"

namespace varve::net {
namespace {
constexpr std::string_view kLog = "net";

std::string endpoint_string(const asio::ip::tcp::socket& s) {
  asio::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "?";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

void put_int32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// Sends one file region with sendfile(2) on a non-blocking socket.
asio::awaitable<void> send_file_region(asio::ip::tcp::socket& socket, const file_region& region) {
  socket.native_non_blocking(true);
  off_t offset = static_cast<off_t>(region.position);
  size_t left = region.size;
  while (left > 0) {
    ssize_t n = ::sendfile(socket.native_handle(), region.file->fd(), &offset, left);
    if (n > 0) {
      left -= static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      co_await socket.async_wait(asio::ip::tcp::socket::wait_write, asio::use_awaitable);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // n == 0: the file is shorter than the region (truncated underneath us): the frame
    // cannot be completed, so the connection must be dropped.
    throw asio::system_error(n == 0 ? asio::error::eof
                                    : asio::error_code(errno, asio::system_category()));
  }
}
}  // namespace

asio::awaitable<void> write_response(asio::ip::tcp::socket& socket, response_frame& frame) {
  assert(frame.bytes.size() >= kFrameSizePrefix);
  put_int32(frame.bytes.data(), static_cast<uint32_t>(frame.total_size() - kFrameSizePrefix));
  size_t pos = 0;
  for (const auto& [at, chunk] : frame.splices) {
    if (at > pos) {
      co_await asio::async_write(socket, asio::buffer(frame.bytes.data() + pos, at - pos),
                                 asio::use_awaitable);
      pos = at;
    }
    if (const auto* mem = std::get_if<buffer_slice>(&chunk)) {
      co_await asio::async_write(socket, asio::buffer(mem->data, mem->size), asio::use_awaitable);
    } else {
      co_await send_file_region(socket, std::get<file_region>(chunk));
    }
  }
  if (pos < frame.bytes.size()) {
    co_await asio::async_write(socket,
                               asio::buffer(frame.bytes.data() + pos, frame.bytes.size() - pos),
                               asio::use_awaitable);
  }
}

server::server(std::vector<asio::io_context*> loops, server_options options,
               request_handler handler)
    : loops_(std::move(loops)),
      options_(std::move(options)),
      handler_(std::move(handler)),
      acceptor_(*loops_.at(0)) {}

server::~server() = default;

bool server::start(std::string* error) {
  asio::error_code ec;
  auto address = asio::ip::make_address(options_.host == "" ? "0.0.0.0" : options_.host, ec);
  if (ec) {
    // A host name (e.g. "localhost"): resolve it.
    asio::ip::tcp::resolver resolver(*loops_[0]);
    auto results = resolver.resolve(options_.host, std::to_string(options_.port), ec);
    if (ec || results.empty()) {
      *error = "cannot resolve listener host " + options_.host + ": " + ec.message();
      return false;
    }
    address = results.begin()->endpoint().address();
  }
  asio::ip::tcp::endpoint endpoint(address, options_.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    *error = "cannot listen on " + options_.host + ":" + std::to_string(options_.port) + ": " +
             ec.message();
    return false;
  }
  bound_port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(*loops_[0], accept_loop(), asio::detached);
  return true;
}

void server::stop() {
  stopping_ = true;
  asio::post(*loops_[0], [this] {
    asio::error_code ignored;
    acceptor_.close(ignored);
  });
}

asio::awaitable<void> server::accept_loop() {
  while (!stopping_) {
    asio::io_context& target = *loops_[next_loop_++ % loops_.size()];
    asio::error_code ec;
    asio::ip::tcp::socket socket =
        co_await acceptor_.async_accept(target, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted) co_return;
      VLOG_WARN(kLog) << "accept failed: " << ec.message();
      continue;
    }
    if (connections_.load() >= options_.max_connections) {
      VLOG_WARN(kLog) << "refusing connection from " << endpoint_string(socket)
                      << ": max.connections=" << options_.max_connections << " reached";
      continue;  // socket closes when it goes out of scope
    }
    socket.set_option(asio::ip::tcp::no_delay(true), ec);
    if (options_.send_buffer_bytes > 0)
      socket.set_option(asio::socket_base::send_buffer_size(options_.send_buffer_bytes), ec);
    if (options_.receive_buffer_bytes > 0)
      socket.set_option(asio::socket_base::receive_buffer_size(options_.receive_buffer_bytes), ec);
    connection_info info{next_connection_id_++, endpoint_string(socket)};
    connections_++;
    asio::co_spawn(target, run_connection(std::move(socket), std::move(info)), asio::detached);
  }
}

asio::awaitable<void> server::run_connection(asio::ip::tcp::socket socket, connection_info info) {
  VLOG_DEBUG(kLog) << "connection " << info.id << " from " << info.peer << " opened";
  std::string reason = "closed by peer";
  try {
    uint8_t size_bytes[kFrameSizePrefix];
    while (!stopping_) {
      co_await asio::async_read(socket, asio::buffer(size_bytes), asio::use_awaitable);
      const int32_t size = static_cast<int32_t>((uint32_t{size_bytes[0]} << 24) |
                                                (uint32_t{size_bytes[1]} << 16) |
                                                (uint32_t{size_bytes[2]} << 8) | size_bytes[3]);
      if (size < 0 || size > options_.max_request_bytes) {
        reason = "frame size " + std::to_string(size) + " outside [0, socket.request.max.bytes=" +
                 std::to_string(options_.max_request_bytes) + "]";
        break;
      }
      // The declared size, allocated once and NOT initialised: the socket's bytes are
      // received straight into it (no zero-fill, no regrowth copies). Memory the peer has not
      // sent into is not touched, so a peer that announces a large frame and sends nothing
      // pins address space (mmap'd by malloc above its threshold), not resident memory.
      std::shared_ptr<uint8_t[]> buffer =
          std::make_shared_for_overwrite<uint8_t[]>(static_cast<size_t>(size));
      co_await asio::async_read(socket, asio::buffer(buffer.get(), static_cast<size_t>(size)),
                                asio::use_awaitable);
      // Named frame and awaitable: GCC 12 destroys a non-trivial temporary of a co_await
      // full-expression twice (here: the frame's shared buffer, released twice).
      request_frame frame;
      frame.data = buffer.get();
      frame.size = static_cast<size_t>(size);
      frame.owner = std::move(buffer);
      auto op = handler_(info, std::move(frame));
      handler_result result = co_await std::move(op);
      if (result.what == handler_result::action::close) {
        reason = "closed by the request handler (see the dispatch log line)";
        break;
      }
      if (result.what == handler_result::action::respond) {
        co_await write_response(socket, result.response);
      }
    }
  } catch (const asio::system_error& e) {
    if (e.code() != asio::error::eof && e.code() != asio::error::connection_reset &&
        e.code() != asio::error::operation_aborted) {
      reason = e.code().message();
    }
  } catch (const std::exception& e) {
    reason = std::string("internal error: ") + e.what();
    VLOG_ERROR(kLog) << "connection " << info.id << " from " << info.peer << ": " << reason;
  }
  asio::error_code ignored;
  socket.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
  connections_--;
  VLOG_DEBUG(kLog) << "connection " << info.id << " from " << info.peer << " closed: " << reason;
}

}  // namespace varve::net
