// varve group list|describe|reset-offsets|delete
#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "cli/commands.h"
#include "cli/consumer_protocol.h"
#include "cli/table.h"

namespace varve::cli {
namespace {

using topic_partition = std::pair<std::string, int32_t>;

bool group_name(const context& ctx, const char* cmd, std::string* name, int* rc) {
  if (ctx.args.positional.size() != 1) {
    *rc = usage_error(std::string("group ") + cmd + " needs exactly one group id");
    return false;
  }
  *name = ctx.args.positional[0];
  return true;
}

// FindCoordinator, retried while the coordinator is loading or __consumer_offsets is being
// created (COORDINATOR_NOT_AVAILABLE / COORDINATOR_LOAD_IN_PROGRESS are transient).
bool coordinator_for(admin_client& client, const std::string& group, int32_t* node, std::string* error) {
  for (int attempt = 0;; ++attempt) {
    if (client.find_group_coordinator(group, node, error)) return true;
    const bool transient = error->find("COORDINATOR_NOT_AVAILABLE") != std::string::npos ||
                           error->find("COORDINATOR_LOAD_IN_PROGRESS") != std::string::npos;
    if (!transient || attempt >= 25) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

struct group_description {
  std::string state;
  std::string protocol_type;
  std::string protocol;
  struct member {
    std::string member_id, client_id, host;
    std::optional<std::string> instance_id;
    consumer_assignment assignment;
  };
  std::vector<member> members;
};

bool describe_group(admin_client& client, int32_t coordinator, const std::string& group,
                    group_description* out, std::string* error) {
  using protocol::describe_groups_request;
  describe_groups_request req;
  req.groups = {group};
  protocol::describe_groups_response resp;
  for (int attempt = 0;; ++attempt) {
    if (!client.call(coordinator, req, client.version<describe_groups_request>(coordinator), &resp, error))
      return false;
    if (resp.groups.size() != 1) {
      *error = "DescribeGroups returned " + std::to_string(resp.groups.size()) + " groups";
      return false;
    }
    if (resp.groups[0].error_code == protocol::to_wire(protocol::error_code::coordinator_load_in_progress) &&
        attempt < 25) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    break;
  }
  const auto& g = resp.groups[0];
  if (g.error_code != 0) {
    *error = "DescribeGroups for '" + group + "': " + describe_error(g.error_code);
    return false;
  }
  out->state = g.group_state;
  out->protocol_type = g.protocol_type;
  out->protocol = g.protocol_data;
  for (const auto& m : g.members) {
    group_description::member mm{m.member_id, m.client_id, m.client_host, m.group_instance_id, {}};
    if (g.protocol_type == "consumer" && !decode_consumer_assignment(m.member_assignment, &mm.assignment)) {
      *error = "member " + m.member_id + " of group '" + group + "' has a malformed consumer assignment";
      return false;
    }
    out->members.push_back(std::move(mm));
  }
  return true;
}

// Committed offsets of `group` (every topic when `topics` is empty). Partitions without a
// committed offset are left out.
bool fetch_committed(admin_client& client, int32_t coordinator, const std::string& group,
                     std::map<topic_partition, int64_t>* out, std::string* error) {
  using protocol::offset_fetch_request;
  const int16_t v = client.version<offset_fetch_request>(coordinator);
  offset_fetch_request req;
  if (v >= 8) {
    offset_fetch_request::offset_fetch_request_group g;
    g.group_id = group;
    g.topics = std::nullopt;
    req.groups.push_back(g);
  } else {
    req.group_id = group;
    req.topics = std::nullopt;  // all topics (v2+)
  }
  protocol::offset_fetch_response resp;
  for (int attempt = 0;; ++attempt) {
    if (!client.call(coordinator, req, v, &resp, error)) return false;
    int16_t code = v >= 8 ? (resp.groups.empty() ? 0 : resp.groups[0].error_code) : resp.error_code;
    if (code == protocol::to_wire(protocol::error_code::coordinator_load_in_progress) && attempt < 25) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    if (code != 0) {
      *error = "OffsetFetch for '" + group + "': " + describe_error(code);
      return false;
    }
    break;
  }
  auto take = [&](const std::string& topic, int32_t partition, int64_t offset, int16_t code) {
    if (code != 0) {
      *error = "OffsetFetch " + topic + "-" + std::to_string(partition) + ": " + describe_error(code);
      return false;
    }
    if (offset >= 0) (*out)[{topic, partition}] = offset;
    return true;
  };
  if (v >= 8) {
    for (const auto& g : resp.groups)
      for (const auto& t : g.topics)
        for (const auto& p : t.partitions)
          if (!take(t.name, p.partition_index, p.committed_offset, p.error_code)) return false;
  } else {
    for (const auto& t : resp.topics)
      for (const auto& p : t.partitions)
        if (!take(t.name, p.partition_index, p.committed_offset, p.error_code)) return false;
  }
  return true;
}

// ListOffsets for each partition at `timestamp` (-1 latest, -2 earliest, else a time in ms),
// sent to each partition's leader. *out gets the offset, or -1 when the broker found none
// (a timestamp after the last record).
bool list_offsets(admin_client& client, const std::set<topic_partition>& partitions, int64_t timestamp,
                  std::map<topic_partition, int64_t>* out, std::string* error) {
  if (partitions.empty()) return true;
  std::set<std::string> topic_set;
  for (const auto& tp : partitions) topic_set.insert(tp.first);
  protocol::metadata_response md;
  if (!client.metadata(std::vector<std::string>(topic_set.begin(), topic_set.end()), &md, error)) return false;
  std::map<topic_partition, int32_t> leader;
  for (const auto& t : md.topics)
    for (const auto& p : t.partitions) leader[{t.name.value_or(""), p.partition_index}] = p.leader_id;
  std::map<int32_t, std::map<std::string, std::vector<int32_t>>> by_leader;
  for (const auto& tp : partitions) {
    auto it = leader.find(tp);
    if (it == leader.end() || it->second < 0) {
      *error = "no leader for " + tp.first + "-" + std::to_string(tp.second);
      return false;
    }
    by_leader[it->second][tp.first].push_back(tp.second);
  }
  using protocol::list_offsets_request;
  for (const auto& [node, topics] : by_leader) {
    list_offsets_request req;
    req.replica_id = -1;
    req.isolation_level = 0;
    for (const auto& [topic, parts] : topics) {
      list_offsets_request::list_offsets_topic t;
      t.name = topic;
      for (int32_t p : parts) {
        list_offsets_request::list_offsets_partition lp;
        lp.partition_index = p;
        lp.timestamp = timestamp;
        t.partitions.push_back(lp);
      }
      req.topics.push_back(t);
    }
    protocol::list_offsets_response resp;
    if (!client.call(node, req, client.version<list_offsets_request>(node), &resp, error)) return false;
    for (const auto& t : resp.topics)
      for (const auto& p : t.partitions) {
        if (p.error_code != 0) {
          *error = "ListOffsets " + t.name + "-" + std::to_string(p.partition_index) + ": " + describe_error(p.error_code);
          return false;
        }
        (*out)[{t.name, p.partition_index}] = p.offset;
      }
  }
  return true;
}

}  // namespace

int group_list(context& ctx) {
  auto client = ctx.connect();
  if (!client) return 1;
  using protocol::list_groups_request;
  struct row {
    std::string id, state, type;
  };
  std::map<std::string, row> groups;
  std::string error;
  std::vector<int32_t> nodes;
  for (const auto& b : client->brokers()) nodes.push_back(b.node_id);
  if (nodes.empty()) nodes.push_back(-1);
  for (int32_t node : nodes) {
    list_groups_request req;
    protocol::list_groups_response resp;
    if (!client->call(node, req, client->version<list_groups_request>(node), &resp, &error)) return fail(error);
    if (resp.error_code != 0) return fail("ListGroups on broker " + std::to_string(node) + ": " + describe_error(resp.error_code));
    for (const auto& g : resp.groups) groups[g.group_id] = {g.group_id, g.group_state, g.protocol_type};
  }
  if (ctx.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& [id, g] : groups) j.push_back({{"group", id}, {"state", g.state}, {"protocol_type", g.type}});
    print_json(j);
    return 0;
  }
  table tbl({"GROUP", "STATE", "PROTOCOL-TYPE"});
  for (const auto& [id, g] : groups) tbl.add_row({id, g.state.empty() ? "-" : g.state, g.type.empty() ? "-" : g.type});
  tbl.print(std::cout);
  return 0;
}

int group_describe(context& ctx) {
  std::string group;
  int rc = 0;
  if (!group_name(ctx, "describe", &group, &rc)) return rc;
  auto client = ctx.connect();
  if (!client) return 1;
  std::string error;
  int32_t coordinator = -1;
  if (!coordinator_for(*client, group, &coordinator, &error)) return fail(error);
  group_description desc;
  if (!describe_group(*client, coordinator, group, &desc, &error)) return fail(error);
  std::map<topic_partition, int64_t> committed;
  if (!fetch_committed(*client, coordinator, group, &committed, &error)) return fail(error);
  std::map<topic_partition, const group_description::member*> owner;
  for (const auto& m : desc.members)
    for (const auto& t : m.assignment.topics)
      for (int32_t p : t.partitions) owner[{t.topic, p}] = &m;
  std::set<topic_partition> partitions;
  for (const auto& [tp, off] : committed) partitions.insert(tp);
  for (const auto& [tp, m] : owner) partitions.insert(tp);
  std::map<topic_partition, int64_t> end_offsets;
  if (!list_offsets(*client, partitions, -1, &end_offsets, &error)) return fail(error);

  if (desc.state == "Dead" && partitions.empty())
    return fail("consumer group '" + group + "' does not exist");

  if (ctx.json) {
    nlohmann::json parts = nlohmann::json::array();
    for (const auto& tp : partitions) {
      auto c = committed.find(tp);
      auto e = end_offsets.find(tp);
      auto o = owner.find(tp);
      nlohmann::json j = {{"topic", tp.first}, {"partition", tp.second}};
      j["current_offset"] = c != committed.end() ? nlohmann::json(c->second) : nlohmann::json(nullptr);
      j["log_end_offset"] = e != end_offsets.end() ? nlohmann::json(e->second) : nlohmann::json(nullptr);
      j["lag"] = c != committed.end() && e != end_offsets.end() ? nlohmann::json(std::max<int64_t>(0, e->second - c->second))
                                                                : nlohmann::json(nullptr);
      j["consumer_id"] = o != owner.end() ? nlohmann::json(o->second->member_id) : nlohmann::json(nullptr);
      j["host"] = o != owner.end() ? nlohmann::json(o->second->host) : nlohmann::json(nullptr);
      j["client_id"] = o != owner.end() ? nlohmann::json(o->second->client_id) : nlohmann::json(nullptr);
      parts.push_back(j);
    }
    nlohmann::json members = nlohmann::json::array();
    for (const auto& m : desc.members) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& t : m.assignment.topics) a.push_back({{"topic", t.topic}, {"partitions", t.partitions}});
      members.push_back({{"consumer_id", m.member_id},
                         {"group_instance_id", m.instance_id ? nlohmann::json(*m.instance_id) : nlohmann::json(nullptr)},
                         {"client_id", m.client_id},
                         {"host", m.host},
                         {"assignment", a}});
    }
    print_json({{"group", group},
                {"state", desc.state},
                {"protocol_type", desc.protocol_type},
                {"assignor", desc.protocol},
                {"coordinator", coordinator},
                {"members", members},
                {"partitions", parts}});
    return 0;
  }
  if (desc.members.empty()) std::cout << "Consumer group '" << group << "' has no active members.\n\n";
  table tbl({"GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"});
  for (const auto& tp : partitions) {
    auto c = committed.find(tp);
    auto e = end_offsets.find(tp);
    auto o = owner.find(tp);
    const bool has_c = c != committed.end(), has_e = e != end_offsets.end();
    tbl.add_row({group, tp.first, std::to_string(tp.second), has_c ? std::to_string(c->second) : "-",
                 has_e ? std::to_string(e->second) : "-",
                 has_c && has_e ? std::to_string(std::max<int64_t>(0, e->second - c->second)) : "-",
                 o != owner.end() ? o->second->member_id : "-", o != owner.end() ? o->second->host : "-",
                 o != owner.end() ? o->second->client_id : "-"});
  }
  tbl.print(std::cout);
  return 0;
}

