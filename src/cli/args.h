#pragma once
// Command-line parsing for the CLI: `--name value`, `--name=value`, repeatable options,
// boolean flags and positional arguments. A flag not declared for the command is an error,
// so typos do not silently change what a command does.
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace varve::cli {

struct option_spec {
  std::set<std::string> flags;   // boolean: present or not, e.g. "--execute"
  std::set<std::string> values;  // take one value each time they appear, e.g. "--config"
};

class parsed_args {
 public:
  std::vector<std::string> positional;

  bool has(const std::string& name) const;
  // The last value given for `name`, if any.
  std::optional<std::string> get(const std::string& name) const;
  std::string get_or(const std::string& name, const std::string& fallback) const;
  // Every value given for `name`, in order.
  std::vector<std::string> all(const std::string& name) const;

  void add(std::string name, std::string value) { options_.emplace_back(std::move(name), std::move(value)); }

 private:
  std::vector<std::pair<std::string, std::string>> options_;
};

// Parses argv[start..argc). Options in `spec` plus the global ones (--bootstrap-server,
// --output, --timeout-ms). False with *error on an unknown option or a missing value.
bool parse_args(int argc, char** argv, int start, const option_spec& spec, parsed_args* out,
                std::string* error);

// Strict integer parsing: the whole string must be a number in range.
bool parse_int64(const std::string& s, int64_t* out);
bool parse_int32(const std::string& s, int32_t* out);

// Splits "key=value" at the first '='; false when there is no '=' or the key is empty.
bool split_key_value(const std::string& s, std::string* key, std::string* value);

// Parses an ISO-8601 date-time into milliseconds since the epoch: "YYYY-MM-DDTHH:mm:SS[.sss]"
// optionally followed by "Z" or "+HH:MM"/"-HH:MM" (no suffix = UTC, unlike Kafka's tool
// which uses the local zone; the CLI documents this). Also accepts a bare date "YYYY-MM-DD".
bool parse_iso_datetime(const std::string& s, int64_t* epoch_ms);

}  // namespace varve::cli
