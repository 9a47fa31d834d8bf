#include "coordinator/txn_log_format.h"

#include <cassert>

#include "coordinator/offsets_format.h"
#include "protocol/wire.h"

namespace varve::coordinator {

namespace {

// Tags of TransactionLogValue version 1.
constexpr uint32_t kTagPreviousProducerId = 0;
constexpr uint32_t kTagNextProducerId = 1;
constexpr uint32_t kTagClientTransactionVersion = 2;

bool is_persisted(txn_state s) {
  return s != txn_state::dead && s != txn_state::prepare_epoch_fence;
}

// Reads the value-level tagged-field section of version 1, keeping the known tags.
void read_value_tags(protocol::reader& r, txn_log_value* v) {
  const uint32_t count = r.read_unsigned_varint();
  for (uint32_t i = 0; i < count && r.ok(); ++i) {
    const uint32_t tag = r.read_unsigned_varint();
    const uint32_t size = r.read_unsigned_varint();
    if (!r.ok() || size > r.remaining()) {
      r.fail();
      return;
    }
    const size_t before = r.position();
    if (tag == kTagPreviousProducerId && size == 8) {
      v->previous_producer_id = r.read_int64();
    } else if (tag == kTagNextProducerId && size == 8) {
      v->next_producer_id = r.read_int64();
    } else if (tag == kTagClientTransactionVersion && size == 2) {
      v->client_transaction_version = r.read_int16();
    } else {
      r.skip(size);
    }
    if (r.ok() && r.position() != before + size) r.fail();
  }
}

}  // namespace

int32_t txn_partition_for(std::string_view transactional_id, int32_t num_partitions) {
  return offsets_partition_for(transactional_id, num_partitions);
}

std::vector<uint8_t> encode_txn_key(std::string_view transactional_id) {
  protocol::writer w;
  w.write_int16(kTxnKeyVersion);
  w.write_string(transactional_id, false);
  return std::move(w.bytes());
}

std::optional<std::string> decode_txn_key(std::span<const uint8_t> bytes) {
  protocol::reader r(bytes);
  if (r.read_int16() != kTxnKeyVersion) return std::nullopt;
  std::string id = r.read_string(false);
  if (!r.ok() || r.remaining() != 0) return std::nullopt;
  return id;
}

std::vector<uint8_t> encode_txn_value(const txn_log_value& v) {
  assert(is_persisted(v.state));
  protocol::writer w;
  w.write_int16(kTxnValueVersion);
  w.write_int64(v.producer_id);
  w.write_int16(v.producer_epoch);
  w.write_int32(v.timeout_ms);
  w.write_int8(static_cast<int8_t>(v.state));
  if (v.state == txn_state::empty) {
    w.write_null_array(false);
  } else {
    // Partitions grouped by topic; the set is ordered by (topic, partition).
    std::vector<std::pair<std::string_view, std::vector<int32_t>>> topics;
    for (const auto& tp : v.partitions) {
      if (topics.empty() || topics.back().first != tp.topic) topics.push_back({tp.topic, {}});
      topics.back().second.push_back(tp.partition);
    }
    w.write_array_length(topics.size(), false);
    for (const auto& [topic, ids] : topics) {
      w.write_string(topic, false);
      w.write_array_length(ids.size(), false);
      for (int32_t id : ids) w.write_int32(id);
    }
  }
  w.write_int64(v.last_update_timestamp_ms);
  w.write_int64(v.start_timestamp_ms);
  return std::move(w.bytes());
}

std::optional<txn_log_value> decode_txn_value(std::span<const uint8_t> bytes) {
  protocol::reader r(bytes);
  const int16_t version = r.read_int16();
  if (!r.ok() || version < 0 || version > kTxnValueMaxVersion) return std::nullopt;
  const bool flexible = version >= 1;
  txn_log_value v;
  v.producer_id = r.read_int64();
  v.producer_epoch = r.read_int16();
  v.timeout_ms = r.read_int32();
  const auto state = txn_state_from_wire(r.read_int8());
  if (!r.ok() || !state || !is_persisted(*state)) return std::nullopt;
  v.state = *state;
  const int32_t topics = r.read_array_length(flexible);
  for (int32_t t = 0; t < topics && r.ok(); ++t) {
    std::string topic = r.read_string(flexible);
    const int32_t ids = r.read_array_length(flexible);
    if (ids < 0) return std::nullopt;  // partition_ids is not nullable
    for (int32_t i = 0; i < ids && r.ok(); ++i) v.partitions.insert({topic, r.read_int32()});
    if (flexible) r.skip_tagged_fields();
  }
  v.last_update_timestamp_ms = r.read_int64();
  v.start_timestamp_ms = r.read_int64();
  if (flexible) read_value_tags(r, &v);
  if (!r.ok() || r.remaining() != 0) return std::nullopt;
  return v;
}

txn_log_value to_log_value(const txn_metadata& m) {
  txn_log_value v;
  v.producer_id = m.producer_id;
  v.producer_epoch = m.producer_epoch;
  v.timeout_ms = m.timeout_ms;
  v.state = m.state;
  v.partitions = m.partitions;
  v.last_update_timestamp_ms = m.last_update_timestamp_ms;
  v.start_timestamp_ms = m.start_timestamp_ms;
  v.previous_producer_id = m.last_producer_id;
  return v;
}

txn_metadata from_log_value(std::string transactional_id, const txn_log_value& v) {
  txn_metadata m;
  m.transactional_id = std::move(transactional_id);
  m.producer_id = v.producer_id;
  m.last_producer_id = v.previous_producer_id;
  m.producer_epoch = v.producer_epoch;
  m.last_producer_epoch = kNoProducerEpoch;
  m.timeout_ms = v.timeout_ms;
  m.state = v.state;
  m.partitions = v.partitions;
  m.last_update_timestamp_ms = v.last_update_timestamp_ms;
  m.start_timestamp_ms = v.start_timestamp_ms;
  return m;
}

}  // namespace varve::coordinator
