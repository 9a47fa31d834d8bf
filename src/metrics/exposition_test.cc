#include "metrics/exposition.h"

#include <gtest/gtest.h>

#include <array>

namespace varve::metrics {
namespace {

TEST(exposition, family_samples_are_contiguous_whatever_the_order_they_were_added) {
  exposition e;
  e.declare("a_total", metric_type::counter, "A things");
  e.declare("b", metric_type::gauge, "B");
  e.add("a_total", {{"x", "1"}}, 1);
  e.add("b", {}, 7);
  e.add("a_total", {{"x", "2"}}, 2);
  EXPECT_EQ(e.str(),
            "# HELP a_total A things\n# TYPE a_total counter\n"
            "a_total{x=\"1\"} 1\na_total{x=\"2\"} 2\n"
            "# HELP b B\n# TYPE b gauge\nb 7\n");
}

TEST(exposition, label_values_are_escaped) {
  exposition e;
  e.declare("g", metric_type::gauge, "help with \\ and\nnewline");
  e.add("g", {{"topic", "a\"b\\c\nd"}}, 1);
  EXPECT_EQ(e.str(),
            "# HELP g help with \\\\ and\\nnewline\n# TYPE g gauge\n"
            "g{topic=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(exposition, values_are_integers_when_whole_and_round_trip_otherwise) {
  EXPECT_EQ(exposition::format_value(0), "0");
  EXPECT_EQ(exposition::format_value(123456789012), "123456789012");
  EXPECT_EQ(exposition::format_value(0.25), "0.25");
  EXPECT_EQ(exposition::format_value(0.0005), "0.0005");
  EXPECT_EQ(exposition::format_value(1.0 / 0.0), "+Inf");
}

TEST(exposition, histogram_buckets_are_cumulative_with_sum_and_count) {
  exposition e;
  e.declare("lat_seconds", metric_type::histogram, "Latency");
  const std::array<double, 2> bounds = {0.1, 1};
  const std::array<uint64_t, 3> counts = {2, 3, 1};
  const label l[] = {{"api", "Produce"}};
  e.add_histogram("lat_seconds", l, bounds, counts, 4.5);
  EXPECT_EQ(e.str(),
            "# HELP lat_seconds Latency\n# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{api=\"Produce\",le=\"0.1\"} 2\n"
            "lat_seconds_bucket{api=\"Produce\",le=\"1\"} 5\n"
            "lat_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 6\n"
            "lat_seconds_sum{api=\"Produce\"} 4.5\n"
            "lat_seconds_count{api=\"Produce\"} 6\n");
}

TEST(exposition, undeclared_metric_or_type_conflict_is_a_logic_error) {
  exposition e;
  EXPECT_THROW(e.add("nope", {}, 1), std::logic_error);
  e.declare("x", metric_type::gauge, "x");
  EXPECT_THROW(e.declare("x", metric_type::counter, "x"), std::logic_error);
}

TEST(exposition, metric_names_are_validated) {
  EXPECT_TRUE(exposition::valid_name("varve_requests_total"));
  EXPECT_TRUE(exposition::valid_name("a:b_c9"));
  EXPECT_FALSE(exposition::valid_name("9lives"));
  EXPECT_FALSE(exposition::valid_name("bad-name"));
  EXPECT_FALSE(exposition::valid_name(""));
}

}  // namespace
}  // namespace varve::metrics
