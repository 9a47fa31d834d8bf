#include "coordinator/txn_coordinator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "coordinator/offsets_format.h"
#include "coordinator/txn_log_format.h"

namespace varve::coordinator {
namespace {

using protocol::error_code;

constexpr int32_t kPartitions = 4;
constexpr int32_t kCoordinatorEpoch = 5;

struct written {
  std::string id;
  std::optional<txn_log_value> value;  // nullopt = tombstone
};

class txn_coordinator_test : public ::testing::Test {
 protected:
  txn_coordinator_test() {
    options_.transaction_max_timeout_ms = 60000;
    options_.transactional_id_expiration_ms = 100000;
    options_.abort_timed_out_transaction_cleanup_interval_ms = 1000;
    options_.remove_expired_transactional_ids_interval_ms = 1000;
    options_.transaction_state_num_partitions = kPartitions;
    options_.offsets_topic_num_partitions = 10;
    options_.retry_backoff_ms = 100;
    c_ = make();
  }

  std::unique_ptr<txn_coordinator> make() {
    return std::make_unique<txn_coordinator>(
        options_,
        [this](int32_t p, std::vector<txn_log_entry> records, txn_coordinator::done_fn done) {
          auto finish = [this, p, records = std::move(records), done = std::move(done)]() {
            if (fail_appends_ != error_code::none) return done(fail_appends_);
            for (const auto& r : records) log_[p].push_back(r);
            done(error_code::none);
          };
          if (defer_appends_) {
            deferred_.push_back(std::move(finish));
          } else {
            finish();
          }
        },
        [this](txn_marker_request request, txn_coordinator::done_fn done) {
          markers_.emplace_back(std::move(request), std::move(done));
        },
        [this]() -> std::optional<int64_t> { return next_pid_++; }, [this] { return now_; });
  }

  void load_all(txn_coordinator& c, int32_t epoch = kCoordinatorEpoch) {
    for (int32_t p = 0; p < kPartitions; ++p) {
      c.begin_loading(p, epoch);
      c.complete_loading(p);
    }
  }

  init_producer_id_result init(const std::string& id, int32_t timeout = 30000,
                               std::optional<producer_id_and_epoch> expected = std::nullopt) {
    std::optional<init_producer_id_result> out;
    c_->init_producer_id(id, timeout, expected, [&](init_producer_id_result r) { out = r; });
    EXPECT_TRUE(out) << "InitProducerId was not answered";
    return out.value_or(init_producer_id_result{error_code::unknown_server_error});
  }

  error_code add(const std::string& id, const init_producer_id_result& p,
                 std::vector<txn_partition> parts) {
    std::optional<error_code> out;
    c_->add_partitions(id, p.producer_id, p.producer_epoch, parts, [&](error_code e) { out = e; });
    EXPECT_TRUE(out) << "AddPartitionsToTxn was not answered";
    return out.value_or(error_code::unknown_server_error);
  }

  error_code end(const std::string& id, int64_t pid, int16_t epoch, bool commit) {
    std::optional<error_code> out;
    c_->end_txn(id, pid, epoch, commit, [&](error_code e) { out = e; });
    EXPECT_TRUE(out) << "EndTxn was not answered";
    return out.value_or(error_code::unknown_server_error);
  }

  // Completes the oldest outstanding marker write.
  txn_marker_request finish_markers(error_code e = error_code::none) {
    EXPECT_FALSE(markers_.empty());
    if (markers_.empty()) return {};
    auto [request, done] = std::move(markers_.front());
    markers_.erase(markers_.begin());
    done(e);
    return request;
  }

  std::vector<written> records_of(int32_t p) const {
    std::vector<written> out;
    auto it = log_.find(p);
    if (it == log_.end()) return out;
    for (const auto& r : it->second) {
      written w;
      w.id = decode_txn_key(r.key).value_or("<bad key>");
      if (r.value) w.value = decode_txn_value(*r.value);
      out.push_back(std::move(w));
    }
    return out;
  }

  std::vector<txn_state> states_written(const std::string& id) const {
    std::vector<txn_state> out;
    for (const auto& w : records_of(c_->partition_for(id))) {
      if (w.id == id && w.value) out.push_back(w.value->state);
    }
    return out;
  }

