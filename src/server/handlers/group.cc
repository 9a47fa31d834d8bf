// Consumer groups (classic protocol): FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups,
// OffsetDelete. A group lives in partition abs(hash(group)) % N of __consumer_offsets; the
// shard owning that partition owns the group (coordinator::group_coordinator), and every
// handler runs the group's work there (docs/groups.md).
#include <algorithm>
#include <cctype>

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

// Creates __consumer_offsets on first use (compacted, internal).
asio::awaitable<error_code> ensure_offsets_topic(request_context& ctx) {
  const std::string name(coordinator::kOffsetsTopic);
  if (ctx.b.metadata()->find(name)) co_return error_code::none;
  const auto& cfg = ctx.b.config();
  const int32_t partitions = cfg.get_int("offsets.topic.num.partitions");
  // A single broker can hold one replica, whatever offsets.topic.replication.factor says.
  const int16_t rf = static_cast<int16_t>(
      std::min<int32_t>(cfg.get_int("offsets.topic.replication.factor"), 1));
  const std::map<std::string, std::string> configs = {
      {"cleanup.policy", "compact"},
      {"segment.bytes", std::to_string(cfg.get_int("offsets.topic.segment.bytes"))}};
  auto result = co_await ctx.b.with_controller([&](cluster::controller& c) {
    return c.create_topic(name, partitions, rf, configs, false, /*internal=*/true);
  });
  if (result.error == error_code::none || result.error == error_code::topic_already_exists) {
    if (result.error == error_code::none) {
      VLOG_INFO(kLog) << "created " << name << " with " << partitions << " partition(s)";
    }
    co_return error_code::none;
  }
  VLOG_WARN(kLog) << "cannot create " << name << ": " << result.message;
  co_return error_code::coordinator_not_available;
}
}  // namespace

asio::awaitable<void> find_coordinator(request_context& ctx, find_coordinator_request& req,
                                       find_coordinator_response& resp) {
  std::vector<std::string> keys;
  if (ctx.version >= 4) {
    keys = req.coordinator_keys;
  } else {
    keys.push_back(req.key);
  }
  for (const auto& key : keys) {
    auto& c = resp.coordinators.emplace_back();
    c.key = key;
    c.error_message = std::nullopt;
    c.node_id = -1;
    c.port = -1;
    error_code e = error_code::none;
    if (req.key_type == kKeyTypeTransaction) {
      e = error_code::coordinator_not_available;
      c.error_message = "transactions are not supported by this broker yet";
    } else if (req.key_type != kKeyTypeGroup) {
      e = error_code::invalid_request;
      c.error_message = "unknown coordinator key type " + std::to_string(req.key_type);
    } else {
      e = co_await ensure_offsets_topic(ctx);
    }
    c.error_code = to_wire(e);
    if (e == error_code::none) {
      c.node_id = ctx.b.node_id();
      c.host = ctx.b.advertised().host;
      c.port = ctx.b.advertised().port;
    }
  }
  if (ctx.version < 4) {
    auto c = std::move(resp.coordinators.front());
    resp.coordinators.clear();
    resp.error_code = c.error_code;
    resp.error_message = c.error_message;
    resp.node_id = c.node_id;
    resp.host = c.host;
    resp.port = c.port;
  }
}

