#include "protocol/compression.h"

#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>

namespace varve::protocol {
namespace {

// Output grows by at most this much per step, so a lying size field never causes a large
// allocation before the data backs it up.
constexpr size_t kGrowStep = 64 * 1024;

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

void append_be32(std::vector<uint8_t>* out, uint32_t v) {
  out->push_back(uint8_t(v >> 24));
  out->push_back(uint8_t(v >> 16));
  out->push_back(uint8_t(v >> 8));
  out->push_back(uint8_t(v));
}

// Tracks the output vector during streaming decompression. It hands out free space in steps
// of at most kGrowStep and never more than `max_output + 1` bytes in total: the extra byte
// lets a codec that has produced exactly `max_output` bytes show whether more would follow.
class bounded_output {
 public:
  bounded_output(std::vector<uint8_t>* out, size_t max_output)
      : out_(out),
        start_(out->size()),
        used_(out->size()),
        limit_(max_output),
        capacity_(max_output == SIZE_MAX ? SIZE_MAX : max_output + 1) {}

  // Makes room for more output; false once the allowance is used up.
  bool grow() {
    size_t allocated = out_->size() - start_;
    if (allocated >= capacity_) return false;
    out_->resize(out_->size() + std::min(kGrowStep, capacity_ - allocated));
    return true;
  }
  uint8_t* free_begin() { return out_->data() + used_; }
  size_t free_size() const { return out_->size() - used_; }
  void commit(size_t n) { used_ += n; }
  // Keeps the produced bytes (success within the limit) or restores the original contents.
  bool finish(bool ok) {
    ok = ok && used_ - start_ <= limit_;
    out_->resize(ok ? used_ : start_);
    return ok;
  }

 private:
  std::vector<uint8_t>* out_;
  size_t start_;
  size_t used_;
  size_t limit_;
  size_t capacity_;
};

// ---- gzip ----------------------------------------------------------------------------------

bool gzip_compress(std::span<const uint8_t> in, std::vector<uint8_t>* out) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return false;
  }
  size_t start = out->size();
  size_t bound = deflateBound(&zs, static_cast<uLong>(in.size()));
  out->resize(start + bound);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out->data() + start;
  zs.avail_out = static_cast<uInt>(bound);
  int rc = deflate(&zs, Z_FINISH);
  size_t produced = bound - zs.avail_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) {
    out->resize(start);
    return false;
  }
  out->resize(start + produced);
  return true;
}

bool gzip_decompress(std::span<const uint8_t> in, std::vector<uint8_t>* out, size_t max_output) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return false;
  bounded_output o(out, max_output);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  bool ok = false;
  for (;;) {
    if (o.free_size() == 0 && !o.grow()) break;
    zs.next_out = o.free_begin();
    zs.avail_out = static_cast<uInt>(o.free_size());
    int rc = inflate(&zs, Z_NO_FLUSH);
    o.commit(o.free_size() - zs.avail_out);
    if (rc == Z_STREAM_END) {
      if (zs.avail_in == 0) {
        ok = true;
        break;
      }
      // Another gzip member follows (concatenated members are one stream per RFC 1952).
      if (inflateReset(&zs) != Z_OK) break;
      continue;
    }
    if (rc == Z_BUF_ERROR && zs.avail_out != 0) break;  // input ended mid-stream
    if (rc != Z_OK && rc != Z_BUF_ERROR) break;
  }
  inflateEnd(&zs);
  return o.finish(ok);
}

// ---- snappy --------------------------------------------------------------------------------

bool snappy_block_compress(std::span<const uint8_t> in, std::vector<uint8_t>* out) {
  size_t start = out->size();
  size_t len = snappy_max_compressed_length(in.size());
  out->resize(start + len);
  if (snappy_compress(reinterpret_cast<const char*>(in.data()), in.size(),
                      reinterpret_cast<char*>(out->data() + start), &len) != SNAPPY_OK) {
    out->resize(start);
    return false;
  }
  out->resize(start + len);
  return true;
}