  // Replays everything this test's log holds into a fresh coordinator.
  std::unique_ptr<txn_coordinator> replayed(int32_t epoch) {
    auto other = make();
    for (int32_t p = 0; p < kPartitions; ++p) {
      other->begin_loading(p, epoch);
      for (const auto& r : log_[p]) {
        std::optional<std::span<const uint8_t>> v;
        if (r.value) v = std::span<const uint8_t>(*r.value);
        EXPECT_TRUE(other->replay(p, r.key, v));
      }
      other->complete_loading(p);
    }
    return other;
  }

  txn_coordinator_options options_;
  int64_t now_ = 1'000'000;
  int64_t next_pid_ = 1000;
  std::map<int32_t, std::vector<txn_log_entry>> log_;
  bool defer_appends_ = false;
  std::vector<std::function<void()>> deferred_;
  error_code fail_appends_ = error_code::none;
  std::vector<std::pair<txn_marker_request, txn_coordinator::done_fn>> markers_;
  std::unique_ptr<txn_coordinator> c_;
};

TEST_F(txn_coordinator_test, ids_are_served_only_once_their_partition_is_loaded) {
  EXPECT_EQ(init("t1").error, error_code::not_coordinator);
  const int32_t p = c_->partition_for("t1");
  c_->begin_loading(p, kCoordinatorEpoch);
  EXPECT_EQ(init("t1").error, error_code::coordinator_load_in_progress);
  EXPECT_EQ(c_->describe("t1").error, error_code::coordinator_load_in_progress);
  EXPECT_EQ(c_->list({}, {}, -1).error, error_code::coordinator_load_in_progress);
  c_->complete_loading(p);
  EXPECT_EQ(init("t1").error, error_code::none);
  c_->unload(p);
  EXPECT_EQ(c_->describe("t1").error, error_code::not_coordinator);
  EXPECT_FALSE(c_->find("t1"));
}

TEST_F(txn_coordinator_test, init_producer_id_is_answered_after_its_record_is_appended) {
  load_all(*c_);
  defer_appends_ = true;
  std::optional<init_producer_id_result> out;
  c_->init_producer_id("t1", 30000, std::nullopt, [&](init_producer_id_result r) { out = r; });
  EXPECT_FALSE(out);
  EXPECT_TRUE(c_->is_busy("t1"));
  ASSERT_EQ(deferred_.size(), 1u);
  deferred_[0]();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error, error_code::none);
  EXPECT_EQ(out->producer_id, 1000);
  EXPECT_EQ(out->producer_epoch, 0);
  auto recs = records_of(c_->partition_for("t1"));
  ASSERT_EQ(recs.size(), 1u);
  ASSERT_TRUE(recs[0].value);
  EXPECT_EQ(recs[0].value->state, txn_state::empty);
  EXPECT_EQ(recs[0].value->producer_id, 1000);
  EXPECT_EQ(recs[0].value->producer_epoch, 0);
  EXPECT_EQ(recs[0].value->timeout_ms, 30000);
}

TEST_F(txn_coordinator_test, init_validates_the_id_and_the_timeout) {
  load_all(*c_);
  EXPECT_EQ(init("").error, error_code::invalid_request);
  EXPECT_EQ(init("t1", 60001).error, error_code::invalid_transaction_timeout);
  EXPECT_EQ(init("t1", 0).error, error_code::invalid_transaction_timeout);
  EXPECT_FALSE(c_->find("t1"));
  EXPECT_EQ(init("t1", 60000).error, error_code::none);
}

TEST_F(txn_coordinator_test, idempotent_producers_get_a_fresh_id_and_no_record) {
  std::optional<init_producer_id_result> out;
  c_->init_producer_id(std::nullopt, 0, std::nullopt, [&](init_producer_id_result r) { out = r; });
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error, error_code::none);
  EXPECT_EQ(out->producer_id, 1000);
  EXPECT_EQ(out->producer_epoch, 0);
  EXPECT_TRUE(log_.empty());
}

TEST_F(txn_coordinator_test, a_second_producer_with_the_same_id_fences_the_first) {
  load_all(*c_);
  auto first = init("t1");
  auto second = init("t1");
  ASSERT_EQ(second.error, error_code::none);
  EXPECT_EQ(second.producer_id, first.producer_id);
  EXPECT_EQ(second.producer_epoch, first.producer_epoch + 1);
  EXPECT_EQ(add("t1", first, {{"out", 0}}), error_code::producer_fenced);
  EXPECT_EQ(end("t1", first.producer_id, first.producer_epoch, true), error_code::producer_fenced);
  EXPECT_EQ(c_->verify_partitions("t1", first.producer_id, first.producer_epoch, {{"out", 0}}),
            std::vector<error_code>{error_code::producer_fenced});
  EXPECT_EQ(add("t1", second, {{"out", 0}}), error_code::none);
}

