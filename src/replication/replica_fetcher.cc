#include "replication/replica_fetcher.h"

#include <chrono>
#include <vector>

#include "common/log.h"
#include "net/blocking_client.h"
#include "protocol/messages.h"

namespace varve::replication {
namespace {
using protocol::error_code;
constexpr std::string_view kLog = "fetcher";
// Fetch v12: topics by name, replica_id in the body, current_leader_epoch.
constexpr int16_t kFetchVersion = 12;

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

struct replica_fetcher_manager::fetcher {
  int32_t leader = -1;
  std::map<topic_partition, fetch_state> partitions;  // GUARDED_BY(manager mu_)
  std::condition_variable cv;
  std::thread thread;
};

replica_fetcher_manager::replica_fetcher_manager(fetcher_options options, run_fn run,
                                                 endpoint_fn endpoint)
    : options_(options), run_(std::move(run)), endpoint_(std::move(endpoint)) {}

replica_fetcher_manager::~replica_fetcher_manager() { stop(); }

size_t replica_fetcher_manager::partition_count() const {
  std::lock_guard lock(mu_);
  return leader_of_.size();
}

void replica_fetcher_manager::remove(const topic_partition& tp) { add(tp, -1, -1); }

void replica_fetcher_manager::add(const topic_partition& tp, int32_t leader, int32_t leader_epoch) {
  std::lock_guard lock(mu_);
  if (stopping_) return;
  if (auto it = leader_of_.find(tp); it != leader_of_.end()) {
    fetchers_[it->second]->partitions.erase(tp);
    leader_of_.erase(it);
  }
  if (leader < 0 || leader == options_.node_id) return;
  fetch_state st;
  st.leader_epoch = leader_epoch;
  st.truncating = true;
  st.generation = next_generation_++;
  fetcher& f = fetcher_for(leader);
  f.partitions[tp] = st;
  leader_of_[tp] = leader;
  f.cv.notify_all();
}

void replica_fetcher_manager::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_.exchange(true)) return;
    for (auto& [id, f] : fetchers_) f->cv.notify_all();
  }
  // Threads check stopping_ at least every socket timeout; join outside the lock.
  for (auto& [id, f] : fetchers_) {
    if (f->thread.joinable()) f->thread.join();
  }
}

