#include "server/broker.h"

#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <csignal>
#include <future>
#include <thread>

#include "common/log.h"
#include "config/topic_config.h"
#include "cluster/zk_store.h"
#include "coordinator/offsets_format.h"
#include "coordinator/txn_log_format.h"
#include "server/cluster_link.h"
#include "server/dispatcher.h"

namespace varve::server {
namespace {
constexpr std::string_view kLog = "broker";

unsigned shard_count_for(const config::broker_config&) {
  const unsigned cores = std::thread::hardware_concurrency();
  return cores == 0 ? 1 : cores;
}
}  // namespace

broker::broker(config::broker_config config)
    : config_(std::move(config)), shards_(shard_count_for(config_)) {
  for (unsigned s = 0; s < shards_.count(); ++s) {
    probes_.push_back(std::make_unique<metrics::shard_probe>());
  }
}

broker::~broker() {
  if (open_pool_) open_pool_->join();
  if (fetchers_) fetchers_->stop();
  if (link_) link_->stop();
}

unsigned broker::shard_of(const replication::topic_partition& tp) const {
  return replication::shard_of(tp, const_cast<shard_set&>(shards_).count());
}

replication::partition_config broker::partition_config_for(const cluster::topic_metadata& t) const {
  const config::topic_settings s = config::effective_topic_values(config_, t.configs);
  replication::partition_config out;
  storage::log_config& l = out.log;
  l.segment_bytes = s.segment_bytes;
  l.segment_ms = s.segment_ms;
  l.segment_jitter_ms = s.segment_jitter_ms;
  l.retention_ms = s.retention_ms;
  l.retention_bytes = s.retention_bytes;
  l.flush_messages = s.flush_messages;
  l.flush_ms = s.flush_ms;
  l.index_interval_bytes = s.index_interval_bytes;
  l.segment_index_bytes = s.segment_index_bytes;
  l.max_message_bytes = s.max_message_bytes;
  l.log_append_time = s.log_append_time;
  l.timestamp_before_max_ms = s.timestamp_before_max_ms;
  l.timestamp_after_max_ms = s.timestamp_after_max_ms;
  l.file_delete_delay_ms = s.file_delete_delay_ms;
  l.compact = s.compact;
  l.delete_retention = s.delete_retention;
  l.preallocate = s.preallocate;
  l.delete_retention_ms = s.delete_retention_ms;
  l.min_compaction_lag_ms = s.min_compaction_lag_ms;
  l.max_compaction_lag_ms = s.max_compaction_lag_ms;
  l.min_cleanable_dirty_ratio = s.min_cleanable_dirty_ratio;
  out.min_insync_replicas = s.min_insync_replicas;
  out.replica_lag_time_max_ms = config_.get_long("replica.lag.time.max.ms");
  out.cleaner_enable = config_.get_bool("log.cleaner.enable");
  return out;
}

bool broker::start(std::string* error) {
  node_id_ = std::max(config_.node_id(), 0);
  const auto listeners = config_.listeners();
  if (listeners.empty()) {
    *error = "listeners: no listener configured";
    return false;
  }
  const config::listener& listener = listeners.front();
  if (listener.security_protocol != "PLAINTEXT") {
    *error = "listeners: security protocol " + listener.security_protocol +
             " is not supported yet (only PLAINTEXT)";
    return false;
  }
  auto advertised = config_.advertised_listeners();
  const config::listener& adv = advertised.empty() ? listener : advertised.front();
  advertised_.id = node_id_;
  advertised_.host = adv.host.empty() ? "127.0.0.1" : adv.host;
  advertised_.port = adv.port;
  advertised_.rack = config_.broker_rack();

  std::vector<std::filesystem::path> log_dirs;
  for (const auto& d : config_.log_dirs()) {
    std::error_code ec;
    std::filesystem::create_directories(d, ec);
    if (ec) {
      *error = "log.dirs: cannot create " + d + ": " + ec.message();
      return false;
    }
    log_dirs.push_back(std::filesystem::absolute(d));
  }
  if (log_dirs.empty()) {
    *error = "log.dirs: no log directory configured";
    return false;
  }

  // Metadata: single-node mode keeps it in a local store beside the first log dir; a
  // cluster keeps it in ZooKeeper. The same controller runs over either.
  cluster::controller_options copts;
  copts.node_id = node_id_;
  copts.self = advertised_;
  copts.default_num_partitions = config_.num_partitions();
  copts.default_replication_factor = static_cast<int16_t>(config_.default_replication_factor());
  copts.unclean_leader_election_enable = config_.unclean_leader_election_enable();
  std::unique_ptr<cluster::metadata_store> store;
  try {
    if (config_.cluster_mode()) {
      cluster::zk_options zo;
      zo.connect = *config_.zookeeper_connect();
      zo.session_timeout = std::chrono::milliseconds(config_.get_int("zookeeper.session.timeout.ms"));
      // zookeeper.connection.timeout.ms defaults to the session timeout, as in Kafka.
      const auto ct = config_.get_optional_string("zookeeper.connection.timeout.ms");
      zo.connection_timeout = ct ? std::chrono::milliseconds(std::stoi(*ct)) : zo.session_timeout;
      auto zk = std::make_unique<cluster::zk_store>(zo);
      zk_ = zk.get();
      store = std::move(zk);
    } else {
      store = std::make_unique<cluster::local_store>(log_dirs.front() / ".varve-metadata");
    }
    controller_ = std::make_unique<cluster::controller>(
        std::move(store), zk_, copts, cache_, [](const std::map<std::string, std::string>& c) {
          return config::validate_topic_configs(c);
        });
  } catch (const std::exception& e) {
    *error = config_.cluster_mode()
                 ? "zookeeper.connect=" + *config_.zookeeper_connect() +
                       ": cannot use ZooKeeper: " + e.what()
                 : std::string("cannot open cluster metadata: ") + e.what();
    return false;
  }
  link_ = std::make_unique<cluster_link>(*this);
  controller_->set_channel(link_.get());
  controller_->set_forwarder(link_.get());
  controller_->set_post([this](std::function<void()> fn) {
    asio::post(shards_.loop(0), [this, fn = std::move(fn)] {
      try {
        fn();
      } catch (const std::exception& e) {
        VLOG_ERROR(kLog) << "controller event failed: " << e.what();
      }
    });
  });

  replication::fetcher_options fo;
  fo.node_id = node_id_;
  fo.max_wait_ms = config_.get_int("replica.fetch.wait.max.ms");
  fo.min_bytes = config_.get_int("replica.fetch.min.bytes");
  fo.max_bytes = config_.get_int("replica.fetch.response.max.bytes");
  fo.partition_max_bytes = config_.get_int("replica.fetch.max.bytes");
  fo.socket_timeout_ms = config_.get_int("replica.socket.timeout.ms");
  fo.backoff_ms = config_.get_int("replica.fetch.backoff.ms");
  fetchers_ = std::make_unique<replication::replica_fetcher_manager>(
      fo,
      [this](const replication::topic_partition& tp,
             const std::function<void(replication::partition*)>& fn) {
        const unsigned s = shard_of(tp);
        auto done = std::make_shared<std::promise<void>>();
        auto fut = done->get_future();
        asio::post(shards_.loop(s), [this, s, tp, &fn, done] {
          fn(replica_managers_[s]->get(tp));
          done->set_value();
        });
        // The closure refers to `fn` (and what it captures) on this thread's stack: wait until
        // it has run, or until the loop has stopped — then it never runs and is destroyed.
        while (fut.wait_for(std::chrono::milliseconds(500)) != std::future_status::ready) {
          if (shards_.loop(s).stopped()) return false;
        }
        return true;
      },
      [this](int32_t id) -> std::optional<cluster::broker_endpoint> {
        auto md = cache_.get();
        for (const auto& b : md->brokers) {
          if (b.id == id) return b;
        }
        return std::nullopt;
      });

  // One replica manager per shard; partitions open when the controller assigns them.
  for (unsigned s = 0; s < shards_.count(); ++s) {
    replication::replica_manager_options o;
    o.shard = s;
    o.shard_count = shards_.count();
    o.node_id = node_id_;
    o.log_dirs = log_dirs;
    o.retention_check_interval_ms = config_.get_long("log.retention.check.interval.ms");
    o.recovery_checkpoint_interval_ms =
        config_.get_long("log.flush.offset.checkpoint.interval.ms");
    o.producer_id_expiration_ms = config_.get_int("producer.id.expiration.ms");
    o.producer_id_expiration_check_interval_ms =
        config_.get_int("producer.id.expiration.check.interval.ms");
    replica_managers_.push_back(std::make_unique<replication::replica_manager>(
        shards_.loop(s), o,
        [this](const cluster::topic_metadata& t) { return partition_config_for(t); }));
    replica_managers_.back()->set_hooks(
        [this](const replication::topic_partition& tp, int32_t leader, int32_t epoch) {
          fetchers_->add(tp, leader, epoch);
        },
        [this, s](const replication::topic_partition& tp, bool leader) {
          if (tp.topic == coordinator::kTransactionStateTopic && s < txn_wirings_.size()) {
            txn_wirings_[s]->on_leadership(tp.partition, leader);
            return;
          }
          if (tp.topic != coordinator::kOffsetsTopic || s >= group_coordinators_.size()) return;
          auto& gc = *group_coordinators_[s];
          if (leader) {
            gc.begin_loading(tp.partition);
            const int32_t p = tp.partition;
            asio::post(shards_.loop(s), [this, s, p] {
              std::string why;  // a failed load is logged and retried by the coordinator
              group_coordinators_[s]->load_partition(p, &why);
            });
          } else {
            gc.unload_partition(tp.partition);
          }
        },
        [this](const replication::isr_proposal& p) { link_->propose_isr(p); });
  }
  // One group coordinator per shard. It serves the groups of the __consumer_offsets
  // partitions this broker leads; each is loaded when leadership arrives (until then its
  // groups answer COORDINATOR_LOAD_IN_PROGRESS).
  coordinator::coordinator_options gopts;
  gopts.min_session_timeout_ms = config_.get_int("group.min.session.timeout.ms");
  gopts.max_session_timeout_ms = config_.get_int("group.max.session.timeout.ms");
  gopts.initial_rebalance_delay_ms = config_.get_int("group.initial.rebalance.delay.ms");
  gopts.max_group_size = config_.get_int("group.max.size");
  gopts.offset_metadata_max_bytes = config_.get_int("offset.metadata.max.bytes");
  gopts.offsets_retention_ms = int64_t{config_.get_int("offsets.retention.minutes")} * 60000;
  gopts.offsets_retention_check_interval_ms =
      config_.get_long("offsets.retention.check.interval.ms");
  for (unsigned s = 0; s < shards_.count(); ++s) {
    const std::string offsets_topic(coordinator::kOffsetsTopic);
    group_coordinators_.push_back(std::make_unique<coordinator::group_coordinator>(
        gopts,
        [this, s, offsets_topic](int32_t p) -> replication::partition* {
          auto* part = replica_managers_[s]->get({offsets_topic, p});
          return part && part->is_leader() ? part : nullptr;
        },
        [] {
          return std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now().time_since_epoch())
              .count();
        },
        [] {
          return std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
              .count();
        }));
    asio::post(shards_.loop(s), [this, s] { group_coordinators_[s]->start(shards_.loop(s)); });
  }
  // One transaction coordinator per shard, for the __transaction_state partitions it leads
  // (loaded when leadership arrives, like the group coordinators).
  coordinator::txn_coordinator_options topts;
  topts.transaction_max_timeout_ms = config_.get_int("transaction.max.timeout.ms");
  topts.transactional_id_expiration_ms = config_.get_int("transactional.id.expiration.ms");
  topts.abort_timed_out_transaction_cleanup_interval_ms =
      config_.get_int("transaction.abort.timed.out.transaction.cleanup.interval.ms");
  topts.remove_expired_transactional_ids_interval_ms =
      config_.get_int("transaction.remove.expired.transaction.cleanup.interval.ms");
  topts.transaction_state_num_partitions = config_.get_int("transaction.state.log.num.partitions");
  topts.offsets_topic_num_partitions = config_.get_int("offsets.topic.num.partitions");
  for (unsigned s = 0; s < shards_.count(); ++s) {
    txn_wirings_.push_back(std::make_unique<txn_wiring>(*this, s, topts));
    asio::post(shards_.loop(s), [this, s] { txn_wirings_[s]->start(); });
  }

