#include "protocol/record_batch.h"

#include <algorithm>
#include <cassert>
#include <climits>
#include <cstring>

#include "protocol/compression.h"
#include "protocol/crc32c.h"

namespace varve::protocol {
namespace {

constexpr size_t kMinBatchLength = kRecordBatchHeaderSize - kLogOverhead;  // 49
constexpr size_t kRecordsCountOffset = 57;
constexpr size_t kMinRecordSize = 7;  // 1-byte length, attributes and six 1-byte varints

// ---- big-endian fixed-width fields ---------------------------------------------------------

template <typename T>
T read_be(const uint8_t* p) {
  using U = std::make_unsigned_t<T>;
  U v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v = static_cast<U>((v << 8) | p[i]);
  return static_cast<T>(v);
}

template <typename T>
void write_be(uint8_t* p, T value) {
  using U = std::make_unsigned_t<T>;
  U v = static_cast<U>(value);
  for (size_t i = sizeof(T); i-- > 0;) {
    p[i] = static_cast<uint8_t>(v);
    v = static_cast<U>(v >> 8);
  }
}

template <typename T>
void append_be(std::vector<uint8_t>* out, T value) {
  size_t at = out->size();
  out->resize(at + sizeof(T));
  write_be(out->data() + at, value);
}

// ---- zigzag varints (the record encoding) --------------------------------------------------

// Reads bytes of one record (or of the whole record area) with bounds checks; every failed
// read leaves `ok_` false and later reads fail too.
class record_reader {
 public:
  explicit record_reader(std::span<const uint8_t> data) : data_(data) {}

  size_t remaining() const { return data_.size() - pos_; }
  size_t position() const { return pos_; }
  bool ok() const { return ok_; }

  bool read_varlong(int64_t* out) { return read_zigzag(10, out); }
  bool read_varint(int32_t* out) {
    int64_t v = 0;
    if (!read_zigzag(5, &v)) return false;
    if (v < INT32_MIN || v > INT32_MAX) return fail();
    *out = static_cast<int32_t>(v);
    return true;
  }
  bool read_int8(int8_t* out) {
    if (!ok_ || remaining() < 1) return fail();
    *out = static_cast<int8_t>(data_[pos_++]);
    return true;
  }
  // Takes `n` bytes; `*out` points into the input.
  bool take(size_t n, std::span<const uint8_t>* out) {
    if (!ok_ || remaining() < n) return fail();
    *out = data_.subspan(pos_, n);
    pos_ += n;
    return true;
  }

