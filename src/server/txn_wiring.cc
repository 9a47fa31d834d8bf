#include "server/txn_wiring.h"

#include <chrono>
#include <map>

#include "common/log.h"
#include "coordinator/offsets_format.h"
#include "coordinator/txn_log_format.h"
#include "net/blocking_client.h"
#include "protocol/messages.h"
#include "protocol/record_batch.h"
#include "replication/partition_reader.h"
#include "server/broker.h"

namespace varve::server {
namespace {
using protocol::error_code;
constexpr std::string_view kLog = "txn";
constexpr int kSenderTimeoutMs = 10000;
constexpr size_t kProducerIdBlock = 16;  // ids fetched from the controller at a time
constexpr size_t kProducerIdLowWater = 4;

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Shared by a high-watermark wait's timer and the partition's waiter; lives on one loop.
struct hw_wait {
  hw_wait(asio::io_context& loop) : timer(loop) {}
  asio::steady_timer timer;
  broker* b = nullptr;
  unsigned shard = 0;
  replication::topic_partition tp;
  int64_t required = 0;
  int32_t epoch = -1;
  bool finished = false;
  std::function<void(error_code)> fn;
};

void finish_wait(const std::shared_ptr<hw_wait>& w, error_code e) {
  if (w->finished) return;
  w->finished = true;
  w->timer.cancel();
  auto fn = std::move(w->fn);
  fn(e);
}

void check_wait(const std::shared_ptr<hw_wait>& w) {
  if (w->finished) return;
  replication::partition* p = w->b->replicas(w->shard).get(w->tp);
  if (!p) return finish_wait(w, error_code::not_leader_or_follower);
  bool done = false;
  const error_code e = p->acks_all_status(w->required, w->epoch, &done);
  if (done) return finish_wait(w, e);
  std::weak_ptr<hw_wait> weak = w;
  p->add_waiter(weak, [weak] {
    if (auto s = weak.lock()) check_wait(s);
  });
}

// Aggregates the partitions of one marker request; lives on the coordinator's loop.
struct marker_job {
  size_t remaining = 0;
  error_code error = error_code::none;
  coordinator::txn_coordinator::done_fn done;
  void finish_one(error_code e) {
    if (e != error_code::none && error == error_code::none) error = e;
    if (--remaining == 0) std::exchange(done, nullptr)(error);
  }
};

// Marker outcomes that mean the marker is not needed any more (a newer producer epoch or
// coordinator wrote there, or the partition is gone): not retried.
error_code settle_marker_error(error_code e, const replication::topic_partition& tp) {
  switch (e) {
    case error_code::invalid_producer_epoch:
    case error_code::transaction_coordinator_fenced:
      VLOG_WARN(kLog) << "marker for " << tp.str() << " superseded ("
                      << protocol::error_name(e) << "); not retried";
      return error_code::none;
    default:
      return e;
  }
}
}  // namespace

void txn_wiring::wait_for_high_watermark(broker& b, unsigned shard, replication::topic_partition tp,
                                         int64_t required_offset, int32_t epoch,
                                         int64_t timeout_ms, std::function<void(error_code)> fn) {
  auto w = std::make_shared<hw_wait>(b.shards().loop(shard));
  w->b = &b;
  w->shard = shard;
  w->tp = std::move(tp);
  w->required = required_offset;
  w->epoch = epoch;
  w->fn = std::move(fn);
  w->timer.expires_after(std::chrono::milliseconds(timeout_ms));
  w->timer.async_wait([w](const asio::error_code&) {
    // Fires on timeout or cancel; a finished wait ignores it. The handler keeps `w` alive.
    finish_wait(w, error_code::request_timed_out);
  });
  check_wait(w);
}

txn_wiring::txn_wiring(broker& b, unsigned shard, coordinator::txn_coordinator_options options)
    : b_(b), shard_(shard) {
  coord_ = std::make_unique<coordinator::txn_coordinator>(
      options,
      [this](int32_t p, std::vector<coordinator::txn_log_entry> records, done_fn done) {
        append(p, std::move(records), std::move(done));
      },
      [this](coordinator::txn_marker_request request, done_fn done) {
        write_markers(std::move(request), std::move(done));
      },
      [this] { return allocate_producer_id(); }, [] { return wall_ms(); });
  sender_ = std::thread([this] { sender_loop(); });
}

txn_wiring::~txn_wiring() {
  *alive_ = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (sender_.joinable()) sender_.join();
}

void txn_wiring::start() {
  coord_->start(b_.shards().loop(shard_));
  refill_producer_ids();
}

void txn_wiring::stop() {
  coord_->stop();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    jobs_.clear();
  }
  cv_.notify_all();
  if (sender_.joinable()) sender_.join();
}

