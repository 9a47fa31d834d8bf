#include "coordinator/txn_log_format.h"

#include <gtest/gtest.h>

#include "coordinator/offsets_format.h"
#include "protocol/wire.h"

namespace varve::coordinator {
namespace {

txn_log_value ongoing_value() {
  txn_log_value v;
  v.producer_id = 4000;
  v.producer_epoch = 7;
  v.timeout_ms = 60000;
  v.state = txn_state::ongoing;
  v.partitions = {{"a", 2}, {"a", 0}, {"b", 5}};
  v.last_update_timestamp_ms = 1700000000123;
  v.start_timestamp_ms = 1700000000001;
  return v;
}

TEST(txn_partition_for, uses_the_group_rule_over_java_hash_code) {
  EXPECT_EQ(txn_partition_for("polygenelubricants", 50), 0);  // hashCode is INT32_MIN
  EXPECT_EQ(txn_partition_for("hello", 50), 99162322 % 50);
  EXPECT_EQ(txn_partition_for("my-txn", 7), offsets_partition_for("my-txn", 7));
}

TEST(txn_log_key, is_version_0_and_the_id_as_a_classic_string) {
  const auto key = encode_txn_key("tx1");
  const std::vector<uint8_t> expected = {0, 0, 0, 3, 't', 'x', '1'};
  EXPECT_EQ(key, expected);
  EXPECT_EQ(decode_txn_key(key), "tx1");
}

TEST(txn_log_key, rejects_other_versions_truncation_and_trailing_bytes) {
  EXPECT_FALSE(decode_txn_key(std::vector<uint8_t>{0, 1, 0, 1, 'x'}));  // group-style version
  EXPECT_FALSE(decode_txn_key(std::vector<uint8_t>{0, 0, 0, 3, 't', 'x'}));
  EXPECT_FALSE(decode_txn_key(std::vector<uint8_t>{0, 0, 0, 1, 't', 'x'}));
  EXPECT_FALSE(decode_txn_key(std::vector<uint8_t>{0, 0, 0xff, 0xff}));  // null id
}

TEST(txn_log_value, version_0_layout_groups_partitions_by_topic) {
  const auto bytes = encode_txn_value(ongoing_value());
  protocol::reader r(bytes);
  EXPECT_EQ(r.read_int16(), 0);
  EXPECT_EQ(r.read_int64(), 4000);
  EXPECT_EQ(r.read_int16(), 7);
  EXPECT_EQ(r.read_int32(), 60000);
  EXPECT_EQ(r.read_int8(), 1);  // Ongoing
  ASSERT_EQ(r.read_array_length(false), 2);
  EXPECT_EQ(r.read_string(false), "a");
  ASSERT_EQ(r.read_array_length(false), 2);
  EXPECT_EQ(r.read_int32(), 0);
  EXPECT_EQ(r.read_int32(), 2);
  EXPECT_EQ(r.read_string(false), "b");
  ASSERT_EQ(r.read_array_length(false), 1);
  EXPECT_EQ(r.read_int32(), 5);
  EXPECT_EQ(r.read_int64(), 1700000000123);
  EXPECT_EQ(r.read_int64(), 1700000000001);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(txn_log_value, matches_the_worked_example_in_the_format_doc) {
  // docs/format/transaction-state.md
  EXPECT_EQ(encode_txn_key("t"), (std::vector<uint8_t>{0x00, 0x00, 0x00, 0x01, 0x74}));
  txn_log_value v;
  v.producer_id = 1000;
  v.producer_epoch = 1;
  v.timeout_ms = 60000;
  v.state = txn_state::ongoing;
  v.partitions = {{"a", 2}, {"a", 0}};
  v.last_update_timestamp_ms = 5;
  v.start_timestamp_ms = 4;
  const std::vector<uint8_t> expected = {
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x01, 0x00,
      0x00, 0xea, 0x60, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00, 0x00,
      0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04};
  EXPECT_EQ(encode_txn_value(v), expected);
}

TEST(txn_log_value, round_trips_every_persisted_state) {
  for (txn_state s :
       {txn_state::empty, txn_state::ongoing, txn_state::prepare_commit, txn_state::prepare_abort,
        txn_state::complete_commit, txn_state::complete_abort}) {
    txn_log_value v = ongoing_value();
    v.state = s;
    if (s == txn_state::empty || s == txn_state::complete_commit ||
        s == txn_state::complete_abort) {
      v.partitions.clear();
    }
    auto decoded = decode_txn_value(encode_txn_value(v));
    ASSERT_TRUE(decoded) << txn_state_name(s);
    EXPECT_EQ(*decoded, v) << txn_state_name(s);
  }
}

TEST(txn_log_value, empty_transactions_have_a_null_partition_array) {
  txn_log_value v = ongoing_value();
  v.state = txn_state::empty;
  v.partitions.clear();
  const auto bytes = encode_txn_value(v);
  // version 2 + pid 8 + epoch 2 + timeout 4 + status 1 = offset 17 of the array length.
  ASSERT_EQ(bytes.size(), 17u + 4 + 8 + 8);
  EXPECT_EQ(bytes[17], 0xff);
  EXPECT_EQ(bytes[20], 0xff);
  // A completed transaction writes a (zero-length) array instead.
  v.state = txn_state::complete_commit;
  const auto complete = encode_txn_value(v);
  EXPECT_EQ(complete[17], 0);
  EXPECT_EQ(complete[20], 0);
}

TEST(txn_log_value, every_truncation_is_rejected) {
  const auto bytes = encode_txn_value(ongoing_value());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_txn_value(std::span(bytes).first(n))) << "length " << n;
  }
  auto longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(decode_txn_value(longer));
}

TEST(txn_log_value, rejects_unknown_versions_and_statuses_that_are_never_written) {
  auto bytes = encode_txn_value(ongoing_value());
  auto bad_version = bytes;
  bad_version[1] = 2;
  EXPECT_FALSE(decode_txn_value(bad_version));
  auto negative_version = bytes;
  negative_version[0] = 0xff;
  negative_version[1] = 0xff;
  EXPECT_FALSE(decode_txn_value(negative_version));
  for (uint8_t status : {6, 7, 8, 0x80}) {  // Dead, PrepareEpochFence, unknown, negative
    auto b = bytes;
    b[16] = status;
    EXPECT_FALSE(decode_txn_value(b)) << int(status);
  }
}

TEST(txn_log_value, reads_flexible_version_1_with_known_and_unknown_tags) {
  protocol::writer w;
  w.write_int16(1);
  w.write_int64(9);
  w.write_int16(3);
  w.write_int32(1000);
  w.write_int8(2);  // PrepareCommit
  w.write_array_length(1, true);
  w.write_string("orders", true);
  w.write_array_length(2, true);
  w.write_int32(1);
  w.write_int32(4);
  w.write_unsigned_varint(1);  // a tagged field inside the topic struct, skipped
  w.write_unsigned_varint(7);
  w.write_unsigned_varint(1);
  w.write_int8(42);
  w.write_int64(500);
  w.write_int64(400);
  w.write_unsigned_varint(4);  // value tags: 0, 1, 2 and an unknown 9
  w.write_unsigned_varint(0);
  w.write_unsigned_varint(8);
  w.write_int64(8);
  w.write_unsigned_varint(1);
  w.write_unsigned_varint(8);
  w.write_int64(10);
  w.write_unsigned_varint(2);
  w.write_unsigned_varint(2);
  w.write_int16(2);
  w.write_unsigned_varint(9);
  w.write_unsigned_varint(3);
  w.write_raw(std::vector<uint8_t>{1, 2, 3});
  const auto bytes = w.bytes();

  auto v = decode_txn_value(bytes);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->producer_id, 9);
  EXPECT_EQ(v->producer_epoch, 3);
  EXPECT_EQ(v->timeout_ms, 1000);
  EXPECT_EQ(v->state, txn_state::prepare_commit);
  EXPECT_EQ(v->partitions, (std::set<txn_partition>{{"orders", 1}, {"orders", 4}}));
  EXPECT_EQ(v->last_update_timestamp_ms, 500);
  EXPECT_EQ(v->start_timestamp_ms, 400);
  EXPECT_EQ(v->previous_producer_id, 8);
  EXPECT_EQ(v->next_producer_id, 10);
  EXPECT_EQ(v->client_transaction_version, 2);

  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_txn_value(std::span(bytes).first(n))) << "length " << n;
  }
}

