#pragma once
// cluster::controller — the single writer of cluster metadata (DESIGN.md §5).
//
// It owns the metadata_store, decides replica assignments and partition leadership, and
// publishes a new metadata_snapshot after every change. Brokers (here: this process's
// replica managers) learn what to host through the `on_change` callback, which the server
// layer wires to partition creation/deletion — the controller never reaches up into them.
//
// Threading: every method must be called on the controller loop (shard 0).
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cluster/metadata.h"
#include "cluster/metadata_store.h"
#include "protocol/error_code.h"

namespace varve::cluster {

struct controller_options {
  int32_t node_id = 0;
  broker_endpoint self;
  int32_t default_num_partitions = 1;
  int16_t default_replication_factor = 1;
};

struct topic_result {
  protocol::error_code error = protocol::error_code::none;
  std::string message;  // human-readable reason when error != none
};

// Validates topic-level config overrides; returns an error message or "".
using config_validator = std::function<std::string(const std::map<std::string, std::string>&)>;

class controller {
 public:
  controller(std::unique_ptr<metadata_store> store, controller_options options,
             metadata_cache& cache, config_validator validate_configs);

  // Loads (or initialises: cluster id) the state from the store and publishes it.
  void load();

  // num_partitions / replication_factor of -1 mean "broker default".
  topic_result create_topic(const std::string& name, int32_t num_partitions,
                            int16_t replication_factor,
                            const std::map<std::string, std::string>& configs, bool validate_only,
                            bool internal = false);
  topic_result delete_topic(const std::string& name);
  topic_result create_partitions(const std::string& name, int32_t new_total, bool validate_only);
  // Replaces the topic's overrides with `configs` (AlterConfigs semantics).
  topic_result set_topic_configs(const std::string& name,
                                 const std::map<std::string, std::string>& configs,
                                 bool validate_only);

  // Hands out a producer id, reserving blocks of 1000 durably so ids never repeat across
  // restarts (Kafka's /latest_producer_id_block).
  int64_t allocate_producer_id();

  const std::string& cluster_id() const { return cluster_id_; }

  // Called after every published change with the new snapshot.
  void on_change(std::function<void(std::shared_ptr<const metadata_snapshot>)> fn) {
    listeners_.push_back(std::move(fn));
  }

 private:
  void publish();
  std::shared_ptr<topic_metadata> read_topic(const std::string& name);
  void write_topic(const topic_metadata& t, bool create);

  std::unique_ptr<metadata_store> store_;
  controller_options options_;
  metadata_cache& cache_;
  config_validator validate_configs_;
  std::string cluster_id_;
  std::map<std::string, std::shared_ptr<const topic_metadata>> topics_;
  int64_t next_producer_id_ = 0;
  int64_t producer_id_block_end_ = 0;  // exclusive
  std::vector<std::function<void(std::shared_ptr<const metadata_snapshot>)>> listeners_;
};

}  // namespace varve::cluster
