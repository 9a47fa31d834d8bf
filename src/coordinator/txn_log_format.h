#pragma once
// Records of the internal topic __transaction_state (docs/format/transaction-state.md).
//
// key   = version int16 (0) | transactional_id string
// value = version int16 (0 written; 0 and 1 read) | producer_id int64 |
//         producer_epoch int16 | transaction_timeout_ms int32 | transaction_status int8 |
//         transaction_partitions nullable array of { topic string, partition_ids [int32] } |
//         transaction_last_update_timestamp_ms int64 | transaction_start_timestamp_ms int64
// Version 1 is flexible (compact strings/arrays, a tagged-field section after each struct)
// and may carry tagged fields 0 previous_producer_id int64, 1 next_producer_id int64,
// 2 client_transaction_version int16; unknown tags are skipped.
// A null value (tombstone) removes the transactional id. Empty transactions are written
// with a null partition array, as Kafka does.
//
// Thread-safety: pure functions.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/txn_state.h"

namespace varve::coordinator {

inline constexpr std::string_view kTransactionStateTopic = "__transaction_state";
inline constexpr int16_t kTxnKeyVersion = 0;
inline constexpr int16_t kTxnValueVersion = 0;     // written
inline constexpr int16_t kTxnValueMaxVersion = 1;  // read

// Kafka's transactional id → __transaction_state partition: the same rule as groups,
// (Java String.hashCode & 0x7fffffff) % num_partitions.
int32_t txn_partition_for(std::string_view transactional_id, int32_t num_partitions);

struct txn_log_value {
  int64_t producer_id = kNoProducerId;
  int16_t producer_epoch = kNoProducerEpoch;
  int32_t timeout_ms = 0;
  txn_state state = txn_state::empty;
  std::set<txn_partition> partitions;
  int64_t last_update_timestamp_ms = -1;
  int64_t start_timestamp_ms = -1;
  // Tagged fields of value version 1 (defaults when absent or version 0).
  int64_t previous_producer_id = kNoProducerId;
  int64_t next_producer_id = kNoProducerId;
  int16_t client_transaction_version = 0;

  bool operator==(const txn_log_value&) const = default;
};

std::vector<uint8_t> encode_txn_key(std::string_view transactional_id);
// nullopt if malformed, truncated, of another key version or followed by extra bytes.
std::optional<std::string> decode_txn_key(std::span<const uint8_t> bytes);

// Writes value version kTxnValueVersion. The state must be one that is ever persisted
// (anything but PrepareEpochFence and Dead).
std::vector<uint8_t> encode_txn_value(const txn_log_value& v);
// Versions 0 and 1. nullopt if malformed or truncated, of an unknown version, with an
// unknown transaction_status, or with a status that is never persisted (Dead,
// PrepareEpochFence).
std::optional<txn_log_value> decode_txn_value(std::span<const uint8_t> bytes);

// Conversions between the coordinator's metadata and the log record. last_producer_epoch
// is not persisted (it comes back as kNoProducerEpoch); last_producer_id travels as
// previous_producer_id when read from a version 1 record.
txn_log_value to_log_value(const txn_metadata& m);
txn_metadata from_log_value(std::string transactional_id, const txn_log_value& v);

}  // namespace varve::coordinator
