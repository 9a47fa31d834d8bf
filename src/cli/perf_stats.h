#pragma once
// Latency and throughput accounting for `varve perf produce`, printed in the format of
// Kafka's kafka-producer-perf-test:
//   window:  "N records sent, X records/sec (Y MB/sec), A ms avg latency, M ms max latency."
//   summary: "N records sent, X records/sec (Y MB/sec), A ms avg latency, M ms max latency,
//             P50 ms 50th, P95 ms 95th, P99 ms 99th, P999 ms 99.9th."
// Thread-safety: record() is called from librdkafka's delivery callback, which runs in the
// thread calling rd_kafka_poll/flush — the same thread that reads the stats.
#include <cstdint>
#include <string>
#include <vector>

namespace varve::cli {

struct perf_summary {
  int64_t records = 0;
  double records_per_sec = 0, mb_per_sec = 0, avg_latency_ms = 0, max_latency_ms = 0;
  int64_t p50_ms = 0, p95_ms = 0, p99_ms = 0, p999_ms = 0;
};

class perf_stats {
 public:
  explicit perf_stats(int64_t expected_records) { latencies_us_.reserve(static_cast<size_t>(expected_records)); }

  // One acknowledged record.
  void record(int64_t latency_us, size_t bytes);

  // Running totals, to print per-window lines from the difference of two snapshots.
  struct window {
    int64_t records = 0, bytes = 0, latency_sum_us = 0, max_latency_us = 0;
  };
  // Resets the per-window max latency.
  window snapshot();

  // Totals over the whole run of `elapsed_us`.
  perf_summary summary(int64_t elapsed_us) const;

 private:
  std::vector<int64_t> latencies_us_;
  int64_t bytes_ = 0, latency_sum_us_ = 0, max_latency_us_ = 0;
  int64_t window_max_us_ = 0;  // max since the last snapshot
};

std::string format_window(const perf_stats::window& now, const perf_stats::window& before, int64_t elapsed_us);
std::string format_summary(const perf_summary& s);

}  // namespace varve::cli
