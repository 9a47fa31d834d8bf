#pragma once
// Reference-counted views of bytes, shared by the protocol, storage and net layers so that a
// record batch travels from a socket into a segment file, and from a segment file back to a
// socket, without being copied.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <variant>
#include <vector>

namespace varve {

// A read-only slice of memory kept alive by `owner` (e.g. the request frame it points into).
struct buffer_slice {
  std::shared_ptr<const void> owner;
  const uint8_t* data = nullptr;
  size_t size = 0;

  std::span<const uint8_t> span() const { return {data, size}; }

  static buffer_slice copy_of(std::span<const uint8_t> bytes) {
    auto buf = std::make_shared<std::vector<uint8_t>>(bytes.begin(), bytes.end());
    return buffer_slice{buf, buf->data(), buf->size()};
  }
};

// An open file descriptor, closed when the last reference goes. Segment files hand these
// out so that a fetch in flight keeps reading a segment even after retention unlinked it.
class file_handle {
 public:
  explicit file_handle(int fd) : fd_(fd) {}
  ~file_handle() {
    if (fd_ >= 0) ::close(fd_);
  }
  file_handle(const file_handle&) = delete;
  file_handle& operator=(const file_handle&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// `size` bytes of a file starting at `position`; sent with sendfile(2) on plaintext sockets.
struct file_region {
  std::shared_ptr<const file_handle> file;
  uint64_t position = 0;
  uint32_t size = 0;
};

using byte_chunk = std::variant<buffer_slice, file_region>;

inline size_t chunk_size(const byte_chunk& c) {
  return std::visit([](const auto& v) -> size_t { return v.size; }, c);
}

}  // namespace varve
