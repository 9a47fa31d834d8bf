#include "protocol/record_batch.h"

#include <gtest/gtest.h>

#include <climits>
#include <string>
#include <vector>

#include "protocol/compression.h"
#include "protocol/crc32c.h"

namespace varve::protocol {
namespace {

// ---- helpers -------------------------------------------------------------------------------

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

record make_record(const std::string& key, const std::string& value, int64_t ts) {
  record r;
  r.key = bytes_of(key);
  r.value = bytes_of(value);
  r.timestamp = ts;
  return r;
}

std::vector<record> sample_records() {
  std::vector<record> rs;
  rs.push_back(make_record("k0", "value zero", 1700000000000));
  record r1 = make_record("", "v1", 1700000000005);
  r1.key.reset();  // null key
  r1.headers.push_back({"trace", bytes_of("abc")});
  r1.headers.push_back({"empty", std::nullopt});  // null header value
  rs.push_back(r1);
  record r2 = make_record("k2", "", 1699999999990);  // timestamp below the first
  r2.value.reset();                                   // tombstone
  rs.push_back(r2);
  rs.push_back(make_record("k3", std::string(3000, 'x'), 1700000000020));
  return rs;
}

void put_be32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  b[at] = uint8_t(v >> 24);
  b[at + 1] = uint8_t(v >> 16);
  b[at + 2] = uint8_t(v >> 8);
  b[at + 3] = uint8_t(v);
}
uint32_t get_be32(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t(b[at]) << 24) | (uint32_t(b[at + 1]) << 16) | (uint32_t(b[at + 2]) << 8) |
         b[at + 3];
}

// Recomputes the CRC after a deliberate corruption inside the CRC'd range, so that the test
// reaches the check behind the CRC.
void fix_crc(std::vector<uint8_t>& b) { put_be32(b, kCrcOffset, compute_batch_crc(b)); }

constexpr size_t kLastOffsetDeltaOffset = 23;
constexpr size_t kRecordsCountOffset = 57;

// A batch whose record area is exactly `area` (hand-written bytes), with a valid CRC.
std::vector<uint8_t> batch_with_area(const std::vector<uint8_t>& area, int32_t records_count,
                                     int32_t last_offset_delta, bool control = false) {
  batch_builder_options opts;
  opts.control = control;
  opts.transactional = control;
  auto b = build_batch({}, opts);
  b.insert(b.end(), area.begin(), area.end());
  put_be32(b, kBatchLengthOffset, static_cast<uint32_t>(b.size() - kLogOverhead));
  put_be32(b, kLastOffsetDeltaOffset, static_cast<uint32_t>(last_offset_delta));
  put_be32(b, kRecordsCountOffset, static_cast<uint32_t>(records_count));
  fix_crc(b);
  return b;
}

// Record bodies written by hand (zigzag varints: 0→0, 1→2, -1→1, 2→4).
// length, attributes, ts_delta, offset_delta, key len, key, value len, value, header count.
std::vector<uint8_t> raw_record(uint8_t offset_delta_zz, std::vector<uint8_t> key = {'k'}) {
  std::vector<uint8_t> body = {0x00, 0x00, offset_delta_zz};
  body.push_back(static_cast<uint8_t>(key.size() * 2));
  body.insert(body.end(), key.begin(), key.end());
  body.insert(body.end(), {0x02, 'v', 0x00});
  std::vector<uint8_t> rec = {static_cast<uint8_t>(body.size() * 2)};
  rec.insert(rec.end(), body.begin(), body.end());
  return rec;
}

std::vector<uint8_t> concat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

batch_error validate(const std::vector<uint8_t>& b) { return validate_batch(b, nullptr); }

// ---- building and parsing ------------------------------------------------------------------

