#pragma once
// Kafka wire primitives: the bounds-checked reader and the splice-aware writer that the
// generated message code (build/generated/protocol/, see docs/protocol-definitions.md) is
// built on.
//
// Encoding facts (Kafka protocol guide): integers are big-endian; "unsigned varint" is
// LEB128 (7 bits per byte, low group first) of a uint32, at most 5 bytes; "varint" and
// "varlong" are zigzag-encoded int32/int64. Classic strings have an int16 length (-1 =
// null), classic bytes/arrays/records an int32 length (-1 = null). Compact (flexible
// version) strings/bytes/arrays/records have an unsigned varint length+1 (0 = null).
//
// Thread-safety: a reader or writer is used by one thread at a time. `records` values are
// immutable views once built and may be shared read-only across threads.
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/bytes.h"

namespace varve::protocol {

// Kafka's 128-bit UUID (topic ids). The all-zero value is Kafka's "ZERO_UUID".
struct uuid {
  std::array<uint8_t, 16> bytes{};

  bool is_zero() const;
  static uuid zero() { return uuid{}; }
  bool operator==(const uuid&) const = default;
};

// A zero-copy view of a record-batch payload (the `records` type of the protocol).
//
// Decoding yields one buffer_slice into the request frame; encoding accepts any mix of memory
// slices and file regions, which the writer splices into the output without copying. A
// records value is either null (Kafka's null records, the default) or a sequence of chunks
// (possibly empty). Appending makes it non-null.
class records {
 public:
  records() = default;

  bool is_null() const { return null_; }
  void set_null();
  // Non-null and zero bytes.
  static records empty();
  static records from_bytes(std::vector<uint8_t> bytes);
  static records from_slice(buffer_slice slice);

  size_t size_bytes() const { return size_; }
  void append(buffer_slice slice);
  void append(file_region region);
  const std::vector<byte_chunk>& chunks() const { return chunks_; }

  // True when the content is one memory slice (or empty); always true for decoded values.
  bool is_contiguous() const;
  // The bytes when is_contiguous(); an empty span otherwise.
  std::span<const uint8_t> contiguous() const;

  // Copies every chunk (file regions read with pread) into one vector. For tests and tools.
  std::vector<uint8_t> to_vector() const;

  // Equal when both are null, or both are non-null with the same content. Reads file regions;
  // meant for tests, not the data path.
  bool operator==(const records& other) const;

 private:
  std::vector<byte_chunk> chunks_;
  size_t size_ = 0;
  bool null_ = true;
};

// Reads Kafka primitives from a span. Every read is bounds-checked: on short or invalid input
// the reader enters the failed state (ok() == false), returns zero/empty values, and all later
// reads fail too. Nothing throws and no allocation exceeds the remaining input size.
//
// `owner` keeps the underlying frame alive; decoded `records` reference the frame through it
// instead of copying. When owner is null, decoded records are copied.
class reader {
 public:
  explicit reader(std::span<const uint8_t> data, std::shared_ptr<const void> owner = {})
      : data_(data), owner_(std::move(owner)) {}

  bool ok() const { return ok_; }
  void fail() { ok_ = false; }
  size_t position() const { return pos_; }
  size_t remaining() const { return ok_ ? data_.size() - pos_ : 0; }

  int8_t read_int8();
  int16_t read_int16();
  int32_t read_int32();
  int64_t read_int64();
  uint16_t read_uint16();
  uint32_t read_uint32();
  double read_float64();
  bool read_bool();  // any non-zero byte is true, as in Kafka
  uuid read_uuid();

  uint32_t read_unsigned_varint();  // at most 5 bytes, value must fit 32 bits
  int32_t read_varint();            // zigzag
  int64_t read_varlong();           // zigzag, at most 10 bytes

  // Non-nullable string: a null length is invalid input.
  std::string read_string(bool compact);
  std::optional<std::string> read_nullable_string(bool compact);
  std::vector<uint8_t> read_bytes(bool compact);
  std::optional<std::vector<uint8_t>> read_nullable_bytes(bool compact);
  // A null length yields a null records; callers reject it where the field is not nullable.
  records read_records(bool compact);

