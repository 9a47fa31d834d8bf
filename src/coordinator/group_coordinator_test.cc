#include "coordinator/group_coordinator.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "coordinator/offsets_format.h"

namespace varve::coordinator {
namespace {
namespace fs = std::filesystem;
using protocol::error_code;

class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "varve-groups-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~temp_dir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

constexpr int32_t kP = 0;  // every group of these tests lives in partition 0

bytes b(std::string_view s) { return bytes(s.begin(), s.end()); }

class group_coordinator_test : public ::testing::Test {
 protected:
  void SetUp() override { open(); }

  void open() {
    std::string error;
    part_ = replication::partition::open({std::string(kOffsetsTopic), kP}, dir_.path() / "p0",
                                         {}, 0, 0, {0}, {0}, -1, &error);
    ASSERT_TRUE(part_) << error;
    coord_ = std::make_unique<group_coordinator>(
        options_, [this](int32_t p) { return p == kP ? part_.get() : nullptr; },
        [this] { return now_; }, [this] { return 1700000000000 + now_; });
  }
  void reopen() {
    coord_.reset();
    part_->close();
    part_.reset();
    open();
  }

  join_params params(std::string member_id, std::vector<std::string> protocols = {"range"},
                     std::optional<std::string> instance = std::nullopt) {
    join_params p;
    p.group_id = "g";
    p.member_id = std::move(member_id);
    p.group_instance_id = std::move(instance);
    p.client_id = "client";
    p.client_host = "/127.0.0.1";
    p.session_timeout_ms = 10000;
    p.rebalance_timeout_ms = 30000;
    p.protocol_type = "consumer";
    for (auto& name : protocols) p.protocols.push_back({name, b("md-" + name)});
    p.require_known_member_id = true;
    return p;
  }

  // Starts a join; the result lands in the returned slot when the coordinator answers.
  std::shared_ptr<std::optional<join_result>> join(join_params p) {
    auto slot = std::make_shared<std::optional<join_result>>();
    coord_->join(kP, std::move(p), [slot](join_result r) { *slot = std::move(r); });
    return slot;
  }
  std::shared_ptr<std::optional<sync_result>> sync(const std::string& member, int32_t gen,
                                                   std::vector<std::pair<std::string, bytes>> a = {}) {
    sync_params p;
    p.group_id = "g";
    p.generation_id = gen;
    p.member_id = member;
    p.assignments = std::move(a);
    auto slot = std::make_shared<std::optional<sync_result>>();
    coord_->sync(kP, std::move(p), [slot](sync_result r) { *slot = std::move(r); });
    return slot;
  }
  // Joins a new dynamic member through MEMBER_ID_REQUIRED; returns the pending second join.
  std::shared_ptr<std::optional<join_result>> join_new(std::vector<std::string> protocols = {"range"}) {
    auto first = join(params("", protocols));
    EXPECT_TRUE(first->has_value());
    EXPECT_EQ((*first)->error, error_code::member_id_required);
    return join(params((*first)->member_id, protocols));
  }

