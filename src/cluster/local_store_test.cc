#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "cluster/metadata_store.h"

namespace varve::cluster {
namespace {
namespace fs = std::filesystem;

class local_store_test : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("varve-local-store-" + std::to_string(::getpid()) + "-" +
            std::to_string(std::random_device{}()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path journal() const { return dir_ / "metadata.log"; }
  fs::path dir_;
};

TEST_F(local_store_test, nodes_have_versions_parents_and_sorted_children) {
  local_store s(dir_);
  EXPECT_TRUE(s.create("/brokers/topics/b", "B"));
  EXPECT_TRUE(s.create("/brokers/topics/a", "A"));
  EXPECT_FALSE(s.create("/brokers/topics/a", "again")) << "create of an existing node";
  ASSERT_TRUE(s.get("/brokers/topics"));
  EXPECT_EQ(s.get("/brokers/topics")->data, "") << "parents are created empty";
  EXPECT_EQ(s.children("/brokers/topics"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(s.children("/brokers"), (std::vector<std::string>{"topics"}));
  EXPECT_TRUE(s.children("/nothing").empty());

  EXPECT_EQ(s.get("/brokers/topics/a")->version, 0);
  EXPECT_FALSE(s.set("/brokers/topics/a", "x", 3)) << "conditional set on a wrong version";
  EXPECT_TRUE(s.set("/brokers/topics/a", "A1", 0));
  EXPECT_TRUE(s.set("/brokers/topics/a", "A2", -1));
  EXPECT_EQ(s.get("/brokers/topics/a")->version, 2);
  EXPECT_EQ(s.get("/brokers/topics/a")->data, "A2");
  EXPECT_FALSE(s.set("/missing", "x", -1));

  EXPECT_TRUE(s.create("/brokers/topics/a/partitions/0/state", "s0"));
  EXPECT_TRUE(s.remove_recursive("/brokers/topics/a"));
  EXPECT_FALSE(s.get("/brokers/topics/a"));
  EXPECT_FALSE(s.get("/brokers/topics/a/partitions/0/state")) << "children go too";
  EXPECT_EQ(s.children("/brokers/topics"), (std::vector<std::string>{"b"}));
  EXPECT_FALSE(s.remove_recursive("/brokers/topics/a"));
  EXPECT_THROW(s.get("/a/../b"), std::invalid_argument);
}

TEST_F(local_store_test, state_survives_reopen_and_each_unbatched_mutation_is_synced) {
  {
    local_store s(dir_);
    const uint64_t before = s.syncs();
    s.create("/config/topics/t", "{}");
    s.set("/config/topics/t", "{\"a\":1}", 0);
    s.create("/cluster/id", "id");
    s.remove_recursive("/cluster");
    EXPECT_EQ(s.syncs() - before, 4u);
  }
  local_store s(dir_);
  ASSERT_TRUE(s.get("/config/topics/t"));
  EXPECT_EQ(s.get("/config/topics/t")->data, "{\"a\":1}");
  EXPECT_EQ(s.get("/config/topics/t")->version, 1);
  EXPECT_FALSE(s.get("/cluster/id"));
  EXPECT_FALSE(s.get("/cluster"));
}

TEST_F(local_store_test, a_batch_is_one_sync_at_its_outermost_end) {
  local_store s(dir_);
  const uint64_t before = s.syncs();
  {
    store_batch outer(s);
    for (int p = 0; p < 1000; ++p) {
      ASSERT_TRUE(s.create("/brokers/topics/t/partitions/" + std::to_string(p) + "/state", "{}"));
    }
    {
      store_batch inner(s);
      // The states' creation made /brokers/topics/t an empty parent node already.
      EXPECT_FALSE(s.create("/brokers/topics/t", "assignment"));
      EXPECT_TRUE(s.set("/brokers/topics/t", "assignment", 0));
    }
    EXPECT_EQ(s.syncs(), before) << "nothing synced before the outermost batch ends";
  }
  EXPECT_EQ(s.syncs() - before, 1u);
  local_store again(dir_);
  EXPECT_EQ(again.children("/brokers/topics/t/partitions").size(), 1000u);
  EXPECT_EQ(again.get("/brokers/topics/t")->data, "assignment");
}

TEST_F(local_store_test, a_torn_record_at_the_tail_is_cut_off) {
  uint64_t good = 0;
  {
    local_store s(dir_);
    s.create("/a", "kept");
    good = s.journal_bytes();
    s.create("/b", "torn");
  }
  const auto full = fs::file_size(journal());
  fs::resize_file(journal(), full - 3);  // a crash in the middle of the last append
  {
    local_store s(dir_);
    EXPECT_EQ(s.get("/a")->data, "kept");
    EXPECT_FALSE(s.get("/b"));
    EXPECT_EQ(fs::file_size(journal()), good) << "the torn bytes are removed";
    EXPECT_TRUE(s.create("/c", "after"));
  }
  local_store s(dir_);
  EXPECT_EQ(s.get("/c")->data, "after");
}

TEST_F(local_store_test, a_corrupt_record_before_the_tail_refuses_to_load) {
  {
    local_store s(dir_);
    s.create("/a", "first");
    s.create("/b", "second");
  }
  {
    std::fstream f(journal(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(12);  // inside the first record's body
    f.put('X');
  }
  EXPECT_THROW(local_store{dir_}, std::runtime_error);
}

TEST_F(local_store_test, the_journal_is_compacted_to_the_live_tree) {
  local_store s(dir_);
  const std::string big(4096, 'v');
  {
    store_batch b(s);
    for (int i = 0; i < 2000; ++i) s.set("/n", big, -1) || s.create("/n", big);
  }
  // 2000 records of ~4 KiB were appended; the compaction keeps one.
  EXPECT_LT(s.journal_bytes(), 64u * 1024);
  EXPECT_EQ(fs::file_size(journal()), s.journal_bytes());
  local_store again(dir_);
  EXPECT_EQ(again.get("/n")->version, 1999);  // created once, then set 1999 times
  EXPECT_EQ(again.get("/n")->data, big);
}

TEST_F(local_store_test, a_directory_tree_of_an_earlier_version_is_migrated) {
  auto write_node = [&](const std::string& rel, int version, const std::string& data) {
    fs::create_directories(dir_ / rel);
    std::ofstream(dir_ / rel / ".node", std::ios::binary) << version << '\n' << data;
  };
  write_node("brokers", 0, "");
  write_node("brokers/topics", 0, "");
  write_node("brokers/topics/orders", 0, "{\"partitions\":{}}");
  write_node("brokers/topics/orders/partitions/0/state", 4, "{\"leader\":0}\nsecond line");
  write_node("cluster/id", 0, "{\"id\":\"x\"}");
  fs::create_directories(dir_ / "brokers/topics/.deleting-gone");
  std::ofstream(dir_ / "brokers/topics/.deleting-gone/.node") << "0\n";
  {
    local_store s(dir_);
    EXPECT_EQ(s.children("/brokers/topics"), (std::vector<std::string>{"orders"}));
    ASSERT_TRUE(s.get("/brokers/topics/orders/partitions/0/state"));
    EXPECT_EQ(s.get("/brokers/topics/orders/partitions/0/state")->version, 4);
    EXPECT_EQ(s.get("/brokers/topics/orders/partitions/0/state")->data,
              "{\"leader\":0}\nsecond line");
    EXPECT_EQ(s.get("/cluster/id")->data, "{\"id\":\"x\"}");
  }
  EXPECT_FALSE(fs::exists(dir_ / "brokers")) << "the old tree is removed once migrated";
  local_store s(dir_);
  EXPECT_EQ(s.get("/brokers/topics/orders/partitions/0/state")->version, 4);
}

}  // namespace
}  // namespace varve::cluster
