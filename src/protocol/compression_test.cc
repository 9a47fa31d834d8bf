#include "protocol/compression.h"

#include <gtest/gtest.h>
#include <snappy-c.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace varve::protocol {
namespace {

constexpr size_t kUnlimited = SIZE_MAX;

std::vector<uint8_t> sample(size_t n, uint32_t seed = 1) {
  // Compressible but not trivial: words from a small alphabet with random lengths.
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>('a' + rng() % 6);
  return v;
}

std::vector<uint8_t> compressed(compression_type c, std::span<const uint8_t> in) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(compress(c, in, &out));
  return out;
}

class codec_test : public ::testing::TestWithParam<compression_type> {};

TEST_P(codec_test, round_trips_small_large_and_empty_inputs) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{100}, size_t{70000}, size_t{300000}}) {
    auto in = sample(n, static_cast<uint32_t>(n));
    auto c = compressed(GetParam(), in);
    std::vector<uint8_t> out;
    ASSERT_TRUE(decompress(GetParam(), c, &out, kUnlimited)) << "size " << n;
    EXPECT_EQ(out, in) << "size " << n;
  }
}

TEST_P(codec_test, appends_to_existing_output) {
  auto in = sample(1000);
  std::vector<uint8_t> c = {9, 9};
  ASSERT_TRUE(compress(GetParam(), in, &c));
  std::vector<uint8_t> out = {7};
  ASSERT_TRUE(decompress(GetParam(), std::span(c).subspan(2), &out, kUnlimited));
  ASSERT_EQ(out.size(), in.size() + 1);
  EXPECT_EQ(out[0], 7);
  EXPECT_TRUE(std::equal(in.begin(), in.end(), out.begin() + 1));
}

TEST_P(codec_test, output_of_exactly_the_limit_is_accepted) {
  auto in = sample(100000);
  auto c = compressed(GetParam(), in);
  std::vector<uint8_t> out;
  EXPECT_TRUE(decompress(GetParam(), c, &out, in.size()));
  EXPECT_EQ(out, in);
}

TEST_P(codec_test, output_over_the_limit_fails_and_restores_output) {
  // 16 MiB of zeros compresses to a few KiB: a small decompression bomb.
  std::vector<uint8_t> zeros(16u << 20, 0);
  auto c = compressed(GetParam(), zeros);
  std::vector<uint8_t> out = {1, 2, 3};
  EXPECT_FALSE(decompress(GetParam(), c, &out, 1u << 20));
  EXPECT_EQ(out, (std::vector<uint8_t>{1, 2, 3}));
  // Memory stayed near the limit (the vector never held the full 16 MiB).
  EXPECT_LT(out.capacity(), 4u << 20);
  std::vector<uint8_t> one_short;
  EXPECT_FALSE(decompress(GetParam(), c, &one_short, zeros.size() - 1));
}

TEST_P(codec_test, truncated_input_fails) {
  auto in = sample(5000);
  auto c = compressed(GetParam(), in);
  for (size_t cut : {c.size() - 1, c.size() / 2, size_t{3}}) {
    std::vector<uint8_t> out;
    EXPECT_FALSE(decompress(GetParam(), std::span(c).first(cut), &out, kUnlimited))
        << "cut at " << cut;
    EXPECT_TRUE(out.empty());
  }
}

TEST_P(codec_test, garbage_input_fails) {
  std::vector<uint8_t> garbage(200);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<uint8_t>(i * 37 + 11);
  std::vector<uint8_t> out;
  EXPECT_FALSE(decompress(GetParam(), garbage, &out, kUnlimited));
}

INSTANTIATE_TEST_SUITE_P(all, codec_test,
                         ::testing::Values(compression_type::gzip, compression_type::snappy,
                                           compression_type::lz4, compression_type::zstd),
                         [](const auto& info) {
                           switch (info.param) {
                             case compression_type::gzip: return std::string("gzip");
                             case compression_type::snappy: return std::string("snappy");
                             case compression_type::lz4: return std::string("lz4");
                             case compression_type::zstd: return std::string("zstd");
                             default: return std::string("none");
                           }
                         });

TEST(compression_none, copies_and_respects_the_limit) {
  auto in = sample(10);
  std::vector<uint8_t> out;
  ASSERT_TRUE(compress(compression_type::none, in, &out));
  EXPECT_EQ(out, in);
  std::vector<uint8_t> back;
  EXPECT_TRUE(decompress(compression_type::none, out, &back, 10));
  EXPECT_FALSE(decompress(compression_type::none, out, &back, 9));
}

TEST(compression_unknown, codec_value_outside_the_enum_fails) {
  std::vector<uint8_t> out;
  EXPECT_FALSE(compress(static_cast<compression_type>(5), sample(10), &out));
  EXPECT_FALSE(decompress(static_cast<compression_type>(6), sample(10), &out, kUnlimited));
}

