#include "config/properties.h"

#include <gtest/gtest.h>

namespace varve::config {
namespace {

properties parse_ok(std::string_view text) {
  std::string error;
  auto p = properties::parse(text, &error);
  EXPECT_TRUE(p.has_value()) << error;
  return p.value_or(properties{});
}

TEST(properties, accepts_equals_colon_and_whitespace_separators) {
  auto p = parse_ok("a=1\nb:2\nc 3\nd\t4\ne = 5\nf : 6\ng   =   7\n");
  EXPECT_EQ(p.get("a"), "1");
  EXPECT_EQ(p.get("b"), "2");
  EXPECT_EQ(p.get("c"), "3");
  EXPECT_EQ(p.get("d"), "4");
  EXPECT_EQ(p.get("e"), "5");
  EXPECT_EQ(p.get("f"), "6");
  EXPECT_EQ(p.get("g"), "7");
}

TEST(properties, only_first_separator_is_consumed) {
  auto p = parse_ok("a==b\nc :=d\ne = :f\n");
  EXPECT_EQ(p.get("a"), "=b");
  EXPECT_EQ(p.get("c"), "=d");
  EXPECT_EQ(p.get("e"), ":f");
}

TEST(properties, key_without_value_maps_to_empty_string) {
  auto p = parse_ok("lonely\nspaced   \nequals=\n");
  EXPECT_EQ(p.get("lonely"), "");
  EXPECT_EQ(p.get("spaced"), "");
  EXPECT_EQ(p.get("equals"), "");
}

TEST(properties, skips_comments_blank_lines_and_leading_whitespace) {
  auto p = parse_ok("# comment\n! bang comment\n\n   \n  \t indented=yes\n   # also comment\n");
  EXPECT_EQ(p.size(), 1u);
  EXPECT_EQ(p.get("indented"), "yes");
}

TEST(properties, keeps_trailing_whitespace_in_values) {
  auto p = parse_ok("k=v  \n");
  EXPECT_EQ(p.get("k"), "v  ");
}

TEST(properties, hash_inside_value_is_not_a_comment) {
  auto p = parse_ok("k=a#b !c\n");
  EXPECT_EQ(p.get("k"), "a#b !c");
}

TEST(properties, continuation_joins_lines_and_drops_leading_whitespace) {
  auto p = parse_ok("fruits = apple, \\\n         banana, \\\n   pear\nnext=1\n");
  EXPECT_EQ(p.get("fruits"), "apple, banana, pear");
  EXPECT_EQ(p.get("next"), "1");
}

TEST(properties, even_number_of_backslashes_does_not_continue) {
  auto p = parse_ok("path=c:\\\\\nnext=1\n");
  EXPECT_EQ(p.get("path"), "c:\\");
  EXPECT_EQ(p.get("next"), "1");
}

TEST(properties, comment_line_never_continues_but_continued_hash_is_content) {
  auto p = parse_ok("# comment \\\nreal=1\nk=a\\\n#notcomment\n");
  EXPECT_EQ(p.get("real"), "1");
  EXPECT_EQ(p.get("k"), "a#notcomment");
}

TEST(properties, blank_continuation_line_ends_logical_line) {
  auto p = parse_ok("k=a\\\n   \nnext=2\n");
  EXPECT_EQ(p.get("k"), "a");
  EXPECT_EQ(p.get("next"), "2");
}

TEST(properties, trailing_backslash_at_end_of_input_is_dropped) {
  auto p = parse_ok("k=abc\\");
  EXPECT_EQ(p.get("k"), "abc");
}

TEST(properties, handles_cr_and_crlf_line_endings) {
  auto p = parse_ok("a=1\r\nb=2\rc=3\r\nd=x\\\r\n  y");
  EXPECT_EQ(p.get("a"), "1");
  EXPECT_EQ(p.get("b"), "2");
  EXPECT_EQ(p.get("c"), "3");
  EXPECT_EQ(p.get("d"), "xy");
}

TEST(properties, resolves_escapes_in_keys_and_values) {
  auto p = parse_ok("key\\ with\\=odd\\:chars = tab\\there\\nnew\\rret\\fff \\q\\\\\n");
  EXPECT_EQ(p.get("key with=odd:chars"), "tab\there\nnew\rret\fff q\\");
}

TEST(properties, unicode_escapes_become_utf8) {
  auto p = parse_ok("a=\\u0041\\u00e9\\u20AC\nb=\\uD83D\\uDE00\nc=\\uD800x\n");
  EXPECT_EQ(p.get("a"), "A\xC3\xA9\xE2\x82\xAC");
  EXPECT_EQ(p.get("b"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(p.get("c"), "\xEF\xBF\xBDx");
}

TEST(properties, malformed_unicode_escape_fails_naming_line) {
  std::string error;
  EXPECT_FALSE(properties::parse("ok=1\n\nbad=\\u12G4\n", &error).has_value());
  EXPECT_NE(error.find("line 3"), std::string::npos) << error;
  EXPECT_FALSE(properties::parse("bad=\\u12", &error).has_value());
}

TEST(properties, later_definition_wins_and_records_line) {
  auto p = parse_ok("a=1\nb=2\na=3\n");
  EXPECT_EQ(p.get("a"), "3");
  EXPECT_EQ(p.find("a")->line, 3);
  EXPECT_EQ(p.entries()[0].key, "a");
  EXPECT_EQ(p.entries()[1].key, "b");
}

TEST(properties, line_numbers_count_from_start_of_logical_line) {
  auto p = parse_ok("# c\n\nk=a\\\n b\nz=1\n");
  EXPECT_EQ(p.find("k")->line, 3);
  EXPECT_EQ(p.find("z")->line, 5);
}

TEST(properties, missing_file_reports_path) {
  std::string error;
  EXPECT_FALSE(properties::load_file("/nonexistent/varve.properties", &error).has_value());
  EXPECT_NE(error.find("/nonexistent/varve.properties"), std::string::npos);
}

}  // namespace
}  // namespace varve::config
