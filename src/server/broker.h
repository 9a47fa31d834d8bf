#pragma once
// server::broker — wires the layers of one broker process together (DESIGN.md §1):
// configuration, one event loop per core, the controller (on shard 0), one replica manager
// per shard, and the Kafka listener whose requests go through the dispatcher.
//
// Shutdown (SIGTERM/SIGINT): stop accepting, close every partition cleanly on its own
// shard (flush + clean-shutdown marker), then stop the loops.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cluster/controller.h"
#include "cluster/metadata.h"
#include "common/shard.h"
#include "config/broker_config.h"
#include "coordinator/group_coordinator.h"
#include "metrics/admin_server.h"
#include "metrics/broker_metrics.h"
#include "metrics/probe.h"
#include "net/server.h"
#include "replication/replica_manager.h"

namespace varve::server {

class broker {
 public:
  explicit broker(config::broker_config config);
  ~broker();

  // Opens storage and metadata, starts listening. False (with *error) if it cannot start.
  bool start(std::string* error);
  // Runs the event loops until a shutdown signal.
  void run();

  // --- services for request handlers ---
  const config::broker_config& config() const { return config_; }
  int32_t node_id() const { return node_id_; }
  const cluster::broker_endpoint& advertised() const { return advertised_; }
  shard_set& shards() { return shards_; }
  std::shared_ptr<const cluster::metadata_snapshot> metadata() const { return cache_.get(); }
  replication::replica_manager& replicas(unsigned shard) { return *replica_managers_[shard]; }
  // The consumer group coordinator of `shard` (owns the groups of that shard's
  // __consumer_offsets partitions); use it on that shard's loop only.
  coordinator::group_coordinator& groups(unsigned shard) { return *group_coordinators_[shard]; }
  unsigned shard_of(const replication::topic_partition& tp) const;

  // Runs `fn(controller&)` on the controller loop, then makes every shard apply the
  // resulting metadata before returning — so a topic is servable as soon as its
  // CreateTopics response is sent.
  //
  // (The awaitables are held in named variables and lambdas capture only references:
  // GCC 12 destroys non-trivial temporaries of a co_await full-expression twice.)
  template <typename F>
  asio::awaitable<std::invoke_result_t<F, cluster::controller&>> with_controller(F fn) {
    auto call = [this, &fn] { return fn(*controller_); };
    auto op = shards_.invoke_on(0, std::move(call));
    auto result = co_await std::move(op);
    co_await propagate_metadata();
    co_return result;
  }
  asio::awaitable<void> propagate_metadata();
  // Must run on shard 0 (the controller loop).
  int64_t allocate_producer_id_on_controller_loop() { return controller_->allocate_producer_id(); }

  // The request-metrics probe of the calling shard; null when not called on a shard's loop.
  metrics::shard_probe* probe() {
    const int s = shard_set::current();
    return s >= 0 && static_cast<size_t>(s) < probes_.size() ? probes_[s].get() : nullptr;
  }

  // Effective settings of a topic (broker defaults + its overrides).
  replication::partition_config partition_config_for(const cluster::topic_metadata& t) const;

 private:
  void shutdown();
  // Starts the HTTP admin listener (admin.listeners; empty disables it).
  bool start_admin(std::string* error);

  config::broker_config config_;
  int32_t node_id_ = 0;
  cluster::broker_endpoint advertised_;
  shard_set shards_;
  cluster::metadata_cache cache_;
  std::unique_ptr<cluster::controller> controller_;
  std::vector<std::unique_ptr<replication::replica_manager>> replica_managers_;
  std::vector<std::unique_ptr<coordinator::group_coordinator>> group_coordinators_;
  std::unique_ptr<net::server> server_;
  std::vector<std::unique_ptr<metrics::shard_probe>> probes_;
  metrics::broker_sources metrics_sources_;
  std::unique_ptr<metrics::admin_server> admin_;
  std::atomic<bool> started_{false};
  std::optional<asio::signal_set> signals_;
  bool stopping_ = false;
};

}  // namespace varve::server
