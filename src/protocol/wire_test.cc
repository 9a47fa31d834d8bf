#include "protocol/wire.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "protocol/messages.h"

namespace varve::protocol {
namespace {

std::vector<uint8_t> encode_uvarint(uint32_t v) {
  writer w;
  w.write_unsigned_varint(v);
  return w.bytes();
}

TEST(wire_varint, unsigned_varint_uses_seven_bits_per_byte_low_group_first) {
  EXPECT_EQ(encode_uvarint(0), (std::vector<uint8_t>{0x00}));
  EXPECT_EQ(encode_uvarint(127), (std::vector<uint8_t>{0x7f}));
  EXPECT_EQ(encode_uvarint(128), (std::vector<uint8_t>{0x80, 0x01}));
  EXPECT_EQ(encode_uvarint(300), (std::vector<uint8_t>{0xac, 0x02}));
  EXPECT_EQ(encode_uvarint(0xffffffffu), (std::vector<uint8_t>{0xff, 0xff, 0xff, 0xff, 0x0f}));
}

TEST(wire_varint, unsigned_varint_round_trips_boundaries) {
  for (uint32_t v : {0u, 1u, 127u, 128u, 16383u, 16384u, 2097151u, 2097152u, 268435455u,
                     268435456u, 0x7fffffffu, 0xffffffffu}) {
    auto bytes = encode_uvarint(v);
    reader r(bytes);
    EXPECT_EQ(r.read_unsigned_varint(), v);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.remaining(), 0u);
  }
}

TEST(wire_varint, unsigned_varint_longer_than_five_bytes_fails) {
  std::vector<uint8_t> six{0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
  reader r(six);
  EXPECT_EQ(r.read_unsigned_varint(), 0u);
  EXPECT_FALSE(r.ok());
}

TEST(wire_varint, unsigned_varint_over_32_bits_fails) {
  std::vector<uint8_t> big{0xff, 0xff, 0xff, 0xff, 0x10};
  reader r(big);
  r.read_unsigned_varint();
  EXPECT_FALSE(r.ok());
}

TEST(wire_varint, truncated_varint_fails) {
  std::vector<uint8_t> cut{0x80, 0x80};
  reader r(cut);
  r.read_unsigned_varint();
  EXPECT_FALSE(r.ok());
}

TEST(wire_varint, zigzag_varint_maps_small_negatives_to_small_codes) {
  writer w;
  w.write_varint(0);
  w.write_varint(-1);
  w.write_varint(1);
  w.write_varint(-2);
  EXPECT_EQ(w.bytes(), (std::vector<uint8_t>{0, 1, 2, 3}));
}

TEST(wire_varint, varint_and_varlong_round_trip_extremes) {
  writer w;
  const int32_t ints[] = {0, -1, 1, std::numeric_limits<int32_t>::min(),
                          std::numeric_limits<int32_t>::max()};
  const int64_t longs[] = {0, -1, 1, std::numeric_limits<int64_t>::min(),
                           std::numeric_limits<int64_t>::max()};
  for (int32_t v : ints) w.write_varint(v);
  for (int64_t v : longs) w.write_varlong(v);
  reader r(w.bytes());
  for (int32_t v : ints) EXPECT_EQ(r.read_varint(), v);
  for (int64_t v : longs) EXPECT_EQ(r.read_varlong(), v);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(wire_varint, varlong_of_eleven_bytes_fails) {
  std::vector<uint8_t> bytes(10, 0xff);
  bytes.push_back(0x01);
  reader r(bytes);
  r.read_varlong();
  EXPECT_FALSE(r.ok());
}

TEST(wire_fixed, integers_are_big_endian) {
  writer w;
  w.write_int16(0x0102);
  w.write_int32(0x03040506);
  w.write_int64(0x0708090a0b0c0d0eLL);
  w.write_uint16(0xfffe);
  w.write_uint32(0xfffffffd);
  EXPECT_EQ(w.bytes(), (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff,
                                             0xfe, 0xff, 0xff, 0xff, 0xfd}));
  reader r(w.bytes());
  EXPECT_EQ(r.read_int16(), 0x0102);
  EXPECT_EQ(r.read_int32(), 0x03040506);
  EXPECT_EQ(r.read_int64(), 0x0708090a0b0c0d0eLL);
  EXPECT_EQ(r.read_uint16(), 0xfffe);
  EXPECT_EQ(r.read_uint32(), 0xfffffffdu);
  EXPECT_TRUE(r.ok());
}

TEST(wire_fixed, float64_and_uuid_round_trip) {
  writer w;
  w.write_float64(-2.5);
  uuid u;
  for (size_t i = 0; i < 16; ++i) u.bytes[i] = static_cast<uint8_t>(i * 3);
  w.write_uuid(u);
  reader r(w.bytes());
  EXPECT_EQ(r.read_float64(), -2.5);
  EXPECT_EQ(r.read_uuid(), u);
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(uuid::zero().is_zero());
  EXPECT_FALSE(u.is_zero());
}

TEST(wire_fixed, short_read_fails_returns_zero_and_poisons_later_reads) {
  std::vector<uint8_t> three{1, 2, 3};
  reader r(three);
  EXPECT_EQ(r.read_int32(), 0);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.read_int8(), 0);  // a byte is there, but the reader already failed
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(wire_strings, classic_string_has_int16_length_and_minus_one_is_null) {
  writer w;
  w.write_string("ab", false);
  w.write_nullable_string(std::nullopt, false);
  EXPECT_EQ(w.bytes(), (std::vector<uint8_t>{0, 2, 'a', 'b', 0xff, 0xff}));
  reader r(w.bytes());
  EXPECT_EQ(r.read_string(false), "ab");
  EXPECT_EQ(r.read_nullable_string(false), std::nullopt);
  EXPECT_TRUE(r.ok());
}

TEST(wire_strings, compact_string_has_length_plus_one_and_zero_is_null) {
  writer w;
  w.write_string("", true);
  w.write_string("xyz", true);
  w.write_nullable_string(std::nullopt, true);
  EXPECT_EQ(w.bytes(), (std::vector<uint8_t>{1, 4, 'x', 'y', 'z', 0}));
  reader r(w.bytes());
  EXPECT_EQ(r.read_string(true), "");
  EXPECT_EQ(r.read_nullable_string(true), std::optional<std::string>("xyz"));
  EXPECT_EQ(r.read_nullable_string(true), std::nullopt);
  EXPECT_TRUE(r.ok());
}

TEST(wire_strings, null_where_a_string_is_required_fails) {
  std::vector<uint8_t> null_compact{0};
  reader r(null_compact);
  r.read_string(true);
  EXPECT_FALSE(r.ok());
}

TEST(wire_strings, length_beyond_input_fails_without_allocating) {
  std::vector<uint8_t> bytes{0x7f, 0xff, 'a'};  // claims 32767 bytes
  reader r(bytes);
  EXPECT_EQ(r.read_string(false), "");
  EXPECT_FALSE(r.ok());
}

TEST(wire_strings, negative_length_other_than_minus_one_fails) {
  std::vector<uint8_t> bytes{0xff, 0xfe};
  reader r(bytes);
  r.read_nullable_string(false);
  EXPECT_FALSE(r.ok());
}

TEST(wire_bytes, classic_and_compact_bytes_round_trip) {
  writer w;
  std::vector<uint8_t> data{9, 8, 7};
  w.write_bytes(data, false);
  w.write_bytes(data, true);
  w.write_nullable_bytes(std::nullopt, false);
  w.write_nullable_bytes(std::nullopt, true);
  reader r(w.bytes());
  EXPECT_EQ(r.read_bytes(false), data);
  EXPECT_EQ(r.read_bytes(true), data);
  EXPECT_EQ(r.read_nullable_bytes(false), std::nullopt);
  EXPECT_EQ(r.read_nullable_bytes(true), std::nullopt);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(wire_arrays, array_length_encodings_and_null) {
  writer w;
  w.write_array_length(2, false);
  w.write_array_length(2, true);
  w.write_null_array(false);
  w.write_null_array(true);
  w.write_raw(std::vector<uint8_t>{1, 2});  // so that a count of 2 is plausible
  EXPECT_EQ(w.bytes(), (std::vector<uint8_t>{0, 0, 0, 2, 3, 0xff, 0xff, 0xff, 0xff, 0, 1, 2}));
  reader r(w.bytes());
  EXPECT_EQ(r.read_array_length(false), 2);
  EXPECT_EQ(r.read_array_length(true), 2);
  EXPECT_EQ(r.read_array_length(false), -1);
  EXPECT_EQ(r.read_array_length(true), -1);
  EXPECT_TRUE(r.ok());
}

TEST(wire_arrays, count_larger_than_remaining_bytes_fails) {
  std::vector<uint8_t> bytes{0x7f, 0xff, 0xff, 0xff, 1, 2, 3};
  reader r(bytes);
  EXPECT_EQ(r.read_array_length(false), 0);
  EXPECT_FALSE(r.ok());

  writer w;
  w.write_unsigned_varint(1000);  // compact: 999 elements claimed, none present
  reader c(w.bytes());
  c.read_array_length(true);
  EXPECT_FALSE(c.ok());
}

TEST(wire_tagged, skip_tagged_fields_skips_every_field) {
  writer w;
  w.write_unsigned_varint(2);
  w.write_unsigned_varint(5);  // tag
  w.write_unsigned_varint(3);  // size
  w.write_raw(std::vector<uint8_t>{1, 2, 3});
  w.write_unsigned_varint(70000);
  w.write_unsigned_varint(0);
  w.write_int8(42);
  reader r(w.bytes());
  r.skip_tagged_fields();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.read_int8(), 42);
}

TEST(wire_tagged, tagged_field_longer_than_input_fails) {
  writer w;
  w.write_unsigned_varint(1);
  w.write_unsigned_varint(0);
  w.write_unsigned_varint(10);
  w.write_int8(1);
  reader r(w.bytes());
  r.skip_tagged_fields();
  EXPECT_FALSE(r.ok());
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i);
  return v;
}

TEST(wire_records, default_records_are_null_and_appending_makes_them_non_null) {
  records r;
  EXPECT_TRUE(r.is_null());
  EXPECT_EQ(r.size_bytes(), 0u);
  r.append(buffer_slice::copy_of(pattern(4, 1)));
  EXPECT_FALSE(r.is_null());
  EXPECT_EQ(r.size_bytes(), 4u);
  r.set_null();
  EXPECT_TRUE(r.is_null());
  EXPECT_FALSE(records::empty().is_null());
  EXPECT_FALSE(records::empty() == records());
}

TEST(wire_records, decoded_records_reference_the_frame_without_copying) {
  writer w;
  w.write_records(records::from_bytes(pattern(8, 10)), true, true);
  auto frame = std::make_shared<const std::vector<uint8_t>>(w.flatten());
  reader r(*frame, frame);
  records got = r.read_records(true);
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(got.is_contiguous());
  EXPECT_EQ(got.contiguous().data(), frame->data() + 1);  // right after the 1-byte length
  EXPECT_EQ(got.to_vector(), pattern(8, 10));
  EXPECT_EQ(std::get<buffer_slice>(got.chunks()[0]).owner, frame);
}

TEST(wire_records, null_records_encode_as_null_only_where_nullable) {
  writer w;
  w.write_records(records(), false, true);
  w.write_records(records(), false, false);
  w.write_records(records(), true, true);
  EXPECT_EQ(w.bytes(), (std::vector<uint8_t>{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0}));
  reader r(w.bytes());
  EXPECT_TRUE(r.read_records(false).is_null());
  records empty = r.read_records(false);
  EXPECT_FALSE(empty.is_null());
  EXPECT_EQ(empty.size_bytes(), 0u);
  EXPECT_TRUE(r.read_records(true).is_null());
}

TEST(wire_records, small_slices_are_copied_and_large_ones_spliced) {
  writer w;
  w.write_int8(7);
  records small = records::from_bytes(pattern(10, 0));
  records large = records::from_bytes(pattern(writer::kInlineSliceLimit, 50));
  w.write_records(small, false, true);
  w.write_records(large, false, true);
  w.write_int8(9);
  EXPECT_EQ(w.splices().size(), 1u);
  EXPECT_EQ(w.splices()[0].first, 1u + 4 + 10 + 4);
  EXPECT_EQ(w.total_size(), w.bytes().size() + writer::kInlineSliceLimit);

  std::vector<uint8_t> flat = w.flatten();
  reader r(flat);
  EXPECT_EQ(r.read_int8(), 7);
  EXPECT_EQ(r.read_records(false), small);
  EXPECT_EQ(r.read_records(false), large);
  EXPECT_EQ(r.read_int8(), 9);
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(wire_records, file_regions_are_spliced_and_compare_by_content) {
  char path[] = "/tmp/varve_wire_test_XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::unlink(path);
  auto content = pattern(100, 3);
  ASSERT_EQ(::write(fd, content.data(), content.size()), 100);
  auto file = std::make_shared<const file_handle>(fd);

  records from_file;
  from_file.append(file_region{file, 20, 30});
  from_file.append(buffer_slice::copy_of(pattern(5, 99)));
  EXPECT_EQ(from_file.size_bytes(), 35u);
  EXPECT_FALSE(from_file.is_contiguous());
  EXPECT_TRUE(from_file.contiguous().empty());

  std::vector<uint8_t> expected(content.begin() + 20, content.begin() + 50);
  auto tail = pattern(5, 99);
  expected.insert(expected.end(), tail.begin(), tail.end());
  EXPECT_EQ(from_file, records::from_bytes(expected));

  writer w;
  w.write_records(from_file, true, true);
  ASSERT_EQ(w.splices().size(), 1u);  // the file region; the 5-byte slice is copied
  EXPECT_EQ(w.splices()[0].first, 1u);
  EXPECT_EQ(w.total_size(), 1u + 35);
  std::vector<uint8_t> flat = w.flatten();
  reader r(flat);
  EXPECT_EQ(r.read_records(true).to_vector(), expected);
}

TEST(wire_writer, append_moves_bytes_and_shifts_splices) {
  writer inner;
  inner.write_int8(1);
  inner.write_records(records::from_bytes(pattern(writer::kInlineSliceLimit + 1, 0)), true, true);
  writer outer;
  outer.write_int32(0);
  outer.append(std::move(inner));
  ASSERT_EQ(outer.splices().size(), 1u);
  EXPECT_EQ(outer.splices()[0].first, 4u + 1 + 2);  // int32, int8, 2-byte varint length
  EXPECT_EQ(outer.total_size(), 4u + 1 + 2 + writer::kInlineSliceLimit + 1);
}

TEST(wire_writer, patch_int32_overwrites_the_frame_length) {
  writer w;
  w.write_int32(0);
  w.write_int16(5);
  w.patch_int32(0, static_cast<int32_t>(w.total_size() - 4));
  EXPECT_EQ(w.bytes(), (std::vector<uint8_t>{0, 0, 0, 2, 0, 5}));
}

TEST(api_table, header_versions_follow_flexibility_and_api_versions_response_is_v0) {
  const api_info* produce = find_api(0);
  ASSERT_NE(produce, nullptr);
  ASSERT_GE(produce->flexible_from, 0);
  EXPECT_EQ(request_header_version(0, produce->flexible_from), 2);
  EXPECT_EQ(response_header_version(0, produce->flexible_from), 1);
  EXPECT_EQ(request_header_version(0, static_cast<int16_t>(produce->flexible_from - 1)), 1);
  EXPECT_EQ(response_header_version(0, static_cast<int16_t>(produce->flexible_from - 1)), 0);
  EXPECT_EQ(request_header_version(18, 3), 2);
  EXPECT_EQ(request_header_version(18, 7), 2);  // a newer client probing ApiVersions
  EXPECT_EQ(response_header_version(18, 3), 0);
  EXPECT_EQ(request_header_version(18, 2), 1);
  EXPECT_EQ(request_header_version(-7, 0), 1);  // unknown api: still read the client id
  EXPECT_EQ(find_api(-7), nullptr);
}

TEST(api_table, lists_every_api_once_in_key_order) {
  auto apis = all_apis();
  ASSERT_FALSE(apis.empty());
  for (size_t i = 1; i < apis.size(); ++i) EXPECT_LT(apis[i - 1].key, apis[i].key);
  const api_info* av = find_api(api_versions_request::api_key);
  ASSERT_NE(av, nullptr);
  EXPECT_STREQ(av->name, "api_versions");
  EXPECT_EQ(av->min, 0);
  EXPECT_EQ(av->max, 4);
  EXPECT_EQ(av->flexible_from, 3);
}

TEST(request_header, v2_keeps_a_classic_client_id_and_adds_tagged_fields) {
  request_header h;
  h.request_api_key = 18;
  h.request_api_version = 3;
  h.correlation_id = 7;
  h.client_id = "c";
  writer w;
  h.encode(w, 2);
  EXPECT_EQ(w.bytes(), (std::vector<uint8_t>{0, 18, 0, 3, 0, 0, 0, 7, 0, 1, 'c', 0}));
  reader r(w.bytes());
  request_header back;
  ASSERT_TRUE(back.decode(r, 2));
  EXPECT_EQ(back, h);
}

TEST(request_header, null_client_id_decodes_as_nullopt) {
  std::vector<uint8_t> bytes{0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff};
  reader r(bytes);
  request_header h;
  ASSERT_TRUE(h.decode(r, 1));
  EXPECT_EQ(h.client_id, std::nullopt);
  EXPECT_EQ(h.request_api_version, 12);
}

TEST(generated_tags, unknown_tags_are_skipped_and_known_ones_decoded) {
  writer w;
  w.write_int16(0);        // error_code
  w.write_array_length(0, true);  // api_keys
  w.write_int32(5);        // throttle_time_ms
  w.write_unsigned_varint(2);
  w.write_unsigned_varint(1);  // finalized_features_epoch
  w.write_unsigned_varint(8);
  w.write_int64(42);
  w.write_unsigned_varint(99);  // unknown
  w.write_unsigned_varint(3);
  w.write_raw(std::vector<uint8_t>{1, 2, 3});
  reader r(w.bytes());
  api_versions_response resp;
  ASSERT_TRUE(resp.decode(r, 3));
  EXPECT_EQ(resp.finalized_features_epoch, 42);
  EXPECT_EQ(resp.throttle_time_ms, 5);
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(generated_tags, known_tag_with_wrong_size_fails) {
  writer w;
  w.write_int16(0);
  w.write_array_length(0, true);
  w.write_int32(5);
  w.write_unsigned_varint(1);
  w.write_unsigned_varint(1);  // finalized_features_epoch claims 9 bytes, int64 uses 8
  w.write_unsigned_varint(9);
  w.write_int64(42);
  w.write_int8(0);
  reader r(w.bytes());
  api_versions_response resp;
  EXPECT_FALSE(resp.decode(r, 3));
}

TEST(generated_encode, ignorable_field_absent_in_version_is_dropped_silently) {
  api_versions_response resp;
  resp.api_keys.push_back({18, 0, 4});
  resp.throttle_time_ms = 10;  // v1+, ignorable
  writer w;
  resp.encode(w, 0);
  EXPECT_TRUE(w.ok());
  EXPECT_EQ(w.bytes(), (std::vector<uint8_t>{0, 0, 0, 0, 0, 1, 0, 18, 0, 0, 0, 4}));
}

TEST(generated_encode, non_ignorable_field_absent_in_version_fails_the_writer) {
  // include_topic_authorized_operations exists from metadata v8 and is not ignorable.
  ASSERT_LE(metadata_request::min_version, 7);
  metadata_request req;
  writer with_default;
  req.encode(with_default, 7);
  EXPECT_TRUE(with_default.ok());
  req.include_topic_authorized_operations = true;
  writer w;
  req.encode(w, 7);
  EXPECT_FALSE(w.ok());
  writer fine;
  req.encode(fine, 8);
  EXPECT_TRUE(fine.ok());
}

TEST(generated_encode, unsupported_version_fails_the_writer) {
  request_header h;
  writer bad;
  h.encode(bad, 3);
  EXPECT_FALSE(bad.ok());
  EXPECT_TRUE(bad.bytes().empty());
}

}  // namespace
}  // namespace varve::protocol