TEST(record_batch, built_batch_validates_and_header_reflects_options) {
  batch_builder_options opts;
  opts.producer_id = 4242;
  opts.producer_epoch = 7;
  opts.base_sequence = 100;
  opts.transactional = true;
  opts.partition_leader_epoch = 3;
  auto b = build_batch(sample_records(), opts);
  record_batch_header h;
  ASSERT_EQ(validate_batch(b, &h), batch_error::none);
  EXPECT_EQ(h.base_offset, 0);
  EXPECT_EQ(h.total_size(), b.size());
  EXPECT_EQ(h.magic, kMagicV2);
  EXPECT_EQ(h.partition_leader_epoch, 3);
  EXPECT_EQ(h.records_count, 4);
  EXPECT_EQ(h.last_offset_delta, 3);
  EXPECT_EQ(h.base_timestamp, 1700000000000);
  EXPECT_EQ(h.max_timestamp, 1700000000020);
  EXPECT_EQ(h.producer_id, 4242);
  EXPECT_EQ(h.producer_epoch, 7);
  EXPECT_EQ(h.base_sequence, 100);
  EXPECT_EQ(h.last_sequence(), 103);
  EXPECT_TRUE(h.is_transactional());
  EXPECT_FALSE(h.is_control());
  EXPECT_EQ(h.compression(), compression_type::none);
  EXPECT_EQ(h.ts_type(), timestamp_type::create_time);
  EXPECT_EQ(h.crc, crc32c(std::span(b).subspan(kAttributesOffset)));
}

TEST(record_batch, worked_example_in_the_format_doc_matches_byte_for_byte) {
  // docs/format/record-batch.md, "Worked example". The CRC was also checked against an
  // independent bitwise CRC-32C implementation when the doc was written.
  const std::vector<uint8_t> expected = {
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x00,
      0x00, 0x02, 0xed, 0x43, 0x2e, 0xea, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
      0x8b, 0xcf, 0xe5, 0x68, 0x00, 0x00, 0x00, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x01, 0x1a, 0x00, 0x00, 0x00, 0x02, 0x6b, 0x04, 0x68, 0x69, 0x02, 0x02, 0x68, 0x02, 0x78};
  record r = make_record("k", "hi", 1700000000000);
  r.headers.push_back({"h", bytes_of("x")});
  batch_builder_options opts;
  opts.producer_id = 5;
  opts.producer_epoch = 0;
  opts.base_sequence = 0;
  opts.partition_leader_epoch = 0;
  auto b = build_batch({r}, opts);
  set_base_offset(b, 42);
  EXPECT_EQ(b, expected);
  EXPECT_EQ(validate(expected), batch_error::none);
}

TEST(record_batch, parse_header_needs_61_bytes) {
  auto b = build_batch(sample_records(), {});
  EXPECT_FALSE(parse_batch_header(std::span(b).first(60)).has_value());
  EXPECT_TRUE(parse_batch_header(std::span(b).first(61)).has_value());
}

TEST(record_batch, validation_looks_only_at_the_first_batch) {
  auto a = build_batch(sample_records(), {});
  auto two = a;
  two.insert(two.end(), a.begin(), a.end() - 5);  // a torn second batch follows
  record_batch_header h;
  ASSERT_EQ(validate_batch(two, &h), batch_error::none);
  EXPECT_EQ(h.total_size(), a.size());
}

void expect_same_records(const std::vector<record>& got, const std::vector<record>& want,
                         int64_t base_offset) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].offset, base_offset + static_cast<int64_t>(i));
    EXPECT_EQ(got[i].timestamp, want[i].timestamp);
    EXPECT_EQ(got[i].key, want[i].key);
    EXPECT_EQ(got[i].value, want[i].value);
    ASSERT_EQ(got[i].headers.size(), want[i].headers.size());
    for (size_t j = 0; j < got[i].headers.size(); ++j) {
      EXPECT_EQ(got[i].headers[j].key, want[i].headers[j].key);
      EXPECT_EQ(got[i].headers[j].value, want[i].headers[j].value);
    }
  }
}

class codec_round_trip : public ::testing::TestWithParam<compression_type> {};

