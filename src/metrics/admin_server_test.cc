#include "metrics/admin_server.h"

#include <gtest/gtest.h>

#include <thread>

namespace varve::metrics {
namespace {

TEST(parse_admin_listener, accepts_http_urls_and_bare_host_port) {
  admin_address a;
  std::string err;
  ASSERT_TRUE(parse_admin_listener("http://127.0.0.1:9644", &a, &err)) << err;
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 9644);
  ASSERT_TRUE(parse_admin_listener("localhost:0", &a, &err)) << err;
  EXPECT_EQ(a.host, "localhost");
  EXPECT_EQ(a.port, 0);
  ASSERT_TRUE(parse_admin_listener("http://[::1]:80/", &a, &err)) << err;
  EXPECT_EQ(a.host, "::1");
}

TEST(parse_admin_listener, rejects_other_schemes_and_bad_ports) {
  admin_address a;
  std::string err;
  EXPECT_FALSE(parse_admin_listener("https://127.0.0.1:9644", &a, &err));
  EXPECT_FALSE(parse_admin_listener("http://127.0.0.1:99999", &a, &err));
  EXPECT_FALSE(parse_admin_listener("http://127.0.0.1", &a, &err));
  EXPECT_NE(err.find("admin.listeners"), std::string::npos);
}

TEST(parse_request_head, reads_method_path_without_query_and_connection_close) {
  http_request r;
  ASSERT_TRUE(parse_request_head("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close", &r));
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path, "/metrics");
  EXPECT_TRUE(r.close);
  ASSERT_TRUE(parse_request_head("GET / HTTP/1.1\r\nHost: a", &r));
  EXPECT_FALSE(r.close);
  http_request old;
  ASSERT_TRUE(parse_request_head("GET / HTTP/1.0", &old));
  EXPECT_TRUE(old.close);
  EXPECT_FALSE(parse_request_head("garbage", &r));
  EXPECT_FALSE(parse_request_head("GET / SPDY/3", &r));
}

// Sends `request` to a running server and returns everything it answers until it closes.
std::string round_trip(uint16_t port, const std::string& request) {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  asio::write(s, asio::buffer(request));
  std::string out;
  asio::error_code ec;
  asio::read(s, asio::dynamic_buffer(out), ec);
  return out;
}

TEST(admin_server, serves_routes_and_answers_404_405_and_keeps_alive_until_close) {
  asio::io_context loop;
  admin_server server(loop, admin_address{"127.0.0.1", 0});
  server.route("/hello", []() -> asio::awaitable<http_response> {
    http_response r;
    r.body = "hi\n";
    co_return r;
  });
  server.route("/down", []() -> asio::awaitable<http_response> {
    http_response r;
    r.status = 503;
    r.body = "not ready\n";
    co_return r;
  });
  std::string err;
  ASSERT_TRUE(server.start(&err)) << err;
  auto guard = asio::make_work_guard(loop);
  std::thread t([&] { loop.run(); });
  const uint16_t port = server.bound_port();

  const std::string two = round_trip(
      port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /down HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(two,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 3\r\n\r\nhi\n"
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 10\r\nConnection: close\r\n\r\nnot ready\n");
  EXPECT_EQ(round_trip(port, "GET /nope HTTP/1.0\r\n\r\n").substr(0, 22), "HTTP/1.1 404 Not Found");
  EXPECT_EQ(round_trip(port, "POST /hello HTTP/1.0\r\n\r\n").substr(0, 31),
            "HTTP/1.1 405 Method Not Allowed");
  const std::string head = round_trip(port, "HEAD /hello HTTP/1.0\r\n\r\n");
  EXPECT_NE(head.find("Content-Length: 3\r\n"), std::string::npos);
  EXPECT_EQ(head.substr(head.size() - 4), "\r\n\r\n");  // no body
  EXPECT_EQ(round_trip(port, std::string(admin_server::kMaxRequestHead, 'a')).substr(0, 24),
            "HTTP/1.1 400 Bad Request");

  asio::post(loop, [&] { server.stop(); });
  guard.reset();
  loop.stop();
  t.join();
}

}  // namespace
}  // namespace varve::metrics
