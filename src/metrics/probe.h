#pragma once
// metrics::shard_probe — the request-path counters of one shard (DESIGN.md §7, §9).
//
// Each shard's loop is the only writer of its probe, and the scrape reads it on that same
// loop (the collector visits every shard with shard_set::invoke_on and copies a
// probe_snapshot), so nothing here is atomic or locked: recording a request is a few
// integer adds on memory only this thread touches.
//
// Contents: per API key, a request count and a latency histogram with fixed buckets
// (kLatencyBounds, seconds); error counts per (API key, Kafka error code) — errors are the
// rare path, so a small map; per topic, bytes sent to consumers; the number of fetches
// parked in the long-poll wait (fetch purgatory); and how late the loop's own watchdog timer
// fired (a loop blocked by a slow system call or a long computation delays every request on
// it — the stalls count and the largest lag show it).
//
// Threading: every method must be called on the owning shard's loop.
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace varve::metrics {

// Upper bounds of the request latency buckets, in seconds (+Inf is implicit).
inline constexpr std::array<double, 16> kLatencyBounds = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25,   0.5,   1,      2.5,   5,     10,   30,    60};
// A watchdog tick this late (seconds) counts as a stall of the loop.
inline constexpr double kLoopStallSeconds = 0.1;
// API keys at or above this are not recorded (Kafka's keys are < 100).
inline constexpr int kMaxApiKey = 128;

struct api_stats {
  uint64_t requests = 0;
  std::array<uint64_t, kLatencyBounds.size() + 1> buckets{};  // not cumulative
  double latency_sum_seconds = 0;
};

// A copy of one shard's probe, taken on the shard's loop.
struct probe_snapshot {
  std::map<int16_t, api_stats> apis;  // only APIs that saw requests
  std::map<std::pair<int16_t, int16_t>, uint64_t> errors;  // (api key, error code) → count
  std::map<std::string, uint64_t> topic_bytes_out;
  int64_t fetch_waiting = 0;
  int64_t produce_waiting = 0;
  uint64_t loop_stalls = 0;        // watchdog ticks late by >= kLoopStallSeconds
  double loop_lag_max_seconds = 0;  // the latest tick's lateness, at most, since start

  // Adds another shard's snapshot into this one (stalls add up, the largest lag wins).
  void merge(const probe_snapshot& other);
};

class shard_probe {
 public:
  // One request of `api_key` answered after `seconds` (decode to response encoded).
  void record_request(int16_t api_key, double seconds);
  // A (partition-level or request-level) error answered for `api_key`; NONE is ignored.
  void record_error(int16_t api_key, int16_t error_code);
  // Record batch bytes of `topic` returned to a fetcher.
  void record_bytes_out(const std::string& topic, uint64_t bytes);
  // A fetch starts / stops waiting for data (long poll).
  void fetch_wait_started() { ++fetch_waiting_; }
  void fetch_wait_ended() { --fetch_waiting_; }
  void produce_wait_started() { ++produce_waiting_; }
  void produce_wait_ended() { --produce_waiting_; }
  // The loop's watchdog timer fired `seconds` after it was due.
  void record_loop_lag(double seconds);

  probe_snapshot snapshot() const;

 private:
  std::array<api_stats, kMaxApiKey> apis_{};
  std::map<std::pair<int16_t, int16_t>, uint64_t> errors_;
  std::unordered_map<std::string, uint64_t> topic_bytes_out_;
  int64_t fetch_waiting_ = 0;
  int64_t produce_waiting_ = 0;
  uint64_t loop_stalls_ = 0;
  double loop_lag_max_seconds_ = 0;
};

}  // namespace varve::metrics
