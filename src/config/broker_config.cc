#include "config/broker_config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>

#include "common/log.h"

namespace varve::config {
namespace {

constexpr std::string_view kLog = "config";

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string_view> split_commas(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string_view::npos) comma = s.size();
    std::string_view item = trim(s.substr(start, comma - start));
    if (!item.empty()) out.push_back(item);
    start = comma + 1;
  }
  return out;
}

bool is_kraft_key(std::string_view key) {
  return key == "process.roles" || key == "controller.quorum.voters" ||
         key == "controller.quorum.bootstrap.servers" || key == "controller.listener.names" ||
         key == "metadata.log.dir";
}

bool looks_secret(std::string_view key) {
  for (std::string_view w : {"password", "secret", "jaas", "credential", "token"})
    if (key.find(w) != std::string_view::npos) return true;
  return false;
}

[[noreturn]] void misuse(std::string_view key, std::string_view what) {
  throw std::logic_error("broker_config: " + std::string(key) + ": " + std::string(what));
}

}  // namespace

bool parse_listeners(std::string_view text, std::string_view protocol_map,
                     std::vector<listener>* out, std::string* error) {
  auto fail = [&](std::string m) {
    if (error) *error = std::move(m);
    return false;
  };
  std::map<std::string, std::string> protocols;
  for (auto entry : split_commas(protocol_map)) {
    size_t colon = entry.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == entry.size())
      return fail("bad listener.security.protocol.map entry '" + std::string(entry) + "'");
    protocols[upper(trim(entry.substr(0, colon)))] = upper(trim(entry.substr(colon + 1)));
  }
  std::vector<listener> result;
  for (auto item : split_commas(text)) {
    size_t sep = item.find("://");
    if (sep == std::string_view::npos || sep == 0)
      return fail("listener '" + std::string(item) + "' is not of the form NAME://host:port");
    listener l;
    l.name = upper(item.substr(0, sep));
    std::string_view rest = item.substr(sep + 3);
    std::string_view port_text;
    if (!rest.empty() && rest.front() == '[') {
      size_t close = rest.find(']');
      if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
        return fail("listener '" + std::string(item) + "' has a malformed IPv6 address");
      l.host = std::string(rest.substr(1, close - 1));
      port_text = rest.substr(close + 2);
    } else {
      size_t colon = rest.rfind(':');
      if (colon == std::string_view::npos)
        return fail("listener '" + std::string(item) + "' has no port");
      l.host = std::string(rest.substr(0, colon));
      port_text = rest.substr(colon + 1);
    }
    unsigned port = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc() || p != port_text.data() + port_text.size() ||
        port > 65535)
      return fail("listener '" + std::string(item) + "' has an invalid port");
    l.port = static_cast<uint16_t>(port);
    auto proto = protocols.find(l.name);
    if (proto == protocols.end())
      return fail("no security protocol defined for listener " + l.name +
                  " (add it to listener.security.protocol.map)");
    l.security_protocol = proto->second;
    for (const auto& other : result)
      if (other.name == l.name) return fail("listener name " + l.name + " is used twice");
    result.push_back(std::move(l));
  }
  *out = std::move(result);
  return true;
}

broker_config::broker_config() {
  for (const auto& d : broker_config_defs())
    values_.emplace(std::string(d.name), default_value_of(d));
}

broker_config broker_config::defaults() {
  broker_config c;
  std::string ignored;
  c.finish(&ignored);  // defaults always validate (checked by tests)
  return c;
}

std::optional<broker_config> broker_config::load(const std::string& path,
                                                 const std::vector<std::string>& overrides,
                                                 std::string* error) {
  auto props = properties::load_file(path, error);
  if (!props) return std::nullopt;
  auto c = from_properties(*props, overrides, error);
  if (!c && error) *error = path + ": " + *error;
  return c;
}

std::optional<broker_config> broker_config::from_properties(
    const properties& props, const std::vector<std::string>& overrides, std::string* error) {
  broker_config c;
  for (const auto& p : props.entries()) {
    if (!c.apply(p.key, p.value, p.line, error)) {
      if (error && p.line > 0) *error = "line " + std::to_string(p.line) + ": " + *error;
      return std::nullopt;
    }
  }
  for (const auto& o : overrides) {
    size_t eq = o.find('=');
    if (eq == std::string::npos || eq == 0) {
      if (error) *error = "invalid override '" + o + "': expected key=value";
      return std::nullopt;
    }
    std::string key(trim(std::string_view(o).substr(0, eq)));
    if (!c.apply(key, o.substr(eq + 1), 0, error)) {
      if (error) *error = "override: " + *error;
      return std::nullopt;
    }
  }
  if (!c.finish(error)) return std::nullopt;
  for (const auto& w : c.warnings_) VLOG_WARN(kLog) << w;
  return c;
}