TEST_F(txn_coordinator_test, commit_prepares_writes_markers_then_completes) {
  load_all(*c_);
  auto p = init("t1");
  ASSERT_EQ(add("t1", p, {{"out", 1}, {"out", 0}}), error_code::none);
  std::optional<error_code> offsets;
  c_->add_offsets("t1", p.producer_id, p.producer_epoch, "group-a",
                  [&](error_code e) { offsets = e; });
  ASSERT_EQ(offsets, error_code::none);
  const txn_partition offsets_tp{std::string(kOffsetsTopic), offsets_partition_for("group-a", 10)};
  EXPECT_TRUE(c_->find("t1")->partitions.count(offsets_tp));
  EXPECT_EQ(c_->describe("t1").state, "Ongoing");

  ASSERT_EQ(end("t1", p.producer_id, p.producer_epoch, true), error_code::none);
  EXPECT_EQ(c_->find("t1")->state, txn_state::prepare_commit);
  // While markers are written the transaction is busy.
  EXPECT_EQ(add("t1", p, {{"out", 2}}), error_code::concurrent_transactions);
  EXPECT_EQ(end("t1", p.producer_id, p.producer_epoch, true), error_code::concurrent_transactions);
  EXPECT_EQ(end("t1", p.producer_id, p.producer_epoch, false), error_code::invalid_txn_state);
  EXPECT_EQ(init("t1").error, error_code::concurrent_transactions);

  ASSERT_EQ(markers_.size(), 1u);
  const txn_marker_request req = finish_markers();
  EXPECT_EQ(req.transactional_id, "t1");
  EXPECT_EQ(req.producer_id, p.producer_id);
  EXPECT_EQ(req.producer_epoch, p.producer_epoch);
  EXPECT_TRUE(req.commit);
  EXPECT_EQ(req.coordinator_epoch, kCoordinatorEpoch);
  EXPECT_EQ(req.partitions, (std::vector<txn_partition>{offsets_tp, {"out", 0}, {"out", 1}}));

  const txn_metadata* m = c_->find("t1");
  EXPECT_EQ(m->state, txn_state::complete_commit);
  EXPECT_TRUE(m->partitions.empty());
  EXPECT_FALSE(c_->is_busy("t1"));
  EXPECT_EQ(states_written("t1"),
            (std::vector<txn_state>{txn_state::empty, txn_state::ongoing, txn_state::ongoing,
                                    txn_state::prepare_commit, txn_state::complete_commit}));
  // A retried commit is answered NONE without a write; the other outcome is refused.
  EXPECT_EQ(end("t1", p.producer_id, p.producer_epoch, true), error_code::none);
  EXPECT_EQ(end("t1", p.producer_id, p.producer_epoch, false), error_code::invalid_txn_state);
  EXPECT_EQ(states_written("t1").size(), 5u);
  // The next transaction starts afresh.
  ASSERT_EQ(add("t1", p, {{"out", 3}}), error_code::none);
  EXPECT_EQ(c_->find("t1")->partitions, (std::set<txn_partition>{{"out", 3}}));
}

TEST_F(txn_coordinator_test, ending_an_empty_transaction_completes_without_markers) {
  load_all(*c_);
  auto p = init("t1");
  EXPECT_EQ(end("t1", p.producer_id, p.producer_epoch, true), error_code::invalid_txn_state);
  ASSERT_EQ(add("t1", p, {{"out", 0}}), error_code::none);
  ASSERT_EQ(end("t1", p.producer_id, p.producer_epoch, false), error_code::none);
  ASSERT_EQ(markers_.size(), 1u);
  EXPECT_FALSE(finish_markers().commit);
  EXPECT_EQ(c_->find("t1")->state, txn_state::complete_abort);
}

TEST_F(txn_coordinator_test, failed_marker_writes_are_retried_after_the_backoff) {
  load_all(*c_);
  auto p = init("t1");
  ASSERT_EQ(add("t1", p, {{"out", 0}}), error_code::none);
  ASSERT_EQ(end("t1", p.producer_id, p.producer_epoch, true), error_code::none);
  finish_markers(error_code::not_leader_or_follower);
  EXPECT_EQ(c_->find("t1")->state, txn_state::prepare_commit);
  EXPECT_TRUE(markers_.empty());
  now_ += 50;
  c_->tick();
  EXPECT_TRUE(markers_.empty());  // backoff not over
  now_ += 50;
  c_->tick();
  ASSERT_EQ(markers_.size(), 1u);
  finish_markers();
  EXPECT_EQ(c_->find("t1")->state, txn_state::complete_commit);
}

