#include "coordinator/offsets_format.h"

namespace varve::coordinator {
namespace {

class byte_writer {
 public:
  void i16(int16_t v) { be(static_cast<uint16_t>(v), 2); }
  void i32(int32_t v) { be(static_cast<uint32_t>(v), 4); }
  void i64(int64_t v) { be(static_cast<uint64_t>(v), 8); }
  void str(std::string_view s) {
    i16(static_cast<int16_t>(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
  }
  std::vector<uint8_t> take() { return std::move(out_); }

 private:
  void be(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
};

class byte_reader {
 public:
  explicit byte_reader(std::span<const uint8_t> b) : b_(b) {}
  bool ok() const { return ok_; }
  size_t remaining() const { return ok_ ? b_.size() - pos_ : 0; }
  int16_t i16() { return static_cast<int16_t>(be(2)); }
  int32_t i32() { return static_cast<int32_t>(be(4)); }
  int64_t i64() { return static_cast<int64_t>(be(8)); }
  std::string str() {
    const int16_t n = i16();
    if (!ok_ || n < 0 || pos_ + n > b_.size()) {
      ok_ = false;
      return {};
    }
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  // Unsigned varint (flexible versions: string lengths + 1, tagged field counts).
  uint64_t uvarint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= b_.size()) break;
      const uint8_t c = b_[pos_++];
      v |= uint64_t{c & 0x7fu} << shift;
      if (!(c & 0x80)) return v;
    }
    ok_ = false;
    return 0;
  }
  std::string compact_str() {
    const uint64_t n = uvarint();
    if (!ok_ || n == 0 || pos_ + (n - 1) > b_.size()) {
      ok_ = false;
      return {};
    }
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n - 1);
    pos_ += n - 1;
    return s;
  }

 private:
  uint64_t be(int n) {
    if (!ok_ || pos_ + n > b_.size()) {
      ok_ = false;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | b_[pos_++];
    return v;
  }
  std::span<const uint8_t> b_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

int32_t java_string_hash(std::string_view s) {
  uint32_t h = 0;
  auto add = [&h](uint32_t unit) { h = 31 * h + unit; };
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    uint32_t cp = 0xfffd;
    size_t len = 1;
    if (c < 0x80) {
      cp = c;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
    }
    if (len > 1) {
      bool valid = i + len <= s.size();
      uint32_t v = c & (0x7f >> len);
      for (size_t k = 1; valid && k < len; ++k) {
        const auto cc = static_cast<uint8_t>(s[i + k]);
        valid = (cc & 0xc0) == 0x80;
        v = (v << 6) | (cc & 0x3f);
      }
      if (valid) {
        cp = v;
      } else {
        len = 1;  // one replacement character per bad lead byte
      }
    }
    if (cp >= 0x10000) {  // surrogate pair
      cp -= 0x10000;
      add(0xd800 + (cp >> 10));
      add(0xdc00 + (cp & 0x3ff));
    } else {
      add(cp);
    }
    i += len;
  }
  return static_cast<int32_t>(h);
}

int32_t offsets_partition_for(std::string_view group_id, int32_t num_partitions) {
  const int32_t h = java_string_hash(group_id) & 0x7fffffff;
  return num_partitions <= 0 ? 0 : h % num_partitions;
}

std::vector<uint8_t> encode_offset_key(const offset_key& k) {
  byte_writer w;
  w.i16(kOffsetCommitKeyVersion);
  w.str(k.group);
  w.str(k.topic);
  w.i32(k.partition);
  return w.take();
}

std::vector<uint8_t> encode_offset_value(const offset_value& v) {
  byte_writer w;
  w.i16(kOffsetCommitValueVersion);
  w.i64(v.offset);
  w.i32(v.leader_epoch);
  w.str(v.metadata);
  w.i64(v.commit_timestamp);
  return w.take();
}

std::optional<key_kind> decode_key(std::span<const uint8_t> bytes, offset_key* out) {
  byte_reader r(bytes);
  const int16_t version = r.i16();
  if (!r.ok()) return std::nullopt;
  if (version == 0 || version == 1) {
    out->group = r.str();
    out->topic = r.str();
    out->partition = r.i32();
    if (!r.ok()) return std::nullopt;
    return key_kind::offset_commit;
  }
  if (version == kGroupMetadataKeyVersion) return key_kind::group_metadata;
  return key_kind::unknown;
}

std::optional<offset_value> decode_offset_value(std::span<const uint8_t> bytes) {
  byte_reader r(bytes);
  const int16_t version = r.i16();
  if (!r.ok() || version < 0 || version > 4) return std::nullopt;
  offset_value v;
  v.offset = r.i64();
  if (version >= 3) v.leader_epoch = r.i32();
  v.metadata = version >= 4 ? r.compact_str() : r.str();
  v.commit_timestamp = r.i64();
  if (version == 1) v.expire_timestamp = r.i64();
  if (!r.ok()) return std::nullopt;
  return v;
}

}  // namespace varve::coordinator
