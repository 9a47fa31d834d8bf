// Consumer groups (classic protocol): FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups,
// OffsetDelete. A group lives in partition abs(hash(group)) % N of __consumer_offsets; the
// shard owning that partition owns the group (coordinator::group_coordinator), and every
// handler runs the group's work there (docs/groups.md).
#include <algorithm>
#include <cctype>
#include <set>

#include "common/log.h"
#include "coordinator/group_coordinator.h"
#include "coordinator/offsets_format.h"
#include "server/handlers/handlers.h"
#include "server/handlers/util.h"

namespace varve::server::handlers {
namespace {
constexpr std::string_view kLog = "groups";
constexpr int8_t kKeyTypeGroup = 0;
constexpr int8_t kKeyTypeTransaction = 1;
using coordinator::group_coordinator;

// Where a group's state lives.
struct group_route {
  error_code error = error_code::none;
  int32_t partition = 0;
  unsigned shard = 0;
};

group_route route_group(request_context& ctx, const std::string& group_id) {
  group_route r;
  auto t = ctx.b.metadata()->find(std::string(coordinator::kOffsetsTopic));
  if (!t || t->partitions.empty()) {
    r.error = error_code::coordinator_not_available;
    return r;
  }
  r.partition =
      coordinator::offsets_partition_for(group_id, static_cast<int32_t>(t->partitions.size()));
  r.shard = ctx.b.shard_of({std::string(coordinator::kOffsetsTopic), r.partition});
  return r;
}

// Runs fn(coordinator, partition) on the shard that owns the group.
template <typename F>
auto on_group(request_context& ctx, const group_route& route, F fn)
    -> asio::awaitable<std::invoke_result_t<F, group_coordinator&, int32_t>> {
  broker& b = ctx.b;
  const unsigned shard = route.shard;
  const int32_t p = route.partition;
  // Named awaitable, reference captures: see broker::with_controller.
  auto op = b.shards().invoke_on(shard, [&b, &fn, shard, p] { return fn(b.groups(shard), p); });
  co_return co_await std::move(op);
}

// Runs start(coordinator, partition, done) on the group's shard and waits until the
// coordinator calls `done` (JoinGroup and SyncGroup wait for the rest of the group).
template <typename T, typename Start>
asio::awaitable<T> wait_on_group(request_context& ctx, const group_route& route, Start& start) {
  broker& b = ctx.b;
  const unsigned shard = route.shard;
  const int32_t p = route.partition;
  auto waiter = [&b, &start, shard, p]() -> asio::awaitable<T> {
    auto init = [&b, &start, shard, p](auto handler) {
      auto h = std::make_shared<decltype(handler)>(std::move(handler));
      start(b.groups(shard), p, [h](T result) {
        // Resume the waiting coroutine from its executor, never from inside the coordinator.
        auto ex = asio::get_associated_executor(*h);
        asio::post(ex, [h, result = std::move(result)]() mutable { (*h)(std::move(result)); });
      });
    };
    auto wait = asio::async_initiate<const asio::use_awaitable_t<>&, void(T)>(init,
                                                                           asio::use_awaitable);
    co_return co_await std::move(wait);
  };
  auto op = b.shards().invoke_on(shard, std::move(waiter));
  co_return co_await std::move(op);
}

std::string client_host(const request_context& ctx) {
  const std::string& peer = ctx.conn.peer;
  const auto colon = peer.rfind(':');
  return "/" + (colon == std::string::npos ? peer : peer.substr(0, colon));
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool partition_exists(const cluster::metadata_snapshot& md, const std::string& topic,
                      int32_t partition) {
  auto t = md.find(topic);
  return t && partition >= 0 && partition < static_cast<int32_t>(t->partitions.size());
}

// --- plain helpers: all response building happens outside coroutine bodies (GCC 12, see
// the note in admin.cc); the handlers below only sequence the awaits.

// Creates __consumer_offsets on first use (compacted, internal).
asio::awaitable<error_code> ensure_offsets_topic(request_context& ctx) {
  const auto& cfg = ctx.b.config();
  internal_topic_spec s;
  s.name = std::string(coordinator::kOffsetsTopic);
  s.partitions = cfg.get_int("offsets.topic.num.partitions");
  s.replication_factor =
      internal_replication_factor(cfg, cfg.get_int("offsets.topic.replication.factor"));
  s.configs = {{"cleanup.policy", "compact"},
               {"segment.bytes", std::to_string(cfg.get_int("offsets.topic.segment.bytes"))}};
  auto op = ensure_internal_topic(ctx.b, std::move(s));
  co_return co_await std::move(op);
}

std::vector<std::string> coordinator_keys(const request_context& ctx,
                                          const find_coordinator_request& req) {
  if (ctx.version >= 4) return req.coordinator_keys;
  return {req.key};
}

// Fills what does not depend on the offsets topic; true if the key is a group.
bool start_coordinator_entry(const find_coordinator_request& req, const std::string& key,
                             find_coordinator_response::coordinator& c) {
  c.key = key;
  c.error_message = std::nullopt;
  c.node_id = -1;
  c.port = -1;
  if (req.key_type == kKeyTypeGroup || req.key_type == kKeyTypeTransaction) return true;
  c.error_code = to_wire(error_code::invalid_request);
  c.error_message = "unknown coordinator key type " + std::to_string(req.key_type);
  return false;
}

// The coordinator of a group is the leader of its __consumer_offsets partition.
void finish_coordinator_entry(const request_context& ctx, error_code e,
                              find_coordinator_response::coordinator& c) {
  c.error_code = to_wire(e);
  if (e != error_code::none) return;
  auto md = ctx.b.metadata();
  auto t = md->find(std::string(coordinator::kOffsetsTopic));
  if (!t || t->partitions.empty()) {
    c.error_code = to_wire(error_code::coordinator_not_available);
    return;
  }
  const int32_t p =
      coordinator::offsets_partition_for(c.key, static_cast<int32_t>(t->partitions.size()));
  const int32_t leader = t->partitions[p].leader;
  for (const auto& b : md->brokers) {
    if (b.id == leader) {
      c.node_id = b.id;
      c.host = b.host;
      c.port = b.port;
      return;
    }
  }
  c.error_code = to_wire(error_code::coordinator_not_available);
}

// Before v4 the single answer lives in the top-level fields.
void finish_find_coordinator(const request_context& ctx, find_coordinator_response& resp) {
  if (ctx.version >= 4 || resp.coordinators.empty()) return;
  auto c = std::move(resp.coordinators.front());
  resp.coordinators.clear();
  resp.error_code = c.error_code;
  resp.error_message = c.error_message;
  resp.node_id = c.node_id;
  resp.host = c.host;
  resp.port = c.port;
}

coordinator::join_params join_params_of(const request_context& ctx, join_group_request& req) {
  coordinator::join_params params;
  params.group_id = req.group_id;
  params.member_id = req.member_id;
  params.group_instance_id = req.group_instance_id;
  params.client_id = ctx.header.client_id.value_or("");
  params.client_host = client_host(ctx);
  params.session_timeout_ms = req.session_timeout_ms;
  params.rebalance_timeout_ms =
      ctx.version >= 1 ? req.rebalance_timeout_ms : req.session_timeout_ms;
  params.protocol_type = req.protocol_type;
  for (auto& p : req.protocols) params.protocols.push_back({p.name, std::move(p.metadata)});
  params.require_known_member_id = ctx.version >= 4;
  return params;
}

void fill_join(const request_context& ctx, coordinator::join_result& r,
               join_group_response& resp) {
  resp.error_code = to_wire(r.error);
  resp.generation_id = r.generation_id;
  resp.member_id = r.member_id;
  resp.leader = r.leader;
  resp.skip_assignment = ctx.version >= 9 && r.skip_assignment;
  if (ctx.version >= 7) {
    resp.protocol_name = r.protocol_name;
    if (r.error == error_code::none) resp.protocol_type = r.protocol_type;
  } else {
    resp.protocol_name = r.protocol_name.value_or("");
  }
  // Before v9 a static leader that rejoined without a change still gets the member list and
  // recomputes an assignment; its SyncGroup is answered from the stable group.
  for (auto& m : r.members) {
    auto& out = resp.members.emplace_back();
    out.member_id = m.member_id;
    out.group_instance_id = m.group_instance_id;
    out.metadata = std::move(m.metadata);
  }
}

coordinator::sync_params sync_params_of(sync_group_request& req) {
  coordinator::sync_params params;
  params.group_id = req.group_id;
  params.generation_id = req.generation_id;
  params.member_id = req.member_id;
  params.group_instance_id = req.group_instance_id;
  params.protocol_type = req.protocol_type;
  params.protocol_name = req.protocol_name;
  for (auto& a : req.assignments) {
    params.assignments.emplace_back(a.member_id, std::move(a.assignment));
  }
  return params;
}

void fill_sync(const request_context& ctx, coordinator::sync_result& r,
               sync_group_response& resp) {
  resp.error_code = to_wire(r.error);
  resp.assignment = std::move(r.assignment);
  if (ctx.version >= 5 && r.error == error_code::none) {
    resp.protocol_type = r.protocol_type;
    resp.protocol_name = r.protocol_name;
  }
}

std::vector<coordinator::member_identity> leaving_members(const request_context& ctx,
                                                          const leave_group_request& req) {
  std::vector<coordinator::member_identity> members;
  if (ctx.version >= 3) {
    for (const auto& m : req.members) members.push_back({m.member_id, m.group_instance_id});
  } else {
    members.push_back({req.member_id, std::nullopt});
  }
  return members;
}

void fill_leave(const request_context& ctx, const coordinator::leave_result& r,
                leave_group_response& resp) {
  resp.error_code = to_wire(r.error);
  if (ctx.version < 3) {
    if (r.error == error_code::none && !r.members.empty()) {
      resp.error_code = to_wire(r.members.front().second);
    }
    return;
  }
  if (r.error != error_code::none) return;
  for (const auto& [who, e] : r.members) {
    auto& out = resp.members.emplace_back();
    out.member_id = who.member_id;
    out.group_instance_id = who.group_instance_id;
    out.error_code = to_wire(e);
  }
}

std::vector<coordinator::commit_entry> commit_entries(const request_context& ctx,
                                                      const offset_commit_request& req,
                                                      error_code route_error) {
  auto md = ctx.b.metadata();
  std::vector<coordinator::commit_entry> entries;
  for (const auto& t : req.topics) {
    for (const auto& p : t.partitions) {
      auto& e = entries.emplace_back();
      e.tp = {t.name, p.partition_index};
      e.value.offset = p.committed_offset;
      e.value.leader_epoch = ctx.version >= 6 ? p.committed_leader_epoch : -1;
      e.value.metadata = p.committed_metadata.value_or("");
      if (route_error != error_code::none) {
        e.error = route_error;
      } else if (!partition_exists(*md, t.name, p.partition_index)) {
        e.error = error_code::unknown_topic_or_partition;
      }
    }
  }
  return entries;
}

void fill_commit(const offset_commit_request& req,
                 const std::vector<coordinator::commit_entry>& entries,
                 offset_commit_response& resp) {
  size_t i = 0;
  for (const auto& t : req.topics) {
    auto& tr = resp.topics.emplace_back();
    tr.name = t.name;
    for (const auto& p : t.partitions) {
      auto& pr = tr.partitions.emplace_back();
      pr.partition_index = p.partition_index;
      pr.error_code = to_wire(entries[i++].error);
    }
  }
}

coordinator::commit_params commit_params_of(const offset_commit_request& req) {
  return {req.group_id, req.generation_id_or_member_epoch, req.member_id, req.group_instance_id};
}

void add_delete_result(const std::string& group_id, error_code e, delete_groups_response& resp) {
  auto& out = resp.results.emplace_back();
  out.group_id = group_id;
  out.error_code = to_wire(e);
}

struct fetched_group {
  error_code error = error_code::none;
  std::vector<std::pair<coordinator::topic_partition, coordinator::committed_offset>> offsets;
  // require_stable: partitions with offsets of an unfinished transaction
  // (UNSTABLE_OFFSET_COMMIT, offset -1).
  std::set<coordinator::topic_partition> unstable;
};

fetched_group fetch_on_shard(group_coordinator& c, int32_t p, const std::string& group_id,
                             const std::optional<std::vector<coordinator::topic_partition>>& parts,
                             bool require_stable) {
  fetched_group f;
  f.error = c.check_partition(p);
  if (f.error != error_code::none) return f;
  f.offsets = c.fetch_offsets(p, group_id, parts);
  if (require_stable && parts) {
    for (const auto& tp : *parts) {
      if (c.has_pending_txn_offset(group_id, tp)) f.unstable.insert(tp);
    }
  }
  return f;
}

asio::awaitable<fetched_group> fetch_group_offsets(
    request_context& ctx, const std::string& group_id,
    const std::optional<std::vector<coordinator::topic_partition>>& partitions,
    bool require_stable) {
  const group_route route = route_group(ctx, group_id);
  fetched_group f;
  f.error = route.error;
  if (route.error != error_code::none) co_return f;
  f = co_await on_group(ctx, route,
                        [&group_id, &partitions, require_stable](group_coordinator& c, int32_t p) {
                          return fetch_on_shard(c, p, group_id, partitions, require_stable);
                        });
  co_return f;
}

// Groups fetched offsets by topic (in first-seen order) into a response's topic list.
template <typename Topic>
void fill_topics(std::vector<Topic>& topics, const fetched_group& f) {
  for (const auto& [tp, v] : f.offsets) {
    auto it = std::find_if(topics.begin(), topics.end(),
                           [&](const Topic& t) { return t.name == tp.topic; });
    if (it == topics.end()) {
      topics.emplace_back().name = tp.topic;
      it = topics.end() - 1;
    }
    auto& pr = it->partitions.emplace_back();
    pr.partition_index = tp.partition;
    pr.committed_offset = v.offset;
    pr.committed_leader_epoch = v.leader_epoch;
    pr.metadata = v.metadata;
    if (f.unstable.count(tp)) {
      pr.error_code = to_wire(error_code::unstable_offset_commit);
      pr.committed_offset = -1;
      pr.committed_leader_epoch = -1;
      pr.metadata = "";
    }
  }
}

template <typename Topics>
std::optional<std::vector<coordinator::topic_partition>> requested_partitions(
    const std::optional<Topics>& topics) {
  if (!topics) return std::nullopt;
  std::vector<coordinator::topic_partition> out;
  for (const auto& t : *topics) {
    for (int32_t p : t.partition_indexes) out.push_back({t.name, p});
  }
  return out;
}

void fill_fetch_group(const fetched_group& f, const std::string& group_id,
                      offset_fetch_response& resp) {
  auto& gr = resp.groups.emplace_back();
  gr.group_id = group_id;
  gr.error_code = to_wire(f.error);
  if (f.error == error_code::none) fill_topics(gr.topics, f);
}

void fill_fetch_single(const request_context& ctx,
                       const std::optional<std::vector<coordinator::topic_partition>>& parts,
                       fetched_group& f, offset_fetch_response& resp) {
  if (f.error == error_code::none) {
    fill_topics(resp.topics, f);
    return;
  }
  resp.error_code = to_wire(f.error);
  if (ctx.version >= 2 || !parts) return;
  // v1 has no top-level error: every requested partition carries it.
  for (const auto& tp : *parts) f.offsets.emplace_back(tp, coordinator::committed_offset{});
  fill_topics(resp.topics, f);
  for (auto& t : resp.topics) {
    for (auto& p : t.partitions) p.error_code = to_wire(f.error);
  }
}

struct list_filter {
  std::vector<std::string> states;
  bool classic_wanted = true;
};

list_filter list_filter_of(const list_groups_request& req) {
  list_filter f;
  for (const auto& s : req.states_filter) f.states.push_back(lower(s));
  f.classic_wanted = req.types_filter.empty();
  for (const auto& t : req.types_filter) f.classic_wanted = f.classic_wanted || lower(t) == "classic";
  return f;
}

// A shard still loading __consumer_offsets partitions makes the whole answer
// COORDINATOR_LOAD_IN_PROGRESS (clients retry); groups already loaded are listed anyway.
void fill_listed(const list_filter& f, coordinator::group_list& listed,
                 list_groups_response& resp) {
  if (listed.error != error_code::none) resp.error_code = to_wire(listed.error);
  if (!f.classic_wanted) return;
  for (auto& g : listed.groups) {
    if (!f.states.empty() &&
        std::find(f.states.begin(), f.states.end(), lower(g.state)) == f.states.end()) {
      continue;
    }
    auto& out = resp.groups.emplace_back();
    out.group_id = std::move(g.group_id);
    out.protocol_type = std::move(g.protocol_type);
    out.group_state = std::move(g.state);
    out.group_type = "classic";
  }
}

coordinator::group_description describe_on_shard(group_coordinator& c, int32_t p,
                                                 const std::string& group_id) {
  coordinator::group_description d;
  d.error = c.check_partition(p);
  if (d.error == error_code::none) d = c.describe(p, group_id);
  return d;
}

void fill_described(const std::string& group_id, error_code route_error,
                    coordinator::group_description& d, describe_groups_response& resp) {
  auto& out = resp.groups.emplace_back();
  out.group_id = group_id;
  if (route_error != error_code::none) d.error = route_error;
  out.error_code = to_wire(d.error);
  if (d.error != error_code::none) return;
  out.group_state = d.state;
  out.protocol_type = d.protocol_type;
  out.protocol_data = d.protocol_data;
  for (auto& m : d.members) {
    auto& om = out.members.emplace_back();
    om.member_id = m.member_id;
    om.group_instance_id = m.group_instance_id;
    om.client_id = m.client_id;
    om.client_host = m.client_host;
    om.member_metadata = std::move(m.metadata);
    om.member_assignment = std::move(m.assignment);
  }
}

std::vector<coordinator::topic_partition> existing_partitions(const request_context& ctx,
                                                              const offset_delete_request& req) {
  auto md = ctx.b.metadata();
  std::vector<coordinator::topic_partition> partitions;
  for (const auto& t : req.topics) {
    for (const auto& p : t.partitions) {
      if (partition_exists(*md, t.name, p.partition_index)) {
        partitions.push_back({t.name, p.partition_index});
      }
    }
  }
  return partitions;
}

void fill_offset_delete(const offset_delete_request& req, error_code e,
                        const std::vector<std::pair<coordinator::topic_partition, error_code>>& results,
                        offset_delete_response& resp) {
  resp.error_code = to_wire(e);
  if (e != error_code::none) return;
  for (const auto& t : req.topics) {
    auto& tr = resp.topics.emplace_back();
    tr.name = t.name;
    for (const auto& p : t.partitions) {
      auto& pr = tr.partitions.emplace_back();
      pr.partition_index = p.partition_index;
      pr.error_code = to_wire(error_code::unknown_topic_or_partition);
      for (const auto& [tp, err] : results) {
        if (tp.topic == t.name && tp.partition == p.partition_index) pr.error_code = to_wire(err);
      }
    }
  }
}
}  // namespace

// --- handlers: only sequencing of awaits ---

asio::awaitable<void> find_coordinator(request_context& ctx, find_coordinator_request& req,
                                       find_coordinator_response& resp) {
  const std::vector<std::string> keys = coordinator_keys(ctx, req);
  for (const auto& key : keys) {
    auto& c = resp.coordinators.emplace_back();
    if (!start_coordinator_entry(req, key, c)) continue;
    if (req.key_type == kKeyTypeTransaction) {
      // The leader of the id's __transaction_state partition (txn.cc).
      auto op = find_txn_coordinator(ctx, key, &c.node_id, &c.host, &c.port);
      c.error_code = to_wire(co_await std::move(op));
      continue;
    }
    const error_code e = co_await ensure_offsets_topic(ctx);
    finish_coordinator_entry(ctx, e, c);
  }
  finish_find_coordinator(ctx, resp);
}

asio::awaitable<void> join_group(request_context& ctx, join_group_request& req,
                                 join_group_response& resp) {
  const group_route route = route_group(ctx, req.group_id);
  coordinator::join_result r;
  r.member_id = req.member_id;
  r.error = route.error;
  if (route.error != error_code::none) {
    fill_join(ctx, r, resp);
    co_return;
  }
  coordinator::join_params params = join_params_of(ctx, req);
  auto start = [&params](group_coordinator& c, int32_t p,
                         std::function<void(coordinator::join_result)> done) {
    c.join(p, std::move(params), std::move(done));
  };
  r = co_await wait_on_group<coordinator::join_result>(ctx, route, start);
  fill_join(ctx, r, resp);
}

asio::awaitable<void> sync_group(request_context& ctx, sync_group_request& req,
                                 sync_group_response& resp) {
  const group_route route = route_group(ctx, req.group_id);
  coordinator::sync_result r;
  r.error = route.error;
  if (route.error != error_code::none) {
    fill_sync(ctx, r, resp);
    co_return;
  }
  coordinator::sync_params params = sync_params_of(req);
  auto start = [&params](group_coordinator& c, int32_t p,
                         std::function<void(coordinator::sync_result)> done) {
    c.sync(p, std::move(params), std::move(done));
  };
  r = co_await wait_on_group<coordinator::sync_result>(ctx, route, start);
  fill_sync(ctx, r, resp);
}

asio::awaitable<void> heartbeat(request_context& ctx, heartbeat_request& req,
                                heartbeat_response& resp) {
  const group_route route = route_group(ctx, req.group_id);
  resp.error_code = to_wire(route.error);
  if (route.error != error_code::none) co_return;
  const error_code e = co_await on_group(ctx, route, [&req](group_coordinator& c, int32_t p) {
    return c.heartbeat(p, req.group_id, req.generation_id, req.member_id, req.group_instance_id);
  });
  resp.error_code = to_wire(e);
}

asio::awaitable<void> leave_group(request_context& ctx, leave_group_request& req,
                                  leave_group_response& resp) {
  const std::vector<coordinator::member_identity> members = leaving_members(ctx, req);
  const group_route route = route_group(ctx, req.group_id);
  coordinator::leave_result r;
  r.error = route.error;
  if (route.error != error_code::none) {
    fill_leave(ctx, r, resp);
    co_return;
  }
  r = co_await on_group(ctx, route, [&req, &members](group_coordinator& c, int32_t p) {
    return c.leave(p, req.group_id, members);
  });
  fill_leave(ctx, r, resp);
}

namespace {
// Where a commit's records end in the coordinator's partition (and the epoch they were
// appended in), read on the coordinator's shard right after the append.
struct commit_point {
  int64_t required = -1;
  int32_t epoch = -1;
};

commit_point commit_point_of(broker& b, unsigned shard, int32_t p) {
  commit_point cp;
  auto* part = b.replicas(shard).get({std::string(coordinator::kOffsetsTopic), p});
  if (part && part->is_leader()) {
    cp.required = part->log_end_offset();
    cp.epoch = part->leader_epoch();
  }
  return cp;
}

bool any_committed(const std::vector<coordinator::commit_entry>& entries) {
  for (const auto& e : entries) {
    if (e.error == error_code::none) return true;
  }
  return false;
}

// A commit that did not reach the ISR: the error the client retries on (Kafka's mapping).
void fail_committed(std::vector<coordinator::commit_entry>& entries, error_code e) {
  if (e == error_code::none) return;
  const error_code mapped = e == error_code::not_leader_or_follower
                                ? error_code::not_coordinator
                                : error_code::coordinator_not_available;
  for (auto& entry : entries) {
    if (entry.error == error_code::none) entry.error = mapped;
  }
}
}  // namespace

asio::awaitable<void> offset_commit(request_context& ctx, offset_commit_request& req,
                                    offset_commit_response& resp) {
  const group_route route = route_group(ctx, req.group_id);
  std::vector<coordinator::commit_entry> entries = commit_entries(ctx, req, route.error);
  if (route.error != error_code::none) {
    fill_commit(req, entries, resp);
    co_return;
  }
  const coordinator::commit_params params = commit_params_of(req);
  broker& b = ctx.b;
  const unsigned shard = route.shard;
  auto op = on_group(ctx, route, [&params, &entries, &b, shard](group_coordinator& c, int32_t p) {
    c.commit_offsets(p, params, entries);
    return commit_point_of(b, shard, p);
  });
  const commit_point point = co_await std::move(op);
  // Like a produce with acks=all: the commit is answered once every ISR member has it, so
  // a coordinator failover cannot lose an acknowledged commit.
  if (point.required > 0 && any_committed(entries)) {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(b.config().get_int("offsets.commit.timeout.ms"));
    auto wait = wait_for_commit(b, {std::string(coordinator::kOffsetsTopic), route.partition},
                                point.required, point.epoch, deadline);
    const error_code e = co_await std::move(wait);
    fail_committed(entries, e);
  }
  fill_commit(req, entries, resp);
}

namespace {
// v8+: several groups per request.
asio::awaitable<void> offset_fetch_groups(request_context& ctx, offset_fetch_request& req,
                                          offset_fetch_response& resp) {
  for (const auto& g : req.groups) {
    const auto partitions = requested_partitions(g.topics);
    const fetched_group f =
        co_await fetch_group_offsets(ctx, g.group_id, partitions, req.require_stable);
    fill_fetch_group(f, g.group_id, resp);
  }
}

asio::awaitable<void> offset_fetch_single(request_context& ctx, offset_fetch_request& req,
                                          offset_fetch_response& resp) {
  const auto partitions = requested_partitions(req.topics);
  fetched_group f = co_await fetch_group_offsets(ctx, req.group_id, partitions,
                                                 ctx.version >= 7 && req.require_stable);
  fill_fetch_single(ctx, partitions, f, resp);
}
}  // namespace

// require_stable (v7+) asks for UNSTABLE_OFFSET_COMMIT (offset -1) on each requested
// partition for which a transaction has offsets waiting for its marker (TxnOffsetCommit).
asio::awaitable<void> offset_fetch(request_context& ctx, offset_fetch_request& req,
                                   offset_fetch_response& resp) {
  const bool multi_group = ctx.version >= 8;
  auto op = multi_group ? offset_fetch_groups(ctx, req, resp) : offset_fetch_single(ctx, req, resp);
  co_await std::move(op);
}

asio::awaitable<void> list_groups(request_context& ctx, list_groups_request& req,
                                  list_groups_response& resp) {
  const list_filter filter = list_filter_of(req);
  broker& b = ctx.b;
  for (unsigned s = 0; s < b.shards().count(); ++s) {
    auto op = b.shards().invoke_on(s, [&b, s] { return b.groups(s).list(); });
    coordinator::group_list listed = co_await std::move(op);
    fill_listed(filter, listed, resp);
  }
}

asio::awaitable<void> describe_groups(request_context& ctx, describe_groups_request& req,
                                      describe_groups_response& resp) {
  for (const auto& group_id : req.groups) {
    const group_route route = route_group(ctx, group_id);
    coordinator::group_description d;
    if (route.error != error_code::none) {
      fill_described(group_id, route.error, d, resp);
      continue;
    }
    d = co_await on_group(ctx, route, [&group_id](group_coordinator& c, int32_t p) {
      return describe_on_shard(c, p, group_id);
    });
    fill_described(group_id, route.error, d, resp);
  }
}

asio::awaitable<void> delete_groups(request_context& ctx, delete_groups_request& req,
                                    delete_groups_response& resp) {
  for (const auto& group_id : req.groups_names) {
    const group_route route = route_group(ctx, group_id);
    if (route.error != error_code::none) {
      add_delete_result(group_id, route.error, resp);
      continue;
    }
    const error_code e = co_await on_group(ctx, route, [&group_id](group_coordinator& c, int32_t p) {
      return c.delete_group(p, group_id);
    });
    add_delete_result(group_id, e, resp);
  }
}

asio::awaitable<void> offset_delete(request_context& ctx, offset_delete_request& req,
                                    offset_delete_response& resp) {
  const std::vector<coordinator::topic_partition> partitions = existing_partitions(ctx, req);
  const group_route route = route_group(ctx, req.group_id);
  std::vector<std::pair<coordinator::topic_partition, error_code>> results;
  if (route.error != error_code::none) {
    fill_offset_delete(req, route.error, results, resp);
    co_return;
  }
  const error_code e = co_await on_group(
      ctx, route, [&req, &partitions, &results](group_coordinator& c, int32_t p) {
        return c.delete_offsets(p, req.group_id, partitions, &results);
      });
  fill_offset_delete(req, e, results, resp);
}

}  // namespace varve::server::handlers