void txn_wiring::send(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void txn_wiring::sender_loop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto ready = [this] { return stopping_ || !jobs_.empty(); };
      if (connections_.empty()) {
        cv_.wait(lock, ready);
      } else {
        cv_.wait_for(lock, std::chrono::milliseconds(kPruneIntervalMs), ready);
      }
      if (stopping_) break;
      if (!jobs_.empty()) {
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
    }
    prune_connections();
    if (job) job();
  }
  connections_.clear();
}

void txn_wiring::prune_connections() {
  if (connections_.empty()) return;
  auto md = b_.metadata();  // an atomic snapshot: safe to read from this thread
  for (auto it = connections_.begin(); it != connections_.end();) {
    bool current = false;
    for (const auto& be : md->brokers) {
      if (be.id == it->first) current = be.host == it->second.host && be.port == it->second.port;
    }
    if (current) {
      ++it;
    } else {
      VLOG_INFO(kLog) << "closing the connection to broker " << it->first
                      << " (left the cluster or moved)";
      it = connections_.erase(it);
    }
  }
}

bool txn_wiring::call_remote(const cluster::broker_endpoint& to, const remote_call& call,
                             std::string* error) {
  for (;;) {
    kept_connection& kept = connections_[to.id];
    const bool reused = kept.connection && kept.host == to.host && kept.port == to.port;
    if (!reused) {
      kept.connection = net::broker_connection::open(to.host, to.port, kSenderTimeoutMs, error,
                                                     "varve-txn-sender");
      if (!kept.connection) {
        connections_.erase(to.id);
        return false;
      }
      kept.host = to.host;
      kept.port = to.port;
    }
    const auto started = std::chrono::steady_clock::now();
    if (call(*kept.connection, error)) return true;
    if (kept.connection->last_error_was_local()) return false;  // the connection is still fine
    connections_.erase(to.id);
    const bool failed_fast = std::chrono::steady_clock::now() - started <
                             std::chrono::milliseconds(kSenderTimeoutMs / 2);
    if (!reused || !failed_fast) return false;
    VLOG_INFO(kLog) << "kept connection to broker " << to.id << " failed (" << *error
                    << "); retrying on a new one";
  }
}

// ---------------------------------------------------------------- producer ids

std::optional<int64_t> txn_wiring::allocate_producer_id() {
  if (producer_ids_.size() <= kProducerIdLowWater) refill_producer_ids();
  if (producer_ids_.empty()) return std::nullopt;
  const int64_t id = producer_ids_.front();
  producer_ids_.pop_front();
  return id;
}

void txn_wiring::refill_producer_ids() {
  if (refilling_) return;
  refilling_ = true;
  auto alive = alive_;
  asio::post(b_.shards().loop(0), [this, alive] {
    std::vector<int64_t> ids;
    try {
      for (size_t i = 0; i < kProducerIdBlock; ++i) {
        ids.push_back(b_.allocate_producer_id_on_controller_loop());
      }
    } catch (const std::exception& e) {
      VLOG_WARN(kLog) << "cannot allocate producer ids: " << e.what();
    }
    asio::post(b_.shards().loop(shard_), [this, alive, ids = std::move(ids)] {
      if (!*alive) return;
      refilling_ = false;
      producer_ids_.insert(producer_ids_.end(), ids.begin(), ids.end());
    });
  });
}

// ---------------------------------------------------------------- __transaction_state

void txn_wiring::append(int32_t p, std::vector<coordinator::txn_log_entry> records,
                        done_fn done) {
  const replication::topic_partition tp{std::string(coordinator::kTransactionStateTopic), p};
  replication::partition* part = b_.replicas(shard_).get(tp);
  if (!part || !part->is_leader()) return done(error_code::not_leader_or_follower);
  const int64_t now = wall_ms();
  std::vector<protocol::record> out;
  for (auto& r : records) {
    protocol::record rec;
    rec.timestamp = now;
    rec.key = std::move(r.key);
    rec.value = std::move(r.value);
    out.push_back(std::move(rec));
  }
  std::vector<uint8_t> batch = protocol::build_batch(out, protocol::batch_builder_options{});
  auto result = part->append(std::span<uint8_t>(batch), -1, now);
  if (result.error != error_code::none) {
    VLOG_WARN(kLog) << "append to " << tp.str() << " failed: "
                    << protocol::error_name(result.error) << " " << result.error_message;
    return done(result.error);
  }
  wait_for_high_watermark(b_, shard_, tp, result.last_offset + 1, result.leader_epoch,
                          kAppendTimeoutMs, std::move(done));
}