  coordinator_options options_{.min_session_timeout_ms = 1000,
                               .max_session_timeout_ms = 60000,
                               .initial_rebalance_delay_ms = 0};
  int64_t now_ = 0;
  temp_dir dir_;
  std::unique_ptr<replication::partition> part_;
  std::unique_ptr<group_coordinator> coord_;
};

TEST_F(group_coordinator_test, first_join_requires_a_member_id_then_forms_generation_one) {
  auto first = join(params(""));
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ((*first)->error, error_code::member_id_required);
  EXPECT_EQ((*first)->member_id.rfind("client-", 0), 0u);
  EXPECT_EQ((*first)->member_id.size(), std::string("client-").size() + 36);
  EXPECT_EQ(coord_->state_of("g"), group_state::empty);

  auto second = join(params((*first)->member_id));
  ASSERT_TRUE(second->has_value());
  const join_result& r = **second;
  EXPECT_EQ(r.error, error_code::none);
  EXPECT_EQ(r.generation_id, 1);
  EXPECT_EQ(r.leader, r.member_id);
  EXPECT_EQ(r.protocol_name, "range");
  ASSERT_EQ(r.members.size(), 1u);
  EXPECT_EQ(r.members[0].metadata, b("md-range"));
  EXPECT_EQ(coord_->state_of("g"), group_state::completing_rebalance);

  auto s = sync(r.member_id, 1, {{r.member_id, b("assign")}});
  ASSERT_TRUE(s->has_value());
  EXPECT_EQ((*s)->error, error_code::none);
  EXPECT_EQ((*s)->assignment, b("assign"));
  EXPECT_EQ(coord_->state_of("g"), group_state::stable);
}

TEST_F(group_coordinator_test, old_clients_join_without_member_id_round_trip) {
  auto p = params("");
  p.require_known_member_id = false;
  auto r = join(p);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->error, error_code::none);
  EXPECT_EQ((*r)->generation_id, 1);
}

TEST_F(group_coordinator_test, second_member_rebalances_and_followers_wait_for_leader_sync) {
  auto a = join_new({"range", "roundrobin"});
  ASSERT_TRUE(a->has_value());
  const std::string leader = (*a)->member_id;
  ASSERT_EQ(sync(leader, 1, {{leader, b("all")}})->value().error, error_code::none);

  // b prefers roundrobin, a prefers range: a tie goes to the leader's preference.
  auto bj = join_new({"roundrobin", "range"});
  EXPECT_FALSE(bj->has_value());  // waits for the leader to rejoin
  EXPECT_EQ(coord_->state_of("g"), group_state::preparing_rebalance);
  EXPECT_EQ(coord_->heartbeat(kP, "g", 1, leader, std::nullopt), error_code::rebalance_in_progress);

  auto a2 = join(params(leader, {"range", "roundrobin"}));
  ASSERT_TRUE(a2->has_value());
  ASSERT_TRUE(bj->has_value());
  EXPECT_EQ((*a2)->generation_id, 2);
  EXPECT_EQ((*bj)->generation_id, 2);
  EXPECT_EQ((*a2)->leader, leader);
  EXPECT_EQ((*a2)->members.size(), 2u);
  EXPECT_TRUE((*bj)->members.empty());
  EXPECT_EQ((*a2)->protocol_name, "range");
  const std::string follower = (*bj)->member_id;

  auto fs = sync(follower, 2);
  EXPECT_FALSE(fs->has_value());
  EXPECT_EQ(sync(follower, 1)->value().error, error_code::illegal_generation);
  auto ls = sync(leader, 2, {{leader, b("p0")}, {follower, b("p1")}});
  ASSERT_TRUE(ls->has_value());
  ASSERT_TRUE(fs->has_value());
  EXPECT_EQ((*ls)->assignment, b("p0"));
  EXPECT_EQ((*fs)->assignment, b("p1"));
  EXPECT_EQ(coord_->heartbeat(kP, "g", 2, follower, std::nullopt), error_code::none);
  EXPECT_EQ(coord_->heartbeat(kP, "g", 1, follower, std::nullopt), error_code::illegal_generation);
  EXPECT_EQ(coord_->heartbeat(kP, "g", 2, "nobody", std::nullopt), error_code::unknown_member_id);
}

TEST_F(group_coordinator_test, protocol_selection_follows_majority_of_votes) {
  auto a = join_new({"x", "y"});
  const std::string m1 = (*a)->member_id;
  sync(m1, 1, {});
  auto bj = join_new({"y", "x"});
  auto cj = join_new({"y", "x"});
  join(params(m1, {"x", "y"}));
  ASSERT_TRUE(bj->has_value());
  EXPECT_EQ((*bj)->protocol_name, "y");
}

TEST_F(group_coordinator_test, incompatible_protocols_and_bad_session_timeouts_are_refused) {
  auto a = join_new({"range"});
  ASSERT_TRUE(a->has_value());
  auto other = params("", {"sticky"});
  EXPECT_EQ(join(other)->value().error, error_code::inconsistent_group_protocol);
  auto wrong_type = params("");
  wrong_type.protocol_type = "connect";
  EXPECT_EQ(join(wrong_type)->value().error, error_code::inconsistent_group_protocol);
  auto too_short = params("");
  too_short.session_timeout_ms = 10;
  EXPECT_EQ(join(too_short)->value().error, error_code::invalid_session_timeout);
  auto too_long = params("");
  too_long.session_timeout_ms = 600000;
  EXPECT_EQ(join(too_long)->value().error, error_code::invalid_session_timeout);
  EXPECT_EQ(join(params("unknown-member"))->value().error, error_code::unknown_member_id);
}

TEST_F(group_coordinator_test, session_expiry_removes_the_member_and_rebalances) {
  auto a = join_new();
  const std::string m1 = (*a)->member_id;
  sync(m1, 1, {});
  auto bj = join_new();
  join(params(m1));
  ASSERT_TRUE(bj->has_value());
  const std::string m2 = (*bj)->member_id;
  sync(m2, 2);
  sync(m1, 2, {});
  ASSERT_EQ(coord_->state_of("g"), group_state::stable);

  now_ += 6000;
  EXPECT_EQ(coord_->heartbeat(kP, "g", 2, m1, std::nullopt), error_code::none);
  now_ += 6000;  // m2 has not heartbeated for 12 s > 10 s session timeout
  coord_->tick();
  EXPECT_EQ(coord_->state_of("g"), group_state::preparing_rebalance);
  EXPECT_EQ(coord_->heartbeat(kP, "g", 2, m2, std::nullopt), error_code::unknown_member_id);
  auto again = join(params(m1));
  ASSERT_TRUE(again->has_value());
  EXPECT_EQ((*again)->generation_id, 3);
  EXPECT_EQ((*again)->members.size(), 1u);
}

TEST_F(group_coordinator_test, members_that_miss_the_rebalance_timeout_are_dropped) {
  auto a = join_new();
  const std::string m1 = (*a)->member_id;
  sync(m1, 1, {});
  auto bj = join_new();
  EXPECT_FALSE(bj->has_value());
  // m1 keeps heartbeating (told REBALANCE_IN_PROGRESS) but never rejoins.
  for (int i = 0; i < 3; ++i) {
    now_ += 8000;
    EXPECT_EQ(coord_->heartbeat(kP, "g", 1, m1, std::nullopt), error_code::rebalance_in_progress);
  }
  now_ += 5000;
  coord_->tick();
  EXPECT_FALSE(bj->has_value());
  now_ += 2000;  // past the 30 s rebalance timeout; m1 never rejoined
  coord_->tick();
  ASSERT_TRUE(bj->has_value());
  EXPECT_EQ((*bj)->error, error_code::none);
  EXPECT_EQ((*bj)->generation_id, 2);
  EXPECT_EQ((*bj)->leader, (*bj)->member_id);
  EXPECT_EQ(coord_->heartbeat(kP, "g", 2, m1, std::nullopt), error_code::unknown_member_id);
}

TEST_F(group_coordinator_test, initial_rebalance_delay_waits_for_more_members) {
  options_.initial_rebalance_delay_ms = 3000;
  reopen();
  auto a = join_new();
  EXPECT_FALSE(a->has_value());
  now_ += 2000;
  auto bj = join_new();  // extends the delay by another 3 s
  now_ += 2000;
  coord_->tick();
  EXPECT_FALSE(a->has_value());
  now_ += 1500;
  coord_->tick();
  ASSERT_TRUE(a->has_value());
  ASSERT_TRUE(bj->has_value());
  EXPECT_EQ((*a)->generation_id, 1);
  EXPECT_EQ((*bj)->generation_id, 1);
}

TEST_F(group_coordinator_test, leaving_members_trigger_a_rebalance_and_the_last_one_empties_the_group) {
  auto a = join_new();
  const std::string m1 = (*a)->member_id;
  sync(m1, 1, {});
  auto r = coord_->leave(kP, "g", {{"nobody", std::nullopt}, {m1, std::nullopt}});
  ASSERT_EQ(r.members.size(), 2u);
  EXPECT_EQ(r.members[0].second, error_code::unknown_member_id);
  EXPECT_EQ(r.members[1].second, error_code::none);
  EXPECT_EQ(coord_->state_of("g"), group_state::empty);
  EXPECT_EQ(coord_->generation_of("g"), 2);
}

TEST_F(group_coordinator_test, static_member_rejoin_replaces_the_member_id_without_rebalance) {
  auto first = join(params("", {"range"}, "instance-1"));  // static: no MEMBER_ID_REQUIRED
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ((*first)->error, error_code::none);
  const std::string old_id = (*first)->member_id;
  sync(old_id, 1, {{old_id, b("a1")}});
  ASSERT_EQ(coord_->state_of("g"), group_state::stable);

  auto again = join(params("", {"range"}, "instance-1"));
  ASSERT_TRUE(again->has_value());
  EXPECT_EQ((*again)->error, error_code::none);
  EXPECT_NE((*again)->member_id, old_id);
  EXPECT_EQ((*again)->generation_id, 1);
  EXPECT_TRUE((*again)->skip_assignment);  // it is the leader: no new assignment needed
  EXPECT_EQ(coord_->state_of("g"), group_state::stable);
  EXPECT_EQ(sync((*again)->member_id, 1)->value().assignment, b("a1"));
  EXPECT_EQ(coord_->heartbeat(kP, "g", 1, old_id, std::string("instance-1")),
            error_code::fenced_instance_id);

  // Changed metadata does rebalance.
  auto changed = join(params("", {"range", "sticky"}, "instance-1"));
  ASSERT_TRUE(changed->has_value());
  EXPECT_EQ((*changed)->generation_id, 2);
}

TEST_F(group_coordinator_test, commits_are_validated_against_generation_and_member) {
  auto a = join_new();
  const std::string m1 = (*a)->member_id;
  std::vector<commit_entry> e(1);
  e[0].tp = {"t", 0};
  e[0].value.offset = 5;
  EXPECT_EQ(coord_->commit_offsets(kP, {"g", 1, m1, std::nullopt}, e),
            error_code::rebalance_in_progress);  // CompletingRebalance
  sync(m1, 1, {});
  e[0].error = error_code::none;
  EXPECT_EQ(coord_->commit_offsets(kP, {"g", 0, m1, std::nullopt}, e), error_code::illegal_generation);
  e[0].error = error_code::none;
  EXPECT_EQ(coord_->commit_offsets(kP, {"g", 1, "x", std::nullopt}, e), error_code::unknown_member_id);
  e[0].error = error_code::none;
  EXPECT_EQ(coord_->commit_offsets(kP, {"g", -1, "", std::nullopt}, e), error_code::unknown_member_id);
  e[0].error = error_code::none;
  e[0].value.metadata = "m";
  EXPECT_EQ(coord_->commit_offsets(kP, {"g", 1, m1, std::nullopt}, e), error_code::none);
  EXPECT_EQ(e[0].error, error_code::none);
  auto got = coord_->fetch_offsets(kP, "g", std::vector<topic_partition>{{"t", 0}, {"t", 1}});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].second.offset, 5);
  EXPECT_EQ(got[0].second.metadata, "m");
  EXPECT_EQ(got[1].second.offset, -1);
  EXPECT_EQ(part_->log_end_offset(), 1);  // appended before the commit was acknowledged
}

