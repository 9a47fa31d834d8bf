#include "coordinator/offsets_format.h"

#include <gtest/gtest.h>

namespace varve::coordinator {
namespace {

TEST(java_string_hash, matches_java_for_ascii_non_ascii_and_surrogates) {
  EXPECT_EQ(java_string_hash(""), 0);
  EXPECT_EQ(java_string_hash("hello"), 99162322);
  EXPECT_EQ(java_string_hash("\xc3\xa9"), 233);                  // "é" is one UTF-16 unit
  EXPECT_EQ(java_string_hash("\xf0\x9f\x98\x80"), 0xD83D * 31 + 0xDE00);  // U+1F600: a pair
  EXPECT_EQ(java_string_hash("polygenelubricants"), INT32_MIN);
}

TEST(offsets_partition_for, uses_kafka_abs_which_masks_the_sign_bit) {
  // hashCode is Integer.MIN_VALUE: Utils.abs gives 0, not a negative partition.
  EXPECT_EQ(offsets_partition_for("polygenelubricants", 50), 0);
  EXPECT_EQ(offsets_partition_for("hello", 50), 99162322 % 50);
  const int32_t h = java_string_hash("console-consumer-1");
  EXPECT_EQ(offsets_partition_for("console-consumer-1", 7), (h & 0x7fffffff) % 7);
}

TEST(offset_records, key_and_value_round_trip_in_kafkas_layout) {
  const auto key = encode_offset_key({"g", "t", 3});
  const std::vector<uint8_t> expected_key = {0, 1, 0, 1, 'g', 0, 1, 't', 0, 0, 0, 3};
  EXPECT_EQ(key, expected_key);
  offset_key k;
  ASSERT_EQ(decode_key(key, &k), key_kind::offset_commit);
  EXPECT_EQ(k.group, "g");
  EXPECT_EQ(k.topic, "t");
  EXPECT_EQ(k.partition, 3);

  const auto value = encode_offset_value({42, 7, "meta", 1000, -1});
  ASSERT_EQ(value.size(), 2u + 8 + 4 + 2 + 4 + 8);
  EXPECT_EQ(value[0], 0);
  EXPECT_EQ(value[1], 3);
  auto v = decode_offset_value(value);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->offset, 42);
  EXPECT_EQ(v->leader_epoch, 7);
  EXPECT_EQ(v->metadata, "meta");
  EXPECT_EQ(v->commit_timestamp, 1000);
}

TEST(offset_records, decodes_older_value_versions_and_rejects_truncated_ones) {
  // version 1: offset, metadata, commit_timestamp, expire_timestamp
  std::vector<uint8_t> v1 = {0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0,
                             0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 10};
  auto v = decode_offset_value(v1);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->offset, 5);
  EXPECT_EQ(v->leader_epoch, -1);
  EXPECT_EQ(v->commit_timestamp, 9);
  EXPECT_EQ(v->expire_timestamp, 10);
  v1.pop_back();
  EXPECT_FALSE(decode_offset_value(v1));
  const std::vector<uint8_t> group_key = {0, 2, 0, 1, 'g'};
  offset_key k;
  EXPECT_EQ(decode_key(group_key, &k), key_kind::group_metadata);
  EXPECT_FALSE(decode_key(std::vector<uint8_t>{0, 1, 0, 5, 'a'}, &k));
}

}  // namespace
}  // namespace varve::coordinator