  try {
    controller_->start();
  } catch (const std::exception& e) {
    *error = std::string("cannot start the controller: ") + e.what();
    return false;
  }
  // Recovery runs before the listener opens: in single-node mode every shard opens its
  // partitions in parallel now (in a cluster they open as LeaderAndIsr arrives).
  {
    auto snapshot = cache_.get();
    std::vector<std::thread> openers;
    for (unsigned s = 0; s < shards_.count(); ++s) {
      openers.emplace_back([this, s, snapshot] { replica_managers_[s]->apply(*snapshot); });
    }
    for (auto& t : openers) t.join();
  }
  for (auto& rm : replica_managers_) rm->start();
  // From here on, partitions open off the loops: creating 1,000 logs (fsyncs) or recovering
  // a large one after a restart in a cluster no longer blocks every request on a loop; the
  // periodic checkpoint files (an fsync each) are written there too.
  open_pool_ = std::make_unique<asio::thread_pool>(4);  // mostly waiting for fsyncs
  const auto on_pool = [pool = open_pool_.get()](std::function<void()> job) {
    asio::post(*pool, std::move(job));
  };
  for (auto& rm : replica_managers_) {
    rm->set_opener(on_pool);
    rm->set_checkpoint_writer(on_pool);
  }
  if (config_.get_bool("auto.leader.rebalance.enable")) schedule_leader_rebalance();
  for (unsigned s = 0; s < shards_.count(); ++s) {
    watchdogs_.push_back(std::make_unique<asio::steady_timer>(shards_.loop(s)));
    asio::post(shards_.loop(s), [this, s] { watch_loop(s); });
  }