TEST_F(txn_coordinator_test, a_failed_completion_append_is_retried_without_new_markers) {
  load_all(*c_);
  auto p = init("t1");
  ASSERT_EQ(add("t1", p, {{"out", 0}}), error_code::none);
  ASSERT_EQ(end("t1", p.producer_id, p.producer_epoch, true), error_code::none);
  fail_appends_ = error_code::not_enough_replicas;
  finish_markers();
  EXPECT_EQ(c_->find("t1")->state, txn_state::prepare_commit);
  fail_appends_ = error_code::none;
  now_ += 100;
  c_->tick();
  EXPECT_TRUE(markers_.empty());
  EXPECT_EQ(c_->find("t1")->state, txn_state::complete_commit);
}

TEST_F(txn_coordinator_test, init_on_an_open_transaction_aborts_it_and_fences_its_producer) {
  load_all(*c_);
  auto old = init("t1");
  ASSERT_EQ(add("t1", old, {{"out", 0}}), error_code::none);
  defer_appends_ = true;
  std::optional<init_producer_id_result> out;
  c_->init_producer_id("t1", 30000, std::nullopt, [&](init_producer_id_result r) { out = r; });
  EXPECT_EQ(c_->pending_state("t1"), txn_state::prepare_epoch_fence);
  EXPECT_EQ(c_->describe("t1").state, "Ongoing");
  ASSERT_EQ(deferred_.size(), 1u);
  defer_appends_ = false;
  deferred_[0]();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error, error_code::concurrent_transactions);
  const txn_metadata* m = c_->find("t1");
  EXPECT_EQ(m->state, txn_state::prepare_abort);
  EXPECT_EQ(m->producer_epoch, old.producer_epoch + 1);

  // The abort markers carry the bumped epoch: they fence the old producer everywhere.
  ASSERT_EQ(markers_.size(), 1u);
  const txn_marker_request req = finish_markers();
  EXPECT_FALSE(req.commit);
  EXPECT_EQ(req.producer_epoch, old.producer_epoch + 1);
  EXPECT_EQ(c_->find("t1")->state, txn_state::complete_abort);
  EXPECT_EQ(end("t1", old.producer_id, old.producer_epoch, true), error_code::producer_fenced);

  auto retry = init("t1");
  ASSERT_EQ(retry.error, error_code::none);
  EXPECT_EQ(retry.producer_id, old.producer_id);
  EXPECT_EQ(retry.producer_epoch, old.producer_epoch + 2);
}

TEST_F(txn_coordinator_test, a_transaction_open_past_its_timeout_is_aborted_and_fenced) {
  load_all(*c_);
  auto p = init("t1", 10000);
  ASSERT_EQ(add("t1", p, {{"out", 0}}), error_code::none);
  now_ += 10000;
  c_->tick();
  EXPECT_EQ(c_->find("t1")->state, txn_state::ongoing);
  now_ += 1000;  // past the timeout and the check interval
  c_->tick();
  const txn_metadata* m = c_->find("t1");
  EXPECT_EQ(m->state, txn_state::prepare_abort);
  EXPECT_EQ(m->producer_epoch, p.producer_epoch + 1);
  ASSERT_EQ(markers_.size(), 1u);
  EXPECT_EQ(finish_markers().producer_epoch, p.producer_epoch + 1);
  EXPECT_EQ(c_->find("t1")->state, txn_state::complete_abort);
  // The timed-out producer learns it was fenced when it tries to go on.
  EXPECT_EQ(end("t1", p.producer_id, p.producer_epoch, true), error_code::producer_fenced);
  EXPECT_EQ(add("t1", p, {{"out", 0}}), error_code::producer_fenced);
  // KIP-360: it may recover by naming its producer id and epoch — no longer current, so fenced.
  EXPECT_EQ(init("t1", 10000, producer_id_and_epoch{p.producer_id, p.producer_epoch}).error,
            error_code::producer_fenced);
}

