#pragma once
// server::cluster_link — this broker's inter-broker traffic, in Kafka's own messages
// (DESIGN.md §5):
//   - the controller_channel: the active controller's LeaderAndIsr / UpdateMetadata /
//     StopReplica. To this process they are applied directly (same functions the request
//     handlers call); to every other broker they are queued, in order, on one sender thread
//     per broker (Kafka's RequestSendThread) and retried until delivered or the broker
//     leaves the cluster.
//   - the controller_forwarder: admin requests arriving at a broker whose controller is not
//     active go to the active controller (blocking on the controller loop, bounded by a
//     timeout — like the ZooKeeper calls made there).
//   - AlterPartition: ISR proposals from this broker's partition leaders, queued and sent to
//     the active controller by one thread (or applied directly when it is this broker).
//
// Threading: channel methods are called on the controller loop (shard 0); propose_isr()
// from any shard's loop. Sender threads never touch broker state directly: they post to
// shard 0.
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "cluster/controller.h"
#include "net/blocking_client.h"
#include "protocol/messages.h"
#include "replication/partition.h"

namespace varve::server {

class broker;

// Wire encoding of the controller's messages (and back), shared by the sender and the
// request handlers.
protocol::leader_and_isr_request encode_leader_and_isr(int32_t controller_id,
                                                       int32_t controller_epoch,
                                                       const std::vector<cluster::partition_update>& parts);
std::vector<cluster::partition_update> decode_leader_and_isr(const protocol::leader_and_isr_request& req);
protocol::update_metadata_request encode_update_metadata(int32_t controller_epoch,
                                                         const cluster::metadata_snapshot& snap);
std::shared_ptr<cluster::metadata_snapshot> decode_update_metadata(
    const protocol::update_metadata_request& req);

class cluster_link final : public cluster::controller_channel, public cluster::controller_forwarder {
 public:
  explicit cluster_link(broker& b);
  ~cluster_link() override;
  void stop();

  // controller_channel
  void leader_and_isr(int32_t broker, int32_t controller_epoch,
                      std::vector<cluster::partition_update> partitions) override;
  void update_metadata(int32_t broker, int32_t controller_epoch,
                       std::shared_ptr<const cluster::metadata_snapshot> snapshot) override;
  void stop_replica(int32_t broker, int32_t controller_epoch,
                    std::vector<std::pair<std::string, int32_t>> partitions,
                    bool delete_partitions) override;
  void brokers_changed(const std::vector<cluster::broker_endpoint>& live) override;

  // controller_forwarder
  cluster::topic_result create_topic(int32_t controller, const std::string& name,
                                     int32_t num_partitions, int16_t replication_factor,
                                     const std::map<std::string, std::string>& configs,
                                     bool validate_only,
                                     const cluster::replica_assignment& manual) override;
  cluster::topic_result delete_topic(int32_t controller, const std::string& name) override;
  cluster::topic_result create_partitions(int32_t controller, const std::string& name,
                                          int32_t new_total, bool validate_only,
                                          const cluster::replica_assignment& manual) override;
  cluster::topic_result set_topic_configs(int32_t controller, const std::string& name,
                                          const std::map<std::string, std::string>& configs,
                                          bool validate_only) override;

  // An ISR change proposed by a local partition leader.
  void propose_isr(const replication::isr_proposal& proposal);

  // ControlledShutdown to the active controller until it reports no remaining leaders or
  // `attempts` run out. True when leadership moved away.
  bool controlled_shutdown(int attempts);

 private:
  using request_fn = std::function<bool(net::broker_connection&, std::string* error)>;
  struct sender;

  void enqueue(int32_t broker, request_fn fn);
  std::unique_ptr<net::broker_connection> connect_to(int32_t node, std::string* error);
  // The controller_forwarder's round trip: sends `req` (at most at `max_version`) on a new
  // connection to `controller` and converts the first entry of the response's per-topic
  // `results` to a topic_result. NOT_CONTROLLER (with the reason) when the controller cannot
  // be reached or the call fails; UNKNOWN_SERVER_ERROR when the response has no entry.
  template <typename Req, typename Resp, typename Result>
  cluster::topic_result forward(int32_t controller, const Req& req,
                                std::vector<Result> Resp::*results, std::string_view api,
                                int16_t max_version = Req::max_version);
  void isr_loop();

  broker& b_;
  std::mutex mu_;
  std::map<int32_t, std::unique_ptr<sender>> senders_;  // GUARDED_BY(mu_)
  std::vector<std::unique_ptr<sender>> retired_;        // GUARDED_BY(mu_): joined by stop()
  bool stopping_ = false;                               // GUARDED_BY(mu_)

  std::mutex isr_mu_;
  std::condition_variable isr_cv_;
  std::deque<replication::isr_proposal> isr_queue_;  // GUARDED_BY(isr_mu_)
  bool isr_stopping_ = false;                        // GUARDED_BY(isr_mu_)
  std::thread isr_thread_;
};

}  // namespace varve::server
