#pragma once
// Kafka framing: every request and response is an int32 size followed by that many bytes.
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "common/bytes.h"

namespace varve::net {

// A request as received: the bytes after the size prefix, owned by a shared buffer so
// that decoded record batches can point into it without copying.
struct request_frame {
  std::shared_ptr<const std::vector<uint8_t>> buffer;
  std::span<const uint8_t> bytes() const { return {buffer->data(), buffer->size()}; }
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