TEST_P(codec_round_trip, build_validate_decode_returns_the_records) {
  batch_builder_options opts;
  opts.compression = GetParam();
  auto want = sample_records();
  auto b = build_batch(want, opts);
  record_batch_header h;
  ASSERT_EQ(validate_batch(b, &h), batch_error::none);
  EXPECT_EQ(h.compression(), GetParam());
  std::vector<record> got;
  ASSERT_TRUE(decode_records(b, &got));
  expect_same_records(got, want, 0);
}

TEST_P(codec_round_trip, many_records_round_trip) {
  batch_builder_options opts;
  opts.compression = GetParam();
  std::vector<record> want;
  for (int i = 0; i < 2000; ++i) {
    want.push_back(make_record("key-" + std::to_string(i), "value-" + std::to_string(i * 7), i));
  }
  auto b = build_batch(want, opts);
  ASSERT_EQ(validate(b), batch_error::none);
  std::vector<record> got;
  ASSERT_TRUE(decode_records(b, &got));
  expect_same_records(got, want, 0);
}

INSTANTIATE_TEST_SUITE_P(all, codec_round_trip,
                         ::testing::Values(compression_type::none, compression_type::gzip,
                                           compression_type::snappy, compression_type::lz4,
                                           compression_type::zstd));

TEST(record_batch, decompression_beyond_the_bound_fails_for_every_codec) {
  for (auto codec : {compression_type::gzip, compression_type::snappy, compression_type::lz4,
                     compression_type::zstd}) {
    batch_builder_options opts;
    opts.compression = codec;
    std::vector<record> big = {make_record("k", std::string(1 << 20, 'z'), 1)};
    auto b = build_batch(big, opts);
    ASSERT_EQ(validate(b), batch_error::none);
    EXPECT_LT(b.size(), 200u * 1024);  // it is a (mild) bomb: small input, large output
    std::vector<record> got;
    EXPECT_FALSE(decode_records(b, &got, 64 * 1024)) << int(codec);
    EXPECT_TRUE(got.empty());
    EXPECT_TRUE(decode_records(b, &got, 2 << 20)) << int(codec);
  }
}

TEST(record_batch, decode_appends_after_existing_records) {
  auto b = build_batch(sample_records(), {});
  std::vector<record> got(2);
  ASSERT_TRUE(decode_records(b, &got));
  EXPECT_EQ(got.size(), 6u);
}

TEST(record_batch, snappy_batch_in_raw_librdkafka_format_decodes) {
  // Re-encode the record area of a snappy batch as one raw snappy block (no xerial framing).
  auto plain = build_batch(sample_records(), {});
  std::vector<uint8_t> area(plain.begin() + kRecordBatchHeaderSize, plain.end());
  batch_builder_options opts;
  opts.compression = compression_type::snappy;
  auto b = build_batch(sample_records(), opts);
  b.resize(kRecordBatchHeaderSize);
  // Raw block: compress via xerial then strip the framing of its single block.
  std::vector<uint8_t> framed;
  ASSERT_TRUE(compress(compression_type::snappy, area, &framed));
  ASSERT_EQ(get_be32(framed, kXerialHeaderSize) + kXerialHeaderSize + 4, framed.size());
  b.insert(b.end(), framed.begin() + kXerialHeaderSize + 4, framed.end());
  put_be32(b, kBatchLengthOffset, static_cast<uint32_t>(b.size() - kLogOverhead));
  fix_crc(b);
  ASSERT_EQ(validate(b), batch_error::none);
  std::vector<record> got;
  ASSERT_TRUE(decode_records(b, &got));
  expect_same_records(got, sample_records(), 0);
}

