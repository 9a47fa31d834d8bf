#pragma once
// Record batch v2 (magic 2): the unit Varve stores and serves verbatim.
//
// Layout (big-endian), see docs/format/record-batch.md:
//   0 base_offset int64 | 8 batch_length int32 (bytes after this field)
//  12 partition_leader_epoch int32 | 16 magic int8 | 17 crc uint32 (CRC-32C of bytes 21..end)
//  21 attributes int16 | 23 last_offset_delta int32 | 27 base_timestamp int64
//  35 max_timestamp int64 | 43 producer_id int64 | 51 producer_epoch int16
//  53 base_sequence int32 | 57 records_count int32 | 61 records...
//
// base_offset and partition_leader_epoch lie outside the CRC, so the broker can assign them
// without recomputing it; max_timestamp (LogAppendTime) lies inside, so it needs a new CRC.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace varve::protocol {

inline constexpr size_t kRecordBatchHeaderSize = 61;
inline constexpr size_t kBatchLengthOffset = 8;
inline constexpr size_t kLogOverhead = 12;  // base_offset + batch_length
inline constexpr size_t kPartitionLeaderEpochOffset = 12;
inline constexpr size_t kMagicOffset = 16;
inline constexpr size_t kCrcOffset = 17;
inline constexpr size_t kAttributesOffset = 21;
inline constexpr size_t kMaxTimestampOffset = 35;
inline constexpr int8_t kMagicV2 = 2;

enum class compression_type : int8_t { none = 0, gzip = 1, snappy = 2, lz4 = 3, zstd = 4 };
enum class timestamp_type : int8_t { create_time = 0, log_append_time = 1 };

struct record_batch_header {
  int64_t base_offset = 0;
  int32_t batch_length = 0;
  int32_t partition_leader_epoch = -1;
  int8_t magic = kMagicV2;
  uint32_t crc = 0;
  int16_t attributes = 0;
  int32_t last_offset_delta = 0;
  int64_t base_timestamp = 0;
  int64_t max_timestamp = 0;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  int32_t base_sequence = -1;
  int32_t records_count = 0;

  compression_type compression() const { return static_cast<compression_type>(attributes & 0x07); }
  timestamp_type ts_type() const {
    return (attributes & 0x08) ? timestamp_type::log_append_time : timestamp_type::create_time;
  }
  bool is_transactional() const { return attributes & 0x10; }
  bool is_control() const { return attributes & 0x20; }
  int64_t last_offset() const { return base_offset + last_offset_delta; }
  // Bytes this batch occupies on the wire and on disk.
  size_t total_size() const { return kLogOverhead + static_cast<size_t>(batch_length); }
  int32_t last_sequence() const;  // base_sequence + last_offset_delta, wrapping at INT32_MAX
};

// Parses the fixed header. Returns nullopt if fewer than kRecordBatchHeaderSize bytes.
// Does not validate anything else.
std::optional<record_batch_header> parse_batch_header(std::span<const uint8_t> bytes);

enum class batch_error : uint8_t {
  none,
  truncated,            // fewer bytes than the header or batch_length says
  bad_length,           // batch_length smaller than the header or over the limit
  unsupported_magic,    // magic != 2
  crc_mismatch,         // CRC-32C over attributes..end differs
  bad_record_count,     // records_count < 0 or inconsistent with last_offset_delta
  invalid_record,       // a record inside (uncompressed) is malformed
};

std::string_view batch_error_name(batch_error e);

// Checks that `bytes` starts with one complete, well-formed v2 batch: length, magic, CRC,
// records_count vs last_offset_delta. For uncompressed batches it also walks the records
// (varint lengths, offset deltas 0..last_offset_delta, count). Compressed batches are not
// decompressed. On success `*header` holds the parsed header.
batch_error validate_batch(std::span<const uint8_t> bytes, record_batch_header* header);

// CRC-32C of bytes[kAttributesOffset .. total_size).
uint32_t compute_batch_crc(std::span<const uint8_t> batch);

// In-place rewrites on a batch already validated.
void set_base_offset(std::span<uint8_t> batch, int64_t base_offset);
void set_partition_leader_epoch(std::span<uint8_t> batch, int32_t epoch);
// Sets the timestamp-type bit to LogAppendTime and max_timestamp to `ts`; recomputes the CRC.
void set_log_append_time(std::span<uint8_t> batch, int64_t ts);

// One record, decoded (values are copies; used by compaction, tools and tests, never on the
// produce or fetch hot path).
struct record_header {
  std::string key;
  std::optional<std::vector<uint8_t>> value;
};
struct record {
  int64_t offset = 0;
  int64_t timestamp = 0;
  std::optional<std::vector<uint8_t>> key;
  std::optional<std::vector<uint8_t>> value;
  std::vector<record_header> headers;
};

// Decodes every record of one batch (decompressing if needed). Returns false if malformed.
bool decode_records(std::span<const uint8_t> batch, std::vector<record>* out);

// --- Additions by the record-batch implementation (decode bound, sparse builder). ---

// decode_records(batch, out) refuses batches whose records decompress to more than this.
inline constexpr size_t kDefaultMaxDecompressedBatchSize = 256u * 1024 * 1024;

// decode_records with an explicit bound on the decompressed size of the records (a batch
// whose records would decompress beyond it is malformed: decompression bombs fail without
// allocating more than about `max_decompressed` bytes).
// Contract of both overloads: checks framing (length, magic), counts, codec and every record
// (the same rules as validate_batch) but not the CRC, so call validate_batch first when the
// bytes come from outside. Records are appended to `*out`; on failure `*out` is unchanged.
// Timestamps: base_timestamp + delta, or max_timestamp for LogAppendTime batches.
bool decode_records(std::span<const uint8_t> batch, std::vector<record>* out,
                    size_t max_decompressed);

// Builds a batch (base_offset 0) for tests and tools.
struct batch_builder_options {
  compression_type compression = compression_type::none;
  timestamp_type ts_type = timestamp_type::create_time;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  int32_t base_sequence = -1;
  bool transactional = false;
  bool control = false;
  int32_t partition_leader_epoch = -1;
};
// Records get offset deltas 0..n-1 (their `offset` is ignored); base_timestamp is the first
// record's timestamp, max_timestamp the largest. Compresses with options.compression.
std::vector<uint8_t> build_batch(const std::vector<record>& records,
                                 const batch_builder_options& options);

// Like build_batch but keeps each record's `offset` (as compaction leaves a batch): the batch
// gets `base_offset` and `last_offset_delta`, each record the delta record.offset -
// base_offset. Requires offsets strictly increasing within [base_offset, base_offset +
// last_offset_delta]. An empty `records` gives an empty batch (records_count 0) that keeps
// its offset range, as Kafka retains for producer state.
std::vector<uint8_t> build_batch_with_offsets(const std::vector<record>& records,
                                              const batch_builder_options& options,
                                              int64_t base_offset, int32_t last_offset_delta);

}  // namespace varve::protocol