  // Element count of an array, or -1 for a null array. Fails if the count exceeds the bytes
  // remaining (every element takes at least one byte in practice), so a hostile count can
  // never drive a large allocation.
  int32_t read_array_length(bool compact);

  // Advances n bytes (fails if fewer remain).
  void skip(size_t n);

  // Reads a tagged-field section and skips every field in it (for structs with no known
  // tags). Generated code reads sections with known tags itself.
  void skip_tagged_fields();

 private:
  // Returns a pointer to the next n bytes and advances, or nullptr (and fails).
  const uint8_t* take(size_t n);
  // Length prefix of a string/bytes/records: -1 for null, -2 after failure.
  int64_t read_length(bool compact, bool int16_length);

  std::span<const uint8_t> data_;
  std::shared_ptr<const void> owner_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// Builds an encoded message. Plain values go into bytes(); the chunks of non-empty `records`
// values that are file regions or large memory slices are not copied but recorded as splices:
// {offset into bytes(), chunk} means "the chunk goes here, before bytes()[offset]". Splices
// are kept in offset order. The network layer sends bytes[0..a), chunk, bytes[a..b), ...
//
// A writer also has a failed flag: generated encoders set it when asked to write a value the
// version cannot represent (a non-default, non-ignorable field absent in that version). The
// bytes are still well-formed (the field is dropped); ok() lets callers detect the bug.
class writer {
 public:
  // Memory slices smaller than this are copied into bytes() rather than spliced.
  static constexpr size_t kInlineSliceLimit = 512;

  writer() = default;

  bool ok() const { return ok_; }
  void fail() { ok_ = false; }

  void write_int8(int8_t v) { bytes_.push_back(static_cast<uint8_t>(v)); }
  void write_int16(int16_t v) { write_uint16(static_cast<uint16_t>(v)); }
  void write_int32(int32_t v) { write_uint32(static_cast<uint32_t>(v)); }
  void write_int64(int64_t v);
  void write_uint16(uint16_t v);
  void write_uint32(uint32_t v);
  void write_float64(double v);
  void write_bool(bool v) { bytes_.push_back(v ? 1 : 0); }
  void write_uuid(const uuid& v);

  void write_unsigned_varint(uint32_t v);
  void write_varint(int32_t v);
  void write_varlong(int64_t v);

  void write_string(std::string_view s, bool compact);
  // Writes the null marker when `s` is nullopt.
  void write_nullable_string(const std::optional<std::string>& s, bool compact);
  void write_bytes(std::span<const uint8_t> b, bool compact);
  void write_nullable_bytes(const std::optional<std::vector<uint8_t>>& b, bool compact);
  // A null `r` is written as null when `nullable`, else as zero bytes.
  void write_records(const records& r, bool compact, bool nullable);
  void write_array_length(size_t n, bool compact);
  void write_null_array(bool compact);
  void write_raw(std::span<const uint8_t> b) { bytes_.insert(bytes_.end(), b.begin(), b.end()); }

  // Moves `other`'s output (bytes and splices) to the end of this writer.
  void append(writer&& other);

  // Overwrites 4 bytes at `pos` of bytes() (e.g. the frame length prefix).
  void patch_int32(size_t pos, int32_t v);

  size_t total_size() const { return bytes_.size() + splice_bytes_; }
  std::vector<uint8_t>& bytes() { return bytes_; }
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  const std::vector<std::pair<size_t, byte_chunk>>& splices() const { return splices_; }

  // The whole output as one vector, splices read in place (file regions with pread).
  std::vector<uint8_t> flatten() const;

 private:
  void write_length(int64_t len, bool compact, bool int16_length);

  std::vector<uint8_t> bytes_;
  std::vector<std::pair<size_t, byte_chunk>> splices_;
  size_t splice_bytes_ = 0;
  bool ok_ = true;
};

// Copies the bytes of one chunk (pread for file regions). Short reads yield fewer bytes.
std::vector<uint8_t> read_chunk(const byte_chunk& chunk);

}  // namespace varve::protocol
