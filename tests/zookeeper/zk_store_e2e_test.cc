// cluster::zk_store against a real ZooKeeper server. The environment below starts one
// (scripts/cluster.sh zk-start) in a temporary directory on a free loopback port and stops
// it at the end; if it cannot start, every test fails.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "cluster/zk_store.h"

namespace varve::cluster {
namespace {
using namespace std::chrono_literals;

std::string g_dir;  // ZooKeeper's directory (data + pid file)
int g_port = 0;

int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    return 0;
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

int cluster_sh(const std::string& args) {
  const std::string cmd = std::string(VARVE_CLUSTER_SH) + " " + args + " --dir " + g_dir;
  return std::system(cmd.c_str());
}
int zk_start() { return cluster_sh("zk-start --zk-port " + std::to_string(g_port)); }
int zk_stop() { return cluster_sh("zk-stop"); }

class zookeeper_server : public ::testing::Environment {
 public:
  void SetUp() override {
    char tmpl[] = "/tmp/varve-zk-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    g_dir = tmpl;
    g_port = free_loopback_port();
    ASSERT_GT(g_port, 0);
    ASSERT_EQ(zk_start(), 0) << "ZooKeeper did not start (Debian package `zookeeper`)";
    // If this process is killed (a ctest timeout), TearDown never runs: a watchdog stops
    // ZooKeeper once this process is gone.
    const std::string watchdog = "nohup bash -c 'while kill -0 " + std::to_string(::getpid()) +
                                 " 2>/dev/null; do sleep 1; done; " + VARVE_CLUSTER_SH +
                                 " zk-stop --dir " + g_dir + "' >/dev/null 2>&1 &";
    ASSERT_EQ(std::system(watchdog.c_str()), 0);
  }
  void TearDown() override {
    if (g_dir.empty()) return;
    zk_stop();
    if (::testing::UnitTest::GetInstance()->Passed()) {
      std::filesystem::remove_all(g_dir);
    } else {
      std::cerr << "ZooKeeper's log is kept in " << g_dir << "/zookeeper/zookeeper.log\n";
    }
  }
};
const auto* const g_env = ::testing::AddGlobalTestEnvironment(new zookeeper_server);

std::string hosts() { return "127.0.0.1:" + std::to_string(g_port); }

// Each test works under its own chroot so the tests do not see each other's nodes.
std::string chroot_of_test() {
  return std::string("/") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

zk_options options(const std::string& chroot, std::chrono::milliseconds session = 6000ms) {
  return zk_options{hosts() + chroot, session, 10000ms};
}

// Counts callback invocations; waits for a count with a deadline.
class event_counter {
 public:
  void hit() {
    std::lock_guard lock(mu_);
    ++count_;
    cv_.notify_all();
  }
  bool wait_for_at_least(int n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return count_ >= n; });
  }
  int count() {
    std::lock_guard lock(mu_);
    return count_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
};

// A raw C-client handle, for checks the store does not expose (ephemeral owner).
class raw_handle {
 public:
  explicit raw_handle(const std::string& connect) {
    zh_ = zookeeper_init(connect.c_str(), &raw_handle::watcher, 6000, nullptr, this, 0);
    std::unique_lock lock(mu_);
    connected_ = cv_.wait_for(lock, 10s, [&] { return state_ == ZOO_CONNECTED_STATE; });
  }
  ~raw_handle() {
    if (zh_) zookeeper_close(zh_);
  }
  bool connected() const { return connected_; }
  zhandle_t* get() const { return zh_; }
  // Owner session of an ephemeral node; 0 for persistent; -1 if missing.
  int64_t ephemeral_owner(const std::string& path) {
    struct Stat stat;
    if (zoo_exists(zh_, path.c_str(), 0, &stat) != ZOK) return -1;
    return stat.ephemeralOwner;
  }

