#include "cli/perf_stats.h"

#include <gtest/gtest.h>

namespace varve::cli {
namespace {

TEST(perf_stats, summary_has_rate_average_max_and_percentiles) {
  perf_stats s(1000);
  for (int i = 1; i <= 1000; ++i) s.record(i * 1000, 1024);  // 1..1000 ms
  perf_summary r = s.summary(2'000'000);                      // 2 s
  EXPECT_EQ(r.records, 1000);
  EXPECT_DOUBLE_EQ(r.records_per_sec, 500.0);
  EXPECT_NEAR(r.mb_per_sec, 1000 * 1024 / (1024.0 * 1024.0) / 2, 1e-9);
  EXPECT_DOUBLE_EQ(r.avg_latency_ms, 500.5);
  EXPECT_DOUBLE_EQ(r.max_latency_ms, 1000.0);
  EXPECT_EQ(r.p50_ms, 501);
  EXPECT_EQ(r.p95_ms, 951);
  EXPECT_EQ(r.p99_ms, 991);
  EXPECT_EQ(r.p999_ms, 1000);
  EXPECT_EQ(format_summary(r),
            "1000 records sent, 500.0 records/sec (0.49 MB/sec), 500.50 ms avg latency, 1000.00 ms max latency, "
            "501 ms 50th, 951 ms 95th, 991 ms 99th, 1000 ms 99.9th.");
}

TEST(perf_stats, window_line_covers_only_records_since_the_previous_snapshot) {
  perf_stats s(10);
  s.record(10'000, 100);
  perf_stats::window first = s.snapshot();
  s.record(2'000, 100);
  s.record(4'000, 100);
  perf_stats::window second = s.snapshot();
  EXPECT_EQ(format_window(second, first, 1'000'000),
            "2 records sent, 2.0 records/sec (0.00 MB/sec), 3.0 ms avg latency, 4.0 ms max latency.");
}

TEST(perf_stats, no_records_gives_zero_latencies) {
  perf_stats s(0);
  perf_summary r = s.summary(1'000'000);
  EXPECT_EQ(r.records, 0);
  EXPECT_EQ(r.p99_ms, 0);
}

}  // namespace
}  // namespace varve::cli