bool txn_wiring::load(int32_t p, std::string* error) {
  const replication::topic_partition tp{std::string(coordinator::kTransactionStateTopic), p};
  replication::partition* part = b_.replicas(shard_).get(tp);
  if (!part || !part->is_leader()) {
    *error = "not the leader";
    return false;
  }
  size_t records = 0;
  auto replay = [&](const protocol::record& r, const protocol::record_batch_header&) {
    if (!r.key) return;
    std::optional<std::span<const uint8_t>> value;
    if (r.value) value = std::span<const uint8_t>(*r.value);
    coord_->replay(p, *r.key, value);
    ++records;
  };
  int64_t offset = 0;
  if (!replication::read_partition_records(*part, replay, nullptr, &offset, error)) return false;
  VLOG_INFO(kLog) << "loaded " << tp.str() << ": " << records << " record(s) up to offset "
                  << offset;
  return true;
}

void txn_wiring::on_leadership(int32_t p, bool leader) {
  if (!leader) {
    coord_->unload(p);
    return;
  }
  const replication::topic_partition tp{std::string(coordinator::kTransactionStateTopic), p};
  replication::partition* part = b_.replicas(shard_).get(tp);
  if (!part) return;
  const int32_t epoch = part->leader_epoch();
  coord_->begin_loading(p, epoch);
  // Load once the HW covers the log (a new leader's HW moves when its followers fetch):
  // wait for it, then read; a leader change meanwhile starts over from its own hook.
  auto alive = alive_;
  auto load_now = [this, alive, p, epoch](error_code) {
    if (!*alive) return;
    const replication::topic_partition tp{std::string(coordinator::kTransactionStateTopic), p};
    replication::partition* part = b_.replicas(shard_).get(tp);
    if (!part || !part->is_leader() || part->leader_epoch() != epoch) return;
    std::string why;
    if (!load(p, &why)) {
      // The partition stays loading (requests get COORDINATOR_LOAD_IN_PROGRESS) and the
      // load is retried while this replica still leads in the same epoch.
      VLOG_ERROR(kLog) << "cannot load " << tp.str() << ": " << why << "; retrying in 1 s";
      auto timer = std::make_shared<asio::steady_timer>(b_.shards().loop(shard_));
      timer->expires_after(std::chrono::seconds(1));
      timer->async_wait([this, alive, timer, p, epoch](const asio::error_code&) {
        if (!*alive) return;
        const replication::topic_partition tp{std::string(coordinator::kTransactionStateTopic), p};
        replication::partition* part = b_.replicas(shard_).get(tp);
        if (part && part->is_leader() && part->leader_epoch() == epoch) on_leadership(p, true);
      });
      return;
    }
    coord_->complete_loading(p);
  };
  wait_for_high_watermark(b_, shard_, tp, part->log_end_offset(), epoch, kAppendTimeoutMs,
                          std::move(load_now));
  refill_producer_ids();
}

// ---------------------------------------------------------------- verification

void txn_wiring::verify_remote(int32_t coordinator_node, std::string transactional_id,
                               int64_t producer_id, int16_t producer_epoch,
                               std::vector<coordinator::txn_partition> partitions,
                               std::function<void(std::vector<error_code>)> done) {
  std::optional<cluster::broker_endpoint> ep;
  for (const auto& be : b_.metadata()->brokers) {
    if (be.id == coordinator_node) ep = be;
  }
  protocol::add_partitions_to_txn_request req;
  auto& t = req.transactions.emplace_back();
  t.transactional_id = transactional_id;
  t.producer_id = producer_id;
  t.producer_epoch = producer_epoch;
  t.verify_only = true;
  for (const auto& tp : partitions) {
    if (t.topics.empty() || t.topics.back().name != tp.topic) t.topics.emplace_back().name = tp.topic;
    t.topics.back().partitions.push_back(tp.partition);
  }
  auto alive = alive_;
  const unsigned home = shard_;
  send([this, home, alive, ep, coordinator_node, req = std::move(req), partitions,
        done = std::move(done)]() mutable {
    std::vector<error_code> out(partitions.size(), error_code::network_exception);
    std::string error;
    protocol::add_partitions_to_txn_response resp;
    auto verify = [&req, &resp](net::broker_connection& c, std::string* error) {
      if (c.pick_version(protocol::add_partitions_to_txn_request::api_key, 4,
                         protocol::add_partitions_to_txn_request::max_version) < 4) {
        *error = c.address() + " does not support AddPartitionsToTxn v4 (verification)";
        return false;
      }
      resp = {};  // a retry decodes into a fresh response
      return c.call(req, &resp, error);
    };
    if (!ep) error = "broker " + std::to_string(coordinator_node) + " has no known endpoint";
    if (ep && call_remote(*ep, verify, &error)) {
      for (size_t i = 0; i < partitions.size(); ++i) {
        out[i] = resp.error_code != 0 ? static_cast<error_code>(resp.error_code)
                                      : error_code::unknown_server_error;
        for (const auto& r : resp.results_by_transaction) {
          for (const auto& tr : r.topic_results) {
            if (tr.name != partitions[i].topic) continue;
            for (const auto& pr : tr.results_by_partition) {
              if (pr.partition_index == partitions[i].partition) {
                out[i] = static_cast<error_code>(pr.partition_error_code);
              }
            }
          }
        }
      }
    } else {
      VLOG_WARN(kLog) << "transaction verification call failed: " << error;
    }
    asio::post(b_.shards().loop(home), [alive, out = std::move(out), done = std::move(done)] {
      if (*alive) done(out);
    });
  });
}

