#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "cluster/metadata_store.h"
#include "common/log.h"
#include "protocol/crc32c.h"

namespace varve::cluster {
namespace fs = std::filesystem;
namespace {
constexpr const char* kLog = "metadata";
constexpr const char* kJournal = "metadata.log";
constexpr const char* kJournalTmp = "metadata.log.tmp";
constexpr const char* kLegacyNodeFile = ".node";
constexpr uint8_t kPut = 1;
constexpr uint8_t kRemove = 2;
constexpr size_t kRecordHeader = 8;  // body length, CRC-32C of the body
constexpr uint64_t kMinCompactBytes = 1 << 20;

[[noreturn]] void fail(const std::string& what, const fs::path& p) {
  throw std::runtime_error(what + " " + p.string() + ": " + std::strerror(errno));
}

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("cannot open", dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) fail("cannot fsync", dir);
}

void write_all(int fd, const std::string& bytes, const fs::path& p) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("cannot write", p);
    done += static_cast<size_t>(n);
  }
}

void put_be(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_be(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  return v;
}

// "/a/b" for "a/b", "/a//b/", ...; "/" for the root. Throws on "." or ".." components.
std::string normalise(const std::string& path) {
  std::string out;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    if (part == "." || part == "..") throw std::invalid_argument("bad metadata path " + path);
    out += "/" + part;
  }
  return out.empty() ? "/" : out;
}

std::string parent_of(const std::string& norm) {
  const size_t slash = norm.rfind('/');
  return slash == 0 ? "/" : norm.substr(0, slash);
}

std::string put_body(const std::string& path, const store_node& node) {
  std::string body;
  body.push_back(static_cast<char>(kPut));
  put_be(body, path.size(), 2);
  body += path;
  put_be(body, static_cast<uint32_t>(node.version), 4);
  put_be(body, node.data.size(), 4);
  body += node.data;
  return body;
}

std::string remove_body(const std::string& path) {
  std::string body;
  body.push_back(static_cast<char>(kRemove));
  put_be(body, path.size(), 2);
  body += path;
  return body;
}

std::string framed(const std::string& body) {
  std::string rec;
  put_be(rec, body.size(), 4);
  put_be(rec, protocol::crc32c_extend(0, reinterpret_cast<const uint8_t*>(body.data()),
                                      body.size()),
         4);
  rec += body;
  return rec;
}

uint64_t put_record_size(const std::string& path, const store_node& node) {
  return kRecordHeader + 1 + 2 + path.size() + 4 + 4 + node.data.size();
}
}  // namespace

local_store::local_store(fs::path root) : root_(std::move(root)) {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) throw std::runtime_error("cannot create metadata directory " + root_.string() + ": " +
                                   ec.message());
  load();
}

local_store::~local_store() {
  if (fd_ >= 0) {
    if (dirty_) ::fsync(fd_);
    ::close(fd_);
  }
}

