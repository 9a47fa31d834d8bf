#pragma once
// Kafka's record-batch compression codecs, as they appear inside a v2 batch (the bytes after
// the 61-byte header):
//   gzip   — one gzip member (RFC 1952); concatenated members are accepted on input.
//   snappy — the Java client's xerial framing (magic 0x82 "SNAPPY" 0x00, int32 version,
//            int32 compatible version, then blocks of int32 length + raw snappy block).
//            Input without that magic is read as one raw snappy block (librdkafka's format).
//            Output always uses xerial framing, which every client reads.
//   lz4    — the LZ4 frame format (independent blocks, 64 KiB maximum block size).
//   zstd   — one or more zstd frames.
// Thread-safe: no shared state.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "protocol/record_batch.h"

namespace varve::protocol {

// Appends the compressed form of `input` to `*out`. `compression_type::none` appends the
// input unchanged. Returns false only on a codec failure or an unknown codec.
bool compress(compression_type codec, std::span<const uint8_t> input, std::vector<uint8_t>* out);

// Appends the decompressed form of `input` to `*out`. Returns false if `input` is malformed or
// truncated, the codec is unknown, or the decompressed data would exceed `max_output` bytes;
// in every case at most about `max_output` bytes are ever allocated, whatever the input claims
// (decompression bombs fail instead of exhausting memory). On failure `*out` is restored to
// its original contents.
bool decompress(compression_type codec, std::span<const uint8_t> input, std::vector<uint8_t>* out,
                size_t max_output);

// Snappy xerial framing constants (shared by the codec and its tests).
inline constexpr uint8_t kXerialMagic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0x00};
inline constexpr size_t kXerialHeaderSize = 16;      // magic + version + compatible version
inline constexpr size_t kXerialBlockSize = 32 * 1024;  // uncompressed bytes per block written

}  // namespace varve::protocol