TEST(record_batch, sparse_offsets_as_left_by_compaction_validate_and_decode) {
  auto rs = sample_records();
  rs[0].offset = 100;
  rs[1].offset = 103;
  rs[2].offset = 104;
  rs[3].offset = 109;
  auto b = build_batch_with_offsets(rs, {}, 100, 10);
  record_batch_header h;
  ASSERT_EQ(validate_batch(b, &h), batch_error::none);
  EXPECT_EQ(h.base_offset, 100);
  EXPECT_EQ(h.last_offset(), 110);
  std::vector<record> got;
  ASSERT_TRUE(decode_records(b, &got));
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].offset, 100);
  EXPECT_EQ(got[1].offset, 103);
  EXPECT_EQ(got[3].offset, 109);
}

TEST(record_batch, empty_batch_keeping_its_offset_range_is_valid) {
  auto b = build_batch_with_offsets({}, {}, 50, 4);
  record_batch_header h;
  ASSERT_EQ(validate_batch(b, &h), batch_error::none);
  EXPECT_EQ(h.records_count, 0);
  EXPECT_EQ(h.last_offset(), 54);
  std::vector<record> got;
  EXPECT_TRUE(decode_records(b, &got));
  EXPECT_TRUE(got.empty());
}

TEST(record_batch, control_batch_with_marker_key_validates) {
  record marker;
  marker.key = std::vector<uint8_t>{0, 0, 0, 1};           // version 0, type 1 = COMMIT
  marker.value = std::vector<uint8_t>{0, 0, 0, 0, 0, 5};   // version 0, coordinator epoch 5
  batch_builder_options opts;
  opts.control = true;
  opts.transactional = true;
  opts.producer_id = 9;
  opts.producer_epoch = 1;
  auto b = build_batch({marker}, opts);
  record_batch_header h;
  ASSERT_EQ(validate_batch(b, &h), batch_error::none);
  EXPECT_TRUE(h.is_control());
  std::vector<record> got;
  ASSERT_TRUE(decode_records(b, &got));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, marker.key);
}

// ---- last_sequence -------------------------------------------------------------------------

TEST(record_batch, last_sequence_wraps_past_int32_max) {
  record_batch_header h;
  h.base_sequence = INT32_MAX - 1;
  h.last_offset_delta = 3;  // sequences MAX-1, MAX, 0, 1
  EXPECT_EQ(h.last_sequence(), 1);
  h.base_sequence = INT32_MAX;
  h.last_offset_delta = 0;
  EXPECT_EQ(h.last_sequence(), INT32_MAX);
  h.last_offset_delta = 1;
  EXPECT_EQ(h.last_sequence(), 0);
  h.base_sequence = 10;
  h.last_offset_delta = 4;
  EXPECT_EQ(h.last_sequence(), 14);
}

TEST(record_batch, last_sequence_without_a_producer_sequence_is_minus_one) {
  record_batch_header h;
  h.base_sequence = -1;
  h.last_offset_delta = 5;
  EXPECT_EQ(h.last_sequence(), -1);
}

// ---- rewrites ------------------------------------------------------------------------------

TEST(record_batch, set_base_offset_keeps_the_crc_valid) {
  auto b = build_batch(sample_records(), {});
  auto crc_before = get_be32(b, kCrcOffset);
  set_base_offset(b, 123456789012);
  EXPECT_EQ(get_be32(b, kCrcOffset), crc_before);
  record_batch_header h;
  ASSERT_EQ(validate_batch(b, &h), batch_error::none);
  EXPECT_EQ(h.base_offset, 123456789012);
  std::vector<record> got;
  ASSERT_TRUE(decode_records(b, &got));
  expect_same_records(got, sample_records(), 123456789012);
}

TEST(record_batch, set_partition_leader_epoch_keeps_the_crc_valid) {
  auto b = build_batch(sample_records(), {});
  set_partition_leader_epoch(b, 17);
  record_batch_header h;
  ASSERT_EQ(validate_batch(b, &h), batch_error::none);
  EXPECT_EQ(h.partition_leader_epoch, 17);
}