TEST(snappy, compresses_with_xerial_framing_in_32k_blocks) {
  auto in = sample(80000);
  auto c = compressed(compression_type::snappy, in);
  ASSERT_GE(c.size(), kXerialHeaderSize);
  EXPECT_EQ(std::memcmp(c.data(), kXerialMagic, 8), 0);
  // Walk the blocks: 80000 bytes → 3 blocks (32768, 32768, 14464).
  size_t pos = kXerialHeaderSize, blocks = 0;
  while (pos < c.size()) {
    uint32_t len = (uint32_t(c[pos]) << 24) | (uint32_t(c[pos + 1]) << 16) |
                   (uint32_t(c[pos + 2]) << 8) | c[pos + 3];
    pos += 4 + len;
    ++blocks;
  }
  EXPECT_EQ(pos, c.size());
  EXPECT_EQ(blocks, 3u);
}

TEST(snappy, decompresses_raw_blocks_as_librdkafka_writes_them) {
  auto in = sample(5000);
  size_t len = snappy_max_compressed_length(in.size());
  std::vector<uint8_t> raw(len);
  ASSERT_EQ(snappy_compress(reinterpret_cast<const char*>(in.data()), in.size(),
                            reinterpret_cast<char*>(raw.data()), &len),
            SNAPPY_OK);
  raw.resize(len);
  std::vector<uint8_t> out;
  ASSERT_TRUE(decompress(compression_type::snappy, raw, &out, kUnlimited));
  EXPECT_EQ(out, in);
}

TEST(snappy, raw_block_claiming_more_than_the_limit_fails_before_allocating) {
  // A raw snappy block whose length preamble claims ~2 GiB.
  std::vector<uint8_t> bomb = {0x80, 0x80, 0x80, 0x80, 0x07, 0x00};
  std::vector<uint8_t> out;
  EXPECT_FALSE(decompress(compression_type::snappy, bomb, &out, 1u << 20));
  EXPECT_LT(out.capacity(), 1u << 20);
}

TEST(snappy, xerial_block_length_past_the_end_fails) {
  auto c = compressed(compression_type::snappy, sample(1000));
  c[kXerialHeaderSize + 3] = static_cast<uint8_t>(c[kXerialHeaderSize + 3] + 1);  // +1 length
  std::vector<uint8_t> out;
  EXPECT_FALSE(decompress(compression_type::snappy, c, &out, kUnlimited));
}

TEST(snappy, xerial_header_without_blocks_is_empty) {
  std::vector<uint8_t> c(kXerialMagic, kXerialMagic + 8);
  c.insert(c.end(), {0, 0, 0, 1, 0, 0, 0, 1});
  std::vector<uint8_t> out;
  EXPECT_TRUE(decompress(compression_type::snappy, c, &out, kUnlimited));
  EXPECT_TRUE(out.empty());
}

TEST(gzip, concatenated_members_decompress_to_the_concatenation) {
  auto a = sample(3000, 1), b = sample(4000, 2);
  auto c = compressed(compression_type::gzip, a);
  ASSERT_TRUE(compress(compression_type::gzip, b, &c));
  std::vector<uint8_t> out;
  ASSERT_TRUE(decompress(compression_type::gzip, c, &out, kUnlimited));
  auto expected = a;
  expected.insert(expected.end(), b.begin(), b.end());
  EXPECT_EQ(out, expected);
}

TEST(gzip, output_is_the_gzip_format) {
  auto c = compressed(compression_type::gzip, sample(10));
  ASSERT_GE(c.size(), 18u);
  EXPECT_EQ(c[0], 0x1f);
  EXPECT_EQ(c[1], 0x8b);
  EXPECT_EQ(c[2], 8);  // deflate
}

TEST(lz4, output_is_an_lz4_frame) {
  auto c = compressed(compression_type::lz4, sample(10));
  ASSERT_GE(c.size(), 4u);
  EXPECT_EQ(c[0], 0x04);
  EXPECT_EQ(c[1], 0x22);
  EXPECT_EQ(c[2], 0x4D);
  EXPECT_EQ(c[3], 0x18);
}

TEST(zstd, concatenated_frames_decompress_to_the_concatenation) {
  auto a = sample(3000, 3), b = sample(100, 4);
  auto c = compressed(compression_type::zstd, a);
  ASSERT_TRUE(compress(compression_type::zstd, b, &c));
  std::vector<uint8_t> out;
  ASSERT_TRUE(decompress(compression_type::zstd, c, &out, kUnlimited));
  auto expected = a;
  expected.insert(expected.end(), b.begin(), b.end());
  EXPECT_EQ(out, expected);
}

}  // namespace
}  // namespace varve::protocol