TEST_F(txn_coordinator_test, a_failed_append_changes_nothing_and_maps_the_error) {
  load_all(*c_);
  fail_appends_ = error_code::not_leader_or_follower;
  EXPECT_EQ(init("t1").error, error_code::not_coordinator);
  EXPECT_FALSE(c_->find("t1"));  // never persisted: forgotten
  fail_appends_ = error_code::none;
  auto p = init("t1");
  ASSERT_EQ(add("t1", p, {{"out", 0}}), error_code::none);
  fail_appends_ = error_code::request_timed_out;
  EXPECT_EQ(end("t1", p.producer_id, p.producer_epoch, true),
            error_code::coordinator_not_available);
  EXPECT_EQ(c_->find("t1")->state, txn_state::ongoing);
  EXPECT_FALSE(c_->is_busy("t1"));
  fail_appends_ = error_code::message_too_large;
  EXPECT_EQ(add("t1", p, {{"out", 1}}), error_code::unknown_server_error);
  EXPECT_FALSE(c_->find("t1")->partitions.count({"out", 1}));
  fail_appends_ = error_code::none;
  EXPECT_EQ(end("t1", p.producer_id, p.producer_epoch, true), error_code::none);
}

TEST_F(txn_coordinator_test, requests_during_an_append_get_concurrent_transactions) {
  load_all(*c_);
  auto p = init("t1");
  defer_appends_ = true;
  std::optional<error_code> first;
  c_->add_partitions("t1", p.producer_id, p.producer_epoch, {{"out", 0}},
                     [&](error_code e) { first = e; });
  EXPECT_FALSE(first);
  EXPECT_EQ(add("t1", p, {{"out", 1}}), error_code::concurrent_transactions);
  EXPECT_EQ(end("t1", p.producer_id, p.producer_epoch, true), error_code::concurrent_transactions);
  EXPECT_EQ(init("t1").error, error_code::concurrent_transactions);
  ASSERT_EQ(deferred_.size(), 1u);
  deferred_[0]();
  EXPECT_EQ(first, error_code::none);
  EXPECT_EQ(c_->find("t1")->partitions, (std::set<txn_partition>{{"out", 0}}));
}

TEST_F(txn_coordinator_test, verification_refuses_writes_once_the_transaction_is_ending) {
  load_all(*c_);
  auto p = init("t1");
  EXPECT_EQ(c_->verify_partitions("t2", p.producer_id, p.producer_epoch, {{"out", 0}}),
            std::vector<error_code>{error_code::invalid_producer_id_mapping});
  ASSERT_EQ(add("t1", p, {{"out", 0}}), error_code::none);
  EXPECT_EQ(c_->verify_partitions("t1", p.producer_id, p.producer_epoch, {{"out", 0}, {"x", 0}}),
            (std::vector<error_code>{error_code::none, error_code::transaction_abortable}));
  defer_appends_ = true;
  std::optional<error_code> ended;
  c_->end_txn("t1", p.producer_id, p.producer_epoch, true, [&](error_code e) { ended = e; });
  // PrepareCommit is being written: a late write must not slip into the transaction.
  EXPECT_EQ(c_->verify_partitions("t1", p.producer_id, p.producer_epoch, {{"out", 0}}),
            std::vector<error_code>{error_code::concurrent_transactions});
  deferred_[0]();
  EXPECT_EQ(ended, error_code::none);
  EXPECT_EQ(c_->verify_partitions("t1", p.producer_id, p.producer_epoch, {{"out", 0}}),
            std::vector<error_code>{error_code::concurrent_transactions});
}

TEST_F(txn_coordinator_test, unloading_during_an_append_answers_not_coordinator) {
  load_all(*c_);
  auto p = init("t1");
  ASSERT_EQ(add("t1", p, {{"out", 0}}), error_code::none);
  defer_appends_ = true;
  std::optional<error_code> ended;
  c_->end_txn("t1", p.producer_id, p.producer_epoch, true, [&](error_code e) { ended = e; });
  const int32_t part = c_->partition_for("t1");
  c_->unload(part);
  deferred_[0]();
  EXPECT_EQ(ended, error_code::not_coordinator);
  EXPECT_TRUE(markers_.empty());
  // A reload that finds the PrepareCommit record finishes the commit (new leader epoch).
  defer_appends_ = false;
  c_->begin_loading(part, kCoordinatorEpoch + 1);
  for (const auto& r : log_[part]) {
    std::optional<std::span<const uint8_t>> v;
    if (r.value) v = std::span<const uint8_t>(*r.value);
    c_->replay(part, r.key, v);
  }
  c_->complete_loading(part);
  ASSERT_EQ(markers_.size(), 1u);
  EXPECT_EQ(markers_[0].first.coordinator_epoch, kCoordinatorEpoch + 1);
  finish_markers();
  EXPECT_EQ(c_->find("t1")->state, txn_state::complete_commit);
}

