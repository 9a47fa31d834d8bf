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
__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(uint32_t crc, const uint8_t* p,
                                                          size_t n) {
  uint64_t c = ~crc;
#if defined(__x86_64__)
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
