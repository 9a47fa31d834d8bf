#include "cli/consumer_protocol.h"

#include <gtest/gtest.h>

namespace varve::cli {
namespace {

TEST(consumer_protocol, assignment_round_trips) {
  consumer_assignment a;
  a.topics = {{"orders", {0, 2, 5}}, {"audit", {1}}};
  std::vector<uint8_t> bytes = encode_consumer_assignment(a);
  consumer_assignment b;
  ASSERT_TRUE(decode_consumer_assignment(bytes, &b));
  ASSERT_EQ(b.topics.size(), 2u);
  EXPECT_EQ(b.topics[0].topic, "orders");
  EXPECT_EQ(b.topics[0].partitions, (std::vector<int32_t>{0, 2, 5}));
  EXPECT_EQ(b.topics[1].topic, "audit");
  EXPECT_EQ(b.topics[1].partitions, (std::vector<int32_t>{1}));
}

TEST(consumer_protocol, decodes_hand_built_v1_bytes_with_user_data) {
  // version 1, one topic "t" with partitions [3], user_data = {0xAB}
  std::vector<uint8_t> bytes = {0, 1, 0, 0, 0, 1, 0, 1, 't', 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 1, 0xAB};
  consumer_assignment a;
  ASSERT_TRUE(decode_consumer_assignment(bytes, &a));
  EXPECT_EQ(a.version, 1);
  ASSERT_EQ(a.topics.size(), 1u);
  EXPECT_EQ(a.topics[0].partitions, (std::vector<int32_t>{3}));
}

TEST(consumer_protocol, empty_bytes_are_an_empty_assignment_and_truncation_fails) {
  consumer_assignment a;
  EXPECT_TRUE(decode_consumer_assignment({}, &a));
  EXPECT_TRUE(a.topics.empty());
  std::vector<uint8_t> bytes = encode_consumer_assignment({0, {{"orders", {0, 1}}}});
  bytes.resize(bytes.size() - 7);  // cut into the partition list
  EXPECT_FALSE(decode_consumer_assignment(bytes, &a));
}

}  // namespace
}  // namespace varve::cli
