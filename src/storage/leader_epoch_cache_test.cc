#include "storage/leader_epoch_cache.h"

#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "storage/file_util.h"

namespace varve::storage {
namespace {

namespace fs = std::filesystem;

class leader_epoch_cache_test : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "varve-epoch-test-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    file_ = dir_ / "leader-epoch-checkpoint";
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write_raw(const std::string& text) { std::ofstream(file_) << text; }
  fs::path dir_, file_;
};

TEST_F(leader_epoch_cache_test, assign_ignores_epochs_that_are_not_newer) {
  leader_epoch_cache c(file_);
  ASSERT_TRUE(c.assign(3, 10));
  ASSERT_TRUE(c.assign(3, 20));
  ASSERT_TRUE(c.assign(2, 30));
  ASSERT_EQ(c.entries().size(), 1u);
  EXPECT_EQ(c.entries()[0], (epoch_entry{3, 10}));
}

TEST_F(leader_epoch_cache_test, a_new_epoch_at_the_same_start_offset_replaces_the_empty_one) {
  leader_epoch_cache c(file_);
  c.assign(1, 0);
  c.assign(2, 5);
  c.assign(3, 5);
  ASSERT_EQ(c.entries().size(), 2u);
  EXPECT_EQ(c.entries()[1], (epoch_entry{3, 5}));
}

TEST_F(leader_epoch_cache_test, checkpoint_round_trips_through_load) {
  {
    leader_epoch_cache c(file_);
    c.assign(0, 0);
    c.assign(4, 100);
  }
  EXPECT_EQ(*read_small_file(file_), "0\n2\n0 0\n4 100\n");
  leader_epoch_cache c(file_);
  c.load();
  EXPECT_EQ(c.latest_epoch(), 4);
  EXPECT_EQ(c.end_offset_for(0, 200), std::make_pair(0, int64_t{100}));
}

TEST_F(leader_epoch_cache_test, malformed_checkpoint_loads_as_empty) {
  for (const char* text : {"1\n1\n0 0\n", "0\n2\n0 0\n", "0\n2\n3 10\n2 20\n", "0\n1\n0 0\nx\n",
                           "garbage"}) {
    write_raw(text);
    leader_epoch_cache c(file_);
    c.load();
    EXPECT_TRUE(c.entries().empty()) << text;
  }
}

TEST_F(leader_epoch_cache_test, truncate_from_start_moves_the_covering_entry_to_the_new_start) {
  leader_epoch_cache c(file_);
  c.assign(1, 0);
  c.assign(2, 10);
  c.assign(3, 20);
  c.truncate_from_start(15);
  ASSERT_EQ(c.entries().size(), 2u);
  EXPECT_EQ(c.entries()[0], (epoch_entry{2, 15}));
  EXPECT_EQ(*read_small_file(file_), "0\n2\n2 15\n3 20\n");
}

TEST_F(leader_epoch_cache_test, truncate_from_end_drops_epochs_starting_at_or_after_the_offset) {
  leader_epoch_cache c(file_);
  c.assign(1, 0);
  c.assign(2, 10);
  c.truncate_from_end(10);
  EXPECT_EQ(c.latest_epoch(), 1);
  EXPECT_EQ(c.end_offset_for(1, 10), std::make_pair(1, int64_t{10}));
}

TEST_F(leader_epoch_cache_test, epoch_for_offset_is_the_latest_epoch_started_at_or_before_it) {
  leader_epoch_cache c(file_);
  c.assign(1, 5);
  c.assign(2, 10);
  EXPECT_FALSE(c.epoch_for_offset(4));
  EXPECT_EQ(c.epoch_for_offset(9), 1);
  EXPECT_EQ(c.epoch_for_offset(10), 2);
}

}  // namespace
}  // namespace varve::storage
