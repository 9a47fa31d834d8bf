#include "common/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <string>

namespace varve::log {
namespace {
std::atomic<level> g_level{level::info};

const char* level_name(level l) {
  switch (l) {
    case level::trace: return "TRACE";
    case level::debug: return "DEBUG";
    case level::info: return "INFO ";
    case level::warn: return "WARN ";
    case level::error: return "ERROR";
  }
  return "?    ";
}
}  // namespace

void set_level(level l) { g_level.store(l, std::memory_order_relaxed); }
level current_level() { return g_level.load(std::memory_order_relaxed); }

bool parse_level(std::string_view name, level& out) {
  static constexpr std::pair<std::string_view, level> kNames[] = {
      {"trace", level::trace}, {"debug", level::debug}, {"info", level::info},
      {"warn", level::warn},   {"error", level::error}};
  for (const auto& [n, l] : kNames) {
    if (n == name) {
      out = l;
      return true;
    }
  }
  return false;
}

void write(level l, std::string_view component, std::string_view message) {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[40];
  const size_t n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out;
  out.reserve(64 + message.size());
  out.append(stamp, n);
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03dZ ", static_cast<int>(ms % 1000));
  out += frac;
  out += level_name(l);
  out += " [";
  out += component;
  out += "] ";
  out += message;
  out += '\n';
  // One write per line keeps lines from different threads intact.
  ssize_t ignored = ::write(STDERR_FILENO, out.data(), out.size());
  (void)ignored;
}

}  // namespace varve::log