TEST_F(group_coordinator_test, committed_offsets_survive_a_reload_from_the_log) {
  std::vector<commit_entry> e(2);
  e[0].tp = {"t", 0};
  e[0].value = {10, 3, "meta", -1};
  e[1].tp = {"t", 1};
  e[1].value = {20, -1, "", -1};
  ASSERT_EQ(coord_->commit_offsets(kP, {"simple", -1, "", std::nullopt}, e), error_code::none);
  e.resize(1);
  e[0].value.offset = 11;
  ASSERT_EQ(coord_->commit_offsets(kP, {"simple", -1, "", std::nullopt}, e), error_code::none);
  std::vector<commit_entry> other(1);
  other[0].tp = {"u", 0};
  other[0].value.offset = 1;
  ASSERT_EQ(coord_->commit_offsets(kP, {"gone", -1, "", std::nullopt}, other), error_code::none);
  ASSERT_EQ(coord_->delete_group(kP, "gone"), error_code::none);

  reopen();
  coord_->begin_loading(kP);
  EXPECT_EQ(coord_->check_partition(kP), error_code::coordinator_load_in_progress);
  std::string error;
  ASSERT_TRUE(coord_->load_partition(kP, &error)) << error;
  auto got = coord_->fetch_offsets(kP, "simple", std::nullopt);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].first, (topic_partition{"t", 0}));
  EXPECT_EQ(got[0].second.offset, 11);
  EXPECT_EQ(got[0].second.leader_epoch, 3);
  EXPECT_EQ(got[0].second.metadata, "meta");
  EXPECT_EQ(got[1].second.offset, 20);
  EXPECT_TRUE(coord_->fetch_offsets(kP, "gone", std::nullopt).empty());
  EXPECT_EQ(coord_->state_of("simple"), group_state::empty);
  EXPECT_FALSE(coord_->state_of("gone"));
  auto listed = coord_->list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].group_id, "simple");
}

TEST_F(group_coordinator_test, delete_group_and_offsets_refuse_active_groups) {
  auto a = join_new();
  const std::string m1 = (*a)->member_id;
  sync(m1, 1, {});
  EXPECT_EQ(coord_->delete_group(kP, "g"), error_code::non_empty_group);
  EXPECT_EQ(coord_->delete_group(kP, "missing"), error_code::group_id_not_found);
  std::vector<std::pair<topic_partition, error_code>> results;
  EXPECT_EQ(coord_->delete_offsets(kP, "missing", {{"t", 0}}, &results),
            error_code::group_id_not_found);
  auto d = coord_->describe(kP, "g");
  EXPECT_EQ(d.state, "Stable");
  EXPECT_EQ(d.protocol_data, "range");
  ASSERT_EQ(d.members.size(), 1u);
  EXPECT_EQ(d.members[0].client_host, "/127.0.0.1");
  EXPECT_EQ(coord_->describe(kP, "missing").state, "Dead");
}

}  // namespace
}  // namespace varve::coordinator
