#include "metrics/exposition.h"

#include <cassert>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace varve::metrics {
namespace {
const char* type_name(metric_type t) {
  switch (t) {
    case metric_type::counter:
      return "counter";
    case metric_type::gauge:
      return "gauge";
    case metric_type::histogram:
      return "histogram";
  }
  return "untyped";
}

// HELP text escapes only backslash and newline.
std::string escape_help(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}
}  // namespace

bool exposition::valid_name(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

std::string exposition::escape(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string exposition::format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::to_chars_result r;
  if (v == std::trunc(v) && std::fabs(v) < 9.007199254740992e15) {
    r = std::to_chars(buf, buf + sizeof buf, static_cast<int64_t>(v));
  } else if (std::fabs(v) >= 1e-6 && std::fabs(v) < 1e15) {
    // Plain decimals ("0.0005", not "5e-04"): bucket bounds become `le` label values that
    // queries match as strings.
    r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  } else {
    r = std::to_chars(buf, buf + sizeof buf, v);
  }
  return std::string(buf, r.ptr);
}

void exposition::declare(std::string_view name, metric_type type, std::string_view help) {
  assert(valid_name(name));
  if (auto it = index_.find(name); it != index_.end()) {
    if (families_[it->second].type != type) {
      throw std::logic_error("metric " + std::string(name) + " declared with two types");
    }
    return;
  }
  index_.emplace(std::string(name), families_.size());
  families_.push_back(family{std::string(name), type, escape_help(help), {}});
}

exposition::family& exposition::find(std::string_view name) {
  auto it = index_.find(name);
  if (it == index_.end()) throw std::logic_error("metric " + std::string(name) + " not declared");
  return families_[it->second];
}

void exposition::append_labels(std::string& out, std::span<const label> labels,
                               std::string_view extra_name, std::string_view extra_value) {
  if (labels.empty() && extra_name.empty()) return;
  out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k;
    out += "=\"";
    out += escape(v);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

void exposition::add(std::string_view name, std::initializer_list<label> labels, double value) {
  add(name, std::span<const label>(labels.begin(), labels.size()), value);
}

void exposition::add(std::string_view name, std::span<const label> labels, double value) {
  family& f = find(name);
  assert(f.type != metric_type::histogram);
  f.samples += f.name;
  append_labels(f.samples, labels);
  f.samples += ' ';
  f.samples += format_value(value);
  f.samples += '\n';
}

void exposition::add_histogram(std::string_view name, std::span<const label> labels,
                               std::span<const double> bounds, std::span<const uint64_t> counts,
                               double sum) {
  family& f = find(name);
  assert(f.type == metric_type::histogram);
  if (counts.size() != bounds.size() + 1) {
    throw std::logic_error("histogram " + std::string(name) + ": counts must be bounds + 1");
  }
  uint64_t cumulative = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    const std::string le = i < bounds.size() ? format_value(bounds[i]) : "+Inf";
    f.samples += f.name;
    f.samples += "_bucket";
    append_labels(f.samples, labels, "le", le);
    f.samples += ' ';
    f.samples += format_value(static_cast<double>(cumulative));
    f.samples += '\n';
  }
  f.samples += f.name;
  f.samples += "_sum";
  append_labels(f.samples, labels);
  f.samples += ' ';
  f.samples += format_value(sum);
  f.samples += '\n';
  f.samples += f.name;
  f.samples += "_count";
  append_labels(f.samples, labels);
  f.samples += ' ';
  f.samples += format_value(static_cast<double>(cumulative));
  f.samples += '\n';
}

std::string exposition::str() const {
  std::string out;
  for (const auto& f : families_) {
    out += "# HELP ";
    out += f.name;
    out += ' ';
    out += f.help;
    out += "\n# TYPE ";
    out += f.name;
    out += ' ';
    out += type_name(f.type);
    out += '\n';
    out += f.samples;
  }
  return out;
}

}  // namespace varve::metrics
