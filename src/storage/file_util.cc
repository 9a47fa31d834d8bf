#include "storage/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "storage/format.h"

namespace varve::storage {
namespace {

void set_error(std::string* error, std::string_view what, const std::filesystem::path* path,
               int err) {
  if (!error) return;
  std::string msg(what);
  if (path) msg += " " + path->string();
  msg += ": ";
  msg += std::strerror(err);
  *error = std::move(msg);
}

}  // namespace

bool pwrite_all(int fd, std::span<const uint8_t> bytes, uint64_t position, std::string* error) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done,
                         static_cast<off_t>(position + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      set_error(error, "pwrite", nullptr, errno);
      return false;
    }
    if (n == 0) {
      set_error(error, "pwrite wrote nothing", nullptr, EIO);
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

int64_t pread_full(int fd, std::span<uint8_t> out, uint64_t position, std::string* error) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd, out.data() + done, out.size() - done,
                        static_cast<off_t>(position + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      set_error(error, "pread", nullptr, errno);
      return -1;
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<int64_t>(done);
}

bool fdatasync_fd(int fd, std::string* error) {
  while (::fdatasync(fd) != 0) {
    if (errno == EINTR) continue;
    set_error(error, "fdatasync", nullptr, errno);
    return false;
  }
  return true;
}

bool fsync_dir(const std::filesystem::path& dir, std::string* error) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    set_error(error, "open directory", &dir, errno);
    return false;
  }
  bool ok = true;
  while (::fsync(fd) != 0) {
    if (errno == EINTR) continue;
    set_error(error, "fsync directory", &dir, errno);
    ok = false;
    break;
  }
  ::close(fd);
  return ok;
}

bool write_file_atomically(const std::filesystem::path& path, std::string_view content,
                           std::string* error) {
  std::filesystem::path tmp = path;
  tmp += std::string(kTmpSuffix);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    set_error(error, "open", &tmp, errno);
    return false;
  }
  std::string local_error;
  bool ok = pwrite_all(fd, {reinterpret_cast<const uint8_t*>(content.data()), content.size()}, 0,
                       &local_error) &&
            fdatasync_fd(fd, &local_error);
  ::close(fd);
  if (!ok) {
    if (error) *error = local_error + " (" + tmp.string() + ")";
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    set_error(error, "rename to", &path, errno);
    ::unlink(tmp.c_str());
    return false;
  }
  return fsync_dir(path.parent_path(), error);
}

std::optional<std::string> read_small_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return out.str();
}

std::string segment_file_name(int64_t base_offset, std::string_view suffix) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%020lld", static_cast<long long>(base_offset));
  std::string name(buf);
  name += suffix;
  return name;
}

std::optional<int64_t> parse_segment_file_name(std::string_view name, std::string_view suffix) {
  if (name.size() != kSegmentNameDigits + suffix.size()) return std::nullopt;
  if (name.substr(kSegmentNameDigits) != suffix) return std::nullopt;
  int64_t value = 0;
  const char* first = name.data();
  const char* last = name.data() + kSegmentNameDigits;
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec != std::errc() || ptr != last || value < 0) return std::nullopt;
  return value;
}

}  // namespace varve::storage
