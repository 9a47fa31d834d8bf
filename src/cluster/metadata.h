#pragma once
// cluster::metadata_snapshot — an immutable view of the cluster (brokers, topics,
// partition leaders/ISR, topic config overrides). The controller builds a new snapshot for
// every change and publishes it through metadata_cache; readers on any loop take the
// current snapshot without locking (an atomic shared_ptr load) and keep it as long as
// they need a consistent view.
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace varve::cluster {

using topic_id = std::array<uint8_t, 16>;

struct broker_endpoint {
  int32_t id = 0;
  std::string host;
  int32_t port = 0;
  std::optional<std::string> rack;
};

struct partition_state {
  int32_t partition = 0;
  int32_t leader = -1;        // -1: offline
  int32_t leader_epoch = 0;
  int32_t partition_epoch = 0;  // bumped on every leader/ISR change (AlterPartition)
  std::vector<int32_t> replicas;
  std::vector<int32_t> isr;
  // During a reassignment (KIP-455) `replicas` is target + original; these name the ones
  // being added and removed. Both empty otherwise.
  std::vector<int32_t> adding_replicas;
  std::vector<int32_t> removing_replicas;
};

struct topic_metadata {
  std::string name;
  topic_id id{};
  bool internal = false;
  std::vector<partition_state> partitions;
  std::map<std::string, std::string> configs;  // topic-level overrides only
};

struct metadata_snapshot {
  std::string cluster_id;
  int32_t controller_id = -1;
  std::vector<broker_endpoint> brokers;
  std::map<std::string, std::shared_ptr<const topic_metadata>> topics;
  std::map<topic_id, std::string> names_by_id;

  std::shared_ptr<const topic_metadata> find(const std::string& name) const {
    auto it = topics.find(name);
    return it == topics.end() ? nullptr : it->second;
  }
  std::shared_ptr<const topic_metadata> find(const topic_id& id) const {
    auto it = names_by_id.find(id);
    return it == names_by_id.end() ? nullptr : find(it->second);
  }
};

class metadata_cache {
 public:
  metadata_cache() : current_(std::make_shared<const metadata_snapshot>()) {}
  std::shared_ptr<const metadata_snapshot> get() const {
    return current_.load(std::memory_order_acquire);
  }
  void publish(std::shared_ptr<const metadata_snapshot> s) {
    current_.store(std::move(s), std::memory_order_release);
  }

 private:
  std::atomic<std::shared_ptr<const metadata_snapshot>> current_;
};

// Kafka's topic name rule: 1..249 chars of [a-zA-Z0-9._-], not "." or "..".
bool valid_topic_name(const std::string& name, std::string* why);

}  // namespace varve::cluster