int group_reset_offsets(context& ctx) {
  std::string group;
  int rc = 0;
  if (!group_name(ctx, "reset-offsets", &group, &rc)) return rc;
  auto topic_arg = ctx.args.get("--topic");
  if (!topic_arg) return usage_error("group reset-offsets needs --topic T (or T:P,P...)");
  int modes = ctx.args.has("--to-earliest") + ctx.args.has("--to-latest") + ctx.args.has("--to-datetime") +
              ctx.args.has("--shift-by") + ctx.args.has("--to-offset");
  if (modes != 1)
    return usage_error("give exactly one of --to-earliest, --to-latest, --to-offset N, --to-datetime ISO, --shift-by N");
  if (ctx.args.has("--execute") && ctx.args.has("--dry-run")) return usage_error("--execute and --dry-run exclude each other");
  // --topic T or T:0,2
  std::string topic = *topic_arg;
  std::vector<int32_t> only;
  if (auto colon = topic.find(':'); colon != std::string::npos) {
    std::string list = topic.substr(colon + 1);
    topic = topic.substr(0, colon);
    size_t start = 0;
    while (start <= list.size()) {
      size_t comma = list.find(',', start);
      std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      int32_t p = 0;
      if (!parse_int32(item, &p) || p < 0) return usage_error("bad partition '" + item + "' in --topic");
      only.push_back(p);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  int64_t shift = 0, to_offset = 0, datetime_ms = 0;
  if (auto s = ctx.args.get("--shift-by"); s && !parse_int64(*s, &shift)) return usage_error("--shift-by expects an integer");
  if (auto s = ctx.args.get("--to-offset"); s && (!parse_int64(*s, &to_offset) || to_offset < 0))
    return usage_error("--to-offset expects a non-negative integer");
  if (auto s = ctx.args.get("--to-datetime"); s && !parse_iso_datetime(*s, &datetime_ms))
    return usage_error("--to-datetime expects YYYY-MM-DDTHH:mm:SS[.sss][Z|+HH:MM], got '" + *s + "'");

  auto client = ctx.connect();
  if (!client) return 1;
  std::string error;
  protocol::metadata_response md;
  if (!client->metadata(std::vector<std::string>{topic}, &md, &error)) return fail(error);
  if (md.topics.size() != 1 || md.topics[0].error_code != 0)
    return fail("topic " + topic + ": " + describe_error(md.topics.empty() ? 3 : md.topics[0].error_code));
  std::set<topic_partition> partitions;
  std::set<int32_t> existing;
  for (const auto& p : md.topics[0].partitions) existing.insert(p.partition_index);
  if (only.empty()) {
    for (int32_t p : existing) partitions.insert({topic, p});
  } else {
    for (int32_t p : only) {
      if (!existing.count(p)) return fail("topic " + topic + " has no partition " + std::to_string(p));
      partitions.insert({topic, p});
    }
  }
  int32_t coordinator = -1;
  if (!coordinator_for(*client, group, &coordinator, &error)) return fail(error);
  group_description desc;
  if (!describe_group(*client, coordinator, group, &desc, &error)) return fail(error);
  std::map<topic_partition, int64_t> committed, earliest, latest, target;
  if (!fetch_committed(*client, coordinator, group, &committed, &error)) return fail(error);
  if (!list_offsets(*client, partitions, -2, &earliest, &error)) return fail(error);
  if (!list_offsets(*client, partitions, -1, &latest, &error)) return fail(error);
  if (ctx.args.has("--to-datetime")) {
    if (!list_offsets(*client, partitions, datetime_ms, &target, &error)) return fail(error);
  }
  std::map<topic_partition, int64_t> plan;
  for (const auto& tp : partitions) {
    const int64_t lo = earliest[tp], hi = latest[tp];
    int64_t next = 0;
    if (ctx.args.has("--to-earliest")) {
      next = lo;
    } else if (ctx.args.has("--to-latest")) {
      next = hi;
    } else if (ctx.args.has("--to-offset")) {
      next = to_offset;
    } else if (ctx.args.has("--to-datetime")) {
      next = target[tp] < 0 ? hi : target[tp];  // no record at/after the time: the end
    } else {
      auto c = committed.find(tp);
      // Without a committed offset Kafka's tool shifts from the reset position; use the end.
      next = (c != committed.end() ? c->second : hi) + shift;
    }
    plan[tp] = std::clamp(next, lo, hi);  // Kafka's tool clamps to the log range as well
  }

  const bool execute = ctx.args.has("--execute");
  if (execute) {
    if (desc.state != "Empty" && desc.state != "Dead")
      return fail("consumer group '" + group + "' is " + desc.state +
                  "; offsets can only be reset while it has no active members (state Empty)");
    using protocol::offset_commit_request;
    offset_commit_request req;
    req.group_id = group;
    req.generation_id_or_member_epoch = -1;
    req.member_id = "";
    offset_commit_request::offset_commit_request_topic t;
    t.name = topic;
    for (const auto& [tp, off] : plan) {
      offset_commit_request::offset_commit_request_partition p;
      p.partition_index = tp.second;
      p.committed_offset = off;
      p.committed_metadata = "";
      t.partitions.push_back(p);
    }
    req.topics.push_back(t);
    protocol::offset_commit_response resp;
    if (!client->call(coordinator, req, client->version<offset_commit_request>(coordinator), &resp, &error))
      return fail(error);
    for (const auto& rt : resp.topics)
      for (const auto& rp : rt.partitions)
        if (rp.error_code != 0)
          return fail("OffsetCommit " + rt.name + "-" + std::to_string(rp.partition_index) + ": " + describe_error(rp.error_code));
  }
  if (ctx.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& [tp, off] : plan) {
      auto c = committed.find(tp);
      j.push_back({{"topic", tp.first},
                   {"partition", tp.second},
                   {"current_offset", c != committed.end() ? nlohmann::json(c->second) : nlohmann::json(nullptr)},
                   {"new_offset", off}});
    }
    print_json({{"group", group}, {"executed", execute}, {"partitions", j}});
    return 0;
  }
  if (!execute) std::cout << "Dry run (add --execute to commit these offsets):\n\n";
  table tbl({"GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"});
  for (const auto& [tp, off] : plan) {
    auto c = committed.find(tp);
    tbl.add_row({group, tp.first, std::to_string(tp.second), c != committed.end() ? std::to_string(c->second) : "-",
                 std::to_string(off)});
  }
  tbl.print(std::cout);
  return 0;
}

int group_delete(context& ctx) {
  std::string group;
  int rc = 0;
  if (!group_name(ctx, "delete", &group, &rc)) return rc;
  auto client = ctx.connect();
  if (!client) return 1;
  std::string error;
  int32_t coordinator = -1;
  if (!coordinator_for(*client, group, &coordinator, &error)) return fail(error);
  using protocol::delete_groups_request;
  delete_groups_request req;
  req.groups_names = {group};
  protocol::delete_groups_response resp;
  if (!client->call(coordinator, req, client->version<delete_groups_request>(coordinator), &resp, &error))
    return fail(error);
  for (const auto& r : resp.results)
    if (r.error_code != 0) return fail("cannot delete group '" + group + "': " + describe_error(r.error_code));
  if (ctx.json) print_json({{"group", group}, {"deleted", true}});
  else std::cout << "Deleted consumer group '" << group << "'.\n";
  return 0;
}

}  // namespace varve::cli
