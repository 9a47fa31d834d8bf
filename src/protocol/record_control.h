#pragma once
// Control records of record batch v2: the transaction markers (COMMIT/ABORT) a partition
// leader writes when the transaction coordinator ends a transaction (WriteTxnMarkers).
//
// A control batch has attributes bit 5 (0x20) set, and for transaction markers also bit 4
// (0x10, transactional); it holds exactly one record whose
//   key   = version:int16 (0)  type:int16 (0 = ABORT, 1 = COMMIT)
//   value = version:int16 (0)  coordinator_epoch:int32
// all big-endian. docs/format/txn-index.md describes how the storage layer uses them.
//
// These functions are pure (no state); safe from any thread.
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "protocol/record_batch.h"

namespace varve::protocol {

enum class control_record_type : int16_t {
  abort = 0,
  commit = 1,
};

struct txn_marker {
  control_record_type type = control_record_type::abort;
  int32_t coordinator_epoch = -1;
};

// Encodes the key/value of a marker record.
std::vector<uint8_t> encode_txn_marker_key(control_record_type type);
std::vector<uint8_t> encode_txn_marker_value(int32_t coordinator_epoch);

// Decodes the marker of a control batch (`batch` = one whole batch, framing already checked
// by validate_batch). nullopt if the batch is not a control batch, does not hold exactly one
// record, the key has a negative version or a type other than ABORT/COMMIT (e.g. KRaft's
// LEADER_CHANGE), or key/value are too short. Newer key/value versions are accepted: only
// their leading fields are read, as Kafka does.
std::optional<txn_marker> parse_txn_marker(std::span<const uint8_t> batch);

// Builds the control batch a leader appends for WriteTxnMarkers: base offset 0 (the log
// assigns it), transactional + control attributes, base_sequence -1, one record with
// `timestamp`.
std::vector<uint8_t> build_txn_marker_batch(int64_t producer_id, int16_t producer_epoch,
                                            const txn_marker& marker, int64_t timestamp);

}  // namespace varve::protocol
