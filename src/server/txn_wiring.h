#pragma once
// server::txn_wiring — one shard's transaction coordinator (coordinator::txn_coordinator)
// wired to the broker (docs/transactions.md):
//   - its __transaction_state appends go to the shard's replica of the partition with
//     acks=all: `done` runs once the high watermark passes the batch (or with the error:
//     NOT_LEADER_OR_FOLLOWER, NOT_ENOUGH_REPLICAS, REQUEST_TIMED_OUT after
//     kAppendTimeoutMs);
//   - its markers go to the partitions' leaders: leaders on this broker are written directly
//     on the owning shard (WriteTxnMarkers semantics: marker appended, group coordinator told
//     for __consumer_offsets, then wait for the HW to pass it); leaders elsewhere get a
//     WriteTxnMarkers request from this shard's sender thread. A partition whose topic no
//     longer exists counts as written;
//   - remote calls (those WriteTxnMarkers, and KIP-890 verification against a coordinator on
//     another broker) run one at a time on the sender thread over blocking connections it
//     keeps, one per remote broker: opened on first use and reused by later calls. A failed
//     call closes its connection (its stream state is unknown); if that connection had been
//     reused and the call failed fast (the peer closed it while idle, e.g. it restarted), the
//     call is made once more on a new connection; a call that timed out is not (a hung
//     broker would only be waited for twice). A connection is closed when its broker leaves
//     the metadata or the broker's endpoint changes (checked before each call, and every
//     kPruneIntervalMs while connections are kept), and at stop();
//   - producer ids come from the controller (shard 0) in small blocks kept per shard, so
//     InitProducerId needs no hop to shard 0 in the common case (an empty pool answers
//     COORDINATOR_LOAD_IN_PROGRESS, which clients retry, while it refills);
//   - leadership of __transaction_state partitions (replica_manager's leadership hook):
//     on_leadership() loads the partition's records up to the high watermark into the
//     coordinator with the partition's leader epoch as coordinator epoch, or unloads it.
//
// Threading: every method runs on the shard's loop, except the sender thread, which only
// performs network calls, reads the broker's metadata snapshot (atomic) and posts results
// back to the loop; it alone owns the kept connections. stop() (on the loop, at shutdown)
// joins it.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "cluster/metadata.h"
#include "coordinator/txn_coordinator.h"
#include "replication/partition.h"

namespace varve::net {
class broker_connection;
}

namespace varve::server {

class broker;

class txn_wiring {
 public:
  static constexpr int64_t kAppendTimeoutMs = 30000;
  static constexpr int64_t kPruneIntervalMs = 5000;

  txn_wiring(broker& b, unsigned shard, coordinator::txn_coordinator_options options);
  ~txn_wiring();
  txn_wiring(const txn_wiring&) = delete;
  txn_wiring& operator=(const txn_wiring&) = delete;

  coordinator::txn_coordinator& coordinator() { return *coord_; }

  // On the loop: starts the coordinator's timer and the producer id pool.
  void start();
  // On the loop: stops the coordinator and joins the sender thread.
  void stop();

  // Leadership of __transaction_state partition p moved to (leader) or away from this
  // broker; p's replica lives on this shard.
  void on_leadership(int32_t p, bool leader);

  // Runs `fn` once the HW of `tp` (hosted on `shard`) passes `required_offset` while the
  // leader epoch is still `epoch`, with NONE or the error that ended the wait; on `shard`'s
  // loop. Also used by WriteTxnMarkers.
  // KIP-890 verification against a transaction coordinator on another broker: sends
  // AddPartitionsToTxn (v4+, verify_only) from the sender thread and calls `done` on this
  // shard's loop with one error per partition (all NETWORK_EXCEPTION if the call failed).
  void verify_remote(int32_t coordinator_node, std::string transactional_id, int64_t producer_id,
                     int16_t producer_epoch, std::vector<coordinator::txn_partition> partitions,
                     std::function<void(std::vector<protocol::error_code>)> done);

  static void wait_for_high_watermark(broker& b, unsigned shard, replication::topic_partition tp,
                                      int64_t required_offset, int32_t epoch, int64_t timeout_ms,
                                      std::function<void(protocol::error_code)> fn);

 private:
  using done_fn = coordinator::txn_coordinator::done_fn;
  void append(int32_t p, std::vector<coordinator::txn_log_entry> records, done_fn done);
  void write_markers(coordinator::txn_marker_request request, done_fn done);
  std::optional<int64_t> allocate_producer_id();
  void refill_producer_ids();
  bool load(int32_t p, std::string* error);
  // Queues `job` for the sender thread.
  void send(std::function<void()> job);
  void sender_loop();

  // One request/response on a connection; false with *error when it failed.
  using remote_call = std::function<bool(net::broker_connection&, std::string* error)>;
  // Sender thread only: runs `call` on the kept connection to broker `to` (see the header
  // comment for reuse, retry and closing). False with *error when no connection could be
  // opened or the call failed.
  bool call_remote(const cluster::broker_endpoint& to, const remote_call& call, std::string* error);
  // Sender thread only: closes the connections to brokers that left the metadata or whose
  // endpoint changed.
  void prune_connections();

  broker& b_;
  unsigned shard_;
  std::unique_ptr<coordinator::txn_coordinator> coord_;
  std::deque<int64_t> producer_ids_;
  bool refilling_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                   // GUARDED_BY(mu_)
  std::thread sender_;

  // Touched only by the sender thread (and destroyed after it is joined).
  struct kept_connection {
    std::string host;
    int32_t port = 0;
    std::unique_ptr<net::broker_connection> connection;
  };
  std::map<int32_t, kept_connection> connections_;  // by broker id
};

}  // namespace varve::server