TEST(record_batch, set_log_append_time_recomputes_the_crc) {
  batch_builder_options opts;
  opts.compression = compression_type::lz4;
  auto b = build_batch(sample_records(), opts);
  auto crc_before = get_be32(b, kCrcOffset);
  set_log_append_time(b, 1800000000000);
  EXPECT_NE(get_be32(b, kCrcOffset), crc_before);
  record_batch_header h;
  ASSERT_EQ(validate_batch(b, &h), batch_error::none);
  EXPECT_EQ(h.ts_type(), timestamp_type::log_append_time);
  EXPECT_EQ(h.max_timestamp, 1800000000000);
  EXPECT_EQ(h.compression(), compression_type::lz4);  // other attribute bits untouched
  std::vector<record> got;
  ASSERT_TRUE(decode_records(b, &got));
  for (const auto& r : got) EXPECT_EQ(r.timestamp, 1800000000000);
}

// ---- every validation error ----------------------------------------------------------------

TEST(validate_batch_errors, fewer_bytes_than_the_magic_is_truncated) {
  auto b = build_batch(sample_records(), {});
  EXPECT_EQ(validate_batch(std::span(b).first(16), nullptr), batch_error::truncated);
  EXPECT_EQ(validate_batch({}, nullptr), batch_error::truncated);
}

TEST(validate_batch_errors, fewer_bytes_than_batch_length_is_truncated) {
  auto b = build_batch(sample_records(), {});
  EXPECT_EQ(validate_batch(std::span(b).first(b.size() - 1), nullptr), batch_error::truncated);
  EXPECT_EQ(validate_batch(std::span(b).first(40), nullptr), batch_error::truncated);
}

TEST(validate_batch_errors, batch_length_below_the_header_is_bad_length) {
  auto b = build_batch(sample_records(), {});
  put_be32(b, kBatchLengthOffset, 48);
  EXPECT_EQ(validate(b), batch_error::bad_length);
  put_be32(b, kBatchLengthOffset, 0xFFFFFFF0u);  // negative
  EXPECT_EQ(validate(b), batch_error::bad_length);
}