  net::server_options nopts;
  nopts.host = listener.host;
  nopts.port = listener.port;
  nopts.max_request_bytes = config_.socket_request_max_bytes();
  nopts.send_buffer_bytes = config_.get_int("socket.send.buffer.bytes");
  nopts.receive_buffer_bytes = config_.get_int("socket.receive.buffer.bytes");
  nopts.max_connections = config_.get_int("max.connections");
  server_ = std::make_unique<net::server>(
      shards_.loops(), nopts,
      [this](const net::connection_info& conn, net::request_frame frame) {
        return dispatch(*this, conn, std::move(frame));
      });
  if (!server_->start(error)) return false;
  if (advertised_.port == 0) advertised_.port = server_->bound_port();

  signals_.emplace(shards_.loop(0), SIGINT, SIGTERM);
  signals_->async_wait([this](const asio::error_code& ec, int sig) {
    if (ec) return;
    VLOG_INFO(kLog) << "received " << (sig == SIGINT ? "SIGINT" : "SIGTERM")
                    << ", shutting down";
    shutdown();
  });
  std::signal(SIGPIPE, SIG_IGN);
  if (!start_admin(error)) return false;
  VLOG_INFO(kLog) << "node " << node_id_ << " listening on " << listener.host << ":"
                  << server_->bound_port() << " (advertised " << advertised_.host << ":"
                  << advertised_.port << "), " << shards_.count() << " event loop(s), data in "
                  << log_dirs.front().string() << ", cluster id " << controller_->cluster_id();
  started_ = true;
  return true;
}

