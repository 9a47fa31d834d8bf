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
  void nullable_str(const std::optional<std::string>& s) {
    if (!s) return i16(-1);
    str(*s);
  }
  void bytes(const std::vector<uint8_t>& b) {
    i32(static_cast<int32_t>(b.size()));
    out_.insert(out_.end(), b.begin(), b.end());
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
    if (!ok_ || n == 0 || n - 1 > b_.size() - pos_) {
      ok_ = false;
      return {};
    }
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n - 1);
    pos_ += n - 1;
    return s;
  }
  // int16 length, -1 = null.
  std::optional<std::string> nullable_str() {
    if (peek_i16() == -1) {
      i16();
      return std::nullopt;
    }
    return str();
  }
  // Unsigned varint length + 1, 0 = null.
  std::optional<std::string> compact_nullable_str() {
    if (ok_ && pos_ < b_.size() && b_[pos_] == 0) {
      ++pos_;
      return std::nullopt;
    }
    return compact_str();
  }
  std::vector<uint8_t> bytes() {
    const int32_t n = i32();
    return take(n < 0 ? SIZE_MAX : static_cast<size_t>(n));
  }
  std::vector<uint8_t> compact_bytes() {
    const uint64_t n = uvarint();
    return take(n == 0 ? SIZE_MAX : n - 1);
  }
  // An array length that cannot exceed the bytes left (every element takes >= 1 byte);
  // -1 on a bad or null length.
  int64_t array_len(bool compact) {
    int64_t n = compact ? static_cast<int64_t>(uvarint()) - 1 : i32();
    if (!ok_ || n < 0 || static_cast<uint64_t>(n) > remaining()) {
      ok_ = false;
      return -1;
    }
    return n;
  }
  // Tagged fields of a flexible struct: count, then (tag, size, data) each; all skipped.
  void skip_tags() {
    const uint64_t count = uvarint();
    for (uint64_t i = 0; ok_ && i < count; ++i) {
      uvarint();
      const uint64_t size = uvarint();
      take(size);
    }
  }

 private:
  int16_t peek_i16() const {
    if (!ok_ || pos_ + 2 > b_.size()) return 0;
    return static_cast<int16_t>((b_[pos_] << 8) | b_[pos_ + 1]);
  }
  std::vector<uint8_t> take(size_t n) {
    if (!ok_ || n > b_.size() - pos_) {
      ok_ = false;
      return {};
    }
    std::vector<uint8_t> out(b_.begin() + static_cast<ptrdiff_t>(pos_),
                             b_.begin() + static_cast<ptrdiff_t>(pos_ + n));
    pos_ += n;
    return out;
  }
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
  if (version == kGroupMetadataKeyVersion) {
    out->group = r.str();
    if (!r.ok()) return std::nullopt;
    out->topic.clear();
    out->partition = -1;
    return key_kind::group_metadata;
  }
  return key_kind::unknown;
}

bool operator==(const group_member_record& a, const group_member_record& b) {
  return a.member_id == b.member_id && a.group_instance_id == b.group_instance_id &&
         a.client_id == b.client_id && a.client_host == b.client_host &&
         a.rebalance_timeout_ms == b.rebalance_timeout_ms &&
         a.session_timeout_ms == b.session_timeout_ms && a.subscription == b.subscription &&
         a.assignment == b.assignment;
}

std::vector<uint8_t> encode_group_metadata_key(std::string_view group) {
  byte_writer w;
  w.i16(kGroupMetadataKeyVersion);
  w.str(group);
  return w.take();
}

std::vector<uint8_t> encode_group_metadata_value(const group_metadata_value& v) {
  static_assert(kGroupMetadataValueVersion == 3, "the layout below is version 3");
  byte_writer w;
  w.i16(kGroupMetadataValueVersion);
  w.str(v.protocol_type);
  w.i32(v.generation);
  w.nullable_str(v.protocol);
  w.nullable_str(v.leader);
  w.i64(v.current_state_timestamp);
  w.i32(static_cast<int32_t>(v.members.size()));
  for (const auto& m : v.members) {
    w.str(m.member_id);
    w.nullable_str(m.group_instance_id);
    w.str(m.client_id);
    w.str(m.client_host);
    w.i32(m.rebalance_timeout_ms);
    w.i32(m.session_timeout_ms);
    w.bytes(m.subscription);
    w.bytes(m.assignment);
  }
  return w.take();
}

std::optional<group_metadata_value> decode_group_metadata_value(std::span<const uint8_t> bytes) {
  byte_reader r(bytes);
  const int16_t version = r.i16();
  if (!r.ok() || version < 0 || version > 4) return std::nullopt;
  const bool flexible = version >= 4;
  auto str = [&] { return flexible ? r.compact_str() : r.str(); };
  auto nullable_str = [&] { return flexible ? r.compact_nullable_str() : r.nullable_str(); };
  auto blob = [&] { return flexible ? r.compact_bytes() : r.bytes(); };
  group_metadata_value v;
  v.protocol_type = str();
  v.generation = r.i32();
  v.protocol = nullable_str();
  v.leader = nullable_str();
  if (version >= 2) v.current_state_timestamp = r.i64();
  const int64_t count = r.array_len(flexible);
  for (int64_t i = 0; r.ok() && i < count; ++i) {
    group_member_record m;
    m.member_id = str();
    if (version >= 3) m.group_instance_id = nullable_str();
    m.client_id = str();
    m.client_host = str();
    if (version >= 1) m.rebalance_timeout_ms = r.i32();
    m.session_timeout_ms = r.i32();
    m.subscription = blob();
    m.assignment = blob();
    if (flexible) r.skip_tags();
    v.members.push_back(std::move(m));
  }
  if (flexible) r.skip_tags();
  if (!r.ok()) return std::nullopt;
  return v;
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