TEST(validate_batch_errors, magic_other_than_2_is_unsupported) {
  auto b = build_batch(sample_records(), {});
  b[kMagicOffset] = 1;
  EXPECT_EQ(validate(b), batch_error::unsupported_magic);
  // A short legacy v0 message: offset, size 14, crc, magic 0, attributes, null key, null value.
  std::vector<uint8_t> legacy = {0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 14, 1, 2, 3, 4,
                                 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
  EXPECT_EQ(validate(legacy), batch_error::unsupported_magic);
}

TEST(validate_batch_errors, flipped_crc_byte_is_crc_mismatch) {
  auto b = build_batch(sample_records(), {});
  b[kCrcOffset + 2] ^= 0x01;
  EXPECT_EQ(validate(b), batch_error::crc_mismatch);
}

TEST(validate_batch_errors, flipped_payload_byte_is_crc_mismatch) {
  auto b = build_batch(sample_records(), {});
  b[b.size() - 10] ^= 0x40;
  EXPECT_EQ(validate(b), batch_error::crc_mismatch);
  auto c = build_batch(sample_records(), {});
  c[kAttributesOffset + 1] ^= 0x10;  // attributes are covered by the CRC
  EXPECT_EQ(validate(c), batch_error::crc_mismatch);
}

TEST(validate_batch_errors, negative_records_count_is_bad_record_count) {
  auto b = build_batch(sample_records(), {});
  put_be32(b, kRecordsCountOffset, 0xFFFFFFFFu);
  fix_crc(b);
  EXPECT_EQ(validate(b), batch_error::bad_record_count);
}

TEST(validate_batch_errors, more_records_than_offsets_is_bad_record_count) {
  auto b = build_batch(sample_records(), {});  // 4 records, last_offset_delta 3
  put_be32(b, kLastOffsetDeltaOffset, 2);
  fix_crc(b);
  EXPECT_EQ(validate(b), batch_error::bad_record_count);
}

TEST(validate_batch_errors, negative_last_offset_delta_is_bad_record_count) {
  auto b = batch_with_area({}, 0, -1);
  EXPECT_EQ(validate(b), batch_error::bad_record_count);
}

TEST(validate_batch_errors, compressed_batch_count_is_checked_without_decompressing) {
  batch_builder_options opts;
  opts.compression = compression_type::zstd;
  auto b = build_batch(sample_records(), opts);
  put_be32(b, kRecordsCountOffset, 5);
  fix_crc(b);
  EXPECT_EQ(validate(b), batch_error::bad_record_count);
}

TEST(validate_batch_errors, records_count_below_actual_records_is_invalid_record) {
  auto b = build_batch(sample_records(), {});  // 4 records; claim 3 → trailing bytes
  put_be32(b, kRecordsCountOffset, 3);
  fix_crc(b);
  EXPECT_EQ(validate(b), batch_error::invalid_record);
  std::vector<record> got;
  EXPECT_FALSE(decode_records(b, &got));
}

TEST(validate_batch_errors, records_count_above_actual_records_is_invalid_record) {
  auto area = concat({raw_record(0), raw_record(2)});  // deltas 0, 1
  EXPECT_EQ(validate(batch_with_area(area, 2, 2)), batch_error::none);
  EXPECT_EQ(validate(batch_with_area(area, 3, 2)), batch_error::invalid_record);
}

TEST(validate_batch_errors, record_length_varint_past_the_end_is_invalid_record) {
  auto rec = raw_record(0);
  rec[0] = static_cast<uint8_t>(rec[0] + 2);  // claims one more byte than exists
  EXPECT_EQ(validate(batch_with_area(rec, 1, 0)), batch_error::invalid_record);
}

TEST(validate_batch_errors, record_length_shorter_than_its_fields_is_invalid_record) {
  auto rec = raw_record(0);
  rec[0] = static_cast<uint8_t>(rec[0] - 2);  // the last field spills past the record
  EXPECT_EQ(validate(batch_with_area(rec, 1, 0)), batch_error::invalid_record);
}

TEST(validate_batch_errors, record_with_unused_trailing_bytes_is_invalid_record) {
  auto rec = raw_record(0);
  rec[0] = static_cast<uint8_t>(rec[0] + 2);
  rec.push_back(0x00);  // length covers one byte that no field reads
  EXPECT_EQ(validate(batch_with_area(rec, 1, 0)), batch_error::invalid_record);
}

TEST(validate_batch_errors, key_length_lying_past_the_record_is_invalid_record) {
  auto rec = raw_record(0);
  rec[4] = 0x7E;  // key length 63
  EXPECT_EQ(validate(batch_with_area(rec, 1, 0)), batch_error::invalid_record);
}

TEST(validate_batch_errors, key_length_below_minus_one_is_invalid_record) {
  auto rec = raw_record(0);
  rec[4] = 0x03;  // zigzag -2
  EXPECT_EQ(validate(batch_with_area(rec, 1, 0)), batch_error::invalid_record);
}

TEST(validate_batch_errors, overlong_varint_is_invalid_record) {
  // Record length written as six continuation bytes: more than a varint may use.
  std::vector<uint8_t> area = {0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
  auto rec = raw_record(0);
  area.insert(area.end(), rec.begin() + 1, rec.end());
  EXPECT_EQ(validate(batch_with_area(area, 1, 0)), batch_error::invalid_record);
}

TEST(validate_batch_errors, negative_record_length_is_invalid_record) {
  auto rec = raw_record(0);
  rec[0] = 0x01;  // zigzag -1
  EXPECT_EQ(validate(batch_with_area(rec, 1, 0)), batch_error::invalid_record);
}

TEST(validate_batch_errors, header_count_lying_is_invalid_record) {
  auto rec = raw_record(0);
  rec.back() = 0x0A;  // five headers, none present
  EXPECT_EQ(validate(batch_with_area(rec, 1, 0)), batch_error::invalid_record);
}

TEST(validate_batch_errors, null_header_key_is_invalid_record) {
  auto rec = raw_record(0);
  rec.back() = 0x02;            // one header
  rec.insert(rec.end(), {0x01, 0x00});  // key length -1 (null), value length 0
  rec[0] = static_cast<uint8_t>(rec[0] + 4);
  EXPECT_EQ(validate(batch_with_area(rec, 1, 0)), batch_error::invalid_record);
  rec[rec.size() - 2] = 0x00;   // key length 0 is fine
  EXPECT_EQ(validate(batch_with_area(rec, 1, 0)), batch_error::none);
}

TEST(validate_batch_errors, repeated_offset_delta_is_invalid_record) {
  auto area = concat({raw_record(0), raw_record(0)});
  EXPECT_EQ(validate(batch_with_area(area, 2, 1)), batch_error::invalid_record);
}

TEST(validate_batch_errors, decreasing_offset_delta_is_invalid_record) {
  auto area = concat({raw_record(2), raw_record(0)});
  EXPECT_EQ(validate(batch_with_area(area, 2, 1)), batch_error::invalid_record);
}

TEST(validate_batch_errors, offset_delta_beyond_last_offset_delta_is_invalid_record) {
  auto area = concat({raw_record(0), raw_record(4)});  // deltas 0, 2
  EXPECT_EQ(validate(batch_with_area(area, 2, 1)), batch_error::invalid_record);
  EXPECT_EQ(validate(batch_with_area(area, 2, 2)), batch_error::none);
}

TEST(validate_batch_errors, negative_offset_delta_is_invalid_record) {
  EXPECT_EQ(validate(batch_with_area(raw_record(0x01), 1, 0)), batch_error::invalid_record);
}

TEST(validate_batch_errors, control_record_without_marker_key_is_invalid_record) {
  EXPECT_EQ(validate(batch_with_area(raw_record(0, {0, 0, 0, 1}), 1, 0, true)),
            batch_error::none);
  EXPECT_EQ(validate(batch_with_area(raw_record(0, {0, 0}), 1, 0, true)),
            batch_error::invalid_record);
}

TEST(validate_batch_errors, unknown_compression_codec_is_invalid_record) {
  auto b = build_batch(sample_records(), {});
  b[kAttributesOffset + 1] = static_cast<uint8_t>((b[kAttributesOffset + 1] & ~0x07) | 0x06);
  fix_crc(b);
  EXPECT_EQ(validate(b), batch_error::invalid_record);
}

TEST(validate_batch_errors, corrupt_compressed_payload_passes_validation_but_not_decode) {
  // validate_batch does not decompress (the produce path stores batches verbatim);
  // decode_records does, and reports the damage.
  batch_builder_options opts;
  opts.compression = compression_type::gzip;
  auto b = build_batch(sample_records(), opts);
  b[kRecordBatchHeaderSize + 12] ^= 0xFF;
  fix_crc(b);
  EXPECT_EQ(validate(b), batch_error::none);
  std::vector<record> got;
  EXPECT_FALSE(decode_records(b, &got));
}

TEST(validate_batch_errors, every_truncation_of_a_batch_is_rejected) {
  auto b = build_batch(sample_records(), {});
  for (size_t n = 0; n < b.size(); ++n) {
    EXPECT_EQ(validate_batch(std::span(b).first(n), nullptr), batch_error::truncated) << n;
  }
}

TEST(validate_batch_errors, error_names_are_distinct) {
  EXPECT_EQ(batch_error_name(batch_error::crc_mismatch), "crc_mismatch");
  EXPECT_EQ(batch_error_name(batch_error::none), "none");
  EXPECT_NE(batch_error_name(batch_error::truncated), batch_error_name(batch_error::bad_length));
}

}  // namespace
}  // namespace varve::protocol
