#pragma once
// Small POSIX file helpers for the storage layer. All of them retry on EINTR and short
// transfers, and report failures as a false return with `*error` (when non-null) set to a
// message that names the file and errno; none of them throws or aborts.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace varve::storage {

// Writes all of `bytes` at `position`.
bool pwrite_all(int fd, std::span<const uint8_t> bytes, uint64_t position, std::string* error);
// Reads up to `out.size()` bytes at `position`; returns the number read (short only at EOF),
// or -1 on error.
int64_t pread_full(int fd, std::span<uint8_t> out, uint64_t position, std::string* error);
bool fdatasync_fd(int fd, std::string* error);
bool fsync_dir(const std::filesystem::path& dir, std::string* error);

// Replaces `path` with `content` so that after a crash the file holds either the old or the
// new content: write `path.tmp`, fsync it, rename over `path`, fsync the directory.
bool write_file_atomically(const std::filesystem::path& path, std::string_view content,
                           std::string* error);
// Reads a whole small file; nullopt if it does not exist or cannot be read.
std::optional<std::string> read_small_file(const std::filesystem::path& path);

// "00000000000000000042" + suffix.
std::string segment_file_name(int64_t base_offset, std::string_view suffix);
// Parses "<20 digits><suffix>"; nullopt for any other name.
std::optional<int64_t> parse_segment_file_name(std::string_view name, std::string_view suffix);

inline void put_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
inline void put_be64(uint8_t* p, uint64_t v) {
  put_be32(p, static_cast<uint32_t>(v >> 32));
  put_be32(p + 4, static_cast<uint32_t>(v));
}
inline uint32_t get_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
inline uint64_t get_be64(const uint8_t* p) {
  return (uint64_t{get_be32(p)} << 32) | get_be32(p + 4);
}

}  // namespace varve::storage
