#include "protocol/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace varve::protocol {
namespace {

std::span<const uint8_t> as_bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(crc32c, matches_the_standard_check_value) {
  EXPECT_EQ(crc32c(as_bytes("123456789")), 0xE3069283u);
}

TEST(crc32c, empty_input_is_zero) { EXPECT_EQ(crc32c({}), 0u); }

TEST(crc32c, matches_rfc3720_test_vectors) {
  // iSCSI (RFC 3720, B.4) vectors.
  std::vector<uint8_t> zeros(32, 0x00);
  std::vector<uint8_t> ones(32, 0xFF);
  std::vector<uint8_t> inc(32), dec(32);
  for (int i = 0; i < 32; ++i) {
    inc[i] = static_cast<uint8_t>(i);
    dec[i] = static_cast<uint8_t>(31 - i);
  }
  EXPECT_EQ(crc32c(zeros), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones), 0x62A8AB43u);
  EXPECT_EQ(crc32c(inc), 0x46DD794Eu);
  EXPECT_EQ(crc32c(dec), 0x113FDB5Cu);
}

TEST(crc32c, portable_and_dispatched_paths_agree_on_every_length_and_alignment) {
  std::mt19937 rng(42);
  std::vector<uint8_t> buf(1100);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  for (size_t offset = 0; offset < 9; ++offset) {
    for (size_t len = 0; len + offset <= buf.size(); len += (len < 40 ? 1 : 37)) {
      ASSERT_EQ(crc32c_extend(0, buf.data() + offset, len),
                crc32c_extend_portable(0, buf.data() + offset, len))
          << "offset " << offset << " len " << len;
    }
  }
  EXPECT_EQ(crc32c_extend_portable(0, reinterpret_cast<const uint8_t*>("123456789"), 9),
            0xE3069283u);
}

TEST(crc32c, interleaved_long_inputs_match_the_portable_path) {
  // The hardware path splits inputs of >= 768 bytes (and >= 24 KiB) into three interleaved
  // streams; lengths around every split point, at odd alignments and with a non-zero start.
  std::mt19937 rng(7);
  std::vector<uint8_t> buf(3 * 8192 * 3 + 1000);
  for (auto& b : buf) b = static_cast<uint8_t>(rng());
  const size_t lengths[] = {767, 768, 769, 1535, 1536, 3 * 8192 - 1, 3 * 8192, 3 * 8192 + 1,
                            3 * 8192 + 768 + 7, 2 * 3 * 8192 + 13, buf.size() - 9};
  for (size_t offset : {0, 1, 5}) {
    for (size_t len : lengths) {
      for (uint32_t start : {0u, 0xDEADBEEFu}) {
        ASSERT_EQ(crc32c_extend(start, buf.data() + offset, len),
                  crc32c_extend_portable(start, buf.data() + offset, len))
            << "offset " << offset << " len " << len << " start " << start;
      }
    }
  }
}

TEST(crc32c, extend_equals_crc_of_concatenation) {
  std::string a = "hello, ", b = "varve record batches";
  uint32_t whole = crc32c(as_bytes(a + b));
  uint32_t part = crc32c_extend(crc32c(as_bytes(a)),
                                reinterpret_cast<const uint8_t*>(b.data()), b.size());
  EXPECT_EQ(whole, part);
  uint32_t part_portable = crc32c_extend_portable(
      crc32c_extend_portable(0, reinterpret_cast<const uint8_t*>(a.data()), a.size()),
      reinterpret_cast<const uint8_t*>(b.data()), b.size());
  EXPECT_EQ(whole, part_portable);
}

TEST(crc32c, reports_hardware_acceleration_consistently_with_cpu) {
  // On x86-64 the result must equal the CPU's feature flag; elsewhere it is false.
#if defined(__x86_64__)
  __builtin_cpu_init();
  EXPECT_EQ(crc32c_is_hardware_accelerated(), bool(__builtin_cpu_supports("sse4.2")));
#else
  EXPECT_FALSE(crc32c_is_hardware_accelerated());
#endif
}

}  // namespace
}  // namespace varve::protocol
