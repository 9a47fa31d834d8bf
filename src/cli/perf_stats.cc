#include "cli/perf_stats.h"

#include <algorithm>
#include <cstdio>

namespace varve::cli {

void perf_stats::record(int64_t latency_us, size_t bytes) {
  latencies_us_.push_back(latency_us);
  bytes_ += static_cast<int64_t>(bytes);
  latency_sum_us_ += latency_us;
  max_latency_us_ = std::max(max_latency_us_, latency_us);
  window_max_us_ = std::max(window_max_us_, latency_us);
}

perf_stats::window perf_stats::snapshot() {
  window w{static_cast<int64_t>(latencies_us_.size()), bytes_, latency_sum_us_, window_max_us_};
  window_max_us_ = 0;
  return w;
}

perf_summary perf_stats::summary(int64_t elapsed_us) const {
  perf_summary s;
  s.records = static_cast<int64_t>(latencies_us_.size());
  const double secs = std::max<int64_t>(elapsed_us, 1) / 1e6;
  s.records_per_sec = s.records / secs;
  s.mb_per_sec = bytes_ / (1024.0 * 1024.0) / secs;
  if (s.records == 0) return s;
  s.avg_latency_ms = latency_sum_us_ / 1000.0 / s.records;
  s.max_latency_ms = max_latency_us_ / 1000.0;
  std::vector<int64_t> sorted = latencies_us_;
  std::sort(sorted.begin(), sorted.end());
  auto pct = [&](double p) {
    size_t i = static_cast<size_t>(p * static_cast<double>(sorted.size()));
    if (i >= sorted.size()) i = sorted.size() - 1;
    return sorted[i] / 1000;
  };
  s.p50_ms = pct(0.5);
  s.p95_ms = pct(0.95);
  s.p99_ms = pct(0.99);
  s.p999_ms = pct(0.999);
  return s;
}

std::string format_window(const perf_stats::window& now, const perf_stats::window& before, int64_t elapsed_us) {
  const int64_t n = now.records - before.records;
  const double secs = std::max<int64_t>(elapsed_us, 1) / 1e6;
  const double avg = n > 0 ? (now.latency_sum_us - before.latency_sum_us) / 1000.0 / n : 0.0;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%lld records sent, %.1f records/sec (%.2f MB/sec), %.1f ms avg latency, %.1f ms max latency.",
                static_cast<long long>(n), n / secs, (now.bytes - before.bytes) / (1024.0 * 1024.0) / secs, avg,
                now.max_latency_us / 1000.0);
  return buf;
}

std::string format_summary(const perf_summary& s) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%lld records sent, %.1f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms max latency, "
                "%lld ms 50th, %lld ms 95th, %lld ms 99th, %lld ms 99.9th.",
                static_cast<long long>(s.records), s.records_per_sec, s.mb_per_sec, s.avg_latency_ms, s.max_latency_ms,
                static_cast<long long>(s.p50_ms), static_cast<long long>(s.p95_ms), static_cast<long long>(s.p99_ms),
                static_cast<long long>(s.p999_ms));
  return buf;
}

}  // namespace varve::cli