TEST_F(txn_coordinator_test, marker_completions_after_an_unload_are_ignored) {
  load_all(*c_);
  auto p = init("t1");
  ASSERT_EQ(add("t1", p, {{"out", 0}}), error_code::none);
  ASSERT_EQ(end("t1", p.producer_id, p.producer_epoch, false), error_code::none);
  c_->unload(c_->partition_for("t1"));
  const size_t records = log_[c_->partition_for("t1")].size();
  finish_markers();
  EXPECT_EQ(log_[c_->partition_for("t1")].size(), records);  // no CompleteAbort written
}

TEST_F(txn_coordinator_test, replaying_the_log_rebuilds_the_same_state) {
  load_all(*c_);
  // Several ids in different states.
  auto a = init("a");
  ASSERT_EQ(add("a", a, {{"x", 0}, {"y", 1}}), error_code::none);  // Ongoing
  auto b = init("b");
  ASSERT_EQ(add("b", b, {{"x", 1}}), error_code::none);
  ASSERT_EQ(end("b", b.producer_id, b.producer_epoch, true), error_code::none);
  finish_markers();  // CompleteCommit
  auto cc = init("c");
  ASSERT_EQ(add("c", cc, {{"z", 0}}), error_code::none);
  ASSERT_EQ(end("c", cc.producer_id, cc.producer_epoch, false), error_code::none);  // PrepareAbort
  auto d = init("d");
  d = init("d");  // Empty, epoch 1
  ASSERT_EQ(d.producer_epoch, 1);

  auto other = replayed(kCoordinatorEpoch + 1);
  for (const std::string id : {"a", "b", "c", "d"}) {
    const txn_metadata* want = c_->find(id);
    const txn_metadata* got = other->find(id);
    ASSERT_TRUE(want && got) << id;
    txn_metadata w = *want;
    w.last_producer_epoch = kNoProducerEpoch;  // in memory only
    EXPECT_EQ(*got, w) << id;
  }
  // The replayed coordinator finishes the abort of "c" that was in flight.
  ASSERT_EQ(markers_.size(), 2u);
  EXPECT_EQ(markers_[1].first.transactional_id, "c");
  EXPECT_EQ(markers_[1].first.coordinator_epoch, kCoordinatorEpoch + 1);
  // ... and keeps serving the others: the open transaction of "a" can commit.
  std::optional<error_code> ended;
  other->end_txn("a", a.producer_id, a.producer_epoch, true, [&](error_code e) { ended = e; });
  EXPECT_EQ(ended, error_code::none);
}

TEST_F(txn_coordinator_test, replay_skips_malformed_records_and_applies_tombstones) {
  const int32_t p = c_->partition_for("t1");
  EXPECT_FALSE(c_->replay(p, encode_txn_key("t1"), std::nullopt));  // not loading
  c_->begin_loading(p, 1);
  txn_log_value v;
  v.producer_id = 5;
  v.producer_epoch = 0;
  v.timeout_ms = 1000;
  const auto value = encode_txn_value(v);
  EXPECT_TRUE(c_->replay(p, encode_txn_key("t1"), std::span<const uint8_t>(value)));
  const std::vector<uint8_t> garbage = {0, 0, 1};
  EXPECT_FALSE(c_->replay(p, garbage, std::span<const uint8_t>(value)));
  EXPECT_FALSE(c_->replay(p, encode_txn_key("t1"), std::span<const uint8_t>(garbage)));
  c_->complete_loading(p);
  ASSERT_TRUE(c_->find("t1"));
  EXPECT_EQ(c_->find("t1")->producer_id, 5);
  c_->begin_loading(p, 2);
  EXPECT_TRUE(c_->replay(p, encode_txn_key("t1"), std::span<const uint8_t>(value)));
  EXPECT_TRUE(c_->replay(p, encode_txn_key("t1"), std::nullopt));
  c_->complete_loading(p);
  EXPECT_FALSE(c_->find("t1"));
}

TEST_F(txn_coordinator_test, an_exhausted_epoch_rotates_the_producer_id) {
  const int32_t p = c_->partition_for("t1");
  c_->begin_loading(p, 1);
  txn_log_value v;
  v.producer_id = 5;
  v.producer_epoch = kMaxProducerEpoch - 1;
  v.timeout_ms = 1000;
  v.state = txn_state::complete_commit;
  const auto value = encode_txn_value(v);
  ASSERT_TRUE(c_->replay(p, encode_txn_key("t1"), std::span<const uint8_t>(value)));
  c_->complete_loading(p);
  auto r = init("t1");
  ASSERT_EQ(r.error, error_code::none);
  EXPECT_EQ(r.producer_id, 1000);
  EXPECT_EQ(r.producer_epoch, 0);
  EXPECT_EQ(c_->find("t1")->last_producer_id, 5);
}