TEST(txn_log_value, a_known_tag_of_an_unexpected_size_is_skipped_not_misread) {
  protocol::writer w;
  w.write_int16(1);
  w.write_int64(9);
  w.write_int16(3);
  w.write_int32(1000);
  w.write_int8(0);
  w.write_array_length(0, true);
  w.write_int64(500);
  w.write_int64(400);
  w.write_unsigned_varint(1);
  w.write_unsigned_varint(0);  // previous_producer_id is an int64, not 2 bytes
  w.write_unsigned_varint(2);
  w.write_int16(5);
  auto v = decode_txn_value(w.bytes());
  // Skipped as an unknown shape rather than misread.
  ASSERT_TRUE(v);
  EXPECT_EQ(v->previous_producer_id, kNoProducerId);
}

TEST(txn_log_value, metadata_conversion_keeps_everything_but_the_last_epoch) {
  txn_metadata m;
  m.transactional_id = "t";
  m.producer_id = 5;
  m.last_producer_id = 4;
  m.producer_epoch = 2;
  m.last_producer_epoch = 1;
  m.timeout_ms = 30000;
  m.state = txn_state::ongoing;
  m.partitions = {{"x", 0}};
  m.start_timestamp_ms = 10;
  m.last_update_timestamp_ms = 20;
  txn_metadata back = from_log_value("t", to_log_value(m));
  EXPECT_EQ(back.last_producer_epoch, kNoProducerEpoch);
  back.last_producer_epoch = m.last_producer_epoch;
  EXPECT_EQ(back, m);
  // Through the version 0 bytes the previous producer id is not kept either.
  auto decoded = decode_txn_value(encode_txn_value(to_log_value(m)));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->previous_producer_id, kNoProducerId);
  EXPECT_EQ(decoded->producer_id, 5);
}

}  // namespace
}  // namespace varve::coordinator
