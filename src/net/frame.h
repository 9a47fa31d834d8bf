#pragma once
// Kafka framing: every request and response is an int32 size followed by that many bytes.
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "common/bytes.h"

namespace varve::net {

// A request as received: the `size` bytes after the size prefix, kept alive by `owner` so
// that decoded record batches can point into it without copying. The produce path writes
// offsets into those batches in place, so the bytes are the request's own (never shared
// with another request).
struct request_frame {
  std::shared_ptr<const void> owner;
  const uint8_t* data = nullptr;
  size_t size = 0;
  std::span<const uint8_t> bytes() const { return {data, size}; }
};

// A response to send: `bytes` (starting with a 4-byte size placeholder the connection
// fills in) interleaved with zero-copy chunks: chunk i is sent after bytes[..splices[i].first].
struct response_frame {
  std::vector<uint8_t> bytes;
  std::vector<std::pair<size_t, byte_chunk>> splices;

  size_t total_size() const {
    size_t n = bytes.size();
    for (const auto& [at, chunk] : splices) n += chunk_size(chunk);
    return n;
  }
};

inline constexpr size_t kFrameSizePrefix = 4;

}  // namespace varve::net
