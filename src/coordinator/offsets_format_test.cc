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
  EXPECT_EQ(k.group, "g");
  EXPECT_FALSE(decode_key(std::vector<uint8_t>{0, 1, 0, 5, 'a'}, &k));
}

group_metadata_value sample_group() {
  group_metadata_value v;
  v.protocol_type = "consumer";
  v.generation = 7;
  v.protocol = "range";
  v.leader = "m1";
  v.current_state_timestamp = 1234;
  v.members.push_back({"m1", std::nullopt, "c", "/h", 30000, 10000, {1, 2}, {3}});
  v.members.push_back({"m2", "i2", "c2", "/h2", 40000, 20000, {}, {4, 5, 6}});
  return v;
}

TEST(group_metadata_records, key_and_version_3_value_round_trip_in_kafkas_layout) {
  const std::vector<uint8_t> expected_key = {0, 2, 0, 2, 'g', '1'};
  EXPECT_EQ(encode_group_metadata_key("g1"), expected_key);

  group_metadata_value v;
  v.protocol_type = "c";
  v.generation = 2;
  v.protocol = std::nullopt;
  v.leader = "l";
  v.current_state_timestamp = 5;
  v.members.push_back({"m", std::nullopt, "i", "h", 7, 8, {9}, {}});
  const std::vector<uint8_t> expected = {
      0, 3,                    // version
      0, 1, 'c',               // protocol_type
      0, 0, 0, 2,              // generation
      0xff, 0xff,              // protocol: null
      0, 1, 'l',               // leader
      0, 0, 0, 0, 0, 0, 0, 5,  // current_state_timestamp
      0, 0, 0, 1,              // one member
      0, 1, 'm',               // member_id
      0xff, 0xff,              // group_instance_id: null
      0, 1, 'i', 0, 1, 'h',    // client_id, client_host
      0, 0, 0, 7, 0, 0, 0, 8,  // rebalance_timeout, session_timeout
      0, 0, 0, 1, 9,           // subscription
      0, 0, 0, 0};             // assignment
  EXPECT_EQ(encode_group_metadata_value(v), expected);
  EXPECT_EQ(decode_group_metadata_value(expected), v);
  EXPECT_EQ(decode_group_metadata_value(encode_group_metadata_value(sample_group())),
            sample_group());
}

TEST(group_metadata_records, decodes_version_0_and_flexible_version_4) {
  const std::vector<uint8_t> v0 = {
      0, 0, 0, 1, 'c', 0, 0, 0, 3, 0, 1, 'r', 0xff, 0xff,  // no leader
      0, 0, 0, 1, 0, 1, 'm', 0, 1, 'i', 0, 1, 'h', 0, 0, 0, 8,
      0, 0, 0, 0, 0, 0, 0, 1, 6};
  auto d = decode_group_metadata_value(v0);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->generation, 3);
  EXPECT_EQ(d->protocol, "r");
  EXPECT_FALSE(d->leader);
  EXPECT_EQ(d->current_state_timestamp, -1);
  ASSERT_EQ(d->members.size(), 1u);
  EXPECT_EQ(d->members[0].rebalance_timeout_ms, -1);
  EXPECT_EQ(d->members[0].session_timeout_ms, 8);
  EXPECT_EQ(d->members[0].assignment, std::vector<uint8_t>{6});

  const std::vector<uint8_t> v4 = {
      0, 4, 2, 'c', 0, 0, 0, 3, 0 /* null protocol */, 2, 'l',
      0, 0, 0, 0, 0, 0, 0, 9,
      2,                       // one member (compact array: n + 1)
      2, 'm', 3, 'i', 'd', 1 /* empty client id */, 2, 'h', 0, 0, 0, 1, 0, 0, 0, 2,
      1 /* empty subscription */, 2, 7,
      1, 5, 1, 0xaa,           // member tagged fields: tag 5, one byte (skipped)
      0};                      // no top-level tagged fields
  d = decode_group_metadata_value(v4);
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->protocol);
  EXPECT_EQ(d->leader, "l");
  EXPECT_EQ(d->current_state_timestamp, 9);
  ASSERT_EQ(d->members.size(), 1u);
  EXPECT_EQ(d->members[0].group_instance_id, "id");
  EXPECT_EQ(d->members[0].client_id, "");
  EXPECT_EQ(d->members[0].client_host, "h");
  EXPECT_EQ(d->members[0].rebalance_timeout_ms, 1);
  EXPECT_EQ(d->members[0].session_timeout_ms, 2);
  EXPECT_EQ(d->members[0].assignment, std::vector<uint8_t>{7});
}

TEST(group_metadata_records, truncated_oversized_and_unknown_versions_are_rejected) {
  const auto good = encode_group_metadata_value(sample_group());
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(decode_group_metadata_value(std::span(good).first(n))) << "length " << n;
  }
  auto huge = good;
  // Member count field sits after version, "consumer", generation, "range", "m1", timestamp.
  const size_t count_at = 2 + 10 + 4 + 7 + 4 + 8;
  ASSERT_EQ(huge[count_at + 3], 2);
  huge[count_at] = 0x7f;
  EXPECT_FALSE(decode_group_metadata_value(huge));
  auto v5 = good;
  v5[1] = 5;
  EXPECT_FALSE(decode_group_metadata_value(v5));
}

}  // namespace
}  // namespace varve::coordinator
