#include "cli/args.h"

#include <gtest/gtest.h>

namespace varve::cli {
namespace {

bool parse(std::vector<std::string> words, const option_spec& spec, parsed_args* out, std::string* error) {
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  return parse_args(static_cast<int>(argv.size()), argv.data(), 0, spec, out, error);
}

TEST(cli_args, repeated_values_inline_values_flags_and_positionals_are_kept_in_order) {
  parsed_args a;
  std::string error;
  ASSERT_TRUE(parse({"demo", "--config", "a=1", "--config=b=2", "--execute", "--bootstrap-server", "h:1"},
                    {{"--execute"}, {"--config"}}, &a, &error))
      << error;
  EXPECT_EQ(a.positional, std::vector<std::string>{"demo"});
  EXPECT_EQ(a.all("--config"), (std::vector<std::string>{"a=1", "b=2"}));
  EXPECT_TRUE(a.has("--execute"));
  EXPECT_EQ(a.get_or("--bootstrap-server", ""), "h:1");
  EXPECT_FALSE(a.get("--partitions").has_value());
}

TEST(cli_args, unknown_option_and_missing_value_are_errors) {
  parsed_args a;
  std::string error;
  EXPECT_FALSE(parse({"--partitons", "3"}, {{}, {"--partitions"}}, &a, &error));
  EXPECT_NE(error.find("--partitons"), std::string::npos);
  parsed_args b;
  EXPECT_FALSE(parse({"--partitions"}, {{}, {"--partitions"}}, &b, &error));
  parsed_args c;
  EXPECT_FALSE(parse({"--execute=yes"}, {{"--execute"}, {}}, &c, &error));
}

TEST(cli_args, integers_are_parsed_strictly) {
  int32_t v = 0;
  EXPECT_TRUE(parse_int32("42", &v));
  EXPECT_EQ(v, 42);
  EXPECT_TRUE(parse_int32("-3", &v));
  EXPECT_EQ(v, -3);
  EXPECT_FALSE(parse_int32("4x", &v));
  EXPECT_FALSE(parse_int32("", &v));
  EXPECT_FALSE(parse_int32("3000000000", &v));
  int64_t w = 0;
  EXPECT_TRUE(parse_int64("+5", &w));
  EXPECT_EQ(w, 5);
}

TEST(cli_args, key_value_splits_at_first_equals) {
  std::string k, v;
  ASSERT_TRUE(split_key_value("a=b=c", &k, &v));
  EXPECT_EQ(k, "a");
  EXPECT_EQ(v, "b=c");
  ASSERT_TRUE(split_key_value("k=", &k, &v));
  EXPECT_EQ(v, "");
  EXPECT_FALSE(split_key_value("=v", &k, &v));
  EXPECT_FALSE(split_key_value("novalue", &k, &v));
}

TEST(cli_args, iso_datetimes_convert_to_epoch_milliseconds) {
  int64_t ms = 0;
  ASSERT_TRUE(parse_iso_datetime("1970-01-01T00:00:00Z", &ms));
  EXPECT_EQ(ms, 0);
  ASSERT_TRUE(parse_iso_datetime("2021-03-04T05:06:07.089", &ms));
  EXPECT_EQ(ms, 1614834367089);  // no zone = UTC
  ASSERT_TRUE(parse_iso_datetime("2021-03-04T07:06:07.089+02:00", &ms));
  EXPECT_EQ(ms, 1614834367089);
  ASSERT_TRUE(parse_iso_datetime("2000-02-29", &ms));
  EXPECT_EQ(ms, 951782400000);
  EXPECT_FALSE(parse_iso_datetime("2021-13-01T00:00:00", &ms));
  EXPECT_FALSE(parse_iso_datetime("yesterday", &ms));
  EXPECT_FALSE(parse_iso_datetime("2021-03-04T05:06:07Zjunk", &ms));
}

}  // namespace
}  // namespace varve::cli