bool broker::start_admin(std::string* error) {
  const std::string value = config_.admin_listeners();
  if (value.empty()) return true;
  metrics::admin_address address;
  if (!metrics::parse_admin_listener(value, &address, error)) return false;
  metrics::broker_sources& m = metrics_sources_;
  m.shards = &shards_;
  m.node_id = node_id_;
  for (const auto& d : config_.log_dirs()) m.log_dirs.push_back(std::filesystem::absolute(d));
  for (const auto& e : api_table()) m.api_names.emplace_back(e.key, std::string(e.name));
  m.replicas = [this](unsigned s) -> replication::replica_manager& { return *replica_managers_[s]; };
  m.groups = [this](unsigned s) -> coordinator::group_coordinator& {
    return *group_coordinators_[s];
  };
  m.probe = [this](unsigned s) -> metrics::shard_probe& { return *probes_[s]; };
  m.metadata = [this] { return cache_.get(); };
  m.min_insync_replicas = [this](const cluster::topic_metadata& t) {
    return partition_config_for(t).min_insync_replicas;
  };
  m.connections = [this] { return server_->connection_count(); };
  m.transactions = [this](unsigned s) {
    auto& c = txns(s);
    return std::make_pair(c.committed_count(), c.aborted_count());
  };
  m.active_controller = [this] { return controller_->active(); };
  m.elections = [this] {
    const auto& st = controller_->stats();
    return std::make_pair(st.leader_elections.load(), st.unclean_leader_elections.load());
  };
  m.started = [this] { return started_.load() && has_cluster_view(); };
  admin_ = std::make_unique<metrics::admin_server>(shards_.loop(0), address);
  metrics::add_broker_routes(*admin_, metrics_sources_);
  return admin_->start(error);
}

