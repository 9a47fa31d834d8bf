#include "protocol/crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define VARVE_CRC32C_X86 1
#endif

namespace varve::protocol {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78u;  // Castagnoli, bit-reflected

// table[k][b]: CRC contribution of byte b followed by k zero bytes.
struct slicing_tables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  constexpr slicing_tables() {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t c = b;
      for (int i = 0; i < 8; ++i) c = (c >> 1) ^ ((c & 1) ? kPolynomial : 0);
      t[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; ++b) {
      for (size_t k = 1; k < 8; ++k) t[k][b] = (t[k - 1][b] >> 8) ^ t[0][t[k - 1][b] & 0xFF];
    }
  }
};

constexpr slicing_tables kTables{};

inline uint32_t load_le32(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

#ifdef VARVE_CRC32C_X86
// The crc32 instruction has a latency of 3 cycles and a throughput of 1 per cycle, so one
// dependency chain uses a third of it. Large inputs are split into three equal blocks A, B,
// C whose CRCs run interleaved, then joined by linearity: with R(c, d) the CRC register after
// d starting from c (no pre/post inversion), R(c, A||B) = shift_L(R(c, A)) ^ R(0, B), where
// shift_L(x) = R(x, L zero bytes) is linear in x and applied with four byte tables.

// R(x, `len` zero bytes) for every x, as shift(x) = t[0][x&0xff] ^ ... ^ t[3][x>>24].
struct zero_shift {
  std::array<std::array<uint32_t, 256>, 4> t{};
  explicit zero_shift(size_t len) {
    // Images of the 32 basis vectors (by the portable tables, so no CPU feature is needed),
    // then every byte value's image as the XOR of its bits' images. ~0.3 ms for 8 KiB.
    std::array<uint32_t, 32> basis{};
    for (int bit = 0; bit < 32; ++bit) {
      uint32_t c = 1u << bit;
      for (size_t i = 0; i < len; ++i) c = (c >> 8) ^ kTables.t[0][c & 0xFF];
      basis[bit] = c;
    }
    for (int k = 0; k < 4; ++k) {
      for (uint32_t b = 0; b < 256; ++b) {
        uint32_t v = 0;
        for (int bit = 0; bit < 8; ++bit) {
          if (b & (1u << bit)) v ^= basis[k * 8 + bit];
        }
        t[k][b] = v;
      }
    }
  }
  uint32_t operator()(uint32_t x) const {
    return t[0][x & 0xFF] ^ t[1][(x >> 8) & 0xFF] ^ t[2][(x >> 16) & 0xFF] ^ t[3][x >> 24];
  }
};

constexpr size_t kLongBlock = 8192;  // bytes per stream for inputs of >= 24 KiB
constexpr size_t kShortBlock = 256;  // ... for the rest of >= 768 bytes
// Built on first use (thread-safe): not at static initialisation, whose order across
// translation units is unspecified, and not at compile time, which exceeds clang's constexpr
// step limit.
const zero_shift& shift_long() {
  static const zero_shift s(kLongBlock);
  return s;
}
const zero_shift& shift_short() {
  static const zero_shift s(kShortBlock);
  return s;
}

// Consumes whole groups of three `block`-byte blocks from *p.
__attribute__((target("sse4.2"))) inline uint64_t crc_three_way(uint64_t c, const uint8_t*& p,
                                                               size_t& n, size_t block,
                                                               const zero_shift& shift) {
  while (n >= 3 * block) {
    uint64_t c0 = c, c1 = 0, c2 = 0;
    const uint8_t* a = p;
    const uint8_t* b = p + block;
    const uint8_t* d = p + 2 * block;
    for (size_t i = 0; i < block; i += 8) {
      uint64_t va, vb, vd;
      std::memcpy(&va, a + i, 8);
      std::memcpy(&vb, b + i, 8);
      std::memcpy(&vd, d + i, 8);
      c0 = _mm_crc32_u64(c0, va);
      c1 = _mm_crc32_u64(c1, vb);
      c2 = _mm_crc32_u64(c2, vd);
    }
    uint32_t joined = shift(static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1);
    c = shift(joined) ^ static_cast<uint32_t>(c2);
    p += 3 * block;
    n -= 3 * block;
  }
  return c;
}

__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(uint32_t crc, const uint8_t* p,
                                                          size_t n) {
  uint64_t c = ~crc;
#if defined(__x86_64__)
  if (n >= 3 * kShortBlock) {
    c = crc_three_way(c, p, n, kLongBlock, shift_long());
    c = crc_three_way(c, p, n, kShortBlock, shift_short());
  }
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
#endif
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n > 0) {
    c32 = _mm_crc32_u8(c32, *p++);
    --n;
  }
  return ~c32;
}

bool detect_sse42() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}
#endif

using crc_fn = uint32_t (*)(uint32_t, const uint8_t*, size_t);

crc_fn choose_implementation() {
#ifdef VARVE_CRC32C_X86
  if (detect_sse42()) return &crc32c_sse42;
#endif
  return &crc32c_extend_portable;
}

const crc_fn kImplementation = choose_implementation();

}  // namespace

uint32_t crc32c_extend_portable(uint32_t crc, const uint8_t* p, size_t n) {
  const auto& t = kTables.t;
  uint32_t c = ~crc;
  while (n >= 8) {
    uint32_t lo = load_le32(p) ^ c;
    uint32_t hi = load_le32(p + 4);
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
        t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    c = (c >> 8) ^ t[0][(c ^ *p++) & 0xFF];
    --n;
  }
  return ~c;
}

uint32_t crc32c_extend(uint32_t crc, const uint8_t* data, size_t size) {
  // A function-local static would also work, but kImplementation may be used during other
  // translation units' static initialisation; fall back safely if it is not set yet.
  crc_fn fn = kImplementation ? kImplementation : choose_implementation();
  return fn(crc, data, size);
}

bool crc32c_is_hardware_accelerated() {
#ifdef VARVE_CRC32C_X86
  return detect_sse42();
#else
  return false;
#endif
}

}  // namespace varve::protocol
