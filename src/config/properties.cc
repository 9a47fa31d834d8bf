#include "config/properties.h"

#include <fstream>
#include <sstream>

namespace varve::config {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\f'; }

struct natural_line {
  std::string_view text;
  int number;
};

// Splits at \n, \r and \r\n. A final line without a terminator is kept.
std::vector<natural_line> split_natural_lines(std::string_view text) {
  std::vector<natural_line> out;
  size_t start = 0;
  int number = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '\n' && c != '\r') continue;
    out.push_back({text.substr(start, i - start), number++});
    if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    start = i + 1;
  }
  if (start < text.size()) out.push_back({text.substr(start), number});
  return out;
}

std::string_view skip_leading_blanks(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && is_blank(s[i])) ++i;
  return s.substr(i);
}

bool ends_with_odd_backslashes(std::string_view s) {
  size_t n = 0;
  while (n < s.size() && s[s.size() - 1 - n] == '\\') ++n;
  return n % 2 == 1;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Resolves escapes in a key or value. \uXXXX code units are UTF-16: a high surrogate
// followed by a low one becomes one code point; a lone surrogate becomes U+FFFD.
bool unescape(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  uint32_t pending_high = 0;
  auto flush_pending = [&] {
    if (pending_high != 0) append_utf8(*out, 0xFFFD);
    pending_high = 0;
  };
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c != '\\') {
      flush_pending();
      out->push_back(c);
      continue;
    }
    if (++i == in.size()) break;  // a lone trailing backslash escapes nothing
    c = in[i];
    if (c == 'u') {
      if (in.size() - i - 1 < 4) return false;
      uint32_t unit = 0;
      for (int k = 1; k <= 4; ++k) {
        int h = hex_value(in[i + k]);
        if (h < 0) return false;
        unit = (unit << 4) | static_cast<uint32_t>(h);
      }
      i += 4;
      if (unit >= 0xD800 && unit <= 0xDBFF) {
        flush_pending();
        pending_high = unit;
      } else if (unit >= 0xDC00 && unit <= 0xDFFF) {
        if (pending_high != 0) {
          append_utf8(*out, 0x10000 + ((pending_high - 0xD800) << 10) + (unit - 0xDC00));
          pending_high = 0;
        } else {
          append_utf8(*out, 0xFFFD);
        }
      } else {
        flush_pending();
        append_utf8(*out, unit);
      }
      continue;
    }
    flush_pending();
    switch (c) {
      case 't':
        out->push_back('\t');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'r':
        out->push_back('\r');
        break;
      case 'f':
        out->push_back('\f');
        break;
      default:
        out->push_back(c);
        break;
    }
  }
  flush_pending();
  return true;
}

// Splits one logical line into raw (still escaped) key and value.
void split_key_value(std::string_view line, std::string_view* key, std::string_view* value) {
  size_t key_end = 0;
  size_t value_start = line.size();
  bool has_separator = false;
  bool escaped = false;
  for (; key_end < line.size(); ++key_end) {
    char c = line[key_end];
    if (!escaped && (c == '=' || c == ':')) {
      value_start = key_end + 1;
      has_separator = true;
      break;
    }
    if (!escaped && is_blank(c)) {
      value_start = key_end + 1;
      break;
    }
    escaped = (c == '\\') ? !escaped : false;
  }
  while (value_start < line.size()) {
    char c = line[value_start];
    if (is_blank(c)) {
      ++value_start;
    } else if (!has_separator && (c == '=' || c == ':')) {
      has_separator = true;
      ++value_start;
    } else {
      break;
    }
  }
  *key = line.substr(0, key_end);
  *value = line.substr(std::min(value_start, line.size()));
}

}  // namespace

std::optional<properties> properties::parse(std::string_view text, std::string* error) {
  properties result;
  std::vector<natural_line> lines = split_natural_lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string_view s = skip_leading_blanks(lines[i].text);
    if (s.empty() || s[0] == '#' || s[0] == '!') continue;
    int start_line = lines[i].number;
    std::string logical;
    while (true) {
      if (!ends_with_odd_backslashes(s)) {
        logical.append(s);
        break;
      }
      logical.append(s.substr(0, s.size() - 1));
      if (++i == lines.size()) break;
      s = skip_leading_blanks(lines[i].text);
      if (s.empty()) break;  // a blank continuation line ends the logical line
    }
    std::string_view raw_key, raw_value;
    split_key_value(logical, &raw_key, &raw_value);
    std::string key, value;
    if (!unescape(raw_key, &key) || !unescape(raw_value, &value)) {
      if (error) *error = "line " + std::to_string(start_line) + ": malformed \\uxxxx escape";
      return std::nullopt;
    }
    result.set(std::move(key), std::move(value), start_line);
  }
  return result;
}

std::optional<properties> properties::load_file(const std::string& path, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (error) *error = "cannot open " + path;
    return std::nullopt;
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    if (error) *error = "cannot read " + path;
    return std::nullopt;
  }
  std::string parse_error;
  auto props = parse(buf.str(), &parse_error);
  if (!props && error) *error = path + ": " + parse_error;
  return props;
}

void properties::set(std::string key, std::string value, int line) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    entries_[it->second].value = std::move(value);
    entries_[it->second].line = line;
    return;
  }
  index_.emplace(key, entries_.size());
  entries_.push_back({std::move(key), std::move(value), line});
}

bool properties::contains(std::string_view key) const { return index_.find(key) != index_.end(); }

const property* properties::find(std::string_view key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

std::optional<std::string> properties::get(std::string_view key) const {
  const property* p = find(key);
  if (!p) return std::nullopt;
  return p->value;
}

}  // namespace varve::config