TEST_F(txn_coordinator_test, idle_transactional_ids_expire_with_a_tombstone) {
  load_all(*c_);
  auto idle = init("idle");
  auto busy = init("busy");
  ASSERT_EQ(add("busy", busy, {{"out", 0}}), error_code::none);
  now_ += 100000;
  c_->tick();
  EXPECT_FALSE(c_->find("idle"));
  ASSERT_TRUE(c_->find("busy"));  // an open transaction is never expired (it times out)
  auto recs = records_of(c_->partition_for("idle"));
  ASSERT_FALSE(recs.empty());
  EXPECT_EQ(recs.back().id, "idle");
  EXPECT_FALSE(recs.back().value);
  EXPECT_EQ(c_->describe("idle").error, error_code::transactional_id_not_found);
  // The id starts over with a new producer id, and a replay agrees it was gone.
  auto again = init("idle");
  EXPECT_NE(again.producer_id, idle.producer_id);
  EXPECT_EQ(again.producer_epoch, 0);
}

TEST_F(txn_coordinator_test, a_failed_tombstone_keeps_the_id_until_the_next_check) {
  load_all(*c_);
  init("idle");
  now_ += 100000;
  fail_appends_ = error_code::not_enough_replicas;
  c_->tick();
  EXPECT_TRUE(c_->find("idle"));
  EXPECT_FALSE(c_->is_busy("idle"));
  fail_appends_ = error_code::none;
  now_ += 1000;
  c_->tick();
  EXPECT_FALSE(c_->find("idle"));
}

TEST_F(txn_coordinator_test, list_and_describe_report_kafkas_view) {
  load_all(*c_);
  auto a = init("a");
  ASSERT_EQ(add("a", a, {{"y", 1}, {"x", 0}}), error_code::none);
  now_ += 5000;
  auto b = init("b");

  auto all = c_->list({}, {}, -1);
  EXPECT_EQ(all.error, error_code::none);
  ASSERT_EQ(all.transactions.size(), 2u);

  auto ongoing = c_->list({"Ongoing", "Bogus"}, {}, -1);
  ASSERT_EQ(ongoing.transactions.size(), 1u);
  EXPECT_EQ(ongoing.transactions[0].transactional_id, "a");
  EXPECT_EQ(ongoing.transactions[0].producer_id, a.producer_id);
  EXPECT_EQ(ongoing.transactions[0].state, "Ongoing");
  EXPECT_EQ(ongoing.unknown_state_filters, std::vector<std::string>{"Bogus"});

  auto by_pid = c_->list({}, {b.producer_id}, -1);
  ASSERT_EQ(by_pid.transactions.size(), 1u);
  EXPECT_EQ(by_pid.transactions[0].transactional_id, "b");

  EXPECT_EQ(c_->list({}, {}, 4999).transactions.size(), 1u);  // "a" runs for 5000 ms
  EXPECT_EQ(c_->list({}, {}, 5000).transactions.size(), 0u);

  auto d = c_->describe("a");
  EXPECT_EQ(d.error, error_code::none);
  EXPECT_EQ(d.state, "Ongoing");
  EXPECT_EQ(d.producer_id, a.producer_id);
  EXPECT_EQ(d.producer_epoch, a.producer_epoch);
  EXPECT_EQ(d.timeout_ms, 30000);
  EXPECT_EQ(d.start_timestamp_ms, now_ - 5000);
  EXPECT_EQ(d.partitions, (std::vector<txn_partition>{{"x", 0}, {"y", 1}}));
  EXPECT_EQ(c_->describe("nope").error, error_code::transactional_id_not_found);
  EXPECT_EQ(c_->describe("").error, error_code::invalid_request);
}