bool broker_config::apply(const std::string& key, const std::string& raw, int line,
                          std::string* error) {
  const config_def* d = find_broker_def(key);
  if (!d) {
    unknown_[key] = raw;
    return true;
  }
  config_value v;
  if (!parse_config_value(*d, raw, &v, error)) return false;
  values_[key] = std::move(v);
  set_lines_[key] = line;
  return true;
}

bool broker_config::finish(std::string* error) {
  auto fail = [&](std::string m) {
    if (error) *error = std::move(m);
    return false;
  };
  // node.id and broker.id are one setting under two names.
  int64_t node = std::get<int64_t>(values_.at("node.id"));
  int64_t broker = std::get<int64_t>(values_.at("broker.id"));
  if (is_set("node.id") && is_set("broker.id") && node != broker)
    return fail("node.id (" + std::to_string(node) + ") and broker.id (" + std::to_string(broker) +
                ") must be equal when both are set");
  if (node < -1 || broker < -1)
    return fail("Invalid value " + std::to_string(std::min(node, broker)) +
                " for configuration node.id: Value must be at least -1");

  std::string map = get_string("listener.security.protocol.map");
  std::string why;
  if (!parse_listeners(get_string("listeners"), map, &listeners_, &why))
    return fail("Invalid value " + get_string("listeners") +
                " for configuration listeners: " + why);
  if (listeners_.empty())
    return fail("Invalid value  for configuration listeners: at least one listener is required");
  if (auto adv = get_optional_string("advertised.listeners")) {
    if (!parse_listeners(*adv, map, &advertised_, &why))
      return fail("Invalid value " + *adv + " for configuration advertised.listeners: " + why);
    for (const auto& a : advertised_) {
      bool known = std::any_of(listeners_.begin(), listeners_.end(),
                               [&](const listener& l) { return l.name == a.name; });
      if (!known)
        return fail("advertised.listeners names listener " + a.name + " which is not in listeners");
    }
  } else {
    advertised_ = listeners_;
  }
  if (log_dirs().empty())
    return fail("Invalid value  for configuration log.dirs: at least one directory is required");

  bool cluster = cluster_mode();
  for (const auto& [key, line] : set_lines_) {
    const config_def& d = def_of(key);
    std::string where = line > 0 ? " (line " + std::to_string(line) + ")" : " (override)";
    if (is_kraft_key(key)) {
      warnings_.push_back(key + where +
                          ": KRaft mode is not supported; ignored (Varve uses zookeeper.connect "
                          "or, without it, a local metadata store)");
    } else if (d.cluster_only && !cluster) {
      warnings_.push_back(key + where +
                          " is only used in a cluster (zookeeper.connect is unset); ignored on "
                          "a single node");
    } else if (d.accepted_only) {
      warnings_.push_back(key + where +
                          " is accepted for compatibility but has no effect in Varve");
    }
  }
  for (const auto& [key, raw] : unknown_)
    warnings_.push_back("unknown configuration key " + key + " (kept, ignored)");
  return true;
}

const config_def& broker_config::def_of(std::string_view key) const {
  const config_def* d = find_broker_def(key);
  if (!d) misuse(key, "not a broker configuration key");
  return *d;
}

bool broker_config::is_set(std::string_view key) const {
  return set_lines_.find(key) != set_lines_.end();
}

int broker_config::line_of(std::string_view key) const {
  auto it = set_lines_.find(key);
  return it == set_lines_.end() ? 0 : it->second;
}

const config_value& broker_config::value(std::string_view key) const {
  auto it = values_.find(key);
  if (it == values_.end()) misuse(key, "not a broker configuration key");
  return it->second;
}

int64_t broker_config::get_long(std::string_view key) const {
  auto v = get_optional_long(key);
  if (!v) misuse(key, "value is null");
  return *v;
}

std::optional<int64_t> broker_config::get_optional_long(std::string_view key) const {
  const config_value& v = value(key);
  if (std::holds_alternative<std::monostate>(v)) return std::nullopt;
  if (!std::holds_alternative<int64_t>(v)) misuse(key, "not an integer key");
  return std::get<int64_t>(v);
}

int32_t broker_config::get_int(std::string_view key) const {
  const config_def& d = def_of(key);
  if (d.type != config_type::int32 && d.type != config_type::int16) misuse(key, "not an INT key");
  return static_cast<int32_t>(get_long(key));
}

