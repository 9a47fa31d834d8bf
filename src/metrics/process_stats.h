#pragma once
// metrics::process_stats — the process and disk figures exported with every scrape, read
// from /proc and statvfs(2) at scrape time (Linux only).
#include <cstdint>
#include <filesystem>
#include <optional>

namespace varve::metrics {

struct process_stats {
  uint64_t resident_bytes = 0;    // /proc/self/statm resident pages × page size
  uint64_t virtual_bytes = 0;     // /proc/self/statm size × page size
  uint64_t open_fds = 0;          // entries of /proc/self/fd
  uint64_t max_fds = 0;           // RLIMIT_NOFILE soft limit
  double cpu_seconds = 0;         // utime + stime
  double start_time_seconds = 0;  // Unix time the process started
};

// Nullopt if /proc cannot be read.
std::optional<process_stats> read_process_stats();

struct disk_stats {
  uint64_t free_bytes = 0;   // available to unprivileged users (f_bavail)
  uint64_t total_bytes = 0;
};

// Nullopt (errno kept) if statvfs fails for `dir`.
std::optional<disk_stats> read_disk_stats(const std::filesystem::path& dir);

}  // namespace varve::metrics
