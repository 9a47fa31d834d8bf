#pragma once
// metrics::broker_metrics — what a /metrics scrape and a readiness check read from a
// running broker, and how it is rendered (docs/metrics.md lists every metric with the
// Kafka JMX name it corresponds to).
//
// A scrape runs on shard 0's loop (the admin listener's) and visits every shard in turn
// with shard_set::invoke_on; on each shard sample_shard() copies that shard's partition
// offsets and counters, its consumer groups and committed offsets, and its request probe.
// Nothing is shared between shards and nothing is locked: each shard's state is read on
// its own loop, so the hot path pays only for the counters it bumps. render() then joins
// the samples — consumer lag needs the high watermark of a partition that may live on
// another shard than the group's coordinator — and writes the text format.
#include <asio.hpp>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cluster/metadata.h"
#include "common/shard.h"
#include "coordinator/group_coordinator.h"
#include "metrics/admin_server.h"
#include "metrics/probe.h"
#include "metrics/process_stats.h"
#include "replication/replica_manager.h"

namespace varve::metrics {

struct partition_sample {
  std::string topic;
  int32_t partition = 0;
  bool leader = false;
  int64_t log_start_offset = 0;
  int64_t log_end_offset = 0;
  int64_t high_watermark = 0;
  int64_t size_bytes = 0;
  uint64_t bytes_in = 0;
  uint64_t records_in = 0;
};

struct group_sample {
  std::string group;
  std::string state;  // Kafka's state name
  int32_t generation = 0;
  size_t members = 0;
};

struct committed_offset_sample {
  std::string group;
  std::string topic;
  int32_t partition = 0;
  int64_t offset = -1;
};

struct shard_sample {
  std::vector<partition_sample> partitions;
  std::vector<group_sample> groups;
  std::vector<committed_offset_sample> offsets;
  bool groups_loading = false;  // a __consumer_offsets partition is still being loaded
  uint64_t isr_shrinks = 0;
  uint64_t isr_expands = 0;
  uint64_t txn_committed = 0;
  uint64_t txn_aborted = 0;
  probe_snapshot probe;
};

// Must run on the loop that owns `replicas`, `groups` and `probe`.
shard_sample sample_shard(const replication::replica_manager& replicas,
                          const coordinator::group_coordinator& groups, const shard_probe& probe);

// Everything a scrape needs from the broker. The functions are called on the scrape's
// loop (replicas/groups/probe only from within invoke_on on their own shard).
struct broker_sources {
  shard_set* shards = nullptr;
  int32_t node_id = 0;
  std::vector<std::filesystem::path> log_dirs;
  std::vector<std::pair<int16_t, std::string>> api_names;  // api key → Kafka's API name
  std::function<replication::replica_manager&(unsigned)> replicas;
  std::function<coordinator::group_coordinator&(unsigned)> groups;
  // Transactions completed by a shard's transaction coordinator: (committed, aborted).
  std::function<std::pair<uint64_t, uint64_t>(unsigned)> transactions;
  std::function<shard_probe&(unsigned)> probe;
  std::function<std::shared_ptr<const cluster::metadata_snapshot>()> metadata;
  // Effective min.insync.replicas of a topic (broker default + override).
  std::function<int32_t(const cluster::topic_metadata&)> min_insync_replicas;
  std::function<int64_t()> connections;
  // True while this broker's controller is the active one (ActiveControllerCount).
  std::function<bool()> active_controller;
  // Leader elections (clean, unclean) decided by this broker's controller.
  std::function<std::pair<int64_t, int64_t>()> elections;
  // True once start-up is done: logs recovered, metadata loaded, Kafka listener open, and
  // (in a cluster) the active controller's first UpdateMetadata or LeaderAndIsr applied.
  std::function<bool()> started;
};

struct broker_sample {
  int32_t node_id = 0;
  std::shared_ptr<const cluster::metadata_snapshot> metadata;
  std::map<std::string, int32_t> min_insync_replicas;  // by topic
  std::vector<shard_sample> shards;
  int64_t connections = 0;
  std::optional<bool> active_controller;  // unset: judge by the metadata's controller id
  int64_t leader_elections = 0;
  int64_t unclean_leader_elections = 0;
  bool ready = false;
  std::vector<std::pair<std::filesystem::path, std::optional<disk_stats>>> log_dirs;
  std::optional<process_stats> process;
  std::vector<std::pair<int16_t, std::string>> api_names;
};

// Collects a broker_sample (visits every shard). Runs on any shard's loop.
asio::awaitable<broker_sample> collect(const broker_sources& sources);
// The Prometheus text for a sample.
std::string render(const broker_sample& sample);
// Ready: started() and no shard still loading consumer groups.
bool is_ready(const broker_sample& sample);
asio::awaitable<bool> check_ready(const broker_sources& sources);

// Registers /metrics, /v1/status/live and /v1/status/ready on `server`. `sources` must
// outlive the server.
void add_broker_routes(admin_server& server, const broker_sources& sources);

}  // namespace varve::metrics
