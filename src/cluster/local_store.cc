#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "cluster/metadata_store.h"
#include "common/log.h"

namespace varve::cluster {
namespace fs = std::filesystem;
namespace {
constexpr const char* kNodeFile = ".node";

void fsync_path(const fs::path& p, bool directory) {
  int fd = ::open(p.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

bool valid_component(const std::string& c) { return !c.empty() && c != "." && c != ".."; }
}  // namespace

local_store::local_store(fs::path root) : root_(std::move(root)) {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec) throw std::runtime_error("cannot create metadata directory " + root_.string() + ": " +
                                   ec.message());
}

fs::path local_store::dir_of(const std::string& path) const {
  fs::path out = root_;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    if (!valid_component(part)) throw std::invalid_argument("bad metadata path " + path);
    out /= part;
  }
  return out;
}

std::optional<store_node> local_store::get(const std::string& path) {
  const fs::path file = dir_of(path) / kNodeFile;
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  store_node node;
  std::string version_line;
  if (!std::getline(in, version_line)) return std::nullopt;
  node.version = std::stoi(version_line);
  std::ostringstream rest;
  rest << in.rdbuf();
  node.data = rest.str();
  return node;
}

void local_store::write_node(const fs::path& dir, const store_node& node) {
  fs::create_directories(dir);
  const fs::path tmp = dir / ".node.tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << node.version << '\n' << node.data;
    out.flush();
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  fsync_path(tmp, false);
  fs::rename(tmp, dir / kNodeFile);
  fsync_path(dir, true);
}

bool local_store::create(const std::string& path, const std::string& data) {
  const fs::path dir = dir_of(path);
  if (fs::exists(dir / kNodeFile)) return false;
  // Parents get empty nodes so that every directory on the path is a node.
  for (fs::path p = dir.parent_path(); p.string().size() > root_.string().size();
       p = p.parent_path()) {
    if (!fs::exists(p / kNodeFile)) write_node(p, store_node{});
  }
  write_node(dir, store_node{data, 0});
  fsync_path(dir.parent_path(), true);
  return true;
}

bool local_store::set(const std::string& path, const std::string& data, int32_t expected_version) {
  auto current = get(path);
  if (!current) return false;
  if (expected_version >= 0 && current->version != expected_version) return false;
  write_node(dir_of(path), store_node{data, current->version + 1});
  return true;
}

bool local_store::remove_recursive(const std::string& path) {
  const fs::path dir = dir_of(path);
  if (!fs::exists(dir)) return false;
  // Rename first so a crash mid-removal never leaves a half-deleted node visible.
  const fs::path trash = dir.parent_path() / (".deleting-" + dir.filename().string());
  fs::remove_all(trash);
  fs::rename(dir, trash);
  fsync_path(dir.parent_path(), true);
  fs::remove_all(trash);
  return true;
}

std::vector<std::string> local_store::children(const std::string& path) {
  std::vector<std::string> out;
  const fs::path dir = dir_of(path);
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_directory()) continue;
    const std::string name = entry.path().filename().string();
    if (name.rfind(".deleting-", 0) == 0) continue;
    if (fs::exists(entry.path() / kNodeFile)) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace varve::cluster