// Decompresses one raw snappy block into `o`, within its limit.
bool snappy_block_decompress(std::span<const uint8_t> in, bounded_output* o, size_t* budget) {
  const char* src = reinterpret_cast<const char*>(in.data());
  size_t len = 0;
  if (snappy_uncompressed_length(src, in.size(), &len) != SNAPPY_OK) return false;
  if (len > *budget) return false;
  if (snappy_validate_compressed_buffer(src, in.size()) != SNAPPY_OK) return false;
  while (o->free_size() < len) {
    if (!o->grow()) return false;
  }
  size_t got = len;
  if (snappy_uncompress(src, in.size(), reinterpret_cast<char*>(o->free_begin()), &got) !=
          SNAPPY_OK ||
      got != len) {
    return false;
  }
  o->commit(len);
  *budget -= len;
  return true;
}

bool snappy_compress_xerial(std::span<const uint8_t> in, std::vector<uint8_t>* out) {
  size_t start = out->size();
  out->insert(out->end(), std::begin(kXerialMagic), std::end(kXerialMagic));
  append_be32(out, 1);  // version
  append_be32(out, 1);  // minimum compatible version
  for (size_t pos = 0; pos < in.size(); pos += kXerialBlockSize) {
    size_t n = std::min(kXerialBlockSize, in.size() - pos);
    size_t len_at = out->size();
    append_be32(out, 0);
    if (!snappy_block_compress(in.subspan(pos, n), out)) {
      out->resize(start);
      return false;
    }
    uint32_t block_len = static_cast<uint32_t>(out->size() - len_at - 4);
    uint8_t* p = out->data() + len_at;
    p[0] = uint8_t(block_len >> 24);
    p[1] = uint8_t(block_len >> 16);
    p[2] = uint8_t(block_len >> 8);
    p[3] = uint8_t(block_len);
  }
  return true;
}

bool snappy_decompress_any(std::span<const uint8_t> in, std::vector<uint8_t>* out,
                           size_t max_output) {
  bounded_output o(out, max_output);
  size_t budget = max_output;
  bool xerial = in.size() >= sizeof(kXerialMagic) &&
                std::memcmp(in.data(), kXerialMagic, sizeof(kXerialMagic)) == 0;
  if (!xerial) return o.finish(snappy_block_decompress(in, &o, &budget));
  if (in.size() < kXerialHeaderSize) return o.finish(false);
  size_t pos = kXerialHeaderSize;
  while (pos < in.size()) {
    if (in.size() - pos < 4) return o.finish(false);
    uint32_t block_len = read_be32(in.data() + pos);
    pos += 4;
    if (block_len > in.size() - pos) return o.finish(false);
    if (!snappy_block_decompress(in.subspan(pos, block_len), &o, &budget)) return o.finish(false);
    pos += block_len;
  }
  return o.finish(true);
}

// ---- lz4 -----------------------------------------------------------------------------------

bool lz4_compress(std::span<const uint8_t> in, std::vector<uint8_t>* out) {
  LZ4F_preferences_t prefs;
  std::memset(&prefs, 0, sizeof(prefs));
  prefs.frameInfo.blockSizeID = LZ4F_max64KB;
  prefs.frameInfo.blockMode = LZ4F_blockIndependent;  // the Java client reads only these
  size_t start = out->size();
  size_t bound = LZ4F_compressFrameBound(in.size(), &prefs);
  out->resize(start + bound);
  size_t n = LZ4F_compressFrame(out->data() + start, bound, in.data(), in.size(), &prefs);
  if (LZ4F_isError(n)) {
    out->resize(start);
    return false;
  }
  out->resize(start + n);
  return true;
}

struct lz4_dctx_deleter {
  void operator()(LZ4F_dctx* d) const { LZ4F_freeDecompressionContext(d); }
};