replica_fetcher_manager::fetcher& replica_fetcher_manager::fetcher_for(int32_t leader) {
  auto& slot = fetchers_[leader];
  if (slot) return *slot;
  slot = std::make_unique<fetcher>();
  slot->leader = leader;
  fetcher* f = slot.get();
  f->thread = std::thread([this, f] {
    std::unique_ptr<net::broker_connection> conn;
    int64_t last_error_log_ms = 0;
    auto log_error = [&](const std::string& what) {
      // One line per 10 s per leader: an operator sees the problem without a flood.
      if (steady_ms() - last_error_log_ms > 10000) {
        VLOG_WARN(kLog) << "fetching from broker " << f->leader << ": " << what;
        last_error_log_ms = steady_ms();
      }
    };
    auto backoff = [&] {
      std::unique_lock lock(mu_);
      f->cv.wait_for(lock, std::chrono::milliseconds(options_.backoff_ms),
                     [&] { return stopping_.load(); });
    };
    while (!stopping_) {
      std::map<topic_partition, fetch_state> parts;
      {
        std::unique_lock lock(mu_);
        if (f->partitions.empty()) {
          conn.reset();  // nothing to follow here: release the leader's connection
          f->cv.wait_for(lock, std::chrono::seconds(1));
          continue;
        }
        parts = f->partitions;
      }
      if (!conn) {
        auto ep = endpoint_(f->leader);
        if (!ep) {
          log_error("no endpoint known for the leader");
          backoff();
          continue;
        }
        std::string err;
        conn = net::broker_connection::open(ep->host, ep->port, options_.socket_timeout_ms, &err,
                                            "varve-replica-fetcher-" + std::to_string(options_.node_id));
        if (!conn) {
          log_error(err);
          backoff();
          continue;
        }
      }
      const int64_t now = steady_ms();
      // Results to write back, keyed by generation so a concurrent add() wins.
      std::map<topic_partition, fetch_state> updates;

      // 1. Truncation by leader epoch for partitions that just started following.
      protocol::offset_for_leader_epoch_request oreq;
      oreq.replica_id = options_.node_id;
      std::map<topic_partition, std::pair<int32_t, int64_t>> local;  // latest epoch, LEO
      for (const auto& [tp, st] : parts) {
        if (!st.truncating || st.delayed_until_ms > now) continue;
        int32_t epoch = -1;
        int64_t leo = -1;
        int64_t hw = -1;
        const bool ran = run_(tp, [&](partition* p) {
          if (!p) return;
          epoch = p->log().latest_epoch();
          leo = p->log_end_offset();
          hw = p->high_watermark();
        });
        if (!ran || leo < 0) continue;
        if (epoch < 0) {
          // No epoch history (empty log): nothing can diverge; fetch from the LEO.
          fetch_state s = st;
          s.truncating = false;
          s.fetch_offset = leo;
          updates[tp] = s;
          continue;
        }
        local[tp] = {epoch, leo};
        auto* t = [&]() -> protocol::offset_for_leader_epoch_request::offset_for_leader_topic* {
          for (auto& x : oreq.topics)
            if (x.topic == tp.topic) return &x;
          auto& x = oreq.topics.emplace_back();
          x.topic = tp.topic;
          return &x;
        }();
        auto& p = t->partitions.emplace_back();
        p.partition = tp.partition;
        p.current_leader_epoch = st.leader_epoch;
        p.leader_epoch = epoch;
      }
      if (!oreq.topics.empty()) {
        protocol::offset_for_leader_epoch_response oresp;
        std::string err;
        if (!conn->call(oreq, &oresp, &err)) {
          log_error("OffsetForLeaderEpoch: " + err);
          conn.reset();
          backoff();
          continue;
        }
        for (const auto& t : oresp.topics) {
          for (const auto& pr : t.partitions) {
            topic_partition tp{t.topic, pr.partition};
            auto lit = local.find(tp);
            auto sit = parts.find(tp);
            if (lit == local.end() || sit == parts.end()) continue;
            fetch_state s = sit->second;
            const auto code = static_cast<error_code>(pr.error_code);
            if (code != error_code::none) {
              log_error(tp.str() + ": OffsetForLeaderEpoch answered " +
                        std::string(protocol::error_name(code)));
              s.delayed_until_ms = now + options_.backoff_ms;
              updates[tp] = s;
              continue;
            }
            const auto [my_epoch, my_leo] = lit->second;
            int64_t target = my_leo;
            int64_t hw_fallback = -1;
            if (pr.leader_epoch < 0 || pr.end_offset < 0) {
              // The leader knows nothing as old as our epoch: keep only what is committed.
              run_(tp, [&](partition* p) {
                if (p) hw_fallback = p->high_watermark();
              });
              target = hw_fallback >= 0 ? std::min(hw_fallback, my_leo) : my_leo;
            } else if (pr.leader_epoch == my_epoch) {
              target = std::min(pr.end_offset, my_leo);
            } else {
              // The leader's latest epoch <= ours is older: our log diverges after the end
              // of that epoch on the leader, or after its end here, whichever is first.
              int64_t mine = my_leo;
              run_(tp, [&](partition* p) {
                if (!p) return;
                auto [e, end] = p->end_offset_for_epoch(pr.leader_epoch);
                if (e == pr.leader_epoch && end >= 0) mine = end;
              });
              target = std::min({pr.end_offset, mine, my_leo});
            }
            int64_t new_leo = -1;
            const int32_t want_epoch = s.leader_epoch;
            run_(tp, [&](partition* p) {
              if (!p || p->is_leader() || p->leader_epoch() != want_epoch) return;
              if (target < p->log_end_offset()) {
                VLOG_INFO(kLog) << tp.str() << ": truncating to " << target
                                << " by leader epoch (our epoch " << my_epoch << " LEO " << my_leo
                                << "; leader: epoch " << pr.leader_epoch << " ends at "
                                << pr.end_offset << ")";
                p->truncate_to(target);
              }
              new_leo = p->log_end_offset();
            });
            if (new_leo < 0) continue;  // role changed meanwhile; add() will restart it
            s.truncating = false;
            s.fetch_offset = new_leo;
            updates[tp] = s;
          }
        }
      }

      // 2. Fetch for partitions past truncation.
      protocol::fetch_request req;
      req.replica_id = options_.node_id;
      req.max_wait_ms = options_.max_wait_ms;
      req.min_bytes = options_.min_bytes;
      req.max_bytes = options_.max_bytes;
      std::map<topic_partition, fetch_state> fetched;
      for (const auto& [tp, st0] : parts) {
        const fetch_state& st = updates.count(tp) ? updates[tp] : st0;
        if (st.truncating || st.delayed_until_ms > now || st.fetch_offset < 0) continue;
        auto* t = [&]() -> protocol::fetch_request::fetch_topic* {
          for (auto& x : req.topics)
            if (x.topic == tp.topic) return &x;
          auto& x = req.topics.emplace_back();
          x.topic = tp.topic;
          return &x;
        }();
        auto& p = t->partitions.emplace_back();
        p.partition = tp.partition;
        p.current_leader_epoch = st.leader_epoch;
        p.fetch_offset = st.fetch_offset;
        p.partition_max_bytes = options_.partition_max_bytes;
        fetched[tp] = st;
      }
      if (!fetched.empty()) {
        protocol::fetch_response resp;
        std::string err;
        if (!conn->call(req, &resp, &err, kFetchVersion)) {
          log_error("Fetch: " + err);
          conn.reset();
          backoff();
          continue;
        }
        for (const auto& t : resp.responses) {
          for (const auto& pr : t.partitions) {
            topic_partition tp{t.topic, pr.partition_index};
            auto it = fetched.find(tp);
            if (it == fetched.end()) continue;
            fetch_state s = it->second;
            const auto code = static_cast<error_code>(pr.error_code);
            if (code == error_code::none) {
              const auto bytes = pr.record_set.is_null() ? std::span<const uint8_t>()
                                                         : pr.record_set.contiguous();
              error_code append_err = error_code::none;
              int64_t new_leo = -1;
              const int32_t want_epoch = s.leader_epoch;
              const int64_t hw = pr.high_watermark;
              const int64_t lso = pr.log_start_offset;
              run_(tp, [&](partition* p) {
                if (!p || p->is_leader() || p->leader_epoch() != want_epoch) return;
                if (p->log_end_offset() != s.fetch_offset) return;  // truncated meanwhile
                append_err = p->append_as_follower(bytes, hw, lso);
                new_leo = p->log_end_offset();
              });
              if (append_err != error_code::none) {
                log_error(tp.str() + ": appending fetched data failed: " +
                          std::string(protocol::error_name(append_err)) + "; re-truncating");
                s.truncating = true;
                s.delayed_until_ms = now + options_.backoff_ms;
              } else if (new_leo >= 0) {
                s.fetch_offset = new_leo;
              }
            } else if (code == error_code::offset_out_of_range) {
              if (pr.log_start_offset >= 0 && s.fetch_offset < pr.log_start_offset) {
                const int64_t start = pr.log_start_offset;
                const int32_t want_epoch = s.leader_epoch;
                run_(tp, [&](partition* p) {
                  if (!p || p->is_leader() || p->leader_epoch() != want_epoch) return;
                  VLOG_INFO(kLog) << tp.str() << ": our LEO " << p->log_end_offset()
                                  << " is below the leader's log start " << start
                                  << "; restarting the log there";
                  p->truncate_fully_and_start_at(start);
                });
                s.fetch_offset = start;
              } else {
                s.truncating = true;
              }
            } else {
              // FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH / NOT_LEADER_OR_FOLLOWER /
              // UNKNOWN_TOPIC_OR_PARTITION: our view and the leader's differ; the
              // controller's next LeaderAndIsr settles it. Retry after a back-off.
              log_error(tp.str() + ": Fetch answered " + std::string(protocol::error_name(code)));
              s.delayed_until_ms = now + options_.backoff_ms;
            }
            updates[tp] = s;
          }
        }
      }
      bool idle = fetched.empty() && oreq.topics.empty();
      {
        std::lock_guard lock(mu_);
        for (auto& [tp, s] : updates) {
          auto it = f->partitions.find(tp);
          if (it != f->partitions.end() && it->second.generation == s.generation) it->second = s;
        }
      }
      if (idle) {
        // Everything is delayed or waiting for its truncation: do not spin.
        std::unique_lock lock(mu_);
        f->cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return stopping_.load(); });
      }
    }
  });
  return *slot;
}

}  // namespace varve::replication
