#include "metrics/probe.h"

#include <gtest/gtest.h>

namespace varve::metrics {
namespace {

TEST(shard_probe, latency_lands_in_the_first_bucket_whose_bound_is_not_below_it) {
  shard_probe p;
  p.record_request(0, 0.0005);  // exactly on a bound: le is inclusive
  p.record_request(0, 0.003);
  p.record_request(0, 1000);  // beyond every bound: +Inf
  const auto s = p.snapshot();
  ASSERT_EQ(s.apis.count(0), 1u);
  const api_stats& a = s.apis.at(0);
  EXPECT_EQ(a.requests, 3u);
  EXPECT_EQ(a.buckets[0], 1u);
  EXPECT_EQ(a.buckets[3], 1u);  // 0.005
  EXPECT_EQ(a.buckets[kLatencyBounds.size()], 1u);
  EXPECT_DOUBLE_EQ(a.latency_sum_seconds, 1000.0035);
}

TEST(shard_probe, snapshot_lists_only_apis_that_saw_requests_and_ignores_bad_keys) {
  shard_probe p;
  p.record_request(1, 0.01);
  p.record_request(-1, 0.01);
  p.record_request(kMaxApiKey, 0.01);
  const auto s = p.snapshot();
  EXPECT_EQ(s.apis.size(), 1u);
  EXPECT_EQ(s.apis.count(1), 1u);
}

TEST(shard_probe, errors_count_per_api_and_code_and_none_is_not_an_error) {
  shard_probe p;
  p.record_error(0, 6);
  p.record_error(0, 6);
  p.record_error(1, 3);
  p.record_error(1, 0);
  const auto s = p.snapshot();
  EXPECT_EQ(s.errors.size(), 2u);
  EXPECT_EQ(s.errors.at({0, 6}), 2u);
  EXPECT_EQ(s.errors.at({1, 3}), 1u);
}

TEST(probe_snapshot, merge_adds_every_counter_of_another_shard) {
  shard_probe a, b;
  a.record_request(0, 0.001);
  b.record_request(0, 0.001);
  b.record_request(1, 0.2);
  a.record_bytes_out("t", 10);
  b.record_bytes_out("t", 5);
  b.record_bytes_out("u", 0);  // nothing sent: no entry
  a.fetch_wait_started();
  b.fetch_wait_started();
  b.fetch_wait_ended();
  probe_snapshot s = a.snapshot();
  s.merge(b.snapshot());
  EXPECT_EQ(s.apis.at(0).requests, 2u);
  EXPECT_EQ(s.apis.at(0).buckets[1], 2u);
  EXPECT_EQ(s.apis.at(1).requests, 1u);
  EXPECT_EQ(s.topic_bytes_out.at("t"), 15u);
  EXPECT_EQ(s.topic_bytes_out.count("u"), 0u);
  EXPECT_EQ(s.fetch_waiting, 1);
}

TEST(shard_probe, late_watchdog_ticks_count_as_stalls_and_the_largest_lag_is_kept) {
  shard_probe a, b;
  a.record_loop_lag(0.002);  // on time, within scheduling noise
  a.record_loop_lag(0.25);
  b.record_loop_lag(kLoopStallSeconds);
  b.record_loop_lag(0.7);
  b.record_loop_lag(0.01);
  probe_snapshot s = a.snapshot();
  EXPECT_EQ(s.loop_stalls, 1u);
  EXPECT_DOUBLE_EQ(s.loop_lag_max_seconds, 0.25);
  s.merge(b.snapshot());
  EXPECT_EQ(s.loop_stalls, 3u) << "stalls of all loops add up";
  EXPECT_DOUBLE_EQ(s.loop_lag_max_seconds, 0.7) << "the largest lag of any loop";
}

}  // namespace
}  // namespace varve::metrics