TEST_F(txn_coordinator_test, start_runs_tick_from_a_timer_until_stopped) {
  options_.tick_interval_ms = 1;
  c_ = make();
  load_all(*c_);
  auto p = init("t1");
  ASSERT_EQ(add("t1", p, {{"out", 0}}), error_code::none);
  ASSERT_EQ(end("t1", p.producer_id, p.producer_epoch, true), error_code::none);
  finish_markers(error_code::not_leader_or_follower);
  now_ += 100;  // the retry is due at the next tick
  asio::io_context loop;
  c_->start(loop);
  for (int i = 0; i < 2000 && markers_.empty(); ++i) loop.run_for(std::chrono::milliseconds(1));
  ASSERT_EQ(markers_.size(), 1u);
  c_->stop();
  finish_markers(error_code::not_leader_or_follower);
  now_ += 100;
  loop.restart();
  loop.run_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(markers_.empty());  // stopped: no more ticks
  c_.reset();                     // the timer belongs to `loop`, which must outlive the coordinator
}

// Random interleavings of requests, deferred and failed appends, marker results and
// timeouts: whenever an id is not busy, replaying the log gives exactly its live metadata
// (the log order is the order of applied transitions, and nothing is applied unless
// appended).
TEST_F(txn_coordinator_test, replay_matches_live_state_under_random_interleavings) {
  load_all(*c_);
  std::mt19937 rng(12345);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  const std::vector<std::string> ids = {"a", "b", "c", "d", "e"};
  std::map<std::string, init_producer_id_result> producers;
  auto ignore = [](error_code) {};
  size_t checks = 0;
  std::set<txn_state> seen;
  for (int step = 0; step < 3000; ++step) {
    defer_appends_ = pick(3) == 0;
    fail_appends_ = pick(8) == 0 ? error_code::not_enough_replicas : error_code::none;
    const std::string& id = ids[pick(ids.size())];
    const auto pid = producers.count(id) ? producers[id] : init_producer_id_result{};
    switch (pick(9)) {
      case 0:
        c_->init_producer_id(id, 1000 + pick(5000), std::nullopt,
                             [&, id](init_producer_id_result r) {
                               if (r.error == error_code::none) producers[id] = r;
                             });
        break;
      case 1:
      case 2:
        c_->add_partitions(id, pid.producer_id, pid.producer_epoch,
                           {{"t" + std::to_string(pick(3)), pick(4)}}, ignore);
        break;
      case 3:
        c_->add_offsets(id, pid.producer_id, pid.producer_epoch, "g" + std::to_string(pick(3)),
                        ignore);
        break;
      case 4:
        c_->end_txn(id, pid.producer_id, pid.producer_epoch, pick(2) == 0, ignore);
        break;
      case 5:
        if (!markers_.empty()) {
          const size_t i = pick(markers_.size());
          auto done = std::move(markers_[i].second);
          markers_.erase(markers_.begin() + i);
          done(pick(4) == 0 ? error_code::not_leader_or_follower : error_code::none);
        }
        break;
      case 6:
        if (!deferred_.empty()) {
          const size_t i = pick(deferred_.size());
          auto finish = std::move(deferred_[i]);
          deferred_.erase(deferred_.begin() + i);
          finish();
        }
        break;
      case 7:
        now_ += pick(3000);
        c_->tick();
        break;
      case 8:
        if (pick(10) == 0) {
          now_ += 150000;  // past the id expiration
          c_->tick();
        }
        break;
    }
    if (step % 10 != 0) continue;
    // Replay into a coordinator whose marker writer and appender are inert.
    txn_coordinator other(
        options_, [](int32_t, std::vector<txn_log_entry>, txn_coordinator::done_fn) {},
        [](txn_marker_request, txn_coordinator::done_fn) {},
        []() -> std::optional<int64_t> { return std::nullopt; }, [this] { return now_; });
    for (int32_t p = 0; p < kPartitions; ++p) {
      other.begin_loading(p, 1);
      for (const auto& r : log_[p]) {
        std::optional<std::span<const uint8_t>> v;
        if (r.value) v = std::span<const uint8_t>(*r.value);
        ASSERT_TRUE(other.replay(p, r.key, v));
      }
      other.complete_loading(p);
    }
    for (const auto& check_id : ids) {
      if (c_->is_busy(check_id)) continue;
      const txn_metadata* live = c_->find(check_id);
      const txn_metadata* loaded = other.find(check_id);
      ASSERT_EQ(live != nullptr, loaded != nullptr) << check_id << " at step " << step;
      if (!live) continue;
      txn_metadata want = *live;
      want.last_producer_epoch = kNoProducerEpoch;
      EXPECT_EQ(*loaded, want) << check_id << " at step " << step;
      ++checks;
      seen.insert(live->state);
    }
  }
  EXPECT_GT(checks, 500u);
  // Every persisted state was compared at least once.
  EXPECT_EQ(seen.size(), 6u);
}

}  // namespace
}  // namespace varve::coordinator
