#include "protocol/wire.h"

#include <unistd.h>

#include <bit>
#include <cassert>
#include <cstring>

namespace varve::protocol {

bool uuid::is_zero() const {
  for (uint8_t b : bytes) {
    if (b != 0) return false;
  }
  return true;
}

// ---- records ----

void records::set_null() {
  chunks_.clear();
  size_ = 0;
  null_ = true;
}

records records::empty() {
  records r;
  r.null_ = false;
  return r;
}

records records::from_bytes(std::vector<uint8_t> bytes) {
  auto buf = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  return from_slice(buffer_slice{buf, buf->data(), buf->size()});
}

records records::from_slice(buffer_slice slice) {
  records r = empty();
  r.append(std::move(slice));
  return r;
}

void records::append(buffer_slice slice) {
  null_ = false;
  if (slice.size == 0) return;
  size_ += slice.size;
  chunks_.emplace_back(std::move(slice));
}

void records::append(file_region region) {
  null_ = false;
  if (region.size == 0) return;
  size_ += region.size;
  chunks_.emplace_back(std::move(region));
}

bool records::is_contiguous() const {
  return chunks_.empty() ||
         (chunks_.size() == 1 && std::holds_alternative<buffer_slice>(chunks_[0]));
}

std::span<const uint8_t> records::contiguous() const {
  if (chunks_.size() == 1) {
    if (const auto* s = std::get_if<buffer_slice>(&chunks_[0])) return s->span();
  }
  return {};
}

std::vector<uint8_t> read_chunk(const byte_chunk& chunk) {
  if (const auto* s = std::get_if<buffer_slice>(&chunk)) {
    return std::vector<uint8_t>(s->data, s->data + s->size);
  }
  const auto& region = std::get<file_region>(chunk);
  std::vector<uint8_t> out(region.size);
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(region.file->fd(), out.data() + done, out.size() - done,
                        static_cast<off_t>(region.position + done));
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

std::vector<uint8_t> records::to_vector() const {
  std::vector<uint8_t> out;
  out.reserve(size_);
  for (const auto& c : chunks_) {
    auto part = read_chunk(c);
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

bool records::operator==(const records& other) const {
  if (null_ != other.null_) return false;
  if (null_) return true;
  if (size_ != other.size_) return false;
  return to_vector() == other.to_vector();
}

// ---- reader ----

const uint8_t* reader::take(size_t n) {
  if (!ok_ || data_.size() - pos_ < n) {
    ok_ = false;
    return nullptr;
  }
  const uint8_t* p = data_.data() + pos_;
  pos_ += n;
  return p;
}

void reader::skip(size_t n) { take(n); }

void reader::skip_tagged_fields() {
  uint32_t count = read_unsigned_varint();
  for (uint32_t i = 0; i < count && ok_; ++i) {
    read_unsigned_varint();  // tag
    uint32_t size = read_unsigned_varint();
    skip(size);
  }
}

namespace {
uint64_t load_be(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}
}  // namespace

int8_t reader::read_int8() {
  const uint8_t* p = take(1);
  return p ? static_cast<int8_t>(p[0]) : 0;
}
int16_t reader::read_int16() { return static_cast<int16_t>(read_uint16()); }
int32_t reader::read_int32() { return static_cast<int32_t>(read_uint32()); }
int64_t reader::read_int64() {
  const uint8_t* p = take(8);
  return p ? static_cast<int64_t>(load_be(p, 8)) : 0;
}
uint16_t reader::read_uint16() {
  const uint8_t* p = take(2);
  return p ? static_cast<uint16_t>(load_be(p, 2)) : 0;
}
uint32_t reader::read_uint32() {
  const uint8_t* p = take(4);
  return p ? static_cast<uint32_t>(load_be(p, 4)) : 0;
}
double reader::read_float64() {
  return std::bit_cast<double>(static_cast<uint64_t>(read_int64()));
}
bool reader::read_bool() { return read_int8() != 0; }

uuid reader::read_uuid() {
  uuid u;
  const uint8_t* p = take(16);
  if (p) std::memcpy(u.bytes.data(), p, 16);
  return u;
}

uint32_t reader::read_unsigned_varint() {
  uint32_t value = 0;
  for (int i = 0; i < 5; ++i) {
    const uint8_t* p = take(1);
    if (!p) return 0;
    uint8_t b = *p;
    if (i == 4 && b > 0x0f) break;  // more than 32 bits or a sixth byte
    value |= static_cast<uint32_t>(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) return value;
  }
  ok_ = false;
  return 0;
}

int32_t reader::read_varint() {
  uint32_t raw = read_unsigned_varint();
  return static_cast<int32_t>((raw >> 1) ^ (~(raw & 1) + 1));
}

int64_t reader::read_varlong() {
  uint64_t raw = 0;
  for (int i = 0; i < 10; ++i) {
    const uint8_t* p = take(1);
    if (!p) return 0;
    uint8_t b = *p;
    if (i == 9 && b > 0x01) break;  // more than 64 bits
    raw |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) return static_cast<int64_t>((raw >> 1) ^ (~(raw & 1) + 1));
  }
  ok_ = false;
  return 0;
}

int64_t reader::read_length(bool compact, bool int16_length) {
  int64_t len;
  if (compact) {
    len = static_cast<int64_t>(read_unsigned_varint()) - 1;
  } else if (int16_length) {
    len = read_int16();
  } else {
    len = read_int32();
  }
  if (!ok_) return -2;
  if (len < -1 || (len > 0 && static_cast<uint64_t>(len) > remaining())) {
    ok_ = false;
    return -2;
  }
  return len;
}

std::optional<std::string> reader::read_nullable_string(bool compact) {
  int64_t len = read_length(compact, /*int16_length=*/true);
  if (len < 0) return std::nullopt;
  const uint8_t* p = take(static_cast<size_t>(len));
  if (!p) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
}

std::string reader::read_string(bool compact) {
  int64_t len = read_length(compact, /*int16_length=*/true);
  if (len < 0) {
    ok_ = false;
    return {};
  }
  const uint8_t* p = take(static_cast<size_t>(len));
  if (!p) return {};
  return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
}

std::optional<std::vector<uint8_t>> reader::read_nullable_bytes(bool compact) {
  int64_t len = read_length(compact, /*int16_length=*/false);
  if (len < 0) return std::nullopt;
  const uint8_t* p = take(static_cast<size_t>(len));
  if (!p) return std::nullopt;
  return std::vector<uint8_t>(p, p + len);
}

std::vector<uint8_t> reader::read_bytes(bool compact) {
  auto b = read_nullable_bytes(compact);
  if (!b) {
    ok_ = false;
    return {};
  }
  return std::move(*b);
}

records reader::read_records(bool compact) {
  records r;
  int64_t len = read_length(compact, /*int16_length=*/false);
  if (len < 0) return r;
  const uint8_t* p = take(static_cast<size_t>(len));
  if (!p) return r;
  std::span<const uint8_t> bytes(p, static_cast<size_t>(len));
  if (owner_) {
    return records::from_slice(buffer_slice{owner_, bytes.data(), bytes.size()});
  }
  return records::from_slice(buffer_slice::copy_of(bytes));
}

int32_t reader::read_array_length(bool compact) {
  int64_t n;
  if (compact) {
    n = static_cast<int64_t>(read_unsigned_varint()) - 1;
  } else {
    n = read_int32();
  }
  if (!ok_) return 0;
  if (n < -1 || (n > 0 && static_cast<uint64_t>(n) > remaining())) {
    ok_ = false;
    return 0;
  }
  return static_cast<int32_t>(n);
}

// ---- writer ----

void writer::write_uint16(uint16_t v) {
  bytes_.push_back(static_cast<uint8_t>(v >> 8));
  bytes_.push_back(static_cast<uint8_t>(v));
}

void writer::write_uint32(uint32_t v) {
  uint8_t b[4] = {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
                  static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
  bytes_.insert(bytes_.end(), b, b + 4);
}

void writer::write_int64(int64_t v) {
  uint64_t u = static_cast<uint64_t>(v);
  uint8_t b[8];
  for (int i = 7; i >= 0; --i) {
    b[i] = static_cast<uint8_t>(u);
    u >>= 8;
  }
  bytes_.insert(bytes_.end(), b, b + 8);
}

void writer::write_float64(double v) { write_int64(std::bit_cast<int64_t>(v)); }

void writer::write_uuid(const uuid& v) { write_raw(v.bytes); }

void writer::write_unsigned_varint(uint32_t v) {
  while (v >= 0x80) {
    bytes_.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  bytes_.push_back(static_cast<uint8_t>(v));
}

void writer::write_varint(int32_t v) {
  uint32_t u = static_cast<uint32_t>(v);
  write_unsigned_varint((u << 1) ^ static_cast<uint32_t>(v >> 31));
}

void writer::write_varlong(int64_t v) {
  uint64_t u = (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
  while (u >= 0x80) {
    bytes_.push_back(static_cast<uint8_t>(u | 0x80));
    u >>= 7;
  }
  bytes_.push_back(static_cast<uint8_t>(u));
}

void writer::write_length(int64_t len, bool compact, bool int16_length) {
  if (compact) {
    write_unsigned_varint(static_cast<uint32_t>(len + 1));
  } else if (int16_length) {
    write_int16(static_cast<int16_t>(len));
  } else {
    write_int32(static_cast<int32_t>(len));
  }
}

void writer::write_string(std::string_view s, bool compact) {
  write_length(static_cast<int64_t>(s.size()), compact, /*int16_length=*/true);
  bytes_.insert(bytes_.end(), s.begin(), s.end());
}

void writer::write_nullable_string(const std::optional<std::string>& s, bool compact) {
  if (!s) {
    write_length(-1, compact, /*int16_length=*/true);
  } else {
    write_string(*s, compact);
  }
}

void writer::write_bytes(std::span<const uint8_t> b, bool compact) {
  write_length(static_cast<int64_t>(b.size()), compact, /*int16_length=*/false);
  write_raw(b);
}

void writer::write_nullable_bytes(const std::optional<std::vector<uint8_t>>& b, bool compact) {
  if (!b) {
    write_length(-1, compact, /*int16_length=*/false);
  } else {
    write_bytes(*b, compact);
  }
}

void writer::write_records(const records& r, bool compact, bool nullable) {
  if (r.is_null()) {
    write_length(nullable ? -1 : 0, compact, /*int16_length=*/false);
    return;
  }
  write_length(static_cast<int64_t>(r.size_bytes()), compact, /*int16_length=*/false);
  for (const auto& c : r.chunks()) {
    const auto* s = std::get_if<buffer_slice>(&c);
    if (s && s->size < kInlineSliceLimit) {
      write_raw(s->span());
      continue;
    }
    splices_.emplace_back(bytes_.size(), c);
    splice_bytes_ += chunk_size(c);
  }
}

void writer::write_array_length(size_t n, bool compact) {
  if (compact) {
    write_unsigned_varint(static_cast<uint32_t>(n + 1));
  } else {
    write_int32(static_cast<int32_t>(n));
  }
}

void writer::write_null_array(bool compact) {
  if (compact) {
    write_unsigned_varint(0);
  } else {
    write_int32(-1);
  }
}

void writer::append(writer&& other) {
  size_t base = bytes_.size();
  for (auto& [offset, chunk] : other.splices_) {
    splices_.emplace_back(base + offset, std::move(chunk));
  }
  splice_bytes_ += other.splice_bytes_;
  bytes_.insert(bytes_.end(), other.bytes_.begin(), other.bytes_.end());
  if (!other.ok_) ok_ = false;
  other.bytes_.clear();
  other.splices_.clear();
  other.splice_bytes_ = 0;
}

void writer::patch_int32(size_t pos, int32_t v) {
  uint32_t u = static_cast<uint32_t>(v);
  assert(pos + 4 <= bytes_.size());
  bytes_[pos] = static_cast<uint8_t>(u >> 24);
  bytes_[pos + 1] = static_cast<uint8_t>(u >> 16);
  bytes_[pos + 2] = static_cast<uint8_t>(u >> 8);
  bytes_[pos + 3] = static_cast<uint8_t>(u);
}

std::vector<uint8_t> writer::flatten() const {
  std::vector<uint8_t> out;
  out.reserve(total_size());
  size_t done = 0;
  for (const auto& [offset, chunk] : splices_) {
    out.insert(out.end(), bytes_.begin() + static_cast<ptrdiff_t>(done),
               bytes_.begin() + static_cast<ptrdiff_t>(offset));
    done = offset;
    auto part = read_chunk(chunk);
    out.insert(out.end(), part.begin(), part.end());
  }
  out.insert(out.end(), bytes_.begin() + static_cast<ptrdiff_t>(done), bytes_.end());
  return out;
}

}  // namespace varve::protocol
