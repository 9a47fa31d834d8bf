#include "coordinator/group_coordinator.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "common/test_util.h"
#include "coordinator/offsets_format.h"
#include "protocol/record_batch.h"

namespace varve::coordinator {
namespace {
using protocol::error_code;

using test_util::temp_dir;

constexpr int32_t kP = 0;  // every group of these tests lives in partition 0

bytes b(std::string_view s) { return bytes(s.begin(), s.end()); }

// A single-replica partition led by broker 0, as the controller makes it.
std::unique_ptr<replication::partition> open_leader(const std::filesystem::path& dir,
                                                    std::string* error) {
  auto p = replication::partition::open({std::string(kOffsetsTopic), kP}, dir, {}, 0, -1, 0, error);
  if (!p) return p;
  cluster::partition_state ps;
  ps.partition = kP;
  ps.leader = 0;
  ps.leader_epoch = 0;
  ps.partition_epoch = 0;
  ps.replicas = {0};
  ps.isr = {0};
  p->apply_state(ps, 0);
  return p;
}

class group_coordinator_test : public ::testing::Test {
 protected:
  void SetUp() override { open(); }

  void open() {
    std::string error;
    part_ = open_leader(dir_.path() / "p0", &error);
    ASSERT_TRUE(part_) << error;
    coord_ = std::make_unique<group_coordinator>(
        options_,
        [this](int32_t p) {
          ++lookups_;
          return p == kP ? (bad_part_ ? bad_part_.get() : part_.get()) : nullptr;
        },
        [this] { return now_; }, [this] { return kWallBase + now_; });
  }
  void reopen() {
    coord_.reset();
    part_->close();
    part_.reset();
    open();
  }
  // Reopens and loads partition 0 as a restarted broker does.
  void restart() {
    reopen();
    coord_->begin_loading(kP);
    std::string error;
    ASSERT_TRUE(coord_->load_partition(kP, &error)) << error;
  }
  // Forms a Stable group of `n` members with assignments "a<i>"; returns member ids, the
  // leader first. With n > 1, initial_rebalance_delay_ms must be > 0 (one generation).
  std::vector<std::string> stable_group(int n, std::vector<join_params> joins = {}) {
    if (joins.empty()) {
      for (int i = 0; i < n; ++i) joins.push_back(params(""));
    }
    std::vector<std::shared_ptr<std::optional<join_result>>> pending;
    for (auto& jp : joins) {
      if (jp.member_id.empty() && !jp.group_instance_id) {
        auto first = join(jp);
        jp.member_id = (*first)->member_id;
      }
      pending.push_back(join(jp));
    }
    now_ += options_.initial_rebalance_delay_ms;
    coord_->tick();
    std::vector<std::string> ids;
    std::string leader;
    for (auto& r : pending) {
      EXPECT_TRUE(r->has_value());
      if (!r->has_value()) return ids;
      ids.push_back((*r)->member_id);
      leader = (*r)->leader;
    }
    std::stable_partition(ids.begin(), ids.end(), [&](const std::string& id) { return id == leader; });
    std::vector<std::pair<std::string, bytes>> assignment;
    for (size_t i = 0; i < ids.size(); ++i) assignment.emplace_back(ids[i], b("a" + std::to_string(i)));
    const int32_t gen = coord_->generation_of("g");
    for (size_t i = 1; i < ids.size(); ++i) sync(ids[i], gen);
    EXPECT_EQ(sync(ids[0], gen, assignment)->value().error, error_code::none);
    EXPECT_EQ(coord_->state_of("g"), group_state::stable);
    return ids;
  }
  error_code commit(const std::string& group, int32_t gen, const std::string& member,
                    const std::string& topic, int64_t offset) {
    std::vector<commit_entry> e(1);
    e[0].tp = {topic, 0};
    e[0].value.offset = offset;
    const error_code top = coord_->commit_offsets(kP, {group, gen, member, std::nullopt}, e);
    return top != error_code::none ? top : e[0].error;
  }
  int64_t committed(const std::string& group, const std::string& topic) {
    auto got = coord_->fetch_offsets(kP, group, std::vector<topic_partition>{{topic, 0}});
    return got.at(0).second.offset;
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
  static constexpr int64_t kWallBase = 1700000000000;
  int64_t now_ = 0;
  int lookups_ = 0;
  temp_dir dir_;
  std::unique_ptr<replication::partition> part_;
  std::unique_ptr<replication::partition> bad_part_;  // served instead of part_ when set
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

  // New metadata for the same selected protocol: taken over without a rebalance.
  auto more = params("", {"range", "sticky"}, "instance-1");
  more.protocols[0].metadata = b("md-range-v2");
  auto same = join(more);
  ASSERT_TRUE(same->has_value());
  EXPECT_EQ((*same)->generation_id, 1);
  EXPECT_EQ(coord_->state_of("g"), group_state::stable);
  EXPECT_EQ(coord_->describe(kP, "g").members.at(0).metadata, b("md-range-v2"));

  // Protocols that change the selected protocol do rebalance.
  auto changed = join(params("", {"sticky", "range"}, "instance-1"));
  ASSERT_TRUE(changed->has_value());
  EXPECT_EQ((*changed)->generation_id, 2);
  EXPECT_EQ((*changed)->protocol_name, "sticky");
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
  // Offset 0 is the group metadata of generation 1; the commit was appended before it
  // was acknowledged.
  EXPECT_EQ(part_->log_end_offset(), 2);
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
  EXPECT_EQ(listed.error, error_code::none);
  ASSERT_EQ(listed.groups.size(), 1u);
  EXPECT_EQ(listed.groups[0].group_id, "simple");
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

// ConsumerProtocolSubscription v0: version, topics, user data (null).
bytes subscription(const std::vector<std::string>& topics) {
  bytes out = {0, 0, 0, 0, 0, static_cast<uint8_t>(topics.size())};
  for (const auto& t : topics) {
    out.push_back(0);
    out.push_back(static_cast<uint8_t>(t.size()));
    out.insert(out.end(), t.begin(), t.end());
  }
  for (int i = 0; i < 4; ++i) out.push_back(0xff);
  return out;
}

TEST_F(group_coordinator_test, stable_group_reloads_with_generation_members_and_assignments) {
  options_.initial_rebalance_delay_ms = 1000;  // both members join generation 1
  reopen();
  std::vector<join_params> joins = {params(""), params("", {"range"}, "static-1")};
  const auto ids = stable_group(2, joins);
  ASSERT_EQ(ids.size(), 2u);
  const int32_t gen = coord_->generation_of("g");
  ASSERT_EQ(commit("g", gen, ids[1], "t", 42), error_code::none);
  std::string static_id;
  for (const auto& m : coord_->describe(kP, "g").members) {
    if (m.group_instance_id) static_id = m.member_id;
  }
  ASSERT_FALSE(static_id.empty());

  now_ += 500000;  // the monotonic clock of a restarted broker has nothing to do with ours
  restart();
  EXPECT_EQ(coord_->state_of("g"), group_state::stable);
  EXPECT_EQ(coord_->generation_of("g"), gen);
  EXPECT_EQ(committed("g", "t"), 42);
  // Members continue at the same generation: heartbeat, commit and SyncGroup work.
  EXPECT_EQ(coord_->heartbeat(kP, "g", gen, ids[0], std::nullopt), error_code::none);
  EXPECT_EQ(coord_->heartbeat(kP, "g", gen - 1, ids[0], std::nullopt),
            error_code::illegal_generation);
  EXPECT_EQ(commit("g", gen, ids[0], "t", 43), error_code::none);
  auto s0 = sync(ids[0], gen);
  auto s1 = sync(ids[1], gen);
  ASSERT_TRUE(s0->has_value() && s1->has_value());
  EXPECT_EQ((*s0)->assignment, b("a0"));
  EXPECT_EQ((*s1)->assignment, b("a1"));
  auto d = coord_->describe(kP, "g");
  EXPECT_EQ(d.state, "Stable");
  EXPECT_EQ(d.protocol_type, "consumer");
  EXPECT_EQ(d.protocol_data, "range");
  ASSERT_EQ(d.members.size(), 2u);
  for (const auto& m : d.members) {
    EXPECT_EQ(m.client_id, "client");
    EXPECT_EQ(m.client_host, "/127.0.0.1");
    EXPECT_EQ(m.metadata, b("md-range"));
    if (m.member_id == static_id) {
      EXPECT_EQ(m.group_instance_id, "static-1");
    } else {
      EXPECT_FALSE(m.group_instance_id);
    }
  }
  // The static member's instance id is known again: its old id is fenced after a rejoin.
  auto again = join(params("", {"range"}, "static-1"));
  ASSERT_TRUE(again->has_value());
  EXPECT_EQ((*again)->error, error_code::none);
  EXPECT_EQ((*again)->generation_id, gen);  // no rebalance
  EXPECT_EQ(coord_->heartbeat(kP, "g", gen, static_id, std::string("static-1")),
            error_code::fenced_instance_id);
}

TEST_F(group_coordinator_test, restored_members_that_do_not_come_back_expire_normally) {
  options_.initial_rebalance_delay_ms = 1000;  // both members join generation 1
  reopen();
  const auto ids = stable_group(2);
  const int32_t gen = coord_->generation_of("g");
  restart();
  // Session timeout 10 s, restarted at load: member 0 heartbeats, member 1 is gone.
  now_ += 6000;
  EXPECT_EQ(coord_->heartbeat(kP, "g", gen, ids[0], std::nullopt), error_code::none);
  coord_->tick();
  EXPECT_EQ(coord_->state_of("g"), group_state::stable);
  now_ += 5000;
  coord_->tick();
  EXPECT_EQ(coord_->state_of("g"), group_state::preparing_rebalance);
  EXPECT_EQ(coord_->heartbeat(kP, "g", gen, ids[0], std::nullopt),
            error_code::rebalance_in_progress);
  auto rejoin = join(params(ids[0]));
  ASSERT_TRUE(rejoin->has_value());
  EXPECT_EQ((*rejoin)->generation_id, gen + 1);
  EXPECT_EQ((*rejoin)->members.size(), 1u);
}

TEST_F(group_coordinator_test, group_that_became_empty_reloads_empty_at_its_generation) {
  const auto ids = stable_group(1);
  ASSERT_EQ(commit("g", 1, ids[0], "t", 7), error_code::none);
  coord_->leave(kP, "g", {{ids[0], std::nullopt}});
  ASSERT_EQ(coord_->state_of("g"), group_state::empty);
  const int32_t gen = coord_->generation_of("g");
  restart();
  EXPECT_EQ(coord_->state_of("g"), group_state::empty);
  EXPECT_EQ(coord_->generation_of("g"), gen);
  EXPECT_EQ(coord_->heartbeat(kP, "g", 1, ids[0], std::nullopt), error_code::unknown_member_id);
  EXPECT_EQ(committed("g", "t"), 7);
  auto d = coord_->describe(kP, "g");
  EXPECT_EQ(d.protocol_type, "consumer");
  EXPECT_TRUE(d.members.empty());
}

TEST_F(group_coordinator_test, deleted_group_stays_deleted_after_reload) {
  const auto ids = stable_group(1);
  ASSERT_EQ(commit("g", 1, ids[0], "t", 7), error_code::none);
  coord_->leave(kP, "g", {{ids[0], std::nullopt}});
  ASSERT_EQ(coord_->delete_group(kP, "g"), error_code::none);
  restart();
  EXPECT_FALSE(coord_->state_of("g"));
  EXPECT_TRUE(coord_->list().groups.empty());
}

TEST_F(group_coordinator_test, reloading_a_partition_answers_requests_waiting_in_a_rebalance) {
  auto a = join_new();
  ASSERT_TRUE(a->has_value());
  auto bj = join_new();  // waits for the first member to rejoin
  ASSERT_FALSE(bj->has_value());
  std::string error;
  ASSERT_TRUE(coord_->load_partition(kP, &error)) << error;
  ASSERT_TRUE(bj->has_value());
  EXPECT_EQ((*bj)->error, error_code::not_coordinator);
}

TEST_F(group_coordinator_test, failed_group_store_fails_the_sync_and_rebalances) {
  auto a = join_new();
  const std::string m1 = (*a)->member_id;
  part_->close();  // appends now fail
  auto s = sync(m1, 1, {{m1, b("x")}});
  ASSERT_TRUE(s->has_value());
  EXPECT_NE((*s)->error, error_code::none);
  EXPECT_TRUE((*s)->assignment.empty());
  EXPECT_EQ(coord_->state_of("g"), group_state::preparing_rebalance);
}

TEST_F(group_coordinator_test, offsets_of_an_empty_group_expire_retention_after_it_became_empty) {
  options_.offsets_retention_ms = 60000;
  reopen();
  const auto ids = stable_group(1);
  ASSERT_EQ(commit("g", 1, ids[0], "t", 7), error_code::none);
  now_ += 100000;  // the member stays well past the retention: offsets are kept
  EXPECT_EQ(coord_->heartbeat(kP, "g", 1, ids[0], std::nullopt), error_code::none);
  EXPECT_EQ(coord_->expire_offsets(), 0u);
  coord_->leave(kP, "g", {{ids[0], std::nullopt}});
  ASSERT_EQ(coord_->state_of("g"), group_state::empty);

  now_ += 59999;
  EXPECT_EQ(coord_->expire_offsets(), 0u);
  EXPECT_EQ(committed("g", "t"), 7);
  now_ += 1;
  EXPECT_EQ(coord_->expire_offsets(), 1u);
  EXPECT_FALSE(coord_->state_of("g"));  // Dead: no members, no offsets
  EXPECT_TRUE(coord_->list().groups.empty());
  EXPECT_EQ(committed("g", "t"), -1);

  restart();  // the tombstones keep it gone
  EXPECT_FALSE(coord_->state_of("g"));
  EXPECT_EQ(committed("g", "t"), -1);
}

TEST_F(group_coordinator_test, simple_group_offsets_expire_by_their_commit_time) {
  options_.offsets_retention_ms = 60000;
  reopen();
  ASSERT_EQ(commit("s", -1, "", "old", 1), error_code::none);
  now_ += 30000;
  ASSERT_EQ(commit("s", -1, "", "new", 2), error_code::none);
  now_ += 30000;
  EXPECT_EQ(coord_->expire_offsets(), 1u);
  EXPECT_EQ(committed("s", "old"), -1);
  EXPECT_EQ(committed("s", "new"), 2);
  EXPECT_EQ(coord_->state_of("s"), group_state::empty);
  restart();
  EXPECT_EQ(committed("s", "old"), -1);
  EXPECT_EQ(committed("s", "new"), 2);
  now_ += 30000;
  EXPECT_EQ(coord_->expire_offsets(), 1u);
  EXPECT_FALSE(coord_->state_of("s"));
}

TEST_F(group_coordinator_test, stable_consumer_group_keeps_offsets_of_subscribed_topics) {
  options_.offsets_retention_ms = 60000;
  reopen();
  auto jp = params("", {"range"}, "inst");
  jp.protocols[0].metadata = subscription({"t"});
  const auto ids = stable_group(1, {jp});
  ASSERT_EQ(commit("g", 1, ids[0], "t", 1), error_code::none);
  ASSERT_EQ(commit("g", 1, ids[0], "unsubscribed", 2), error_code::none);
  now_ += 5000;
  coord_->heartbeat(kP, "g", 1, ids[0], std::nullopt);
  now_ += 5000;
  coord_->heartbeat(kP, "g", 1, ids[0], std::nullopt);
  options_.offsets_retention_ms = 10000;
  // (retention is read at construction: rebuild, keeping the group by reloading it)
  restart();
  EXPECT_EQ(coord_->expire_offsets(), 1u);
  EXPECT_EQ(committed("g", "t"), 1);
  EXPECT_EQ(committed("g", "unsubscribed"), -1);
  EXPECT_EQ(coord_->state_of("g"), group_state::stable);
}

TEST_F(group_coordinator_test, tick_runs_the_retention_check_every_interval) {
  options_.offsets_retention_ms = 1000;
  options_.offsets_retention_check_interval_ms = 5000;
  reopen();
  ASSERT_EQ(commit("s", -1, "", "t", 1), error_code::none);
  coord_->tick();  // first check at once: nothing due yet
  now_ += 1000;
  coord_->tick();
  EXPECT_EQ(committed("s", "t"), 1);  // due, but the next check is at 5000
  now_ += 4000;
  coord_->tick();
  EXPECT_EQ(committed("s", "t"), -1);
}

TEST_F(group_coordinator_test, list_reports_loading_and_a_failed_load_is_retried_with_backoff) {
  ASSERT_EQ(commit("s", -1, "", "t", 5), error_code::none);
  // A second log whose only batch claims gzip but holds garbage: CRC-valid, undecodable.
  std::string error;
  bad_part_ = open_leader(dir_.path() / "bad", &error);
  ASSERT_TRUE(bad_part_) << error;
  protocol::record r;
  r.key = b("k");
  r.value = b("v");
  auto batch = protocol::build_batch({r}, protocol::batch_builder_options{});
  batch[22] |= 1;  // attributes low byte: compression gzip
  const uint32_t crc = protocol::compute_batch_crc(batch);
  for (int i = 0; i < 4; ++i) batch[17 + i] = static_cast<uint8_t>(crc >> (24 - 8 * i));
  ASSERT_EQ(bad_part_->append(std::span<uint8_t>(batch), -1, 0).error, error_code::none);

  coord_ = std::make_unique<group_coordinator>(
      options_,
      [this](int32_t p) {
        ++lookups_;
        return p == kP ? (bad_part_ ? bad_part_.get() : part_.get()) : nullptr;
      },
      [this] { return now_; }, [this] { return kWallBase + now_; });
  coord_->begin_loading(kP);
  EXPECT_EQ(coord_->list().error, error_code::coordinator_load_in_progress);
  lookups_ = 0;
  EXPECT_FALSE(coord_->load_partition(kP, &error));
  EXPECT_NE(error.find("undecodable"), std::string::npos) << error;
  EXPECT_EQ(lookups_, 1);
  EXPECT_EQ(coord_->check_partition(kP), error_code::coordinator_load_in_progress);
  EXPECT_EQ(coord_->list().error, error_code::coordinator_load_in_progress);

  // Retries at +200 ms, then +400 ms, ... (the first retention check may also run).
  now_ += 199;
  coord_->tick();
  EXPECT_EQ(lookups_, 1);
  now_ += 1;
  coord_->tick();
  EXPECT_EQ(lookups_, 2);
  now_ += 399;
  coord_->tick();
  EXPECT_EQ(lookups_, 2);
  now_ += 1;
  coord_->tick();
  EXPECT_EQ(lookups_, 3);
  // The backoff is bounded by load_retry_backoff_max_ms (30 s).
  for (int i = 0; i < 20; ++i) {
    now_ += 30000;
    coord_->tick();
  }
  EXPECT_EQ(lookups_, 23);

  bad_part_.reset();  // the fault goes away: the next retry loads the good log
  now_ += 30000;
  coord_->tick();
  EXPECT_EQ(coord_->check_partition(kP), error_code::none);
  EXPECT_EQ(coord_->list().error, error_code::none);
  EXPECT_EQ(committed("s", "t"), 5);
}

}  // namespace
}  // namespace varve::coordinator

namespace varve::coordinator {
namespace {

class group_txn_offsets_test : public group_coordinator_test {
 protected:
  error_code txn_commit(int64_t pid, const std::string& topic, int64_t offset,
                        int32_t gen = -1, const std::string& member = "") {
    std::vector<commit_entry> e(1);
    e[0].tp = {topic, 0};
    e[0].value.offset = offset;
    txn_commit_params params;
    params.group_id = "g";
    params.producer_id = pid;
    params.producer_epoch = 0;
    params.generation_id = gen;
    params.member_id = member;
    const error_code top = coord_->commit_txn_offsets(kP, params, e);
    return top != error_code::none ? top : e[0].error;
  }
  // What a partition leader does for WriteTxnMarkers on __consumer_offsets.
  void marker(int64_t pid, bool commit) {
    ASSERT_EQ(part_->append_txn_marker(pid, 0, commit, 0, kWallBase).error, error_code::none);
    coord_->complete_txn(kP, pid, commit);
  }
};

TEST_F(group_txn_offsets_test, txn_offsets_are_pending_until_commit_and_dropped_on_abort) {
  ASSERT_EQ(commit("g", -1, "", "t", 5), error_code::none);
  ASSERT_EQ(txn_commit(7, "t", 10), error_code::none);
  ASSERT_EQ(txn_commit(8, "u", 20), error_code::none);
  EXPECT_EQ(committed("g", "t"), 5);
  EXPECT_EQ(committed("g", "u"), -1);
  EXPECT_TRUE(coord_->has_pending_txn_offset("g", {"t", 0}));
  EXPECT_TRUE(coord_->has_pending_txn_offset("g", {"u", 0}));
  // The offsets' transaction holds the partition's LSO.
  EXPECT_LT(part_->last_stable_offset(), part_->high_watermark());

  marker(7, true);
  EXPECT_EQ(committed("g", "t"), 10);
  EXPECT_FALSE(coord_->has_pending_txn_offset("g", {"t", 0}));
  marker(8, false);
  EXPECT_EQ(committed("g", "u"), -1);
  EXPECT_FALSE(coord_->has_pending_txn_offset("g", {"u", 0}));
  EXPECT_EQ(part_->last_stable_offset(), part_->high_watermark());
}

TEST_F(group_txn_offsets_test, reload_replays_markers_and_keeps_unfinished_txn_offsets_pending) {
  ASSERT_EQ(txn_commit(7, "t", 10), error_code::none);
  marker(7, true);
  ASSERT_EQ(txn_commit(8, "u", 20), error_code::none);
  marker(8, false);
  ASSERT_EQ(txn_commit(9, "v", 30), error_code::none);  // still open at the restart
  restart();
  EXPECT_EQ(committed("g", "t"), 10);
  EXPECT_EQ(committed("g", "u"), -1);
  EXPECT_EQ(committed("g", "v"), -1);
  EXPECT_TRUE(coord_->has_pending_txn_offset("g", {"v", 0}));
  // The coordinator finishes it after the failover.
  marker(9, true);
  EXPECT_EQ(committed("g", "v"), 30);
}

TEST_F(group_txn_offsets_test, txn_commit_for_a_member_checks_its_generation) {
  const auto ids = stable_group(1);
  const int32_t gen = coord_->generation_of("g");
  EXPECT_EQ(txn_commit(7, "t", 1, gen, "nobody"), error_code::unknown_member_id);
  EXPECT_EQ(txn_commit(7, "t", 1, gen + 1, ids[0]), error_code::illegal_generation);
  EXPECT_EQ(txn_commit(7, "t", 1, gen, ids[0]), error_code::none);
}

}  // namespace
}  // namespace varve::coordinator