 private:
  static void watcher(zhandle_t*, int type, int state, const char*, void* ctx) {
    if (type != ZOO_SESSION_EVENT) return;
    auto* self = static_cast<raw_handle*>(ctx);
    std::lock_guard lock(self->mu_);
    self->state_ = state;
    self->cv_.notify_all();
  }
  zhandle_t* zh_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  int state_ = 0;
  bool connected_ = false;
};

// A loopback TCP proxy in front of ZooKeeper. While partitioned it drops every connection
// and refuses new ones, as a network partition (or a paused broker) would; kept up longer
// than the session timeout, the server expires the session. Bounded: one poll thread.
class tcp_proxy {
 public:
  explicit tcp_proxy(int target_port) : target_port_(target_port) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr = loopback(0);
    socklen_t len = sizeof(addr);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listener_, 16) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw std::runtime_error("tcp_proxy: cannot listen");
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~tcp_proxy() {
    stop_ = true;
    thread_.join();
    for (auto& [a, b] : pairs_) {
      ::close(a);
      ::close(b);
    }
    ::close(listener_);
  }
  int port() const { return port_; }
  void partition(bool on) { partitioned_ = on; }

 private:
  static sockaddr_in loopback(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    return addr;
  }
  void run() {
    while (!stop_) {
      if (partitioned_) {
        for (auto& [a, b] : pairs_) {
          ::close(a);
          ::close(b);
        }
        pairs_.clear();
      }
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      for (auto& [a, b] : pairs_) {
        fds.push_back({a, POLLIN, 0});
        fds.push_back({b, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
      // Only the pairs polled above (accept_one() appends after this loop).
      const size_t polled = (fds.size() - 1) / 2;
      std::vector<size_t> dead;
      for (size_t i = 0; i < polled; ++i) {
        auto [a, b] = pairs_[i];
        if (!pump(fds[1 + 2 * i].revents, a, b) || !pump(fds[2 + 2 * i].revents, b, a))
          dead.push_back(i);
      }
      for (auto it = dead.rbegin(); it != dead.rend(); ++it) {
        ::close(pairs_[*it].first);
        ::close(pairs_[*it].second);
        pairs_.erase(pairs_.begin() + static_cast<long>(*it));
      }
      if (fds[0].revents & POLLIN) accept_one();
    }
  }
  void accept_one() {
    int client = ::accept(listener_, nullptr, nullptr);
    if (client < 0) return;
    if (partitioned_) {
      ::close(client);
      return;
    }
    int server = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = loopback(target_port_);
    if (::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(server);
      ::close(client);
      return;
    }
    pairs_.emplace_back(client, server);
  }
  static bool pump(short revents, int from, int to) {
    if (!(revents & (POLLIN | POLLHUP | POLLERR))) return true;
    char buf[16384];
    const ssize_t n = ::read(from, buf, sizeof(buf));
    if (n <= 0) return false;
    for (ssize_t off = 0; off < n;) {
      const ssize_t w = ::write(to, buf + off, static_cast<size_t>(n - off));
      if (w <= 0) return false;
      off += w;
    }
    return true;
  }

  int target_port_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> partitioned_{false};
  std::vector<std::pair<int, int>> pairs_;  // (client, server), owned by the poll thread
  std::thread thread_;
};

// Cuts the store off from ZooKeeper until the server has expired its session — seen by
// `observer` (another session) as the store's ephemeral `path` disappearing — then heals the
// partition. False if that did not happen within 30 s.
bool expire_by_partition(tcp_proxy& proxy, zk_store& observer, const std::string& path) {
  proxy.partition(true);
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  bool expired = false;
  while (!expired && std::chrono::steady_clock::now() < deadline) {
    expired = !observer.get(path).has_value();
    if (!expired) std::this_thread::sleep_for(100ms);
  }
  proxy.partition(false);
  return expired;
}

TEST(zk_store_e2e, create_get_set_follow_versions_and_set_is_conditional) {
  zk_store store(options(chroot_of_test()));
  EXPECT_FALSE(store.get("/cluster/id"));
  EXPECT_TRUE(store.create("/cluster/id", R"({"version":"1","id":"abc"})"));
  EXPECT_FALSE(store.create("/cluster/id", "other"));  // ZNODEEXISTS
  auto node = store.get("/cluster/id");
  ASSERT_TRUE(node);
  EXPECT_EQ(node->data, R"({"version":"1","id":"abc"})");
  EXPECT_EQ(node->version, 0);

  EXPECT_TRUE(store.set("/cluster/id", "v1", 0));
  EXPECT_FALSE(store.set("/cluster/id", "stale", 0));  // ZBADVERSION
  EXPECT_EQ(store.get("/cluster/id")->data, "v1");
  EXPECT_EQ(store.get("/cluster/id")->version, 1);
  EXPECT_TRUE(store.set("/cluster/id", "any", -1));
  EXPECT_EQ(store.get("/cluster/id")->version, 2);
  EXPECT_FALSE(store.set("/missing", "x", -1));  // ZNONODE
}

TEST(zk_store_e2e, create_makes_empty_parents_and_children_are_sorted) {
  zk_store store(options(chroot_of_test()));
  EXPECT_TRUE(store.create("/brokers/topics/orders/partitions/1/state", "s1"));
  EXPECT_TRUE(store.create("/brokers/topics/orders/partitions/0/state", "s0"));
  EXPECT_TRUE(store.create("/brokers/topics/audit", "a"));
  auto parent = store.get("/brokers/topics/orders/partitions");
  ASSERT_TRUE(parent);
  EXPECT_EQ(parent->data, "");
  EXPECT_EQ(store.children("/brokers/topics"), (std::vector<std::string>{"audit", "orders"}));
  EXPECT_EQ(store.children("/brokers/topics/orders/partitions"),
            (std::vector<std::string>{"0", "1"}));
  EXPECT_TRUE(store.children("/nothing/here").empty());
}

TEST(zk_store_e2e, data_larger_than_the_first_read_buffer_round_trips) {
  zk_store store(options(chroot_of_test()));
  std::string big(300 * 1024, 'x');
  for (size_t i = 0; i < big.size(); i += 97) big[i] = static_cast<char>('a' + i % 26);
  ASSERT_TRUE(store.create("/big", big));
  EXPECT_EQ(store.get("/big")->data, big);
}

TEST(zk_store_e2e, remove_recursive_deletes_the_subtree_and_reports_missing_nodes) {
  zk_store store(options(chroot_of_test()));
  ASSERT_TRUE(store.create("/brokers/topics/t/partitions/0/state", "s"));
  ASSERT_TRUE(store.create("/brokers/topics/t/partitions/1/state", "s"));
  ASSERT_TRUE(store.create("/brokers/topics/keep", "k"));
  EXPECT_TRUE(store.remove_recursive("/brokers/topics/t"));
  EXPECT_FALSE(store.get("/brokers/topics/t/partitions/0/state"));
  EXPECT_FALSE(store.get("/brokers/topics/t"));
  EXPECT_EQ(store.children("/brokers/topics"), std::vector<std::string>{"keep"});
  EXPECT_FALSE(store.remove_recursive("/brokers/topics/t"));
}

TEST(zk_store_e2e, missing_chroot_is_created_and_paths_are_relative_to_it) {
  const std::string chroot = chroot_of_test() + "/varve/deep";
  raw_handle root(hosts());
  ASSERT_TRUE(root.connected());
  ASSERT_EQ(root.ephemeral_owner(chroot), -1);
  zk_store store(options(chroot));
  EXPECT_EQ(root.ephemeral_owner(chroot), 0);  // exists, persistent
  ASSERT_TRUE(store.create("/cluster/id", "x"));
  EXPECT_EQ(root.ephemeral_owner(chroot + "/cluster/id"), 0);
  EXPECT_EQ(root.ephemeral_owner("/cluster/id"), -1);
}

TEST(zk_store_e2e, ephemeral_node_disappears_when_its_session_closes) {
  const std::string chroot = chroot_of_test();
  zk_store observer(options(chroot));
  {
    zk_store broker(options(chroot));
    ASSERT_TRUE(broker.create_ephemeral("/brokers/ids/0", R"({"version":5,"port":9092})"));
    EXPECT_FALSE(broker.create_ephemeral("/brokers/ids/0", "again"));  // ZNODEEXISTS
    EXPECT_FALSE(observer.create_ephemeral("/brokers/ids/0", "taken"));
    EXPECT_EQ(observer.get("/brokers/ids/0")->data, R"({"version":5,"port":9092})");
    raw_handle raw(hosts() + chroot);
    EXPECT_EQ(raw.ephemeral_owner("/brokers/ids/0"), broker.session_id());
  }
  EXPECT_FALSE(observer.get("/brokers/ids/0"));
  EXPECT_TRUE(observer.children("/brokers/ids").empty());
}

TEST(zk_store_e2e, sequential_nodes_get_increasing_suffixes) {
  zk_store store(options(chroot_of_test()));
  const std::string a = store.create_sequential("/isr_change_notification/isr_change_", "a");
  const std::string b = store.create_sequential("/isr_change_notification/isr_change_", "b");
  EXPECT_EQ(a, "/isr_change_notification/isr_change_0000000000");
  EXPECT_EQ(b, "/isr_change_notification/isr_change_0000000001");
  EXPECT_EQ(store.get(b)->data, "b");
}

TEST(zk_store_e2e, children_watch_fires_on_every_change_and_on_parent_creation) {
  const std::string chroot = chroot_of_test();
  zk_store watcher(options(chroot));
  zk_store broker(options(chroot));
  event_counter events;
  std::string seen_path;
  watcher.watch_children("/brokers/ids", [&](const std::string& path) {
    seen_path = path;
    events.hit();
  });
  // /brokers/ids does not exist yet: its creation (with the first child) fires the watch.
  ASSERT_TRUE(broker.create_ephemeral("/brokers/ids/0", "b0"));
  ASSERT_TRUE(events.wait_for_at_least(1)) << "no callback for the first broker";
  EXPECT_EQ(seen_path, "/brokers/ids");
  // Re-armed: later changes fire again.
  int before = events.count();
  ASSERT_TRUE(broker.create_ephemeral("/brokers/ids/1", "b1"));
  ASSERT_TRUE(events.wait_for_at_least(before + 1)) << "watch not re-armed after firing";
  before = events.count();
  ASSERT_TRUE(broker.remove_recursive("/brokers/ids/0"));
  ASSERT_TRUE(events.wait_for_at_least(before + 1)) << "no callback for a removed child";
  EXPECT_EQ(watcher.children("/brokers/ids"), std::vector<std::string>{"1"});
}

TEST(zk_store_e2e, data_watch_fires_on_create_set_and_delete) {
  const std::string chroot = chroot_of_test();
  zk_store watcher(options(chroot));
  zk_store writer(options(chroot));
  event_counter events;
  watcher.watch_data("/controller", [&](const std::string&) { events.hit(); });
  ASSERT_TRUE(writer.create_ephemeral("/controller", R"({"version":1,"brokerid":0})"));
  ASSERT_TRUE(events.wait_for_at_least(1)) << "no callback on creation";
  ASSERT_TRUE(writer.set("/controller", R"({"version":1,"brokerid":1})", 0));
  ASSERT_TRUE(events.wait_for_at_least(2)) << "no callback on set";
  ASSERT_TRUE(writer.remove_recursive("/controller"));
  ASSERT_TRUE(events.wait_for_at_least(3)) << "no callback on delete";
  ASSERT_TRUE(writer.create_ephemeral("/controller", "again"));
  ASSERT_TRUE(events.wait_for_at_least(4)) << "no callback on re-creation";
}

TEST(zk_store_e2e, session_expiry_recreates_ephemerals_rearms_watches_and_reports) {
  const std::string chroot = chroot_of_test();
  tcp_proxy proxy(g_port);
  const auto session_timeout = 2000ms;
  zk_store store(zk_options{"127.0.0.1:" + std::to_string(proxy.port()) + chroot,
                            session_timeout, 10000ms});
  zk_store other(options(chroot));
  ASSERT_TRUE(store.create_ephemeral("/brokers/ids/7", "broker-7"));
  ASSERT_TRUE(store.create_ephemeral("/controller", R"({"version":1,"brokerid":7})"));
  ASSERT_TRUE(store.create("/controller_epoch", "1"));
  event_counter reestablished;
  std::mutex lost_mu;
  std::vector<std::string> lost{"not called"};
  store.on_session_reestablished([&](const std::vector<std::string>& l) {
    {
      std::lock_guard lock(lost_mu);
      lost = l;
    }
    reestablished.hit();
  });
  event_counter topic_events;
  store.watch_children("/brokers/topics", [&](const std::string&) { topic_events.hit(); });

  const int64_t old_session = store.session_id();
  ASSERT_TRUE(expire_by_partition(proxy, other, "/brokers/ids/7")) << "session never expired";
  // While cut off, the server deleted the old session's ephemerals.
  ASSERT_TRUE(reestablished.wait_for_at_least(1, 20s)) << "session was not re-established";
  {
    std::lock_guard lock(lost_mu);
    EXPECT_TRUE(lost.empty());
  }
  EXPECT_EQ(store.session_reestablish_count(), 1);
  const int64_t new_session = store.session_id();
  EXPECT_NE(new_session, old_session);

  // The ephemerals are back, owned by the new session; persistent data is untouched.
  raw_handle raw(hosts() + chroot);
  EXPECT_EQ(raw.ephemeral_owner("/brokers/ids/7"), new_session);
  EXPECT_EQ(raw.ephemeral_owner("/controller"), new_session);
  EXPECT_EQ(other.get("/brokers/ids/7")->data, "broker-7");
  EXPECT_EQ(store.get("/controller_epoch")->data, "1");

  // The watch works on the new session.
  const int before = topic_events.count();
  ASSERT_TRUE(other.create("/brokers/topics/new", "{}"));
  EXPECT_TRUE(topic_events.wait_for_at_least(before + 1)) << "watch not re-armed after expiry";

  // A removed ephemeral is not brought back by a later expiry.
  ASSERT_TRUE(store.remove_recursive("/controller"));
  ASSERT_TRUE(expire_by_partition(proxy, other, "/brokers/ids/7")) << "session never expired";
  ASSERT_TRUE(reestablished.wait_for_at_least(2, 20s));
  EXPECT_TRUE(store.get("/brokers/ids/7"));
  EXPECT_FALSE(store.get("/controller"));
}

TEST(zk_store_e2e, ephemeral_taken_by_another_session_during_expiry_is_reported_lost) {
  const std::string chroot = chroot_of_test();
  tcp_proxy proxy(g_port);
  const auto session_timeout = 2000ms;
  zk_store store(zk_options{"127.0.0.1:" + std::to_string(proxy.port()) + chroot,
                            session_timeout, 10000ms});
  zk_store rival(options(chroot));
  ASSERT_TRUE(store.create_ephemeral("/controller", R"({"version":1,"brokerid":1})"));
  ASSERT_TRUE(store.create_ephemeral("/brokers/ids/1", "b1"));
  event_counter reestablished;
  std::mutex lost_mu;
  std::vector<std::string> lost;
  store.on_session_reestablished([&](const std::vector<std::string>& l) {
    {
      std::lock_guard lock(lost_mu);
      lost = l;
    }
    reestablished.hit();
  });
  proxy.partition(true);
  // The rival wins /controller once the server has expired the partitioned session.
  const auto deadline = std::chrono::steady_clock::now() + session_timeout + 10s;
  bool won = false;
  while (!won && std::chrono::steady_clock::now() < deadline) {
    won = rival.create_ephemeral("/controller", R"({"version":1,"brokerid":2})");
    if (!won) std::this_thread::sleep_for(100ms);
  }
  proxy.partition(false);
  ASSERT_TRUE(won) << "the partitioned session never expired";
  ASSERT_TRUE(reestablished.wait_for_at_least(1, 20s));
  {
    std::lock_guard lock(lost_mu);
    EXPECT_EQ(lost, std::vector<std::string>{"/controller"});
  }
  EXPECT_EQ(store.get("/controller")->data, R"({"version":1,"brokerid":2})");
  EXPECT_EQ(store.get("/brokers/ids/1")->data, "b1");
}

TEST(zk_store_e2e, zookeeper_restart_within_the_session_timeout_keeps_the_session) {
  const std::string chroot = chroot_of_test();
  zk_store store(options(chroot, 20000ms));
  ASSERT_TRUE(store.create_ephemeral("/brokers/ids/3", "b3"));
  const int64_t session = store.session_id();
  ASSERT_EQ(zk_stop(), 0);
  ASSERT_EQ(zk_start(), 0) << "ZooKeeper did not restart";
  // The first request may meet the dropped connection; reads retry until a session answers.
  auto node = store.get("/brokers/ids/3");
  ASSERT_TRUE(node);
  EXPECT_EQ(node->data, "b3");
  EXPECT_EQ(store.session_id(), session);
  EXPECT_EQ(store.session_reestablish_count(), 0);
  EXPECT_TRUE(store.create("/after-restart", "ok"));
}

}  // namespace
}  // namespace varve::cluster
