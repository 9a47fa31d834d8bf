#include "cli/args.h"

#include <charconv>
#include <cstdio>
#include <limits>

namespace varve::cli {
namespace {
const std::set<std::string> kGlobalValues = {"--bootstrap-server", "--output", "--timeout-ms"};
}

bool parsed_args::has(const std::string& name) const {
  for (const auto& [k, v] : options_)
    if (k == name) return true;
  return false;
}

std::optional<std::string> parsed_args::get(const std::string& name) const {
  std::optional<std::string> found;
  for (const auto& [k, v] : options_)
    if (k == name) found = v;
  return found;
}

std::string parsed_args::get_or(const std::string& name, const std::string& fallback) const {
  auto v = get(name);
  return v ? *v : fallback;
}

std::vector<std::string> parsed_args::all(const std::string& name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : options_)
    if (k == name) out.push_back(v);
  return out;
}

bool parse_args(int argc, char** argv, int start, const option_spec& spec, parsed_args* out,
                std::string* error) {
  for (int i = start; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() < 3 || arg.rfind("--", 0) != 0) {
      out->positional.push_back(arg);
      continue;
    }
    std::string name = arg, value;
    bool inline_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      inline_value = true;
    }
    if (spec.flags.count(name)) {
      if (inline_value) {
        *error = "option " + name + " takes no value";
        return false;
      }
      out->add(name, "");
      continue;
    }
    if (!spec.values.count(name) && !kGlobalValues.count(name)) {
      *error = "unknown option " + name;
      return false;
    }
    if (!inline_value) {
      if (i + 1 >= argc) {
        *error = "option " + name + " needs a value";
        return false;
      }
      value = argv[++i];
    }
    out->add(name, value);
  }
  return true;
}

bool parse_int64(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (*b == '+') ++b;
  auto [p, ec] = std::from_chars(b, e, *out);
  return ec == std::errc() && p == e;
}

bool parse_int32(const std::string& s, int32_t* out) {
  int64_t v = 0;
  if (!parse_int64(s, &v) || v < std::numeric_limits<int32_t>::min() ||
      v > std::numeric_limits<int32_t>::max())
    return false;
  *out = static_cast<int32_t>(v);
  return true;
}

bool split_key_value(const std::string& s, std::string* key, std::string* value) {
  auto eq = s.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  *key = s.substr(0, eq);
  *value = s.substr(eq + 1);
  return true;
}

namespace {
// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool read_digits(const std::string& s, size_t& pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  pos += n;
  *out = v;
  return true;
}
}  // namespace

bool parse_iso_datetime(const std::string& s, int64_t* epoch_ms) {
  size_t pos = 0;
  int year, month, day, hour = 0, minute = 0, second = 0, millis = 0;
  if (!read_digits(s, pos, 4, &year) || pos >= s.size() || s[pos++] != '-' ||
      !read_digits(s, pos, 2, &month) || pos >= s.size() || s[pos++] != '-' ||
      !read_digits(s, pos, 2, &day))
    return false;
  if (month < 1 || month > 12 || day < 1 || day > 31) return false;
  if (pos < s.size()) {
    if (s[pos] != 'T' && s[pos] != ' ') return false;
    ++pos;
    if (!read_digits(s, pos, 2, &hour) || pos >= s.size() || s[pos++] != ':' ||
        !read_digits(s, pos, 2, &minute))
      return false;
    if (pos < s.size() && s[pos] == ':') {
      ++pos;
      if (!read_digits(s, pos, 2, &second)) return false;
      if (pos < s.size() && s[pos] == '.') {
        ++pos;
        size_t start = pos;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
        std::string frac = s.substr(start, pos - start);
        if (frac.empty()) return false;
        frac = (frac + "000").substr(0, 3);
        millis = std::stoi(frac);
      }
    }
    if (hour > 23 || minute > 59 || second > 60) return false;
  }
  int64_t offset_minutes = 0;
  if (pos < s.size()) {
    char c = s[pos++];
    if (c == 'Z' || c == 'z') {
      // UTC
    } else if (c == '+' || c == '-') {
      int oh, om = 0;
      if (!read_digits(s, pos, 2, &oh)) return false;
      if (pos < s.size() && s[pos] == ':') ++pos;
      if (pos < s.size() && !read_digits(s, pos, 2, &om)) return false;
      offset_minutes = (c == '+' ? 1 : -1) * (oh * 60 + om);
    } else {
      return false;
    }
  }
  if (pos != s.size()) return false;
  int64_t secs = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * 86400 +
                 hour * 3600 + minute * 60 + second - offset_minutes * 60;
  *epoch_ms = secs * 1000 + millis;
  return true;
}

}  // namespace varve::cli