bool broker_config::get_bool(std::string_view key) const {
  const config_value& v = value(key);
  if (!std::holds_alternative<bool>(v)) misuse(key, "not a BOOLEAN key");
  return std::get<bool>(v);
}

double broker_config::get_double(std::string_view key) const {
  const config_value& v = value(key);
  if (!std::holds_alternative<double>(v)) misuse(key, "not a DOUBLE key");
  return std::get<double>(v);
}

std::optional<std::string> broker_config::get_optional_string(std::string_view key) const {
  const config_value& v = value(key);
  if (std::holds_alternative<std::monostate>(v)) return std::nullopt;
  if (!std::holds_alternative<std::string>(v)) misuse(key, "not a STRING key");
  return std::get<std::string>(v);
}

std::string broker_config::get_string(std::string_view key) const {
  auto v = get_optional_string(key);
  if (!v) misuse(key, "value is null");
  return *v;
}

std::vector<std::string> broker_config::get_list(std::string_view key) const {
  const config_value& v = value(key);
  if (std::holds_alternative<std::monostate>(v)) return {};
  if (!std::holds_alternative<std::vector<std::string>>(v)) misuse(key, "not a LIST key");
  return std::get<std::vector<std::string>>(v);
}

int32_t broker_config::node_id() const {
  int64_t id = is_set("node.id") ? get_long("node.id") : get_long("broker.id");
  return id < 0 ? 0 : static_cast<int32_t>(id);
}

std::vector<listener> broker_config::listeners() const { return listeners_; }
std::vector<listener> broker_config::advertised_listeners() const { return advertised_; }

std::vector<std::string> broker_config::log_dirs() const {
  if (std::holds_alternative<std::vector<std::string>>(value("log.dirs"))) {
    std::vector<std::string> dirs;
    for (auto& d : get_list("log.dirs"))
      if (!d.empty()) dirs.push_back(d);
    return dirs;
  }
  std::string dir = get_string("log.dir");
  if (dir.empty()) return {};
  return {dir};
}

std::optional<std::string> broker_config::zookeeper_connect() const {
  auto zk = get_optional_string("zookeeper.connect");
  if (zk && zk->empty()) return std::nullopt;
  return zk;
}

std::optional<std::string> broker_config::broker_rack() const {
  return get_optional_string("broker.rack");
}

std::optional<std::string> broker_config::cluster_id() const {
  return get_optional_string("cluster.id");
}

int64_t broker_config::log_retention_ms() const {
  int64_t ms;
  if (auto v = get_optional_long("log.retention.ms"))
    ms = *v;
  else if (auto m = get_optional_long("log.retention.minutes"))
    ms = *m * 60 * 1000;
  else
    ms = get_long("log.retention.hours") * 60 * 60 * 1000;
  return ms < 0 ? -1 : ms;
}

int64_t broker_config::log_roll_ms() const {
  if (auto v = get_optional_long("log.roll.ms")) return *v;
  return get_long("log.roll.hours") * 60 * 60 * 1000;
}

int64_t broker_config::log_roll_jitter_ms() const {
  if (auto v = get_optional_long("log.roll.jitter.ms")) return *v;
  return get_long("log.roll.jitter.hours") * 60 * 60 * 1000;
}

int64_t broker_config::log_flush_interval_ms() const {
  if (auto v = get_optional_long("log.flush.interval.ms")) return *v;
  return get_long("log.flush.scheduler.interval.ms");
}

std::vector<std::string> broker_config::summary_lines() const {
  std::vector<std::string> lines;
  for (const auto& d : broker_config_defs()) {
    const config_value& v = values_.at(std::string(d.name));
    std::string shown;
    if (std::holds_alternative<std::monostate>(v))
      shown = "null";
    else if (is_sensitive(d))
      shown = "[hidden]";
    else
      shown = *format_config_value(v);
    lines.push_back(std::string(d.name) + " = " + shown + (is_set(d.name) ? "" : " (default)"));
  }
  for (const auto& [key, raw] : unknown_)
    lines.push_back(key + " = " + (looks_secret(key) ? "[hidden]" : raw) + " (unknown)");
  return lines;
}

void broker_config::log_summary() const {
  auto lines = summary_lines();
  VLOG_INFO(kLog) << "effective broker configuration (" << lines.size() << " keys, node.id "
                  << node_id() << ", " << (cluster_mode() ? "cluster" : "single-node") << " mode):";
  for (const auto& l : lines) VLOG_INFO(kLog) << "  " << l;
}

}  // namespace varve::config
