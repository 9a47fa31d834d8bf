#include "coordinator/txn_state.h"

#include <gtest/gtest.h>

namespace varve::coordinator {
namespace {

using protocol::error_code;
using S = txn_state;

constexpr S kAll[] = {
    S::empty,           S::ongoing,        S::prepare_commit, S::prepare_abort,
    S::complete_commit, S::complete_abort, S::dead,           S::prepare_epoch_fence};

txn_metadata meta(S state, int16_t epoch = 3) {
  txn_metadata m;
  m.transactional_id = "t";
  m.producer_id = 100;
  m.producer_epoch = epoch;
  m.timeout_ms = 60000;
  m.state = state;
  if (state == S::ongoing || state == S::prepare_commit || state == S::prepare_abort) {
    m.partitions = {{"a", 0}};
    m.start_timestamp_ms = 1000;
  }
  m.last_update_timestamp_ms = 1000;
  return m;
}

// An allocator that fails the test if called: most transitions must not allocate.
producer_id_allocator no_allocation() {
  return []() -> std::optional<int64_t> {
    ADD_FAILURE() << "unexpected producer id allocation";
    return std::nullopt;
  };
}

TEST(txn_state, names_are_kafkas_and_parse_back) {
  EXPECT_STREQ(txn_state_name(S::prepare_epoch_fence), "PrepareEpochFence");
  EXPECT_STREQ(txn_state_name(S::complete_commit), "CompleteCommit");
  for (S s : kAll) EXPECT_EQ(txn_state_from_name(txn_state_name(s)), s);
  EXPECT_FALSE(txn_state_from_name("ongoing"));  // exact match only
  EXPECT_FALSE(txn_state_from_name("Bogus"));
  EXPECT_EQ(txn_state_from_wire(7), S::prepare_epoch_fence);
  EXPECT_FALSE(txn_state_from_wire(8));
  EXPECT_FALSE(txn_state_from_wire(-1));
}

TEST(txn_state, transition_table_is_kafkas) {
  const std::set<std::pair<S, S>> legal = {
      {S::empty, S::empty},
      {S::complete_commit, S::empty},
      {S::complete_abort, S::empty},
      {S::empty, S::ongoing},
      {S::ongoing, S::ongoing},
      {S::complete_commit, S::ongoing},
      {S::complete_abort, S::ongoing},
      {S::ongoing, S::prepare_commit},
      {S::ongoing, S::prepare_abort},
      {S::prepare_epoch_fence, S::prepare_abort},
      {S::prepare_commit, S::complete_commit},
      {S::prepare_abort, S::complete_abort},
      {S::empty, S::dead},
      {S::complete_commit, S::dead},
      {S::complete_abort, S::dead},
      {S::ongoing, S::prepare_epoch_fence},
  };
  for (S from : kAll) {
    for (S to : kAll) {
      EXPECT_EQ(is_valid_transition(from, to), legal.count({from, to}) > 0)
          << txn_state_name(from) << " -> " << txn_state_name(to);
    }
  }
}

// --- InitProducerId ---

TEST(plan_init_producer_id, a_new_id_gets_epoch_0_and_keeps_its_allocated_producer) {
  const txn_metadata fresh = new_txn_metadata("t", 77, 5000, 10);
  auto plan = plan_init_producer_id(fresh, 5000, std::nullopt, 20, no_allocation());
  ASSERT_EQ(plan.error, error_code::none);
  ASSERT_TRUE(plan.next);
  EXPECT_EQ(plan.next->producer_id, 77);
  EXPECT_EQ(plan.next->producer_epoch, 0);
  EXPECT_EQ(plan.next->state, S::empty);
  EXPECT_EQ(plan.next->last_update_timestamp_ms, 20);
}

TEST(plan_init_producer_id, bumps_the_epoch_after_a_completed_transaction_and_clears_it) {
  for (S s : {S::empty, S::complete_commit, S::complete_abort}) {
    txn_metadata cur = meta(s);
    cur.partitions = {};
    cur.start_timestamp_ms = 500;
    auto plan = plan_init_producer_id(cur, 9000, std::nullopt, 2000, no_allocation());
    ASSERT_EQ(plan.error, error_code::none) << txn_state_name(s);
    EXPECT_EQ(plan.next->producer_id, 100);
    EXPECT_EQ(plan.next->producer_epoch, 4);
    EXPECT_EQ(plan.next->last_producer_epoch, kNoProducerEpoch);
    EXPECT_EQ(plan.next->timeout_ms, 9000);
    EXPECT_EQ(plan.next->state, S::empty);
    EXPECT_EQ(plan.next->start_timestamp_ms, -1);
    EXPECT_FALSE(plan.fences_ongoing);
  }
}

TEST(plan_init_producer_id, an_ongoing_transaction_is_fenced_and_aborted_first) {
  auto plan = plan_init_producer_id(meta(S::ongoing), 9000, std::nullopt, 2000, no_allocation());
  ASSERT_EQ(plan.error, error_code::none);
  EXPECT_TRUE(plan.fences_ongoing);
  ASSERT_TRUE(plan.next);
  EXPECT_EQ(plan.next->state, S::prepare_abort);
  EXPECT_EQ(plan.next->producer_epoch, 4);
  EXPECT_EQ(plan.next->partitions, meta(S::ongoing).partitions);
}

TEST(plan_init_producer_id, completing_or_fencing_states_ask_the_client_to_retry) {
  for (S s : {S::prepare_commit, S::prepare_abort, S::prepare_epoch_fence, S::dead}) {
    auto plan = plan_init_producer_id(meta(s), 9000, std::nullopt, 2000, no_allocation());
    EXPECT_EQ(plan.error, error_code::concurrent_transactions) << txn_state_name(s);
    EXPECT_FALSE(plan.next);
  }
}

TEST(plan_init_producer_id, kip360_current_producer_recovers_with_a_bump) {
  auto plan = plan_init_producer_id(meta(S::complete_abort), 9000, producer_id_and_epoch{100, 3},
                                    2000, no_allocation());
  ASSERT_EQ(plan.error, error_code::none);
  EXPECT_EQ(plan.next->producer_epoch, 4);
  EXPECT_EQ(plan.next->last_producer_epoch, 3);
}

TEST(plan_init_producer_id, kip360_retry_naming_the_last_epoch_gets_the_same_epoch) {
  txn_metadata cur = meta(S::empty, 4);
  cur.last_producer_epoch = 3;
  auto plan =
      plan_init_producer_id(cur, 9000, producer_id_and_epoch{100, 3}, 2000, no_allocation());
  ASSERT_EQ(plan.error, error_code::none);
  EXPECT_EQ(plan.next->producer_epoch, 4);
  EXPECT_EQ(plan.next->last_producer_epoch, 3);
}

TEST(plan_init_producer_id, kip360_stale_or_foreign_producer_is_fenced) {
  txn_metadata cur = meta(S::empty, 5);
  cur.last_producer_epoch = kNoProducerEpoch;  // another instance initialised since
  EXPECT_EQ(
      plan_init_producer_id(cur, 9000, producer_id_and_epoch{100, 3}, 2000, no_allocation()).error,
      error_code::producer_fenced);
  EXPECT_EQ(
      plan_init_producer_id(cur, 9000, producer_id_and_epoch{55, 5}, 2000, no_allocation()).error,
      error_code::producer_fenced);
}

TEST(plan_init_producer_id, a_foreign_producer_cannot_abort_the_current_transaction) {
  auto plan = plan_init_producer_id(meta(S::ongoing), 9000, producer_id_and_epoch{55, 3}, 2000,
                                    no_allocation());
  EXPECT_EQ(plan.error, error_code::producer_fenced);
  EXPECT_FALSE(plan.next);
  EXPECT_FALSE(plan.fences_ongoing);
  EXPECT_EQ(plan_init_producer_id(meta(S::prepare_commit), 9000, producer_id_and_epoch{55, 3}, 2000,
                                  no_allocation())
                .error,
            error_code::producer_fenced);
}

TEST(plan_init_producer_id, an_idempotent_producer_turning_transactional_is_accepted) {
  const txn_metadata fresh = new_txn_metadata("t", 77, 5000, 10);
  auto plan = plan_init_producer_id(fresh, 5000, producer_id_and_epoch{12, 9}, 20, no_allocation());
  ASSERT_EQ(plan.error, error_code::none);
  EXPECT_EQ(plan.next->producer_id, 77);
  EXPECT_EQ(plan.next->producer_epoch, 0);
}

TEST(plan_init_producer_id, an_exhausted_epoch_rotates_to_a_new_producer_id) {
  txn_metadata cur = meta(S::complete_commit, kMaxProducerEpoch - 1);
  int calls = 0;
  auto allocate = [&]() -> std::optional<int64_t> {
    ++calls;
    return 900;
  };
  auto plan = plan_init_producer_id(cur, 9000, std::nullopt, 2000, allocate);
  ASSERT_EQ(plan.error, error_code::none);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(plan.next->producer_id, 900);
  EXPECT_EQ(plan.next->producer_epoch, 0);
  EXPECT_EQ(plan.next->last_producer_id, 100);
  EXPECT_EQ(plan.next->last_producer_epoch, kNoProducerEpoch);

  // With KIP-360 the old epoch is remembered, so a retry naming the old producer gets the
  // rotated one again without another allocation.
  auto named = plan_init_producer_id(cur, 9000, producer_id_and_epoch{100, kMaxProducerEpoch - 1},
                                     2000, allocate);
  ASSERT_EQ(named.error, error_code::none);
  EXPECT_EQ(named.next->last_producer_epoch, kMaxProducerEpoch - 1);
  auto retry = plan_init_producer_id(
      *named.next, 9000, producer_id_and_epoch{100, kMaxProducerEpoch - 1}, 2100, no_allocation());
  ASSERT_EQ(retry.error, error_code::none);
  EXPECT_EQ(retry.next->producer_id, 900);
  EXPECT_EQ(retry.next->producer_epoch, 0);
}

TEST(plan_init_producer_id, rotation_without_a_producer_id_available_is_retriable) {
  txn_metadata cur = meta(S::empty, kMaxProducerEpoch - 1);
  auto plan = plan_init_producer_id(cur, 9000, std::nullopt, 2000,
                                    []() -> std::optional<int64_t> { return std::nullopt; });
  EXPECT_EQ(plan.error, error_code::coordinator_load_in_progress);
}

// --- AddPartitionsToTxn ---

TEST(plan_add_partitions, starts_a_transaction_from_empty_or_completed) {
  for (S s : {S::empty, S::complete_commit, S::complete_abort}) {
    txn_metadata cur = meta(s);
    cur.partitions = {{"old", 1}};  // must not leak into the new transaction
    auto plan = plan_add_partitions(cur, 100, 3, {{"a", 1}, {"b", 0}}, 5000);
    ASSERT_EQ(plan.error, error_code::none);
    EXPECT_EQ(plan.next->state, S::ongoing);
    EXPECT_EQ(plan.next->start_timestamp_ms, 5000);
    EXPECT_EQ(plan.next->partitions, (std::set<txn_partition>{{"a", 1}, {"b", 0}}));
  }
}

TEST(plan_add_partitions, adding_to_an_ongoing_transaction_keeps_its_start_time) {
  auto plan = plan_add_partitions(meta(S::ongoing), 100, 3, {{"b", 2}}, 5000);
  ASSERT_EQ(plan.error, error_code::none);
  EXPECT_EQ(plan.next->start_timestamp_ms, 1000);
  EXPECT_EQ(plan.next->last_update_timestamp_ms, 5000);
  EXPECT_EQ(plan.next->partitions, (std::set<txn_partition>{{"a", 0}, {"b", 2}}));
}

TEST(plan_add_partitions, partitions_already_in_the_transaction_need_no_write) {
  auto plan = plan_add_partitions(meta(S::ongoing), 100, 3, {{"a", 0}}, 5000);
  EXPECT_EQ(plan.error, error_code::none);
  EXPECT_FALSE(plan.next);
}

TEST(plan_add_partitions, wrong_producer_or_epoch_or_completing_state_is_refused) {
  EXPECT_EQ(plan_add_partitions(meta(S::ongoing), 101, 3, {{"b", 0}}, 5).error,
            error_code::invalid_producer_id_mapping);
  EXPECT_EQ(plan_add_partitions(meta(S::ongoing), 100, 2, {{"b", 0}}, 5).error,
            error_code::producer_fenced);
  EXPECT_EQ(plan_add_partitions(meta(S::ongoing), 100, 4, {{"b", 0}}, 5).error,
            error_code::producer_fenced);
  for (S s : {S::prepare_commit, S::prepare_abort, S::prepare_epoch_fence, S::dead}) {
    EXPECT_EQ(plan_add_partitions(meta(s), 100, 3, {{"b", 0}}, 5).error,
              error_code::concurrent_transactions)
        << txn_state_name(s);
  }
}

TEST(verify_partitions, only_partitions_of_the_ongoing_transaction_pass) {
  auto errors = verify_partitions(meta(S::ongoing), 100, 3, {{"a", 0}, {"a", 1}});
  EXPECT_EQ(errors, (std::vector<error_code>{error_code::none, error_code::transaction_abortable}));
  // After the transaction completed, a delayed write may not join anything.
  errors = verify_partitions(meta(S::complete_commit), 100, 3, {{"a", 0}});
  EXPECT_EQ(errors, std::vector<error_code>{error_code::transaction_abortable});
  errors = verify_partitions(meta(S::prepare_commit), 100, 3, {{"a", 0}, {"z", 9}});
  EXPECT_EQ(errors, std::vector<error_code>(2, error_code::concurrent_transactions));
  errors = verify_partitions(meta(S::ongoing), 100, 2, {{"a", 0}, {"z", 9}});
  EXPECT_EQ(errors, std::vector<error_code>(2, error_code::producer_fenced));
  errors = verify_partitions(meta(S::ongoing), 7, 3, {{"a", 0}});
  EXPECT_EQ(errors, std::vector<error_code>{error_code::invalid_producer_id_mapping});
}

// --- EndTxn ---

TEST(plan_end_txn, commit_and_abort_of_an_ongoing_transaction_prepare) {
  auto commit = plan_end_txn(meta(S::ongoing), 100, 3, true, true, 7000);
  ASSERT_EQ(commit.error, error_code::none);
  EXPECT_EQ(commit.next->state, S::prepare_commit);
  EXPECT_EQ(commit.next->partitions, meta(S::ongoing).partitions);
  EXPECT_EQ(commit.next->last_update_timestamp_ms, 7000);
  auto abort = plan_end_txn(meta(S::ongoing), 100, 3, false, true, 7000);
  ASSERT_EQ(abort.error, error_code::none);
  EXPECT_EQ(abort.next->state, S::prepare_abort);
}

TEST(plan_end_txn, retries_and_wrong_outcomes_follow_kafka) {
  struct row {
    S state;
    bool commit;
    error_code error;
    bool writes;
  };
  const row rows[] = {
      {S::complete_commit, true, error_code::none, false},
      {S::complete_commit, false, error_code::invalid_txn_state, false},
      {S::complete_abort, false, error_code::none, false},
      {S::complete_abort, true, error_code::invalid_txn_state, false},
      {S::prepare_commit, true, error_code::concurrent_transactions, false},
      {S::prepare_commit, false, error_code::invalid_txn_state, false},
      {S::prepare_abort, false, error_code::concurrent_transactions, false},
      {S::prepare_abort, true, error_code::invalid_txn_state, false},
      {S::empty, true, error_code::invalid_txn_state, false},
      {S::empty, false, error_code::invalid_txn_state, false},
  };
  for (const auto& r : rows) {
    auto plan = plan_end_txn(meta(r.state), 100, 3, r.commit, true, 7000);
    EXPECT_EQ(plan.error, r.error) << txn_state_name(r.state) << " commit=" << r.commit;
    EXPECT_EQ(plan.next.has_value(), r.writes);
  }
}

TEST(plan_end_txn, clients_must_name_the_exact_epoch_the_coordinator_may_bump_it) {
  EXPECT_EQ(plan_end_txn(meta(S::ongoing), 100, 2, true, true, 1).error,
            error_code::producer_fenced);
  EXPECT_EQ(plan_end_txn(meta(S::ongoing), 100, 4, true, true, 1).error,
            error_code::producer_fenced);
  EXPECT_EQ(plan_end_txn(meta(S::ongoing), 99, 3, true, true, 1).error,
            error_code::invalid_producer_id_mapping);
  auto internal = plan_end_txn(meta(S::ongoing), 100, 4, false, false, 1);
  ASSERT_EQ(internal.error, error_code::none);
  EXPECT_EQ(internal.next->producer_epoch, 4);
  EXPECT_EQ(plan_end_txn(meta(S::ongoing), 100, 2, false, false, 1).error,
            error_code::producer_fenced);
}

// --- coordinator-side transitions ---

TEST(plan_fence_and_abort, bumps_the_epoch_unless_it_is_the_maximum) {
  txn_metadata cur = meta(S::ongoing);
  cur.last_producer_epoch = 2;
  txn_metadata next = plan_fence_and_abort(cur, 9);
  EXPECT_EQ(next.state, S::prepare_abort);
  EXPECT_EQ(next.producer_epoch, 4);
  EXPECT_EQ(next.last_producer_epoch, kNoProducerEpoch);
  EXPECT_EQ(next.partitions, cur.partitions);
  EXPECT_EQ(plan_fence_and_abort(meta(S::ongoing, kMaxProducerEpoch), 9).producer_epoch,
            kMaxProducerEpoch);
}

TEST(plan_complete, completes_the_prepared_outcome_and_drops_the_partitions) {
  txn_metadata c = plan_complete(meta(S::prepare_commit), 50);
  EXPECT_EQ(c.state, S::complete_commit);
  EXPECT_TRUE(c.partitions.empty());
  EXPECT_EQ(c.start_timestamp_ms, 1000);
  EXPECT_EQ(c.last_update_timestamp_ms, 50);
  EXPECT_EQ(plan_complete(meta(S::prepare_abort), 50).state, S::complete_abort);
}

TEST(txn_timers, timeout_applies_to_ongoing_only_and_expiry_to_idle_ids_only) {
  txn_metadata m = meta(S::ongoing);  // started at 1000, timeout 60000
  EXPECT_FALSE(is_timed_out(m, 61000));
  EXPECT_TRUE(is_timed_out(m, 61001));
  EXPECT_FALSE(is_timed_out(meta(S::prepare_commit), 1000000));
  EXPECT_FALSE(is_expired(m, 1000000000, 10));
  txn_metadata idle = meta(S::complete_commit);  // updated at 1000
  EXPECT_FALSE(is_expired(idle, 1009, 10));
  EXPECT_TRUE(is_expired(idle, 1010, 10));
  EXPECT_FALSE(is_expired(meta(S::prepare_abort), 1000000000, 10));
}

}  // namespace
}  // namespace varve::coordinator
