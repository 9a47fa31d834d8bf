#pragma once
// cluster::metadata_store — the controller's durable state, as a tree of versioned nodes
// shaped like ZooKeeper's znodes (paths such as /brokers/topics/<topic>). Two
// implementations share one controller (DESIGN.md §5): local_store (single node, files
// under log.dirs, fsync'd) and, in a cluster, a ZooKeeper-backed store.
// Layout of the nodes: docs/format/metadata-store.md.
//
// Threading: not thread-safe; used only from the controller's loop (shard 0).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace varve::cluster {

struct store_node {
  std::string data;
  int32_t version = 0;  // incremented by every successful set()
};

class metadata_store {
 public:
  virtual ~metadata_store() = default;
  virtual std::optional<store_node> get(const std::string& path) = 0;
  // Creates a node (and missing parents, with empty data). False if it exists.
  virtual bool create(const std::string& path, const std::string& data) = 0;
  // Sets data if the node's version equals `expected_version` (-1: any). False otherwise.
  virtual bool set(const std::string& path, const std::string& data, int32_t expected_version) = 0;
  // Removes a node and its children. False if it does not exist.
  virtual bool remove_recursive(const std::string& path) = 0;
  virtual std::vector<std::string> children(const std::string& path) = 0;
};

// Files under `root`: node /a/b is directory root/a/b, its data in root/a/b/.node
// ("<version>\n<data>"), replaced atomically (write temp, fsync, rename, fsync dir).
class local_store final : public metadata_store {
 public:
  // Creates `root` if needed. Throws std::runtime_error if it cannot.
  explicit local_store(std::filesystem::path root);
  std::optional<store_node> get(const std::string& path) override;
  bool create(const std::string& path, const std::string& data) override;
  bool set(const std::string& path, const std::string& data, int32_t expected_version) override;
  bool remove_recursive(const std::string& path) override;
  std::vector<std::string> children(const std::string& path) override;

 private:
  std::filesystem::path dir_of(const std::string& path) const;
  void write_node(const std::filesystem::path& dir, const store_node& node);
  std::filesystem::path root_;
};

}  // namespace varve::cluster
