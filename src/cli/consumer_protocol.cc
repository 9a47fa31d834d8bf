#include "cli/consumer_protocol.h"

#include "protocol/wire.h"

namespace varve::cli {

bool decode_consumer_assignment(std::span<const uint8_t> bytes, consumer_assignment* out) {
  *out = {};
  if (bytes.empty()) return true;
  protocol::reader r(bytes);
  out->version = r.read_int16();
  if (out->version < 0) return false;
  int32_t n = r.read_array_length(false);
  if (n < 0) return false;
  for (int32_t i = 0; i < n && r.ok(); ++i) {
    consumer_assignment::topic_partitions tp;
    tp.topic = r.read_string(false);
    int32_t np = r.read_array_length(false);
    if (np < 0) return false;
    for (int32_t j = 0; j < np && r.ok(); ++j) tp.partitions.push_back(r.read_int32());
    out->topics.push_back(std::move(tp));
  }
  // user_data follows; absent in some minimal encoders, so its absence is accepted.
  if (r.ok() && r.remaining() > 0) (void)r.read_nullable_bytes(false);
  return r.ok();
}

std::vector<uint8_t> encode_consumer_assignment(const consumer_assignment& a) {
  protocol::writer w;
  w.write_int16(0);
  w.write_array_length(a.topics.size(), false);
  for (const auto& t : a.topics) {
    w.write_string(t.topic, false);
    w.write_array_length(t.partitions.size(), false);
    for (int32_t p : t.partitions) w.write_int32(p);
  }
  w.write_nullable_bytes(std::nullopt, false);
  return w.flatten();
}

}  // namespace varve::cli