 private:
  bool fail() {
    ok_ = false;
    return false;
  }
  bool read_zigzag(int max_bytes, int64_t* out) {
    if (!ok_) return false;
    uint64_t raw = 0;
    for (int i = 0; i < max_bytes; ++i) {
      if (pos_ >= data_.size()) return fail();
      uint8_t b = data_[pos_++];
      raw |= uint64_t(b & 0x7F) << (7 * i);
      if (!(b & 0x80)) {
        *out = static_cast<int64_t>(raw >> 1) ^ -static_cast<int64_t>(raw & 1);
        return true;
      }
    }
    return fail();  // too many continuation bytes
  }

  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  bool ok_ = true;
};

void append_varlong(std::vector<uint8_t>* out, int64_t value) {
  uint64_t v = (static_cast<uint64_t>(value) << 1) ^ static_cast<uint64_t>(value >> 63);
  while (v >= 0x80) {
    out->push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<uint8_t>(v));
}

// ---- record walking ------------------------------------------------------------------------

// A record as it lies in the batch; spans point into the record area.
struct raw_record {
  int64_t timestamp_delta = 0;
  int32_t offset_delta = 0;
  std::optional<std::span<const uint8_t>> key;
  std::optional<std::span<const uint8_t>> value;
  struct header {
    std::span<const uint8_t> key;
    std::optional<std::span<const uint8_t>> value;
  };
  std::vector<header> headers;
};

// Reads a varint length followed by that many bytes; -1 means null when `nullable`.
bool read_sized(record_reader* r, bool nullable, std::optional<std::span<const uint8_t>>* out) {
  int32_t len = 0;
  if (!r->read_varint(&len)) return false;
  if (len == -1 && nullable) {
    *out = std::nullopt;
    return true;
  }
  if (len < 0) return false;
  std::span<const uint8_t> bytes;
  if (!r->take(static_cast<size_t>(len), &bytes)) return false;
  *out = bytes;
  return true;
}

// Parses one record body (after its length prefix); the body must be consumed exactly.
bool parse_record_body(std::span<const uint8_t> body, raw_record* rec) {
  record_reader r(body);
  int8_t attributes = 0;
  int32_t header_count = 0;
  if (!r.read_int8(&attributes) || !r.read_varlong(&rec->timestamp_delta) ||
      !r.read_varint(&rec->offset_delta) || !read_sized(&r, true, &rec->key) ||
      !read_sized(&r, true, &rec->value) || !r.read_varint(&header_count)) {
    return false;
  }
  // Each header takes at least two bytes, so a count beyond that is a lie.
  if (header_count < 0 || static_cast<size_t>(header_count) > r.remaining() / 2) return false;
  rec->headers.clear();
  rec->headers.reserve(static_cast<size_t>(header_count));
  for (int32_t i = 0; i < header_count; ++i) {
    std::optional<std::span<const uint8_t>> key;
    raw_record::header h;
    if (!read_sized(&r, false, &key) || !read_sized(&r, true, &h.value)) return false;
    h.key = *key;
    rec->headers.push_back(h);
  }
  return r.remaining() == 0;
}

// Walks the record area of a batch: exactly header.records_count length-prefixed records that
// consume all of `area`, with offset deltas strictly increasing and within
// [0, last_offset_delta]; control batches' records must carry a key of at least 4 bytes
// (version + type). Calls `visit(const raw_record&)` for each; stops on its false.
template <typename Visit>
bool walk_records(std::span<const uint8_t> area, const record_batch_header& h, Visit&& visit) {
  record_reader r(area);
  raw_record rec;
  int64_t previous_delta = -1;
  for (int32_t i = 0; i < h.records_count; ++i) {
    int32_t length = 0;
    if (!r.read_varint(&length) || length < 0) return false;
    std::span<const uint8_t> body;
    if (!r.take(static_cast<size_t>(length), &body)) return false;
    if (!parse_record_body(body, &rec)) return false;
    if (rec.offset_delta <= previous_delta || rec.offset_delta > h.last_offset_delta) return false;
    previous_delta = rec.offset_delta;
    if (h.is_control() && (!rec.key || rec.key->size() < 4)) return false;
    if (!visit(rec)) return false;
  }
  return r.remaining() == 0;
}

// Checks the header fields that do not depend on the records.
batch_error check_counts(const record_batch_header& h) {
  if (h.records_count < 0 || h.last_offset_delta < 0) return batch_error::bad_record_count;
  // Compaction may remove records, so there can be fewer records than offsets, never more.
  if (static_cast<int64_t>(h.records_count) > int64_t{h.last_offset_delta} + 1) {
    return batch_error::bad_record_count;
  }
  return batch_error::none;
}

// Checks framing (length, magic) without the CRC; on success `*h` is the header.
batch_error check_frame(std::span<const uint8_t> bytes, record_batch_header* h) {
  if (bytes.size() < kMagicOffset + 1) return batch_error::truncated;
  // Magic first: legacy (v0/v1) messages keep it at the same offset but are shorter than a
  // v2 header, and deserve their own error rather than bad_length.
  if (static_cast<int8_t>(bytes[kMagicOffset]) != kMagicV2) return batch_error::unsupported_magic;
  int32_t batch_length = read_be<int32_t>(bytes.data() + kBatchLengthOffset);
  if (batch_length < 0 || static_cast<size_t>(batch_length) < kMinBatchLength) {
    return batch_error::bad_length;
  }
  if (bytes.size() - kLogOverhead < static_cast<size_t>(batch_length)) {
    return batch_error::truncated;
  }
  *h = *parse_batch_header(bytes);
  if (static_cast<uint8_t>(h->attributes & 0x07) > static_cast<uint8_t>(compression_type::zstd)) {
    return batch_error::invalid_record;  // unknown codec: the records cannot be read
  }
  return batch_error::none;
}

std::span<const uint8_t> record_area(std::span<const uint8_t> bytes,
                                     const record_batch_header& h) {
  return bytes.subspan(kRecordBatchHeaderSize, h.total_size() - kRecordBatchHeaderSize);
}

// Serialises one record (with its length prefix) to `out`.
void append_record(std::vector<uint8_t>* out, const record& rec, int32_t offset_delta,
                   int64_t timestamp_delta) {
  std::vector<uint8_t> body;
  body.push_back(0);  // record attributes: unused
  append_varlong(&body, timestamp_delta);
  append_varlong(&body, offset_delta);
  auto append_sized = [&body](const std::optional<std::vector<uint8_t>>& v) {
    if (!v) {
      append_varlong(&body, -1);
      return;
    }
    append_varlong(&body, static_cast<int64_t>(v->size()));
    body.insert(body.end(), v->begin(), v->end());
  };
  append_sized(rec.key);
  append_sized(rec.value);
  append_varlong(&body, static_cast<int64_t>(rec.headers.size()));
  for (const auto& hdr : rec.headers) {
    append_varlong(&body, static_cast<int64_t>(hdr.key.size()));
    body.insert(body.end(), hdr.key.begin(), hdr.key.end());
    if (!hdr.value) {
      append_varlong(&body, -1);
    } else {
      append_varlong(&body, static_cast<int64_t>(hdr.value->size()));
      body.insert(body.end(), hdr.value->begin(), hdr.value->end());
    }
  }
  append_varlong(out, static_cast<int64_t>(body.size()));
  out->insert(out->end(), body.begin(), body.end());
}

}  // namespace

int32_t record_batch_header::last_sequence() const {
  if (base_sequence < 0) return base_sequence;  // -1: no sequence (not idempotent)
  if (base_sequence > INT32_MAX - last_offset_delta) {
    return last_offset_delta - (INT32_MAX - base_sequence) - 1;
  }
  return base_sequence + last_offset_delta;
}

std::optional<record_batch_header> parse_batch_header(std::span<const uint8_t> bytes) {
  if (bytes.size() < kRecordBatchHeaderSize) return std::nullopt;
  const uint8_t* p = bytes.data();
  record_batch_header h;
  h.base_offset = read_be<int64_t>(p + 0);
  h.batch_length = read_be<int32_t>(p + 8);
  h.partition_leader_epoch = read_be<int32_t>(p + 12);
  h.magic = static_cast<int8_t>(p[16]);
  h.crc = read_be<uint32_t>(p + 17);
  h.attributes = read_be<int16_t>(p + 21);
  h.last_offset_delta = read_be<int32_t>(p + 23);
  h.base_timestamp = read_be<int64_t>(p + 27);
  h.max_timestamp = read_be<int64_t>(p + 35);
  h.producer_id = read_be<int64_t>(p + 43);
  h.producer_epoch = read_be<int16_t>(p + 51);
  h.base_sequence = read_be<int32_t>(p + 53);
  h.records_count = read_be<int32_t>(p + 57);
  return h;
}

std::string_view batch_error_name(batch_error e) {
  switch (e) {
    case batch_error::none: return "none";
    case batch_error::truncated: return "truncated";
    case batch_error::bad_length: return "bad_length";
    case batch_error::unsupported_magic: return "unsupported_magic";
    case batch_error::crc_mismatch: return "crc_mismatch";
    case batch_error::bad_record_count: return "bad_record_count";
    case batch_error::invalid_record: return "invalid_record";
  }
  return "unknown";
}

batch_error validate_batch(std::span<const uint8_t> bytes, record_batch_header* header) {
  record_batch_header h;
  if (auto e = check_frame(bytes, &h); e != batch_error::none) return e;
  if (compute_batch_crc(bytes) != h.crc) return batch_error::crc_mismatch;
  if (auto e = check_counts(h); e != batch_error::none) return e;
  if (h.compression() == compression_type::none) {
    auto area = record_area(bytes, h);
    // Cheap rejection of a count the bytes cannot hold, before walking.
    if (static_cast<size_t>(h.records_count) > area.size() / kMinRecordSize) {
      return batch_error::invalid_record;
    }
    if (!walk_records(area, h, [](const raw_record&) { return true; })) {
      return batch_error::invalid_record;
    }
  }
  if (header) *header = h;
  return batch_error::none;
}

uint32_t compute_batch_crc(std::span<const uint8_t> batch) {
  assert(batch.size() >= kRecordBatchHeaderSize);
  size_t end = kLogOverhead + static_cast<size_t>(read_be<int32_t>(batch.data() + kBatchLengthOffset));
  assert(end <= batch.size());
  return crc32c_extend(0, batch.data() + kAttributesOffset, end - kAttributesOffset);
}

void set_base_offset(std::span<uint8_t> batch, int64_t base_offset) {
  assert(batch.size() >= kRecordBatchHeaderSize);
  write_be(batch.data(), base_offset);
}

void set_partition_leader_epoch(std::span<uint8_t> batch, int32_t epoch) {
  assert(batch.size() >= kRecordBatchHeaderSize);
  write_be(batch.data() + kPartitionLeaderEpochOffset, epoch);
}

void set_log_append_time(std::span<uint8_t> batch, int64_t ts) {
  assert(batch.size() >= kRecordBatchHeaderSize);
  int16_t attributes = read_be<int16_t>(batch.data() + kAttributesOffset);
  write_be(batch.data() + kAttributesOffset, static_cast<int16_t>(attributes | 0x08));
  write_be(batch.data() + kMaxTimestampOffset, ts);
  write_be(batch.data() + kCrcOffset, compute_batch_crc(batch));
}

bool decode_records(std::span<const uint8_t> batch, std::vector<record>* out) {
  return decode_records(batch, out, kDefaultMaxDecompressedBatchSize);
}

bool decode_records(std::span<const uint8_t> batch, std::vector<record>* out,
                    size_t max_decompressed) {
  record_batch_header h;
  if (check_frame(batch, &h) != batch_error::none) return false;
  if (check_counts(h) != batch_error::none) return false;
  std::span<const uint8_t> area = record_area(batch, h);
  std::vector<uint8_t> decompressed;
  if (h.compression() != compression_type::none) {
    if (!decompress(h.compression(), area, &decompressed, max_decompressed)) return false;
    area = decompressed;
  }
  if (static_cast<size_t>(h.records_count) > area.size() / kMinRecordSize) return false;
  size_t start = out->size();
  out->reserve(start + static_cast<size_t>(h.records_count));
  auto to_vector = [](const std::optional<std::span<const uint8_t>>& s) {
    return s ? std::optional<std::vector<uint8_t>>(std::in_place, s->begin(), s->end())
             : std::nullopt;
  };
  bool ok = walk_records(area, h, [&](const raw_record& raw) {
    record rec;
    // Wrapping arithmetic: base_offset is whatever the bytes say (no UB on hostile input).
    rec.offset = static_cast<int64_t>(static_cast<uint64_t>(h.base_offset) +
                                      static_cast<uint64_t>(int64_t{raw.offset_delta}));
    rec.timestamp = h.ts_type() == timestamp_type::log_append_time
                        ? h.max_timestamp
                        : static_cast<int64_t>(static_cast<uint64_t>(h.base_timestamp) +
                                               static_cast<uint64_t>(raw.timestamp_delta));
    rec.key = to_vector(raw.key);
    rec.value = to_vector(raw.value);
    rec.headers.reserve(raw.headers.size());
    for (const auto& rh : raw.headers) {
      rec.headers.push_back(record_header{std::string(rh.key.begin(), rh.key.end()),
                                          to_vector(rh.value)});
    }
    out->push_back(std::move(rec));
    return true;
  });
  if (!ok) out->resize(start);
  return ok;
}

std::vector<uint8_t> build_batch(const std::vector<record>& records,
                                 const batch_builder_options& options) {
  std::vector<record> dense = records;
  for (size_t i = 0; i < dense.size(); ++i) dense[i].offset = static_cast<int64_t>(i);
  int32_t last_offset_delta = dense.empty() ? 0 : static_cast<int32_t>(dense.size() - 1);
  return build_batch_with_offsets(dense, options, 0, last_offset_delta);
}

std::vector<uint8_t> build_batch_with_offsets(const std::vector<record>& records,
                                              const batch_builder_options& options,
                                              int64_t base_offset, int32_t last_offset_delta) {
  int64_t base_timestamp = records.empty() ? -1 : records.front().timestamp;
  int64_t max_timestamp = -1;
  for (const auto& r : records) max_timestamp = std::max(max_timestamp, r.timestamp);

  std::vector<uint8_t> plain;
  for (const auto& r : records) {
    int64_t delta = r.offset - base_offset;
    assert(delta >= 0 && delta <= last_offset_delta);
    append_record(&plain, r, static_cast<int32_t>(delta),
                  static_cast<int64_t>(static_cast<uint64_t>(r.timestamp) -
                                       static_cast<uint64_t>(base_timestamp)));
  }
  std::vector<uint8_t> out(kRecordBatchHeaderSize);
  bool compressed = compress(options.compression, plain, &out);
  assert(compressed);
  (void)compressed;

  int16_t attributes = static_cast<int16_t>(options.compression);
  if (options.ts_type == timestamp_type::log_append_time) attributes |= 0x08;
  if (options.transactional) attributes |= 0x10;
  if (options.control) attributes |= 0x20;

  uint8_t* p = out.data();
  write_be(p + 0, base_offset);
  write_be(p + 8, static_cast<int32_t>(out.size() - kLogOverhead));
  write_be(p + 12, options.partition_leader_epoch);
  p[16] = static_cast<uint8_t>(kMagicV2);
  write_be(p + 21, attributes);
  write_be(p + 23, last_offset_delta);
  write_be(p + 27, base_timestamp);
  write_be(p + 35, max_timestamp);
  write_be(p + 43, options.producer_id);
  write_be(p + 51, options.producer_epoch);
  write_be(p + 53, options.base_sequence);
  write_be(p + kRecordsCountOffset, static_cast<int32_t>(records.size()));
  write_be(p + kCrcOffset, compute_batch_crc(out));
  return out;
}

}  // namespace varve::protocol
