#include "net/blocking_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "protocol/error_code.h"

namespace varve::net {
namespace {
// Responses larger than this are treated as a protocol error (a broken or hostile peer).
constexpr int32_t kMaxResponseBytes = 256 << 20;
}  // namespace

std::string describe_error(int16_t code, const std::optional<std::string>& message) {
  std::string s(protocol::error_name(static_cast<protocol::error_code>(code)));
  if (s.empty()) s = "UNKNOWN_ERROR_CODE";
  s += " (" + std::to_string(code) + ")";
  if (message && !message->empty()) s += ": " + *message;
  return s;
}

broker_connection::~broker_connection() {
  if (fd_ >= 0) ::close(fd_);
}

std::unique_ptr<broker_connection> broker_connection::open(const std::string& host, int port,
                                                           int timeout_ms, std::string* error,
                                                           std::string client_id) {
  const std::string address = host + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) {
    *error = "cannot resolve " + address + ": " + ::gai_strerror(rc);
    return nullptr;
  }
  int fd = -1;
  std::string last_error = "no address";
  for (addrinfo* a = res; a; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    last_error = std::strerror(errno);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) {
    *error = "cannot connect to " + address + ": " + last_error;
    return nullptr;
  }
  std::unique_ptr<broker_connection> c(new broker_connection(fd, address, timeout_ms, std::move(client_id)));
  if (!c->negotiate(error)) return nullptr;
  return c;
}

bool broker_connection::send_all(const std::vector<uint8_t>& bytes, std::string* error) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = "send to " + address_ + " failed: " + std::strerror(errno);
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

bool broker_connection::recv_all(uint8_t* data, size_t n, std::string* error) {
  size_t done = 0;
  while (done < n) {
    ssize_t got = ::recv(fd_, data + done, n - done, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got == 0) {
      *error = "connection to " + address_ + " closed by the broker";
      return false;
    }
    if (got < 0) {
      *error = (errno == EAGAIN || errno == EWOULDBLOCK)
                   ? "timed out after " + std::to_string(timeout_ms_) + " ms waiting for " +
                         address_
                   : "receive from " + address_ + " failed: " + std::strerror(errno);
      return false;
    }
    done += static_cast<size_t>(got);
  }
  return true;
}

bool broker_connection::round_trip(int16_t api_key, int16_t version, const protocol::writer& body,
                                   buffer_slice* response_body, std::string* error) {
  const int32_t correlation_id = next_correlation_id_++;
  protocol::writer w;
  w.write_int32(0);
  protocol::request_header h;
  h.request_api_key = api_key;
  h.request_api_version = version;
  h.correlation_id = correlation_id;
  h.client_id = client_id_;
  h.encode(w, protocol::request_header_version(api_key, version));
  std::vector<uint8_t> flat = body.flatten();
  w.write_raw(flat);
  w.patch_int32(0, static_cast<int32_t>(w.total_size() - 4));
  if (!send_all(w.bytes(), error)) return false;

  uint8_t len_bytes[4];
  if (!recv_all(len_bytes, 4, error)) return false;
  int32_t len = static_cast<int32_t>((uint32_t(len_bytes[0]) << 24) | (uint32_t(len_bytes[1]) << 16) |
                                     (uint32_t(len_bytes[2]) << 8) | uint32_t(len_bytes[3]));
  if (len < 4 || len > kMaxResponseBytes) {
    *error = "invalid response frame length " + std::to_string(len) + " from " + address_;
    return false;
  }
  // Uninitialised: recv_all fills every byte or the call fails. A fetch response of many
  // MiB would otherwise be zero-filled (and its pages faulted in) only to be overwritten.
  std::shared_ptr<uint8_t[]> frame =
      std::make_shared_for_overwrite<uint8_t[]>(static_cast<size_t>(len));
  if (!recv_all(frame.get(), static_cast<size_t>(len), error)) return false;
  protocol::reader r(std::span<const uint8_t>(frame.get(), static_cast<size_t>(len)));
  protocol::response_header rh;
  if (!rh.decode(r, protocol::response_header_version(api_key, version)) || !r.ok()) {
    *error = "malformed response header from " + address_;
    return false;
  }
  if (rh.correlation_id != correlation_id) {
    *error = "response correlation id " + std::to_string(rh.correlation_id) + " does not match " +
             std::to_string(correlation_id);
    return false;
  }
  const size_t header = r.position();
  response_body->data = frame.get() + header;
  response_body->size = static_cast<size_t>(len) - header;
  response_body->owner = std::move(frame);
  return true;
}

bool broker_connection::negotiate(std::string* error) {
  // Ask at our newest ApiVersions; a broker that does not know it answers (in v0) with
  // UNSUPPORTED_VERSION and its own range, and we ask again at its newest.
  int16_t version = protocol::api_versions_request::max_version;
  for (int attempt = 0; attempt < 2; ++attempt) {
    protocol::api_versions_request req;
    req.client_software_name = client_id_;
    req.client_software_version = "1";
    protocol::writer w;
    req.encode(w, version);
    buffer_slice body;
    if (!round_trip(protocol::api_versions_request::api_key, version, w, &body, error))
      return false;
    protocol::reader r(body.span());
    protocol::api_versions_response resp;
    bool decoded = resp.decode(r, version);
    if (!decoded || resp.error_code == protocol::to_wire(protocol::error_code::unsupported_version)) {
      // The error answer is always v0-shaped.
      protocol::reader r0(body.span());
      protocol::api_versions_response v0;
      if (!v0.decode(r0, 0)) {
        *error = "malformed ApiVersions response from " + address_;
        return false;
      }
      int16_t broker_max = -1;
      for (const auto& k : v0.api_keys)
        if (k.api_key == protocol::api_versions_request::api_key) broker_max = k.max_version;
      if (broker_max < 0 || broker_max >= version) {
        *error = "ApiVersions negotiation with " + address_ + " failed";
        return false;
      }
      version = broker_max;
      continue;
    }
    if (resp.error_code != 0) {
      *error = "ApiVersions from " + address_ + ": " + describe_error(resp.error_code);
      return false;
    }
    for (const auto& k : resp.api_keys) broker_versions_[k.api_key] = {k.min_version, k.max_version};
    return true;
  }
  *error = "ApiVersions negotiation with " + address_ + " failed";
  return false;
}

int16_t broker_connection::pick_version(int16_t api_key, int16_t ours_min, int16_t ours_max) const {
  auto it = broker_versions_.find(api_key);
  if (it == broker_versions_.end()) return -1;
  int16_t hi = std::min(ours_max, it->second.second);
  int16_t lo = std::max(ours_min, it->second.first);
  return hi >= lo ? hi : -1;
}

}  // namespace varve::net