asio::awaitable<void> join_group(request_context& ctx, join_group_request& req,
                                 join_group_response& resp) {
  resp.member_id = req.member_id;
  resp.protocol_name = ctx.version >= 7 ? std::nullopt : std::optional<std::string>("");
  const group_route route = route_group(ctx, req.group_id);
  if (route.error != error_code::none) {
    resp.error_code = to_wire(route.error);
    co_return;
  }
  coordinator::join_params params;
  params.group_id = req.group_id;
  params.member_id = req.member_id;
  params.group_instance_id = req.group_instance_id;
  params.client_id = ctx.header.client_id.value_or("");
  params.client_host = client_host(ctx);
  params.session_timeout_ms = req.session_timeout_ms;
  params.rebalance_timeout_ms = ctx.version >= 1 ? req.rebalance_timeout_ms : req.session_timeout_ms;
  params.protocol_type = req.protocol_type;
  for (auto& p : req.protocols) params.protocols.push_back({p.name, std::move(p.metadata)});
  params.require_known_member_id = ctx.version >= 4;
  auto start = [&params](group_coordinator& c, int32_t p,
                         std::function<void(coordinator::join_result)> done) {
    c.join(p, std::move(params), std::move(done));
  };
  coordinator::join_result r = co_await wait_on_group<coordinator::join_result>(ctx, route, start);
  resp.error_code = to_wire(r.error);
  resp.generation_id = r.generation_id;
  resp.member_id = r.member_id;
  resp.leader = r.leader;
  resp.skip_assignment = ctx.version >= 9 && r.skip_assignment;
  if (r.error == error_code::none) {
    if (ctx.version >= 7) resp.protocol_type = r.protocol_type;
    resp.protocol_name = ctx.version >= 7 ? r.protocol_name
                                          : std::optional<std::string>(r.protocol_name.value_or(""));
  }
  // Before v9 a static leader that rejoined without a change still gets the member list and
  // recomputes the same assignment (its SyncGroup is answered from the stable group).
  for (auto& m : r.members) {
    auto& out = resp.members.emplace_back();
    out.member_id = m.member_id;
    out.group_instance_id = m.group_instance_id;
    out.metadata = std::move(m.metadata);
  }
}

asio::awaitable<void> sync_group(request_context& ctx, sync_group_request& req,
                                 sync_group_response& resp) {
  const group_route route = route_group(ctx, req.group_id);
  if (route.error != error_code::none) {
    resp.error_code = to_wire(route.error);
    co_return;
  }
  coordinator::sync_params params;
  params.group_id = req.group_id;
  params.generation_id = req.generation_id;
  params.member_id = req.member_id;
  params.group_instance_id = req.group_instance_id;
  params.protocol_type = req.protocol_type;
  params.protocol_name = req.protocol_name;
  for (auto& a : req.assignments) params.assignments.emplace_back(a.member_id, std::move(a.assignment));
  auto start = [&params](group_coordinator& c, int32_t p,
                         std::function<void(coordinator::sync_result)> done) {
    c.sync(p, std::move(params), std::move(done));
  };
  coordinator::sync_result r = co_await wait_on_group<coordinator::sync_result>(ctx, route, start);
  resp.error_code = to_wire(r.error);
  resp.assignment = std::move(r.assignment);
  if (ctx.version >= 5 && r.error == error_code::none) {
    resp.protocol_type = r.protocol_type;
    resp.protocol_name = r.protocol_name;
  }
}

asio::awaitable<void> heartbeat(request_context& ctx, heartbeat_request& req,
                                heartbeat_response& resp) {
  const group_route route = route_group(ctx, req.group_id);
  if (route.error != error_code::none) {
    resp.error_code = to_wire(route.error);
    co_return;
  }
  auto e = co_await on_group(ctx, route, [&req](group_coordinator& c, int32_t p) {
    return c.heartbeat(p, req.group_id, req.generation_id, req.member_id, req.group_instance_id);
  });
  resp.error_code = to_wire(e);
}

