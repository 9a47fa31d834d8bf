#pragma once
// Java .properties text, parsed the way java.util.Properties.load does it:
//   - natural lines end at \n, \r or \r\n; leading blanks (space, \t, \f) are skipped;
//   - a line whose first non-blank character is '#' or '!' is a comment (and never continues);
//   - a line ending in an odd number of backslashes continues on the next line, whose
//     leading blanks are dropped (a trailing backslash at end of input is dropped);
//   - the key ends at the first unescaped '=', ':' or blank; blanks, then at most one
//     '=' or ':', then blanks separate it from the value; trailing blanks stay in the value;
//   - escapes in keys and values: \t \n \r \f, \uXXXX (emitted as UTF-8, surrogate pairs
//     combined), and \x for any other x means x itself (so "\=" "\:" "\ " "\\").
// Deviation: Java reads a .properties byte stream as ISO-8859-1; we pass bytes through
// unchanged (UTF-8 files keep their text), which only differs for non-ASCII bytes.
//
// A later definition of a key replaces an earlier one (as in Java). Every entry remembers
// the line on which its logical line started, for error messages.
// Thread-safety: immutable after parse; const methods may be called concurrently.
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace varve::config {

struct property {
  std::string key;
  std::string value;
  int line = 0;  // 1-based line where the logical line started (0 = not from a file)
};

class properties {
 public:
  // Parses `text`. Fails only on a malformed \uXXXX escape; `error` then names the line.
  static std::optional<properties> parse(std::string_view text, std::string* error);
  // Reads and parses a file; `error` names the path on failure.
  static std::optional<properties> load_file(const std::string& path, std::string* error);

  // Adds or replaces a key (e.g. from --override); keeps the first-insertion order.
  void set(std::string key, std::string value, int line = 0);

  bool contains(std::string_view key) const;
  const property* find(std::string_view key) const;
  std::optional<std::string> get(std::string_view key) const;

  // Entries in order of first appearance.
  const std::vector<property>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

 private:
  std::vector<property> entries_;
  std::map<std::string, size_t, std::less<>> index_;  // key → position in entries_
};

}  // namespace varve::config
