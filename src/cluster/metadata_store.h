#pragma once
// cluster::metadata_store — the controller's durable state, as a tree of versioned nodes
// shaped like ZooKeeper's znodes (paths such as /brokers/topics/<topic>). Two
// implementations share one controller (DESIGN.md §5): local_store (single node, a journal
// under log.dirs, fsync'd) and, in a cluster, a ZooKeeper-backed store.
// Layout of the nodes and the journal format: docs/format/metadata-store.md.
//
// Durability: a mutation is durable when it returns, except inside a batch
// (begin_batch()/end_batch(), or the RAII store_batch): then the store may defer durability
// to the end of the outermost batch, where every mutation of the batch becomes durable at
// once, in order (a crash keeps a prefix of them). The controller batches the writes of one
// operation (a topic's nodes, one election round) and acts on them only after the batch.
//
// Threading: not thread-safe; used only from the controller's loop (shard 0).
#include <cstdint>
#include <exception>
#include <filesystem>
#include <map>
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
  // Batches nest; only the outermost end_batch() commits. Stores that write every mutation
  // durably anyway (ZooKeeper) ignore them.
  virtual void begin_batch() {}
  virtual void end_batch() {}
};

// Scope of one batch of mutations (see "Durability" above). The destructor commits, and
// throws what the commit throws (a failed fsync) unless the scope is being left by an
// exception already.
class store_batch {
 public:
  explicit store_batch(metadata_store& store)
      : store_(store), exceptions_(std::uncaught_exceptions()) {
    store_.begin_batch();
  }
  ~store_batch() noexcept(false) {
    if (std::uncaught_exceptions() > exceptions_) {
      try {
        store_.end_batch();
      } catch (...) {
      }
      return;
    }
    store_.end_batch();
  }
  store_batch(const store_batch&) = delete;
  store_batch& operator=(const store_batch&) = delete;

 private:
  metadata_store& store_;
  int exceptions_;
};

// Single-node store: the whole tree in memory, every mutation appended to one journal file,
// `root`/metadata.log (records with a CRC-32C each; a torn record at the tail after a crash is
// cut off at open). A mutation outside a batch is fsync'd before it returns; a batch is one
// fsync at its end. The journal is rewritten as a snapshot of the live tree (temp file,
// fsync, rename, fsync of `root`) when it grows past 4x the live tree (and 1 MiB).
// A `root` written by an earlier version as a directory tree (one `.node` file per node) is
// read once, written as a journal, and removed.
// Errors: the constructor throws std::runtime_error when the journal cannot be read or
// holds a corrupt record before its tail; a mutation throws when it cannot write or fsync.
class local_store final : public metadata_store {
 public:
  explicit local_store(std::filesystem::path root);
  ~local_store() override;
  local_store(const local_store&) = delete;
  local_store& operator=(const local_store&) = delete;

  std::optional<store_node> get(const std::string& path) override;
  bool create(const std::string& path, const std::string& data) override;
  bool set(const std::string& path, const std::string& data, int32_t expected_version) override;
  bool remove_recursive(const std::string& path) override;
  std::vector<std::string> children(const std::string& path) override;
  void begin_batch() override;
  void end_batch() override;

  // For tests and metrics: bytes in the journal file, fsyncs issued since open.
  uint64_t journal_bytes() const { return journal_bytes_; }
  uint64_t syncs() const { return syncs_; }

 private:
  void load();
  void migrate_directory_tree();
  void put_in_memory(const std::string& path, store_node node);
  bool remove_recursive_in_memory(const std::string& path);
  void append(const std::string& body);
  void commit();  // fsync unless batched, then maybe compact
  void rewrite_snapshot();

  std::filesystem::path root_;
  int fd_ = -1;
  std::map<std::string, store_node> nodes_;  // by normalised path ("/a/b")
  uint64_t journal_bytes_ = 0;
  uint64_t live_bytes_ = 0;  // size of a snapshot of nodes_, as journal records
  uint64_t syncs_ = 0;
  int batch_depth_ = 0;
  bool dirty_ = false;  // appended since the last fsync
};

}  // namespace varve::cluster