void broker::run() { shards_.run(); }

asio::awaitable<void> broker::propagate_metadata() {
  auto snapshot = cache_.get();
  for (unsigned s = 0; s < shards_.count(); ++s) {
    auto op = shards_.invoke_on(s, [this, s, &snapshot] { replica_managers_[s]->apply(*snapshot); });
    co_await std::move(op);
  }
  // New partitions open off the loops; answer once they are open (so a topic is servable
  // when CreateTopics answers), bounded like any controller call.
  struct opened_wait {
    explicit opened_wait(asio::any_io_executor ex) : timer(ex) {}
    bool done = false;
    asio::steady_timer timer;
  };
  const auto home = co_await asio::this_coro::executor;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (unsigned s = 0; s < shards_.count(); ++s) {
    auto w = std::make_shared<opened_wait>(home);
    asio::post(shards_.loop(s), [this, s, w, home] {
      replica_managers_[s]->when_opened([w, home] {
        asio::post(home, [w] {
          w->done = true;
          w->timer.cancel();
        });
      });
    });
    while (!w->done && std::chrono::steady_clock::now() < deadline) {
      w->timer.expires_at(deadline);
      asio::error_code ec;
      auto wait = w->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      co_await std::move(wait);
    }
  }
}

asio::awaitable<void> broker::await_cluster_view(std::chrono::milliseconds max) {
  if (has_cluster_view()) co_return;
  const auto deadline = std::chrono::steady_clock::now() + max;
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!has_cluster_view() && std::chrono::steady_clock::now() < deadline) {
    timer.expires_after(std::chrono::milliseconds(20));
    asio::error_code ec;
    auto wait = timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_await std::move(wait);
  }
}

void broker::publish_and_propagate(std::shared_ptr<const cluster::metadata_snapshot> snap) {
  cache_.publish(std::move(snap));
  for (unsigned s = 0; s < shards_.count(); ++s) {
    asio::post(shards_.loop(s), [this, s] {
      auto current = cache_.get();  // the newest by the time this runs
      replica_managers_[s]->apply(*current);
    });
  }
}

