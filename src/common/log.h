#pragma once
// Structured, leveled logging: one line per event,
//   2026-11-26T09:40:00.123Z INFO  [storage] message key=value ...
// Thread-safe: each line is formatted into a local buffer and written with one write(2).
#include <cstdint>
#include <string_view>
#include <sstream>

namespace varve::log {

enum class level : uint8_t { trace, debug, info, warn, error };

void set_level(level l);
level current_level();
bool parse_level(std::string_view name, level& out);

void write(level l, std::string_view component, std::string_view message);

// Builds a line with `<<` and emits it when destroyed.
class line {
 public:
  line(level l, std::string_view component) : level_(l), component_(component) {}
  ~line() { write(level_, component_, out_.str()); }
  line(const line&) = delete;
  line& operator=(const line&) = delete;
  template <typename T>
  line& operator<<(const T& v) {
    out_ << v;
    return *this;
  }

 private:
  level level_;
  std::string_view component_;
  std::ostringstream out_;
};

}  // namespace varve::log

#define VLOG_AT(lvl, component)                                      \
  if (::varve::log::level::lvl < ::varve::log::current_level()) {    \
  } else                                                             \
    ::varve::log::line(::varve::log::level::lvl, component)
#define VLOG_TRACE(c) VLOG_AT(trace, c)
#define VLOG_DEBUG(c) VLOG_AT(debug, c)
#define VLOG_INFO(c) VLOG_AT(info, c)
#define VLOG_WARN(c) VLOG_AT(warn, c)
#define VLOG_ERROR(c) VLOG_AT(error, c)
