#include "server/broker.h"

#include <csignal>
#include <thread>

#include "common/log.h"
#include "config/topic_config.h"
#include "coordinator/offsets_format.h"
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

broker::~broker() = default;

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

  // Metadata: single-node mode keeps it in a local store beside the first log dir.
  if (config_.cluster_mode()) {
    VLOG_WARN(kLog) << "zookeeper.connect is set but cluster mode is not available in this "
                       "build; running as a single node";
  }
  cluster::controller_options copts;
  copts.node_id = node_id_;
  copts.self = advertised_;
  copts.default_num_partitions = config_.num_partitions();
  copts.default_replication_factor = static_cast<int16_t>(config_.default_replication_factor());
  try {
    controller_ = std::make_unique<cluster::controller>(
        std::make_unique<cluster::local_store>(log_dirs.front() / ".varve-metadata"), copts,
        cache_, [](const std::map<std::string, std::string>& c) {
          return config::validate_topic_configs(c);
        });
    controller_->load();
  } catch (const std::exception& e) {
    *error = std::string("cannot load cluster metadata: ") + e.what();
    return false;
  }

  // One replica manager per shard; open this broker's partitions (log recovery happens
  // here, on each shard's own thread once the loops run — but before serving requests).
  for (unsigned s = 0; s < shards_.count(); ++s) {
    replication::replica_manager_options o;
    o.shard = s;
    o.shard_count = shards_.count();
    o.node_id = node_id_;
    o.log_dirs = log_dirs;
    o.retention_check_interval_ms = config_.get_long("log.retention.check.interval.ms");
    o.recovery_checkpoint_interval_ms =
        config_.get_long("log.flush.offset.checkpoint.interval.ms");
    replica_managers_.push_back(std::make_unique<replication::replica_manager>(
        shards_.loop(s), o,
        [this](const cluster::topic_metadata& t) { return partition_config_for(t); }));
  }
  // Recovery runs before the listener opens: every shard opens its partitions in parallel.
  {
    auto snapshot = cache_.get();
    std::vector<std::thread> openers;
    for (unsigned s = 0; s < shards_.count(); ++s) {
      openers.emplace_back([this, s, snapshot] { replica_managers_[s]->apply(*snapshot); });
    }
    for (auto& t : openers) t.join();
  }
  for (auto& rm : replica_managers_) rm->start();

  // One group coordinator per shard. Each loads the __consumer_offsets partitions its shard
  // owns once the loops run; until a partition is loaded its groups answer
  // COORDINATOR_LOAD_IN_PROGRESS.
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
        [this, s, offsets_topic](int32_t p) { return replica_managers_[s]->get({offsets_topic, p}); },
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
    std::vector<int32_t> owned;
    for (const auto& [tp, part] : replica_managers_[s]->partitions()) {
      if (tp.topic == offsets_topic) owned.push_back(tp.partition);
    }
    for (int32_t p : owned) group_coordinators_[s]->begin_loading(p);
    asio::post(shards_.loop(s), [this, s] { group_coordinators_[s]->start(shards_.loop(s)); });
    for (int32_t p : owned) {
      asio::post(shards_.loop(s), [this, s, p] {
        std::string why;  // a failed load is logged and retried by the coordinator
        group_coordinators_[s]->load_partition(p, &why);
      });
    }
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
  m.started = [this] { return started_.load(); };
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
}

void broker::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  server_->stop();
  if (admin_) admin_->stop();
  // Close partitions on their owning loops, then stop every loop.
  asio::co_spawn(
      shards_.loop(0),
      [this]() -> asio::awaitable<void> {
        for (unsigned s = 0; s < shards_.count(); ++s) {
          auto op = shards_.invoke_on(s, [this, s] {
            group_coordinators_[s]->stop();
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