void local_store::load() {
  const fs::path journal = root_ / kJournal;
  fs::remove(root_ / kJournalTmp);  // an interrupted rewrite; the journal is still whole
  if (!fs::exists(journal)) {
    migrate_directory_tree();  // writes the journal (empty if there was nothing)
    return;
  }
  std::ifstream in(journal, std::ios::binary);
  if (!in) fail("cannot read", journal);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t pos = 0;
  uint64_t records = 0;
  while (pos < bytes.size()) {
    const size_t left = bytes.size() - pos;
    const uint64_t len = left >= kRecordHeader ? get_be(data + pos, 4) : 0;
    if (left < kRecordHeader || len > left - kRecordHeader) break;  // torn tail
    const uint8_t* body = data + pos + kRecordHeader;
    const bool crc_ok = protocol::crc32c_extend(0, body, len) == get_be(data + pos + 4, 4);
    // A bad record that is not the last one is corruption, not a torn append.
    const bool last = pos + kRecordHeader + len == bytes.size();
    bool parsed = false;
    if (crc_ok && len >= 3) {
      const uint8_t op = body[0];
      const uint64_t plen = get_be(body + 1, 2);
      if (3 + plen <= len) {
        const std::string path(reinterpret_cast<const char*>(body + 3), plen);
        if (op == kRemove && 3 + plen == len) {
          remove_recursive_in_memory(path);
          parsed = true;
        } else if (op == kPut && 3 + plen + 8 <= len) {
          store_node node;
          node.version = static_cast<int32_t>(get_be(body + 3 + plen, 4));
          const uint64_t dlen = get_be(body + 3 + plen + 4, 4);
          if (3 + plen + 8 + dlen == len) {
            node.data.assign(reinterpret_cast<const char*>(body + 3 + plen + 8), dlen);
            put_in_memory(path, std::move(node));
            parsed = true;
          }
        }
      }
    }
    if (!parsed) {
      if (!last) {
        throw std::runtime_error("metadata journal " + journal.string() +
                                 " has a corrupt record at byte " + std::to_string(pos) +
                                 " followed by more records; refusing to start");
      }
      break;
    }
    pos += kRecordHeader + len;
    ++records;
  }
  fd_ = ::open(journal.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) fail("cannot open", journal);
  if (pos < bytes.size()) {
    VLOG_WARN(kLog) << "metadata journal " << journal.string() << ": cutting off "
                    << bytes.size() - pos << " byte(s) of an incomplete record at its tail";
    if (::ftruncate(fd_, static_cast<off_t>(pos)) != 0 || ::fsync(fd_) != 0) {
      fail("cannot truncate", journal);
    }
  }
  journal_bytes_ = pos;
  VLOG_INFO(kLog) << "loaded " << nodes_.size() << " metadata node(s) from " << records
                  << " journal record(s) (" << pos << " bytes)";
  if (journal_bytes_ > kMinCompactBytes && journal_bytes_ > 4 * live_bytes_) rewrite_snapshot();
}

void local_store::migrate_directory_tree() {
  // Earlier versions kept node /a/b in root/a/b/.node as "<version>\n<data>".
  std::vector<fs::path> legacy;
  for (const auto& entry : fs::directory_iterator(root_)) {
    if (entry.is_directory()) legacy.push_back(entry.path());
  }
  for (const auto& top : legacy) {
    for (auto it = fs::recursive_directory_iterator(top); it != fs::recursive_directory_iterator();
         ++it) {
      if (!it->is_directory()) continue;
      const std::string name = it->path().filename().string();
      if (name.rfind(".deleting-", 0) == 0) {
        it.disable_recursion_pending();
        continue;
      }
      std::ifstream in(it->path() / kLegacyNodeFile, std::ios::binary);
      if (!in) continue;
      store_node node;
      std::string version_line;
      if (!std::getline(in, version_line)) continue;
      node.version = std::stoi(version_line);
      std::ostringstream rest;
      rest << in.rdbuf();
      node.data = rest.str();
      put_in_memory("/" + fs::relative(it->path(), root_).generic_string(), std::move(node));
    }
  }
  rewrite_snapshot();  // the journal exists from here on: the tree below is no longer read
  if (!legacy.empty()) {
    VLOG_INFO(kLog) << "migrated " << nodes_.size() << " metadata node(s) from the directory "
                    << "tree in " << root_.string() << " to " << kJournal;
  }
  for (const auto& top : legacy) fs::remove_all(top);
}

void local_store::put_in_memory(const std::string& path, store_node node) {
  auto it = nodes_.find(path);
  if (it != nodes_.end()) live_bytes_ -= put_record_size(path, it->second);
  live_bytes_ += put_record_size(path, node);
  nodes_[path] = std::move(node);
}