bool lz4_decompress(std::span<const uint8_t> in, std::vector<uint8_t>* out, size_t max_output) {
  LZ4F_dctx* raw = nullptr;
  if (LZ4F_isError(LZ4F_createDecompressionContext(&raw, LZ4F_VERSION))) return false;
  std::unique_ptr<LZ4F_dctx, lz4_dctx_deleter> dctx(raw);
  bounded_output o(out, max_output);
  size_t pos = 0;
  size_t hint = 1;
  while (pos < in.size()) {
    if (o.free_size() == 0 && !o.grow()) return o.finish(false);
    size_t dst = o.free_size();
    size_t src = in.size() - pos;
    hint = LZ4F_decompress(dctx.get(), o.free_begin(), &dst, in.data() + pos, &src, nullptr);
    if (LZ4F_isError(hint)) return o.finish(false);
    pos += src;
    o.commit(dst);
    if (hint == 0 && pos < in.size()) {
      // A frame ended and more input follows: another frame (the context resets itself).
      continue;
    }
    if (src == 0 && dst == 0) {
      // No progress although input remains: output space is needed.
      if (!o.grow()) return o.finish(false);
    }
  }
  // Flush output still held by the context (its input was all consumed).
  while (hint != 0) {
    if (o.free_size() == 0 && !o.grow()) return o.finish(false);
    size_t dst = o.free_size();
    size_t src = 0;
    hint = LZ4F_decompress(dctx.get(), o.free_begin(), &dst, nullptr, &src, nullptr);
    if (LZ4F_isError(hint)) return o.finish(false);
    o.commit(dst);
    if (dst == 0 && hint != 0) return o.finish(false);  // frame truncated
  }
  return o.finish(true);
}

// ---- zstd ----------------------------------------------------------------------------------

bool zstd_compress(std::span<const uint8_t> in, std::vector<uint8_t>* out) {
  size_t start = out->size();
  size_t bound = ZSTD_compressBound(in.size());
  out->resize(start + bound);
  size_t n = ZSTD_compress(out->data() + start, bound, in.data(), in.size(), 3);
  if (ZSTD_isError(n)) {
    out->resize(start);
    return false;
  }
  out->resize(start + n);
  return true;
}

struct zstd_dctx_deleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

bool zstd_decompress(std::span<const uint8_t> in, std::vector<uint8_t>* out, size_t max_output) {
  std::unique_ptr<ZSTD_DCtx, zstd_dctx_deleter> dctx(ZSTD_createDCtx());
  if (!dctx) return false;
  // A frame's window never needs to exceed the output we accept, so refuse windows larger than
  // max_output (zstd's own default limit, 2^27, caps it for large limits).
  int window_log = 10;
  while (window_log < 27 && (size_t{1} << window_log) < max_output) ++window_log;
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, window_log);
  bounded_output o(out, max_output);
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  size_t remaining = 1;  // 0 once the last frame is complete
  for (;;) {
    if (input.pos == input.size && remaining == 0) break;
    if (o.free_size() == 0 && !o.grow()) return o.finish(false);
    ZSTD_outBuffer output{o.free_begin(), o.free_size(), 0};
    size_t before_in = input.pos;
    remaining = ZSTD_decompressStream(dctx.get(), &output, &input);
    if (ZSTD_isError(remaining)) return o.finish(false);
    o.commit(output.pos);
    if (input.pos == input.size && remaining != 0 && output.pos < output.size) {
      return o.finish(false);  // input ended inside a frame
    }
    if (input.pos == before_in && output.pos == 0 && output.size > 0) {
      return o.finish(false);  // no progress
    }
  }
  return o.finish(true);
}

}  // namespace

bool compress(compression_type codec, std::span<const uint8_t> input, std::vector<uint8_t>* out) {
  switch (codec) {
    case compression_type::none:
      out->insert(out->end(), input.begin(), input.end());
      return true;
    case compression_type::gzip:
      return gzip_compress(input, out);
    case compression_type::snappy:
      return snappy_compress_xerial(input, out);
    case compression_type::lz4:
      return lz4_compress(input, out);
    case compression_type::zstd:
      return zstd_compress(input, out);
  }
  return false;
}

bool decompress(compression_type codec, std::span<const uint8_t> input, std::vector<uint8_t>* out,
                size_t max_output) {
  switch (codec) {
    case compression_type::none:
      if (input.size() > max_output) return false;
      out->insert(out->end(), input.begin(), input.end());
      return true;
    case compression_type::gzip:
      return gzip_decompress(input, out, max_output);
    case compression_type::snappy:
      return snappy_decompress_any(input, out, max_output);
    case compression_type::lz4:
      return lz4_decompress(input, out, max_output);
    case compression_type::zstd:
      return zstd_decompress(input, out, max_output);
  }
  return false;
}

}  // namespace varve::protocol