asio::awaitable<void> leave_group(request_context& ctx, leave_group_request& req,
                                  leave_group_response& resp) {
  std::vector<coordinator::member_identity> members;
  if (ctx.version >= 3) {
    for (const auto& m : req.members) members.push_back({m.member_id, m.group_instance_id});
  } else {
    members.push_back({req.member_id, std::nullopt});
  }
  const group_route route = route_group(ctx, req.group_id);
  coordinator::leave_result r;
  if (route.error != error_code::none) {
    r.error = route.error;
  } else {
    r = co_await on_group(ctx, route, [&req, &members](group_coordinator& c, int32_t p) {
      return c.leave(p, req.group_id, members);
    });
  }
  resp.error_code = to_wire(r.error);
  if (ctx.version < 3) {
    if (r.error == error_code::none && !r.members.empty()) {
      resp.error_code = to_wire(r.members.front().second);
    }
    co_return;
  }
  if (r.error != error_code::none) co_return;
  for (const auto& [who, e] : r.members) {
    auto& out = resp.members.emplace_back();
    out.member_id = who.member_id;
    out.group_instance_id = who.group_instance_id;
    out.error_code = to_wire(e);
  }
}

asio::awaitable<void> offset_commit(request_context& ctx, offset_commit_request& req,
                                    offset_commit_response& resp) {
  auto md = ctx.b.metadata();
  std::vector<coordinator::commit_entry> entries;
  for (const auto& t : req.topics) {
    for (const auto& p : t.partitions) {
      auto& e = entries.emplace_back();
      e.tp = {t.name, p.partition_index};
      e.value.offset = p.committed_offset;
      e.value.leader_epoch = ctx.version >= 6 ? p.committed_leader_epoch : -1;
      e.value.metadata = p.committed_metadata.value_or("");
      if (!partition_exists(*md, t.name, p.partition_index)) {
        e.error = error_code::unknown_topic_or_partition;
      }
    }
  }
  const group_route route = route_group(ctx, req.group_id);
  if (route.error != error_code::none) {
    for (auto& e : entries) e.error = route.error;
  } else {
    coordinator::commit_params params{req.group_id, req.generation_id_or_member_epoch,
                                      req.member_id, req.group_instance_id};
    co_await on_group(ctx, route, [&params, &entries](group_coordinator& c, int32_t p) {
      return c.commit_offsets(p, params, entries);
    });
  }
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

namespace {
struct fetched_group {
  error_code error = error_code::none;
  std::vector<std::pair<coordinator::topic_partition, coordinator::committed_offset>> offsets;
};

asio::awaitable<fetched_group> fetch_group_offsets(
    request_context& ctx, const std::string& group_id,
    const std::optional<std::vector<coordinator::topic_partition>>& partitions) {
  fetched_group out;
  const group_route route = route_group(ctx, group_id);
  if (route.error != error_code::none) {
    out.error = route.error;
    co_return out;
  }
  out = co_await on_group(ctx, route, [&group_id, &partitions](group_coordinator& c, int32_t p) {
    fetched_group f;
    f.error = c.check_partition(p);
    if (f.error == error_code::none) f.offsets = c.fetch_offsets(p, group_id, partitions);
    return f;
  });
  co_return out;
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
  }
}
}  // namespace

asio::awaitable<void> offset_fetch(request_context& ctx, offset_fetch_request& req,
                                   offset_fetch_response& resp) {
  if (ctx.version >= 8) {
    for (const auto& g : req.groups) {
      std::optional<std::vector<coordinator::topic_partition>> partitions;
      if (g.topics) {
        partitions.emplace();
        for (const auto& t : *g.topics) {
          for (int32_t p : t.partition_indexes) partitions->push_back({t.name, p});
        }
      }
      const std::string group_id = g.group_id;
      auto f = co_await fetch_group_offsets(ctx, group_id, partitions);
      auto& gr = resp.groups.emplace_back();
      gr.group_id = g.group_id;
      gr.error_code = to_wire(f.error);
      if (f.error == error_code::none) fill_topics(gr.topics, f);
    }
    co_return;
  }
  std::optional<std::vector<coordinator::topic_partition>> partitions;
  if (req.topics) {
    partitions.emplace();
    for (const auto& t : *req.topics) {
      for (int32_t p : t.partition_indexes) partitions->push_back({t.name, p});
    }
  }
  auto f = co_await fetch_group_offsets(ctx, req.group_id, partitions);
  if (f.error != error_code::none) {
    resp.error_code = to_wire(f.error);
    if (ctx.version >= 2 || !partitions) co_return;
    // v1 has no top-level error: every requested partition carries it.
    for (const auto& tp : *partitions) f.offsets.emplace_back(tp, coordinator::committed_offset{});
    fill_topics(resp.topics, f);
    for (auto& t : resp.topics) {
      for (auto& p : t.partitions) p.error_code = to_wire(f.error);
    }
    co_return;
  }
  fill_topics(resp.topics, f);
}

