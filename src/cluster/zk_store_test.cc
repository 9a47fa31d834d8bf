// Unit tests of zk_store that need no server; the store against a real ZooKeeper is tested
// in tests/zookeeper/.
#include <gtest/gtest.h>

#include "cluster/zk_store.h"

namespace varve::cluster {
namespace {

TEST(parse_zk_connect, splits_hosts_and_chroot) {
  auto c = parse_zk_connect("127.0.0.1:2181,127.0.0.2:2182/varve/test");
  EXPECT_EQ(c.hosts, "127.0.0.1:2181,127.0.0.2:2182");
  EXPECT_EQ(c.chroot, "/varve/test");
}

TEST(parse_zk_connect, no_chroot_or_bare_slash_means_root) {
  EXPECT_EQ(parse_zk_connect("localhost:2181").chroot, "");
  EXPECT_EQ(parse_zk_connect("localhost:2181/").chroot, "");
  EXPECT_EQ(parse_zk_connect("localhost:2181/").hosts, "localhost:2181");
}

TEST(parse_zk_connect, rejects_malformed_strings) {
  EXPECT_THROW(parse_zk_connect(""), std::invalid_argument);
  EXPECT_THROW(parse_zk_connect("/varve"), std::invalid_argument);
  EXPECT_THROW(parse_zk_connect("a:1,,b:2"), std::invalid_argument);
  EXPECT_THROW(parse_zk_connect("a:1,"), std::invalid_argument);
  EXPECT_THROW(parse_zk_connect("a:1/varve/"), std::invalid_argument);
  EXPECT_THROW(parse_zk_connect("a:1/varve//x"), std::invalid_argument);
}

TEST(zk_store, connect_fails_with_a_clear_error_when_no_server_answers) {
  // Port 1 on loopback: nothing listens there, so no session can be established.
  zk_options options{"127.0.0.1:1", std::chrono::milliseconds(2000),
                     std::chrono::milliseconds(300)};
  try {
    zk_store store(options);
    FAIL() << "connected to a server that does not exist";
  } catch (const zk_error& e) {
    EXPECT_NE(std::string(e.what()).find("zookeeper.connection.timeout.ms"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace varve::cluster
