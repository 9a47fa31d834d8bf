#include "metrics/process_stats.h"

#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace varve::metrics {
namespace {
// Seconds since the epoch at boot, from /proc/stat's btime line.
std::optional<double> boot_time() {
  std::ifstream in("/proc/stat");
  std::string key;
  while (in >> key) {
    if (key == "btime") {
      double t = 0;
      if (in >> t) return t;
      return std::nullopt;
    }
    in.ignore(1 << 20, '\n');
  }
  return std::nullopt;
}
}  // namespace

std::optional<process_stats> read_process_stats() {
  process_stats s;
  const long page = sysconf(_SC_PAGESIZE);
  const long ticks = sysconf(_SC_CLK_TCK);
  {
    std::ifstream in("/proc/self/statm");
    uint64_t size = 0, resident = 0;
    if (!(in >> size >> resident)) return std::nullopt;
    s.virtual_bytes = size * static_cast<uint64_t>(page);
    s.resident_bytes = resident * static_cast<uint64_t>(page);
  }
  {
    std::ifstream in("/proc/self/stat");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The command name (field 2) may contain spaces: fields are counted after its ')'.
    const auto close = all.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(all.substr(close + 2));
    std::string f;
    // Field 3 is the first after ')'; utime = 14, stime = 15, starttime = 22.
    double utime = 0, stime = 0, start = 0;
    for (int i = 3; i <= 22 && (fields >> f); ++i) {
      if (i == 14) utime = std::stod(f);
      if (i == 15) stime = std::stod(f);
      if (i == 22) start = std::stod(f);
    }
    s.cpu_seconds = (utime + stime) / static_cast<double>(ticks);
    if (auto bt = boot_time()) s.start_time_seconds = *bt + start / static_cast<double>(ticks);
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++s.open_fds;
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) s.max_fds = rl.rlim_cur;
  return s;
}

std::optional<disk_stats> read_disk_stats(const std::filesystem::path& dir) {
  struct statvfs v{};
  if (statvfs(dir.c_str(), &v) != 0) return std::nullopt;
  disk_stats d;
  d.free_bytes = static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
  d.total_bytes = static_cast<uint64_t>(v.f_blocks) * v.f_frsize;
  return d;
}

}  // namespace varve::metrics