// ---------------------------------------------------------------- markers

void txn_wiring::write_markers(coordinator::txn_marker_request request, done_fn done) {
  auto md = b_.metadata();
  auto job = std::make_shared<marker_job>();
  job->done = std::move(done);
  job->remaining = 1;  // released at the end, so completions inside the loop cannot finish it
  std::map<int32_t, std::vector<replication::topic_partition>> remote;
  auto alive = alive_;
  for (const auto& tp_in : request.partitions) {
    const replication::topic_partition tp{tp_in.topic, tp_in.partition};
    auto t = md->find(tp.topic);
    if (!t || tp.partition < 0 || tp.partition >= static_cast<int32_t>(t->partitions.size())) {
      continue;  // topic deleted: nothing to mark
    }
    const int32_t leader = t->partitions[tp.partition].leader;
    if (leader < 0) {
      job->error = error_code::not_leader_or_follower;
      continue;
    }
    if (leader != b_.node_id()) {
      remote[leader].push_back(tp);
      continue;
    }
    ++job->remaining;
    const unsigned target = b_.shard_of(tp);
    const unsigned home = shard_;
    broker* b = &b_;
    auto reply = [b, home, job, alive, tp](error_code e) {
      asio::post(b->shards().loop(home), [job, alive, tp, e] {
        if (*alive) job->finish_one(settle_marker_error(e, tp));
      });
    };
    asio::post(b_.shards().loop(target), [b, target, tp, request, reply] {
      replication::partition* part = b->replicas(target).get(tp);
      if (!part) return reply(error_code::not_leader_or_follower);
      auto out = part->append_txn_marker(request.producer_id, request.producer_epoch,
                                         request.commit, request.coordinator_epoch, wall_ms());
      if (out.error != error_code::none) return reply(out.error);
      if (tp.topic == coordinator::kOffsetsTopic) {
        b->groups(target).complete_txn(tp.partition, request.producer_id, request.commit);
      }
      wait_for_high_watermark(*b, target, tp, out.offset + 1, out.leader_epoch,
                              kAppendTimeoutMs, reply);
    });
  }
  for (auto& [leader, tps] : remote) {
    ++job->remaining;
    protocol::write_txn_markers_request req;
    auto& m = req.markers.emplace_back();
    m.producer_id = request.producer_id;
    m.producer_epoch = request.producer_epoch;
    m.transaction_result = request.commit;
    m.coordinator_epoch = request.coordinator_epoch;
    for (const auto& tp : tps) {
      auto it = std::find_if(m.topics.begin(), m.topics.end(),
                             [&](const auto& t) { return t.name == tp.topic; });
      if (it == m.topics.end()) {
        m.topics.emplace_back().name = tp.topic;
        it = m.topics.end() - 1;
      }
      it->partition_indexes.push_back(tp.partition);
    }
    std::optional<cluster::broker_endpoint> ep;
    for (const auto& be : md->brokers) {
      if (be.id == leader) ep = be;
    }
    const unsigned home = shard_;
    send([this, home, job, alive, ep, req = std::move(req), leader] {
      error_code e = error_code::none;
      std::string error;
      protocol::write_txn_markers_response resp;
      auto write = [&req, &resp](net::broker_connection& c, std::string* error) {
        resp = {};  // a retry decodes into a fresh response
        return c.call(req, &resp, error);
      };
      if (!ep) {
        e = error_code::not_leader_or_follower;
      } else if (!call_remote(*ep, write, &error)) {
        VLOG_WARN(kLog) << "WriteTxnMarkers to broker " << leader << " failed: " << error;
        e = error_code::network_exception;
      } else {
        for (const auto& mr : resp.markers) {
          for (const auto& t : mr.topics) {
            for (const auto& p : t.partitions) {
              const error_code pe = settle_marker_error(static_cast<error_code>(p.error_code),
                                                        {t.name, p.partition_index});
              if (pe != error_code::none && e == error_code::none) e = pe;
            }
          }
        }
      }
      asio::post(b_.shards().loop(home), [job, alive, e] {
        if (*alive) job->finish_one(e);
      });
    });
  }
  job->finish_one(error_code::none);
}

}  // namespace varve::server
