#include "metrics/broker_metrics.h"

#include <map>

#include "metrics/exposition.h"
#include "protocol/error_code.h"

namespace varve::metrics {
namespace {
using replication::topic_partition;

std::string api_name_of(const broker_sample& s, int16_t key) {
  for (const auto& [k, name] : s.api_names) {
    if (k == key) return name;
  }
  return "api_" + std::to_string(key);
}

void declare_all(exposition& e) {
  using t = metric_type;
  e.declare("varve_ready", t::gauge,
            "1 when start-up is done (logs recovered, metadata loaded, consumer groups loaded)");
  e.declare("varve_active_controller", t::gauge,
            "1 if this broker is the active controller (ActiveControllerCount)");
  e.declare("varve_partitions", t::gauge, "Partition replicas hosted by this broker (PartitionCount)");
  e.declare("varve_partition_leaders", t::gauge, "Partitions this broker leads (LeaderCount)");
  e.declare("varve_under_replicated_partitions", t::gauge,
            "Partitions led here whose ISR is smaller than the replica set "
            "(UnderReplicatedPartitions)");
  e.declare("varve_under_min_isr_partitions", t::gauge,
            "Partitions led here whose ISR is below min.insync.replicas (UnderMinIsrPartitionCount)");
  e.declare("varve_at_min_isr_partitions", t::gauge,
            "Partitions led here whose ISR equals min.insync.replicas (AtMinIsrPartitionCount)");
  e.declare("varve_offline_partitions", t::gauge,
            "Partitions without a serving leader (OfflinePartitionsCount)");
  e.declare("varve_isr_shrinks_total", t::counter, "ISR shrinks (IsrShrinksPerSec)");
  e.declare("varve_isr_expands_total", t::counter, "ISR expansions (IsrExpandsPerSec)");
  e.declare("varve_leader_elections_total", t::counter,
            "Leader elections (LeaderElectionRateAndTimeMs)");
  e.declare("varve_unclean_leader_elections_total", t::counter,
            "Unclean leader elections (UncleanLeaderElectionsPerSec)");
  e.declare("varve_topic_bytes_in_total", t::counter,
            "Record batch bytes appended to the topic's partitions led here (BytesInPerSec)");
  e.declare("varve_topic_records_in_total", t::counter,
            "Records appended to the topic's partitions led here (MessagesInPerSec)");
  e.declare("varve_topic_bytes_out_total", t::counter,
            "Record batch bytes returned to fetchers (BytesOutPerSec)");
  e.declare("varve_partition_log_start_offset", t::gauge, "Log start offset (LogStartOffset)");
  e.declare("varve_partition_log_end_offset", t::gauge, "Log end offset (LogEndOffset)");
  e.declare("varve_partition_high_watermark", t::gauge, "High watermark");
  e.declare("varve_partition_size_bytes", t::gauge, "Size of the partition's log on disk (Size)");
  e.declare("varve_requests_total", t::counter, "Requests answered, by API (RequestsPerSec)");
  e.declare("varve_request_duration_seconds", t::histogram,
            "Time from decoding a request to its encoded response, by API (TotalTimeMs)");
  e.declare("varve_request_errors_total", t::counter,
            "Errors answered, by API and Kafka error code (ErrorsPerSec)");
  e.declare("varve_fetch_purgatory_size", t::gauge,
            "Fetch requests waiting for data (long poll) (PurgatorySize, delayedOperation=Fetch)");
  e.declare("varve_transactions_total", t::counter,
            "Transactions completed by this broker's transaction coordinators, by outcome "
            "(commit, abort — timed-out and fenced transactions are aborts)");
  e.declare("varve_produce_purgatory_size", t::gauge,
            "acks=all produce requests and offset commits waiting for the high watermark "
            "(PurgatorySize, delayedOperation=Produce)");
  e.declare("varve_event_loop_stalls_total", t::counter,
            "Times an event loop's 100 ms watchdog tick ran >= 100 ms late: the loop was "
            "blocked and every request on it waited (all loops)");
  e.declare("varve_event_loop_lag_max_seconds", t::gauge,
            "Largest lateness of an event loop's watchdog tick since start (all loops)");
  e.declare("varve_consumer_groups", t::gauge, "Consumer groups by state (NumGroups<State>)");
  e.declare("varve_consumer_group_members", t::gauge, "Members of a consumer group");
  e.declare("varve_consumer_group_generation", t::gauge,
            "Generation of a consumer group (increases by one per completed rebalance)");
  e.declare("varve_consumer_group_committed_offset", t::gauge,
            "Offset committed by a group for a partition");
  e.declare("varve_consumer_group_lag", t::gauge,
            "High watermark minus the group's committed offset (records-lag)");
  e.declare("varve_connections", t::gauge, "Open Kafka client connections (connection-count)");
  e.declare("varve_log_dir_free_bytes", t::gauge, "Free bytes on the log directory's file system");
  e.declare("varve_log_dir_total_bytes", t::gauge, "Size of the log directory's file system");
  e.declare("process_resident_memory_bytes", t::gauge, "Resident memory size in bytes");
  e.declare("process_virtual_memory_bytes", t::gauge, "Virtual memory size in bytes");
  e.declare("process_open_fds", t::gauge, "Open file descriptors");
  e.declare("process_max_fds", t::gauge, "Maximum number of open file descriptors");
  e.declare("process_cpu_seconds_total", t::counter, "User and system CPU time in seconds");
  e.declare("process_start_time_seconds", t::gauge, "Start time of the process (Unix seconds)");
}

void render_replicas(const broker_sample& s, exposition& e) {
  std::map<topic_partition, const partition_sample*> hosted;
  std::map<std::string, std::pair<uint64_t, uint64_t>> topic_in;  // bytes, records
  size_t leaders = 0;
  for (const auto& sh : s.shards) {
    for (const auto& p : sh.partitions) {
      hosted[{p.topic, p.partition}] = &p;
      if (p.leader) ++leaders;
      auto& in = topic_in[p.topic];
      in.first += p.bytes_in;
      in.second += p.records_in;
    }
  }
  size_t under_replicated = 0, under_min_isr = 0, at_min_isr = 0, offline = 0;
  // The controller's own belief, as Kafka's ActiveControllerCount: a broker's metadata can
  // name it controller for a moment after it resigned.
  const bool controller = s.active_controller
                              ? *s.active_controller
                              : s.metadata && s.metadata->controller_id == s.node_id;
  if (s.metadata) {
    for (const auto& [name, t] : s.metadata->topics) {
      const auto mi = s.min_insync_replicas.find(name);
      const int32_t min_isr = mi == s.min_insync_replicas.end() ? 1 : mi->second;
      for (const auto& ps : t->partitions) {
        // The controller sees every leaderless partition; any broker sees a partition it
        // should lead but could not open.
        if (ps.leader < 0) {
          if (controller) ++offline;
          continue;
        }
        if (ps.leader != s.node_id) continue;
        if (!hosted.count({name, ps.partition})) {
          ++offline;
          continue;
        }
        const auto isr = static_cast<int32_t>(ps.isr.size());
        if (ps.isr.size() < ps.replicas.size()) ++under_replicated;
        if (isr < min_isr) ++under_min_isr;
        if (isr == min_isr) ++at_min_isr;
      }
    }
  }
  e.add("varve_active_controller", {}, controller ? 1 : 0);
  e.add("varve_partitions", {}, static_cast<double>(hosted.size()));
  e.add("varve_partition_leaders", {}, static_cast<double>(leaders));
  e.add("varve_under_replicated_partitions", {}, static_cast<double>(under_replicated));
  e.add("varve_under_min_isr_partitions", {}, static_cast<double>(under_min_isr));
  e.add("varve_at_min_isr_partitions", {}, static_cast<double>(at_min_isr));
  e.add("varve_offline_partitions", {}, static_cast<double>(offline));
  uint64_t shrinks = 0, expands = 0;
  for (const auto& sh : s.shards) {
    shrinks += sh.isr_shrinks;
    expands += sh.isr_expands;
  }
  uint64_t committed = 0, aborted = 0;
  for (const auto& sh : s.shards) {
    committed += sh.txn_committed;
    aborted += sh.txn_aborted;
  }
  e.add("varve_transactions_total", {{"outcome", "commit"}}, static_cast<double>(committed));
  e.add("varve_transactions_total", {{"outcome", "abort"}}, static_cast<double>(aborted));
  e.add("varve_isr_shrinks_total", {}, static_cast<double>(shrinks));
  e.add("varve_isr_expands_total", {}, static_cast<double>(expands));
  e.add("varve_leader_elections_total", {}, static_cast<double>(s.leader_elections));
  e.add("varve_unclean_leader_elections_total", {}, static_cast<double>(s.unclean_leader_elections));

  for (const auto& [topic, in] : topic_in) {
    e.add("varve_topic_bytes_in_total", {{"topic", topic}}, static_cast<double>(in.first));
    e.add("varve_topic_records_in_total", {{"topic", topic}}, static_cast<double>(in.second));
  }
  probe_snapshot probe;
  for (const auto& sh : s.shards) probe.merge(sh.probe);
  for (const auto& [topic, n] : probe.topic_bytes_out) {
    e.add("varve_topic_bytes_out_total", {{"topic", topic}}, static_cast<double>(n));
  }
  for (const auto& [tp, p] : hosted) {
    const std::string part = std::to_string(tp.partition);
    const label l[] = {{"topic", tp.topic}, {"partition", part}};
    e.add("varve_partition_log_start_offset", l, static_cast<double>(p->log_start_offset));
    e.add("varve_partition_log_end_offset", l, static_cast<double>(p->log_end_offset));
    e.add("varve_partition_high_watermark", l, static_cast<double>(p->high_watermark));
    e.add("varve_partition_size_bytes", l, static_cast<double>(p->size_bytes));
  }

  for (const auto& [key, st] : probe.apis) {
    const std::string api = api_name_of(s, key);
    const label l[] = {{"api", api}};
    e.add("varve_requests_total", l, static_cast<double>(st.requests));
    e.add_histogram("varve_request_duration_seconds", l, kLatencyBounds, st.buckets,
                    st.latency_sum_seconds);
  }
  for (const auto& [key, n] : probe.errors) {
    const std::string api = api_name_of(s, key.first);
    const std::string err(protocol::error_name(static_cast<protocol::error_code>(key.second)));
    e.add("varve_request_errors_total", {{"api", api}, {"error", err}}, static_cast<double>(n));
  }
  e.add("varve_fetch_purgatory_size", {}, static_cast<double>(probe.fetch_waiting));
  e.add("varve_produce_purgatory_size", {}, static_cast<double>(probe.produce_waiting));
  e.add("varve_event_loop_stalls_total", {}, static_cast<double>(probe.loop_stalls));
  e.add("varve_event_loop_lag_max_seconds", {}, probe.loop_lag_max_seconds);
}

void render_groups(const broker_sample& s, exposition& e) {
  std::map<topic_partition, int64_t> hw;
  for (const auto& sh : s.shards) {
    for (const auto& p : sh.partitions) hw[{p.topic, p.partition}] = p.high_watermark;
  }
  std::map<std::string, size_t> by_state = {
      {"Empty", 0}, {"PreparingRebalance", 0}, {"CompletingRebalance", 0}, {"Stable", 0}};
  for (const auto& sh : s.shards) {
    for (const auto& g : sh.groups) {
      ++by_state[g.state];
      e.add("varve_consumer_group_members", {{"group", g.group}},
            static_cast<double>(g.members));
      e.add("varve_consumer_group_generation", {{"group", g.group}},
            static_cast<double>(g.generation));
    }
  }
  for (const auto& [state, n] : by_state) {
    e.add("varve_consumer_groups", {{"state", state}}, static_cast<double>(n));
  }
  for (const auto& sh : s.shards) {
    for (const auto& o : sh.offsets) {
      if (o.offset < 0) continue;
      const std::string part = std::to_string(o.partition);
      const label l[] = {{"group", o.group}, {"topic", o.topic}, {"partition", part}};
      e.add("varve_consumer_group_committed_offset", l, static_cast<double>(o.offset));
      // Lag is only known for partitions hosted here (deleted topics have none).
      const auto it = hw.find({o.topic, o.partition});
      if (it == hw.end()) continue;
      e.add("varve_consumer_group_lag", l,
            static_cast<double>(std::max<int64_t>(0, it->second - o.offset)));
    }
  }
}

void render_host(const broker_sample& s, exposition& e) {
  e.add("varve_connections", {}, static_cast<double>(s.connections));
  for (const auto& [dir, d] : s.log_dirs) {
    if (!d) continue;
    const std::string path = dir.string();
    e.add("varve_log_dir_free_bytes", {{"dir", path}}, static_cast<double>(d->free_bytes));
    e.add("varve_log_dir_total_bytes", {{"dir", path}}, static_cast<double>(d->total_bytes));
  }
  if (s.process) {
    const process_stats& p = *s.process;
    e.add("process_resident_memory_bytes", {}, static_cast<double>(p.resident_bytes));
    e.add("process_virtual_memory_bytes", {}, static_cast<double>(p.virtual_bytes));
    e.add("process_open_fds", {}, static_cast<double>(p.open_fds));
    e.add("process_max_fds", {}, static_cast<double>(p.max_fds));
    e.add("process_cpu_seconds_total", {}, p.cpu_seconds);
    e.add("process_start_time_seconds", {}, p.start_time_seconds);
  }
}

// Everything of a sample that is not read on a shard. Plain function: the coroutine below
// only sequences awaits.
broker_sample begin_sample(const broker_sources& src) {
  broker_sample s;
  s.node_id = src.node_id;
  s.metadata = src.metadata();
  if (s.metadata) {
    for (const auto& [name, t] : s.metadata->topics) {
      s.min_insync_replicas[name] = src.min_insync_replicas(*t);
    }
  }
  s.connections = src.connections();
  if (src.elections) std::tie(s.leader_elections, s.unclean_leader_elections) = src.elections();
  if (src.active_controller) s.active_controller = src.active_controller();
  s.ready = src.started();
  for (const auto& d : src.log_dirs) s.log_dirs.emplace_back(d, read_disk_stats(d));
  s.process = read_process_stats();
  s.api_names = src.api_names;
  return s;
}
}  // namespace

shard_sample sample_shard(const replication::replica_manager& replicas,
                          const coordinator::group_coordinator& groups, const shard_probe& probe) {
  shard_sample out;
  for (const auto& [tp, p] : replicas.partitions()) {
    partition_sample ps;
    ps.topic = tp.topic;
    ps.partition = tp.partition;
    ps.leader = p->is_leader();
    ps.log_start_offset = p->log_start_offset();
    ps.log_end_offset = p->log_end_offset();
    ps.high_watermark = p->high_watermark();
    ps.size_bytes = p->log().size_bytes();
    ps.bytes_in = p->bytes_in();
    ps.records_in = p->records_in();
    out.partitions.push_back(std::move(ps));
  }
  const coordinator::group_list list = groups.list();
  out.groups_loading = list.error == protocol::error_code::coordinator_load_in_progress;
  for (const auto& g : list.groups) {
    group_sample gs;
    gs.group = g.group_id;
    gs.state = g.state;
    gs.generation = groups.generation_of(g.group_id);
    gs.members = groups.describe(0, g.group_id).members.size();
    out.groups.push_back(std::move(gs));
    for (const auto& [tp, off] : groups.fetch_offsets(0, g.group_id, std::nullopt)) {
      out.offsets.push_back({g.group_id, tp.topic, tp.partition, off.offset});
    }
  }
  out.probe = probe.snapshot();
  out.isr_shrinks = replicas.isr_shrinks();
  out.isr_expands = replicas.isr_expands();
  return out;
}

asio::awaitable<broker_sample> collect(const broker_sources& src) {
  broker_sample s = begin_sample(src);
  for (unsigned shard = 0; shard < src.shards->count(); ++shard) {
    // Named awaitable and reference captures only (GCC 12, see broker::with_controller).
    auto op = src.shards->invoke_on(shard, [&src, shard] {
      shard_sample out = sample_shard(src.replicas(shard), src.groups(shard), src.probe(shard));
      if (src.transactions) std::tie(out.txn_committed, out.txn_aborted) = src.transactions(shard);
      return out;
    });
    shard_sample one = co_await std::move(op);
    s.shards.push_back(std::move(one));
  }
  co_return s;
}

bool is_ready(const broker_sample& s) {
  if (!s.ready) return false;
  for (const auto& sh : s.shards) {
    if (sh.groups_loading) return false;
  }
  return true;
}

asio::awaitable<bool> check_ready(const broker_sources& src) {
  bool ready = src.started();
  for (unsigned shard = 0; shard < src.shards->count(); ++shard) {
    auto op = src.shards->invoke_on(shard, [&src, shard] {
      return src.groups(shard).list().error != protocol::error_code::coordinator_load_in_progress;
    });
    const bool loaded = co_await std::move(op);
    ready = ready && loaded;
  }
  co_return ready;
}

namespace {
http_response text(int status, std::string body) {
  http_response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

http_response scrape_response(const broker_sample& s) {
  http_response r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = render(s);
  return r;
}

http_response ready_response(bool ready) {
  return ready ? text(200, "ready\n")
               : text(503, "not ready: start-up, waiting for the controller, or consumer group "
                           "loading in progress\n");
}

// Coroutines take the sources by pointer (a trivial parameter) and only sequence awaits.
asio::awaitable<http_response> metrics_route(const broker_sources* src) {
  auto op = collect(*src);
  const broker_sample s = co_await std::move(op);
  co_return scrape_response(s);
}

asio::awaitable<http_response> live_route() { co_return text(200, "live\n"); }

asio::awaitable<http_response> ready_route(const broker_sources* src) {
  auto op = check_ready(*src);
  const bool ready = co_await std::move(op);
  co_return ready_response(ready);
}
}  // namespace

void add_broker_routes(admin_server& server, const broker_sources& sources) {
  const broker_sources* src = &sources;
  server.route("/metrics", [src] { return metrics_route(src); });
  server.route("/v1/status/live", [] { return live_route(); });
  server.route("/v1/status/ready", [src] { return ready_route(src); });
}

std::string render(const broker_sample& s) {
  exposition e;
  declare_all(e);
  e.add("varve_ready", {}, is_ready(s) ? 1 : 0);
  render_replicas(s, e);
  render_groups(s, e);
  render_host(s, e);
  return e.str();
}

}  // namespace varve::metrics