bool local_store::remove_recursive_in_memory(const std::string& path) {
  const std::string prefix = path == "/" ? "/" : path + "/";
  bool removed = false;
  if (auto it = nodes_.find(path); it != nodes_.end()) {
    live_bytes_ -= put_record_size(it->first, it->second);
    nodes_.erase(it);
    removed = true;
  }
  for (auto it = nodes_.lower_bound(prefix);
       it != nodes_.end() && it->first.compare(0, prefix.size(), prefix) == 0;) {
    live_bytes_ -= put_record_size(it->first, it->second);
    it = nodes_.erase(it);
    removed = true;
  }
  return removed;
}

void local_store::append(const std::string& body) {
  const std::string rec = framed(body);
  write_all(fd_, rec, root_ / kJournal);
  journal_bytes_ += rec.size();
  dirty_ = true;
}

void local_store::commit() {
  if (batch_depth_ > 0 || !dirty_) return;
  if (::fsync(fd_) != 0) fail("cannot fsync", root_ / kJournal);
  ++syncs_;
  dirty_ = false;
  if (journal_bytes_ > kMinCompactBytes && journal_bytes_ > 4 * live_bytes_) rewrite_snapshot();
}

void local_store::rewrite_snapshot() {
  const fs::path tmp = root_ / kJournalTmp;
  const fs::path journal = root_ / kJournal;
  std::string bytes;
  bytes.reserve(live_bytes_);
  for (const auto& [path, node] : nodes_) bytes += framed(put_body(path, node));  // parents first
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create", tmp);
  write_all(fd, bytes, tmp);
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail("cannot fsync", tmp);
  }
  ::close(fd);
  fs::rename(tmp, journal);
  fsync_dir(root_);
  ++syncs_;
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(journal.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) fail("cannot open", journal);
  journal_bytes_ = bytes.size();
  dirty_ = false;
}

std::optional<store_node> local_store::get(const std::string& path) {
  auto it = nodes_.find(normalise(path));
  if (it == nodes_.end()) return std::nullopt;
  return it->second;
}

bool local_store::create(const std::string& path, const std::string& data) {
  const std::string norm = normalise(path);
  if (norm == "/" || nodes_.count(norm)) return false;
  // Parents get empty nodes so that every prefix of a path is a node (as in ZooKeeper,
  // where a parent must exist).
  std::vector<std::string> missing;
  for (std::string p = parent_of(norm); p != "/" && !nodes_.count(p); p = parent_of(p)) {
    missing.push_back(p);
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    append(put_body(*it, store_node{}));
    put_in_memory(*it, store_node{});
  }
  store_node node{data, 0};
  append(put_body(norm, node));
  put_in_memory(norm, std::move(node));
  commit();
  return true;
}

bool local_store::set(const std::string& path, const std::string& data, int32_t expected_version) {
  const std::string norm = normalise(path);
  auto it = nodes_.find(norm);
  if (it == nodes_.end()) return false;
  if (expected_version >= 0 && it->second.version != expected_version) return false;
  store_node node{data, it->second.version + 1};
  append(put_body(norm, node));
  put_in_memory(norm, std::move(node));
  commit();
  return true;
}

bool local_store::remove_recursive(const std::string& path) {
  const std::string norm = normalise(path);
  if (norm == "/") return false;
  if (!remove_recursive_in_memory(norm)) return false;
  append(remove_body(norm));
  commit();
  return true;
}

std::vector<std::string> local_store::children(const std::string& path) {
  const std::string norm = normalise(path);
  const std::string prefix = norm == "/" ? "/" : norm + "/";
  std::vector<std::string> out;  // sorted: nodes_ is
  for (auto it = nodes_.lower_bound(prefix);
       it != nodes_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    const std::string rest = it->first.substr(prefix.size());
    if (rest.find('/') == std::string::npos) out.push_back(rest);
  }
  return out;
}

void local_store::begin_batch() { ++batch_depth_; }

void local_store::end_batch() {
  if (batch_depth_ > 0 && --batch_depth_ == 0) commit();
}

}  // namespace varve::cluster
