#include "protocol/record_control.h"

namespace varve::protocol {

namespace {

constexpr int16_t kMarkerKeyVersion = 0;
constexpr int16_t kMarkerValueVersion = 0;
constexpr size_t kMarkerKeySize = 4;    // version, type
constexpr size_t kMarkerValueSize = 6;  // version, coordinator_epoch

void put16(std::vector<uint8_t>* out, int16_t v) {
  out->push_back(static_cast<uint8_t>(static_cast<uint16_t>(v) >> 8));
  out->push_back(static_cast<uint8_t>(v));
}

int16_t get16(const std::vector<uint8_t>& in, size_t pos) {
  return static_cast<int16_t>((uint16_t{in[pos]} << 8) | in[pos + 1]);
}

}  // namespace

std::vector<uint8_t> encode_txn_marker_key(control_record_type type) {
  std::vector<uint8_t> out;
  put16(&out, kMarkerKeyVersion);
  put16(&out, static_cast<int16_t>(type));
  return out;
}

std::vector<uint8_t> encode_txn_marker_value(int32_t coordinator_epoch) {
  std::vector<uint8_t> out;
  put16(&out, kMarkerValueVersion);
  const auto e = static_cast<uint32_t>(coordinator_epoch);
  put16(&out, static_cast<int16_t>(e >> 16));
  put16(&out, static_cast<int16_t>(e & 0xffff));
  return out;
}

std::optional<txn_marker> parse_txn_marker(std::span<const uint8_t> batch) {
  auto header = parse_batch_header(batch);
  if (!header || !header->is_control() || header->records_count != 1) return std::nullopt;
  std::vector<record> records;
  // A marker is a few dozen bytes; bound any decompression tightly.
  if (!decode_records(batch, &records, 64 * 1024) || records.size() != 1) return std::nullopt;
  const auto& r = records.front();
  if (!r.key || r.key->size() < kMarkerKeySize) return std::nullopt;
  const int16_t key_version = get16(*r.key, 0);
  const int16_t type = get16(*r.key, 2);
  if (key_version < 0) return std::nullopt;
  if (type != static_cast<int16_t>(control_record_type::abort) &&
      type != static_cast<int16_t>(control_record_type::commit)) {
    return std::nullopt;
  }
  if (!r.value || r.value->size() < kMarkerValueSize) return std::nullopt;
  const int16_t value_version = get16(*r.value, 0);
  if (value_version < 0) return std::nullopt;
  txn_marker m;
  m.type = static_cast<control_record_type>(type);
  m.coordinator_epoch =
      static_cast<int32_t>((uint32_t{static_cast<uint16_t>(get16(*r.value, 2))} << 16) |
                           static_cast<uint16_t>(get16(*r.value, 4)));
  return m;
}

std::vector<uint8_t> build_txn_marker_batch(int64_t producer_id, int16_t producer_epoch,
                                            const txn_marker& marker, int64_t timestamp) {
  record r;
  r.timestamp = timestamp;
  r.key = encode_txn_marker_key(marker.type);
  r.value = encode_txn_marker_value(marker.coordinator_epoch);
  batch_builder_options options;
  options.producer_id = producer_id;
  options.producer_epoch = producer_epoch;
  options.base_sequence = -1;
  options.transactional = true;
  options.control = true;
  return build_batch({r}, options);
}

}  // namespace varve::protocol