void broker::watch_loop(unsigned s) {
  constexpr auto kTick = std::chrono::milliseconds(100);
  const auto due = std::chrono::steady_clock::now() + kTick;
  asio::steady_timer& t = *watchdogs_[s];
  t.expires_at(due);
  t.async_wait([this, s, due](const asio::error_code& ec) {
    if (ec || stopping_flag_) return;
    const double lag =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - due).count();
    probes_[s]->record_loop_lag(lag);
    if (lag >= 0.5) {
      VLOG_WARN(kLog) << "event loop " << s << " was blocked for about "
                      << static_cast<int64_t>(lag * 1000)
                      << " ms: every request on it waited (varve_event_loop_stalls_total)";
    }
    watch_loop(s);
  });
}

void broker::schedule_leader_rebalance() {
  if (!rebalance_timer_) rebalance_timer_.emplace(shards_.loop(0));
  rebalance_timer_->expires_after(
      std::chrono::seconds(config_.get_long("leader.imbalance.check.interval.seconds")));
  rebalance_timer_->async_wait([this](const asio::error_code& ec) {
    if (ec || stopping_) return;
    try {
      controller_->auto_rebalance(config_.get_int("leader.imbalance.per.broker.percentage"));
    } catch (const std::exception& e) {
      VLOG_ERROR(kLog) << "auto leader rebalance failed: " << e.what();
    }
    schedule_leader_rebalance();
  });
}

bool broker::check_controller_epoch(int32_t epoch) {
  if (epoch < known_controller_epoch_) {
    VLOG_WARN(kLog) << "ignoring a request from a stale controller (epoch " << epoch
                    << " < " << known_controller_epoch_ << ")";
    return false;
  }
  known_controller_epoch_ = epoch;
  return true;
}

protocol::error_code broker::apply_leader_and_isr(int32_t controller_id, int32_t controller_epoch,
                                                  std::vector<cluster::partition_update> parts) {
  if (!check_controller_epoch(controller_epoch)) return protocol::error_code::stale_controller_epoch;
  auto cur = cache_.get();
  auto next = std::make_shared<cluster::metadata_snapshot>(*cur);
  next->controller_id = controller_id;
  for (auto& u : parts) {
    auto& slot = next->topics[u.topic];
    std::shared_ptr<cluster::topic_metadata> t;
    if (slot) {
      t = std::make_shared<cluster::topic_metadata>(*slot);
    } else {
      t = std::make_shared<cluster::topic_metadata>();
      t->name = u.topic;
      t->id = u.id;
      t->internal = u.topic == coordinator::kOffsetsTopic || u.topic == "__transaction_state";
      if (zk_ && !controller_->active()) t->configs = controller_->read_topic_configs(u.topic);
    }
    if (t->id == cluster::topic_id{} && u.id != cluster::topic_id{}) t->id = u.id;
    const int32_t p = u.state.partition;
    if (p < 0) continue;
    if (static_cast<int32_t>(t->partitions.size()) <= p) {
      const size_t old = t->partitions.size();
      t->partitions.resize(p + 1);
      for (size_t i = old; i < t->partitions.size(); ++i) {
        t->partitions[i].partition = static_cast<int32_t>(i);
      }
    }
    auto& ps = t->partitions[p];
    // Never go back to an older leader epoch (requests may cross on the wire).
    if (u.state.leader_epoch > ps.leader_epoch ||
        (u.state.leader_epoch == ps.leader_epoch && u.state.partition_epoch >= ps.partition_epoch) ||
        ps.replicas.empty()) {
      ps = u.state;
    }
    slot = t;
    next->names_by_id[t->id] = u.topic;
  }
  publish_and_propagate(next);
  return protocol::error_code::none;
}