asio::awaitable<void> list_groups(request_context& ctx, list_groups_request& req,
                                  list_groups_response& resp) {
  std::vector<std::string> states;
  for (const auto& s : req.states_filter) states.push_back(lower(s));
  bool classic_wanted = req.types_filter.empty();
  for (const auto& t : req.types_filter) classic_wanted = classic_wanted || lower(t) == "classic";
  broker& b = ctx.b;
  for (unsigned s = 0; s < b.shards().count(); ++s) {
    auto op = b.shards().invoke_on(s, [&b, s] { return b.groups(s).list(); });
    auto listed = co_await std::move(op);
    if (!classic_wanted) continue;
    for (auto& g : listed) {
      if (!states.empty() &&
          std::find(states.begin(), states.end(), lower(g.state)) == states.end()) {
        continue;
      }
      auto& out = resp.groups.emplace_back();
      out.group_id = std::move(g.group_id);
      out.protocol_type = std::move(g.protocol_type);
      out.group_state = std::move(g.state);
      out.group_type = "classic";
    }
  }
}

asio::awaitable<void> describe_groups(request_context& ctx, describe_groups_request& req,
                                      describe_groups_response& resp) {
  for (const auto& group_id : req.groups) {
    auto& out = resp.groups.emplace_back();
    out.group_id = group_id;
    const group_route route = route_group(ctx, group_id);
    coordinator::group_description d;
    if (route.error != error_code::none) {
      d.error = route.error;
    } else {
      d = co_await on_group(ctx, route, [&group_id](group_coordinator& c, int32_t p) {
        coordinator::group_description r;
        r.error = c.check_partition(p);
        if (r.error == error_code::none) r = c.describe(p, group_id);
        return r;
      });
    }
    out.error_code = to_wire(d.error);
    if (d.error != error_code::none) continue;
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
}

asio::awaitable<void> delete_groups(request_context& ctx, delete_groups_request& req,
                                    delete_groups_response& resp) {
  for (const auto& group_id : req.groups_names) {
    auto& out = resp.results.emplace_back();
    out.group_id = group_id;
    const group_route route = route_group(ctx, group_id);
    error_code e = route.error;
    if (e == error_code::none) {
      e = co_await on_group(ctx, route, [&group_id](group_coordinator& c, int32_t p) {
        return c.delete_group(p, group_id);
      });
    }
    out.error_code = to_wire(e);
  }
}

asio::awaitable<void> offset_delete(request_context& ctx, offset_delete_request& req,
                                    offset_delete_response& resp) {
  auto md = ctx.b.metadata();
  std::vector<coordinator::topic_partition> partitions;
  for (const auto& t : req.topics) {
    for (const auto& p : t.partitions) {
      if (partition_exists(*md, t.name, p.partition_index)) {
        partitions.push_back({t.name, p.partition_index});
      }
    }
  }
  const group_route route = route_group(ctx, req.group_id);
  std::vector<std::pair<coordinator::topic_partition, error_code>> results;
  error_code e = route.error;
  if (e == error_code::none) {
    e = co_await on_group(ctx, route, [&req, &partitions, &results](group_coordinator& c, int32_t p) {
      return c.delete_offsets(p, req.group_id, partitions, &results);
    });
  }
  resp.error_code = to_wire(e);
  if (e != error_code::none) co_return;
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

}  // namespace varve::server::handlers
