#pragma once
// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum Kafka record batches
// (magic 2) carry over attributes..end.
//
// Uses the SSE4.2 `crc32` instruction when the CPU has it (checked once at run time) and a
// slicing-by-8 table otherwise; both give identical results. Thread-safe: no mutable state
// after static initialisation.
#include <cstddef>
#include <cstdint>
#include <span>

namespace varve::protocol {

// Continues a CRC: `crc` is the value returned for the preceding bytes (0 to start).
// crc32c_extend(crc32c_extend(0, a), b) == crc32c(a ++ b).
uint32_t crc32c_extend(uint32_t crc, const uint8_t* data, size_t size);

inline uint32_t crc32c(std::span<const uint8_t> bytes) {
  return crc32c_extend(0, bytes.data(), bytes.size());
}

// The portable slicing-by-8 implementation, exposed so tests can compare it with the
// hardware path on the same input.
uint32_t crc32c_extend_portable(uint32_t crc, const uint8_t* data, size_t size);

// True when crc32c_extend uses the SSE4.2 instruction on this machine.
bool crc32c_is_hardware_accelerated();

}  // namespace varve::protocol