protocol::error_code broker::apply_update_metadata(int32_t controller_epoch,
                                                   std::shared_ptr<cluster::metadata_snapshot> snap,
                                                   bool has_configs) {
  if (!check_controller_epoch(controller_epoch)) return protocol::error_code::stale_controller_epoch;
  auto cur = cache_.get();
  snap->cluster_id = controller_->cluster_id();
  for (auto& [name, tconst] : snap->topics) {
    auto t = std::const_pointer_cast<cluster::topic_metadata>(tconst);
    auto old = cur->find(name);
    if (!has_configs) {
      // Overrides live in the store; keep the copy we have unless the controller may have
      // changed them (it re-sends metadata after every change, so re-read).
      t->configs = controller_->read_topic_configs(name);
    }
    // A LeaderAndIsr that raced ahead of this UpdateMetadata keeps its newer state.
    if (old) {
      for (auto& ps : t->partitions) {
        if (ps.partition < static_cast<int32_t>(old->partitions.size())) {
          const auto& o = old->partitions[ps.partition];
          if (o.leader_epoch > ps.leader_epoch) ps = o;
        }
      }
    }
  }
  publish_and_propagate(snap);
  return protocol::error_code::none;
}

protocol::error_code broker::apply_stop_replica(
    int32_t controller_epoch, const std::vector<std::pair<std::string, int32_t>>& parts,
    bool delete_partitions) {
  if (!check_controller_epoch(controller_epoch)) return protocol::error_code::stale_controller_epoch;
  std::map<unsigned, std::vector<replication::topic_partition>> by_shard;
  for (const auto& [topic, p] : parts) {
    replication::topic_partition tp{topic, p};
    fetchers_->remove(tp);
    by_shard[shard_of(tp)].push_back(tp);
  }
  if (!delete_partitions) return protocol::error_code::none;
  // Drop this broker from those partitions' replicas in our view first, so an apply before
  // the controller's next UpdateMetadata does not reopen them.
  auto cur = cache_.get();
  auto next = std::make_shared<cluster::metadata_snapshot>(*cur);
  for (const auto& [topic, p] : parts) {
    auto it = next->topics.find(topic);
    if (it == next->topics.end() || p < 0 ||
        p >= static_cast<int32_t>(it->second->partitions.size())) {
      continue;
    }
    auto t = std::make_shared<cluster::topic_metadata>(*it->second);
    std::erase(t->partitions[p].replicas, node_id_);
    it->second = t;
  }
  cache_.publish(next);
  for (auto& [s, tps] : by_shard) {
    asio::post(shards_.loop(s), [this, s, tps] { replica_managers_[s]->remove(tps); });
  }
  return protocol::error_code::none;
}

void broker::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  server_->stop();
  if (admin_) admin_->stop();
  // Close partitions on their owning loops, then stop every loop.
  // Controlled shutdown (cluster): leadership moves to other replicas before we stop, so
  // producers see a clean NOT_LEADER_OR_FOLLOWER and no acknowledged write waits on us.
  if (zk_ && config_.get_bool("controlled.shutdown.enable")) {
    try {
      if (controller_->active()) {
        protocol::error_code ignored;
        controller_->controlled_shutdown(node_id_, &ignored);
      } else if (!link_->controlled_shutdown(config_.get_int("controlled.shutdown.max.retries"))) {
        VLOG_WARN(kLog) << "controlled shutdown did not complete; stopping anyway";
      }
    } catch (const std::exception& e) {
      // ZooKeeper unreachable: the other brokers learn of our exit from the session.
      VLOG_WARN(kLog) << "controlled shutdown failed (" << e.what() << "); stopping anyway";
    }
  }
  stopping_flag_ = true;
  if (rebalance_timer_) rebalance_timer_->cancel();
  for (unsigned s = 0; s < watchdogs_.size(); ++s) {
    asio::post(shards_.loop(s), [this, s] { watchdogs_[s]->cancel(); });
  }
  controller_->stop();
  asio::co_spawn(
      shards_.loop(0),
      [this]() -> asio::awaitable<void> {
        for (unsigned s = 0; s < shards_.count(); ++s) {
          auto op = shards_.invoke_on(s, [this, s] {
            group_coordinators_[s]->stop();
            txn_wirings_[s]->stop();
            replica_managers_[s]->close_all();
          });
          co_await std::move(op);
        }
        VLOG_INFO(kLog) << "shutdown complete";
        shards_.stop();
      },
      asio::detached);
}

}  // namespace varve::server
