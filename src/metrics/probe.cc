#include "metrics/probe.h"

#include <algorithm>

namespace varve::metrics {

void probe_snapshot::merge(const probe_snapshot& other) {
  for (const auto& [key, s] : other.apis) {
    api_stats& mine = apis[key];
    mine.requests += s.requests;
    for (size_t i = 0; i < s.buckets.size(); ++i) mine.buckets[i] += s.buckets[i];
    mine.latency_sum_seconds += s.latency_sum_seconds;
  }
  for (const auto& [key, n] : other.errors) errors[key] += n;
  for (const auto& [topic, n] : other.topic_bytes_out) topic_bytes_out[topic] += n;
  fetch_waiting += other.fetch_waiting;
  produce_waiting += other.produce_waiting;
  loop_stalls += other.loop_stalls;
  loop_lag_max_seconds = std::max(loop_lag_max_seconds, other.loop_lag_max_seconds);
}

void shard_probe::record_loop_lag(double seconds) {
  if (seconds >= kLoopStallSeconds) ++loop_stalls_;
  loop_lag_max_seconds_ = std::max(loop_lag_max_seconds_, seconds);
}

void shard_probe::record_request(int16_t api_key, double seconds) {
  if (api_key < 0 || api_key >= kMaxApiKey) return;
  api_stats& s = apis_[static_cast<size_t>(api_key)];
  ++s.requests;
  const auto it = std::lower_bound(kLatencyBounds.begin(), kLatencyBounds.end(), seconds);
  ++s.buckets[static_cast<size_t>(it - kLatencyBounds.begin())];
  s.latency_sum_seconds += seconds;
}

void shard_probe::record_error(int16_t api_key, int16_t error_code) {
  if (error_code == 0) return;
  ++errors_[{api_key, error_code}];
}

void shard_probe::record_bytes_out(const std::string& topic, uint64_t bytes) {
  if (bytes == 0) return;
  auto it = topic_bytes_out_.find(topic);
  if (it == topic_bytes_out_.end()) it = topic_bytes_out_.emplace(topic, 0).first;
  it->second += bytes;
}

probe_snapshot shard_probe::snapshot() const {
  probe_snapshot out;
  for (size_t k = 0; k < apis_.size(); ++k) {
    if (apis_[k].requests > 0) out.apis.emplace(static_cast<int16_t>(k), apis_[k]);
  }
  out.errors = errors_;
  for (const auto& [topic, n] : topic_bytes_out_) out.topic_bytes_out.emplace(topic, n);
  out.fetch_waiting = fetch_waiting_;
  out.produce_waiting = produce_waiting_;
  out.loop_stalls = loop_stalls_;
  out.loop_lag_max_seconds = loop_lag_max_seconds_;
  return out;
}

}  // namespace varve::metrics
