#include "coordinator/group_coordinator.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "common/log.h"
#include "coordinator/offsets_format.h"
#include "protocol/record_batch.h"
#include "replication/partition_reader.h"

namespace varve::coordinator {
namespace {
constexpr std::string_view kLog = "groups";

bool same_protocols(const std::vector<protocol_entry>& a, const std::vector<protocol_entry>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].metadata != b[i].metadata) return false;
  }
  return true;
}

// Topics of a ConsumerProtocolSubscription (version int16, topics [string], ...); nullopt
// if the metadata is not one.
std::optional<std::vector<std::string>> subscribed_topics(const bytes& metadata) {
  std::vector<std::string> out;
  size_t pos = 0;
  auto need = [&](size_t n) { return pos + n <= metadata.size(); };
  auto be = [&](int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | metadata[pos++];
    return v;
  };
  if (!need(6)) return std::nullopt;
  be(2);
  const auto count = static_cast<int32_t>(be(4));
  for (int32_t i = 0; i < count; ++i) {
    if (!need(2)) return std::nullopt;
    const auto len = static_cast<int16_t>(be(2));
    if (len < 0 || !need(static_cast<size_t>(len))) return std::nullopt;
    out.emplace_back(reinterpret_cast<const char*>(metadata.data() + pos), len);
    pos += len;
  }
  return out;
}

error_code map_append_error(error_code e) {
  switch (e) {
    case error_code::none:
      return e;
    case error_code::unknown_topic_or_partition:
    case error_code::not_enough_replicas:
    case error_code::not_enough_replicas_after_append:
      return error_code::coordinator_not_available;
    case error_code::not_leader_or_follower:
    case error_code::kafka_storage_error:
      return error_code::not_coordinator;
    case error_code::message_too_large:
    case error_code::record_list_too_large:
      return error_code::invalid_commit_offset_size;
    default:
      return error_code::unknown_server_error;
  }
}
}  // namespace

const char* state_name(group_state s) {
  switch (s) {
    case group_state::empty: return "Empty";
    case group_state::preparing_rebalance: return "PreparingRebalance";
    case group_state::completing_rebalance: return "CompletingRebalance";
    case group_state::stable: return "Stable";
    case group_state::dead: return "Dead";
  }
  return "Unknown";
}

std::string generate_member_id(const std::string& client_id) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t hi = rng(), lo = rng();
  hi = (hi & ~0xf000ULL) | 0x4000ULL;  // version 4
  lo = (lo & ~(0xc0ULL << 56)) | (0x80ULL << 56);  // IETF variant
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32), static_cast<unsigned>((hi >> 16) & 0xffff),
                static_cast<unsigned>(hi & 0xffff), static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return client_id + "-" + buf;
}

struct group_coordinator::member {
  std::string id;
  std::optional<std::string> instance_id;
  std::string client_id;
  std::string client_host;
  int32_t session_timeout_ms = 0;
  int32_t rebalance_timeout_ms = 0;
  std::vector<protocol_entry> protocols;
  bytes assignment;
  std::function<void(join_result)> awaiting_join;
  std::function<void(sync_result)> awaiting_sync;
  int64_t heartbeat_deadline = 0;

  const bytes* metadata_for(const std::optional<std::string>& protocol) const {
    for (const auto& p : protocols) {
      if (protocol && p.name == *protocol) return &p.metadata;
    }
    return nullptr;
  }
};

struct group_coordinator::group {
  std::string id;
  int32_t partition = 0;
  group_state state = group_state::empty;
  int32_t generation = 0;
  std::string protocol_type;
  std::optional<std::string> protocol_name;
  std::string leader;
  std::map<std::string, member> members;
  std::map<std::string, std::string> static_members;  // instance id → member id
  std::map<std::string, int64_t> pending_members;     // MEMBER_ID_REQUIRED → rejoin deadline
  int64_t rebalance_deadline = 0;
  bool initial_delay = false;
  int64_t initial_delay_limit = 0;
  std::map<topic_partition, committed_offset> offsets;
  // TxnOffsetCommit offsets waiting for their transaction's marker: producer id → offsets.
  std::map<int64_t, std::map<topic_partition, committed_offset>> pending_txn_offsets;
  int64_t state_timestamp = -1;  // wall clock ms of the last state change (-1 = unknown)
  bool has_metadata_record = false;  // a group metadata record for it is in the log

  // A static member whose instance id now maps to another member id is fenced.
  bool fenced(const std::optional<std::string>& instance, const std::string& member_id) const {
    if (!instance) return false;
    auto it = static_members.find(*instance);
    return it != static_members.end() && it->second != member_id;
  }
  bool all_joined() const {
    if (!pending_members.empty()) return false;
    for (const auto& [id, m] : members) {
      if (!m.awaiting_join) return false;
    }
    return true;
  }
  int32_t max_rebalance_timeout() const {
    int32_t t = 0;
    for (const auto& [id, m] : members) t = std::max(t, m.rebalance_timeout_ms);
    return t;
  }
  // Classic-protocol compatibility of a joining member with the current members.
  bool supports(const std::string& type, const std::vector<protocol_entry>& protocols) const {
    if (members.empty()) return !type.empty() && !protocols.empty();
    if (type != protocol_type) return false;
    for (const auto& p : protocols) {
      bool everyone = true;
      for (const auto& [id, m] : members) {
        everyone = everyone && std::any_of(m.protocols.begin(), m.protocols.end(),
                                           [&](const protocol_entry& e) { return e.name == p.name; });
      }
      if (everyone) return true;
    }
    return false;
  }
  // A protocol every member supports, chosen by votes: each member votes for the first of
  // its protocols that all support; ties go to the leader's preference order.
  std::optional<std::string> select_protocol() const {
    if (members.empty()) return std::nullopt;
    const member& first = members.count(leader) ? members.at(leader) : members.begin()->second;
    std::vector<std::string> candidates;
    for (const auto& p : first.protocols) {
      bool everyone = true;
      for (const auto& [id, m] : members) {
        everyone = everyone && std::any_of(m.protocols.begin(), m.protocols.end(),
                                           [&](const protocol_entry& e) { return e.name == p.name; });
      }
      if (everyone) candidates.push_back(p.name);
    }
    if (candidates.empty()) return std::nullopt;
    std::map<std::string, int> votes;
    for (const auto& [id, m] : members) {
      for (const auto& p : m.protocols) {
        if (std::find(candidates.begin(), candidates.end(), p.name) != candidates.end()) {
          ++votes[p.name];
          break;
        }
      }
    }
    std::string best = candidates.front();
    for (const auto& c : candidates) {
      if (votes[c] > votes[best]) best = c;
    }
    return best;
  }
};

group_coordinator::group_coordinator(coordinator_options options, partition_lookup partitions,
                                     clock now_ms, clock wall_ms)
    : options_(options),
      partitions_(std::move(partitions)),
      now_ms_(std::move(now_ms)),
      wall_ms_(std::move(wall_ms)) {}

group_coordinator::~group_coordinator() = default;

void group_coordinator::start(asio::io_context& loop) {
  timer_ = std::make_unique<asio::steady_timer>(loop);
  schedule_tick();
}

void group_coordinator::stop() {
  stopped_ = true;
  if (timer_) timer_->cancel();
}

void group_coordinator::schedule_tick() {
  if (stopped_ || !timer_) return;
  timer_->expires_after(std::chrono::milliseconds(options_.tick_interval_ms));
  timer_->async_wait([this](const asio::error_code& ec) {
    if (ec || stopped_) return;
    tick();
    schedule_tick();
  });
}

std::optional<group_state> group_coordinator::state_of(const std::string& group_id) const {
  if (auto* g = find_group(group_id)) return g->state;
  return std::nullopt;
}

int32_t group_coordinator::generation_of(const std::string& group_id) const {
  auto* g = find_group(group_id);
  return g ? g->generation : -1;
}

group_coordinator::group* group_coordinator::find_group(const std::string& id) const {
  auto it = groups_.find(id);
  return it == groups_.end() ? nullptr : it->second.get();
}

group_coordinator::group& group_coordinator::get_or_create(int32_t p, const std::string& id) {
  auto& slot = groups_[id];
  if (!slot) {
    slot = std::make_unique<group>();
    slot->id = id;
    slot->partition = p;
  }
  return *slot;
}

// ---------------------------------------------------------------- loading

void group_coordinator::begin_loading(int32_t p) {
  loading_.insert(p);
  loaded_.erase(p);
}

void group_coordinator::unload_partition(int32_t p) {
  forget_partition(p);
  loading_.erase(p);
  loaded_.erase(p);
}

error_code group_coordinator::check_partition(int32_t p) {
  if (loading_.count(p)) return error_code::coordinator_load_in_progress;
  if (!partitions_(p)) return error_code::not_coordinator;
  if (!loaded_.count(p)) {
    std::string why;
    // On failure load_partition logged it and scheduled a retry.
    if (!load_partition(p, &why)) return error_code::coordinator_load_in_progress;
  }
  return error_code::none;
}

void group_coordinator::forget_partition(int32_t p) {
  for (auto it = groups_.begin(); it != groups_.end();) {
    if (it->second->partition == p) {
      // Requests still waiting in a rebalance are answered, never dropped.
      for (auto& [id, m] : it->second->members) {
        if (m.awaiting_join) {
          join_result r;
          r.error = error_code::not_coordinator;
          r.member_id = id;
          std::exchange(m.awaiting_join, nullptr)(std::move(r));
        }
        if (m.awaiting_sync) {
          sync_result r;
          r.error = error_code::not_coordinator;
          std::exchange(m.awaiting_sync, nullptr)(std::move(r));
        }
      }
      it = groups_.erase(it);
    } else {
      ++it;
    }
  }
}

void group_coordinator::retry_loads() {
  const int64_t now = now_ms_();
  std::vector<int32_t> due;
  for (const auto& [p, retry] : load_retry_) {
    if (retry.first <= now) due.push_back(p);
  }
  for (int32_t p : due) {
    std::string why;
    load_partition(p, &why);  // logs and reschedules on failure
  }
}

bool group_coordinator::load_partition(int32_t p, std::string* error) {
  replication::partition* part = partitions_(p);
  forget_partition(p);
  if (!part) {
    *error = "partition not hosted on this shard";
    loading_.erase(p);
    loaded_.erase(p);
    load_retry_.erase(p);
    return false;
  }
  size_t offset_records = 0;
  size_t group_records = 0;
  auto apply_group = [&](const offset_key& k, const protocol::record& r) {
    ++group_records;
    if (!r.value) {
      if (group* g = find_group(k.group)) {
        // The group was deleted; offsets committed after this record may recreate it.
        g->members.clear();
        g->static_members.clear();
        g->generation = 0;
        g->protocol_type.clear();
        g->protocol_name.reset();
        g->leader.clear();
        g->state = group_state::empty;
        g->state_timestamp = -1;
        g->has_metadata_record = false;
      }
      return;
    }
    auto v = decode_group_metadata_value(*r.value);
    if (!v) {
      VLOG_WARN(kLog) << "skipping malformed group metadata value at offset " << r.offset
                      << " of __consumer_offsets-" << p;
      return;
    }
    group& g = get_or_create(p, k.group);
    g.protocol_type = v->protocol_type;
    g.generation = v->generation;
    g.protocol_name = v->protocol;
    g.leader = v->leader.value_or("");
    g.state = v->members.empty() ? group_state::empty : group_state::stable;
    g.state_timestamp = v->current_state_timestamp;
    g.has_metadata_record = true;
    g.members.clear();
    g.static_members.clear();
    for (auto& rec : v->members) {
      member m;
      m.id = rec.member_id;
      m.instance_id = rec.group_instance_id;
      m.client_id = rec.client_id;
      m.client_host = rec.client_host;
      m.session_timeout_ms = rec.session_timeout_ms;
      // Records older than value version 1 have no rebalance timeout: Kafka used the
      // session timeout for both.
      m.rebalance_timeout_ms =
          rec.rebalance_timeout_ms >= 0 ? rec.rebalance_timeout_ms : rec.session_timeout_ms;
      m.protocols.push_back({g.protocol_name.value_or(""), std::move(rec.subscription)});
      m.assignment = std::move(rec.assignment);
      if (m.instance_id) g.static_members[*m.instance_id] = m.id;
      g.members.emplace(m.id, std::move(m));
    }
  };
  auto apply = [&](const protocol::record& r, const protocol::record_batch_header& hdr) {
    if (!r.key) return;
    offset_key k;
    auto kind = decode_key(*r.key, &k);
    if (!kind || *kind == key_kind::unknown) return;
    if (*kind == key_kind::group_metadata) return apply_group(k, r);
    ++offset_records;
    if (!r.value) {
      if (auto* g = find_group(k.group)) g->offsets.erase({k.topic, k.partition});
      return;
    }
    auto v = decode_offset_value(*r.value);
    if (!v) {
      VLOG_WARN(kLog) << "skipping malformed offset commit value at offset " << r.offset
                      << " of __consumer_offsets-" << p;
      return;
    }
    group& g = get_or_create(p, k.group);
    const committed_offset value{v->offset, v->leader_epoch, v->metadata, v->commit_timestamp,
                                 v->expire_timestamp};
    if (hdr.is_transactional()) {
      // TxnOffsetCommit: visible only once its COMMIT marker is read.
      g.pending_txn_offsets[hdr.producer_id][{k.topic, k.partition}] = value;
    } else {
      g.offsets[{k.topic, k.partition}] = value;
    }
  };
  auto on_marker = [&](int64_t producer_id, bool commit) { complete_txn(p, producer_id, commit); };

  int64_t next_offset = 0;
  if (!replication::read_partition_records(*part, apply, on_marker, &next_offset, error)) {
    forget_partition(p);  // no half-loaded groups
    loading_.insert(p);
    loaded_.erase(p);
    auto [it, fresh] = load_retry_.try_emplace(p, 0, options_.load_retry_backoff_ms);
    const int64_t backoff = it->second.second;
    it->second.first = now_ms_() + backoff;
    it->second.second = std::min(backoff * 2, options_.load_retry_backoff_max_ms);
    VLOG_ERROR(kLog) << "cannot load __consumer_offsets-" << p << ": " << *error
                     << "; retrying in " << backoff << " ms";
    return false;
  }
  // Groups without members, offsets or a stored membership are gone. Restored members
  // get a full session from now: those that do not come back expire normally.
  const int64_t now = now_ms_();
  size_t members = 0;
  for (auto it = groups_.begin(); it != groups_.end();) {
    group& g = *it->second;
    if (g.partition != p) {
      ++it;
      continue;
    }
    if (g.members.empty() && g.offsets.empty() && g.pending_txn_offsets.empty() &&
        !g.has_metadata_record) {
      it = groups_.erase(it);
      continue;
    }
    for (auto& [id, m] : g.members) m.heartbeat_deadline = now + m.session_timeout_ms;
    members += g.members.size();
    ++it;
  }
  loading_.erase(p);
  load_retry_.erase(p);
  loaded_.insert(p);
  VLOG_INFO(kLog) << "loaded __consumer_offsets-" << p << ": " << offset_records
                  << " offset record(s), " << group_records << " group record(s), "
                  << members << " member(s) restored, up to offset " << next_offset;
  return true;
}

void group_coordinator::set_state(group& g, group_state s) {
  g.state = s;
  g.state_timestamp = wall_ms_();
}

bool group_coordinator::store_group(group& g, error_code* error) {
  group_metadata_value v;
  v.protocol_type = g.protocol_type;
  v.generation = g.generation;
  v.protocol = g.protocol_name;
  if (!g.leader.empty()) v.leader = g.leader;
  v.current_state_timestamp = g.state_timestamp;
  for (const auto& [id, m] : g.members) {
    group_member_record rec;
    rec.member_id = id;
    rec.group_instance_id = m.instance_id;
    rec.client_id = m.client_id;
    rec.client_host = m.client_host;
    rec.rebalance_timeout_ms = m.rebalance_timeout_ms;
    rec.session_timeout_ms = m.session_timeout_ms;
    if (const bytes* md = m.metadata_for(g.protocol_name)) rec.subscription = *md;
    rec.assignment = m.assignment;
    v.members.push_back(std::move(rec));
  }
  std::vector<std::pair<bytes, std::optional<bytes>>> kvs;
  kvs.emplace_back(encode_group_metadata_key(g.id), encode_group_metadata_value(v));
  if (!append_records(g.partition, kvs, error)) return false;
  g.has_metadata_record = true;
  return true;
}

// ---------------------------------------------------------------- membership

join_result group_coordinator::current_join_result(const group& g, const member& m,
                                                   bool with_members) const {
  join_result r;
  r.generation_id = g.generation;
  r.protocol_type = g.protocol_type;
  r.protocol_name = g.protocol_name;
  r.leader = g.leader;
  r.member_id = m.id;
  if (with_members) {
    for (const auto& [id, other] : g.members) {
      join_member jm;
      jm.member_id = id;
      jm.group_instance_id = other.instance_id;
      if (const bytes* md = other.metadata_for(g.protocol_name)) jm.metadata = *md;
      r.members.push_back(std::move(jm));
    }
  }
  return r;
}

void group_coordinator::join(int32_t p, join_params params,
                             std::function<void(join_result)> done) {
  auto fail = [&](error_code e) {
    join_result r;
    r.error = e;
    r.member_id = params.member_id;
    done(std::move(r));
  };
  if (params.group_id.empty()) return fail(error_code::invalid_group_id);
  if (auto e = check_partition(p); e != error_code::none) return fail(e);
  if (params.session_timeout_ms < options_.min_session_timeout_ms ||
      params.session_timeout_ms > options_.max_session_timeout_ms) {
    return fail(error_code::invalid_session_timeout);
  }
  group* g = find_group(params.group_id);
  if (!g) {
    if (!params.member_id.empty()) return fail(error_code::unknown_member_id);
    g = &get_or_create(p, params.group_id);
  }
  if (g->state == group_state::dead) return fail(error_code::coordinator_not_available);
  if (!g->supports(params.protocol_type, params.protocols)) {
    return fail(error_code::inconsistent_group_protocol);
  }
  const int64_t now = now_ms_();
  const bool full = static_cast<int64_t>(g->members.size() + g->pending_members.size()) >=
                    options_.max_group_size;

  if (params.member_id.empty()) {
    const std::string new_id = generate_member_id(params.client_id);
    if (params.group_instance_id) {
      auto sit = g->static_members.find(*params.group_instance_id);
      if (sit != g->static_members.end() && g->members.count(sit->second)) {
        // A known static member restarted: it takes over the old member id's place.
        member m = std::move(g->members.at(sit->second));
        const std::string old_id = m.id;
        g->members.erase(old_id);
        if (m.awaiting_join) {
          join_result fenced;
          fenced.error = error_code::fenced_instance_id;
          fenced.member_id = old_id;
          std::exchange(m.awaiting_join, nullptr)(std::move(fenced));
        }
        if (m.awaiting_sync) {
          sync_result fenced;
          fenced.error = error_code::fenced_instance_id;
          std::exchange(m.awaiting_sync, nullptr)(std::move(fenced));
        }
        m.id = new_id;
        m.client_id = params.client_id;
        m.client_host = params.client_host;
        m.heartbeat_deadline = now + params.session_timeout_ms;
        if (g->leader == old_id) g->leader = new_id;
        sit->second = new_id;
        member& placed = g->members.emplace(new_id, std::move(m)).first->second;
        // As in Kafka: a Stable group takes the rejoined member's new protocols and
        // metadata without a rebalance unless they change the protocol the group would
        // select (cooperative clients' metadata carries owned partitions and so always
        // differs).
        const std::vector<protocol_entry> old_protocols = placed.protocols;
        placed.protocols = params.protocols;
        const bool same_selection =
            g->state == group_state::stable && g->select_protocol() == g->protocol_name;
        placed.protocols = old_protocols;
        if (same_selection) {
          placed.protocols = std::move(params.protocols);
          placed.session_timeout_ms = params.session_timeout_ms;
          placed.rebalance_timeout_ms = params.rebalance_timeout_ms;
          // The stored membership names the old member id; record the new one. (If this
          // append fails the old id comes back after a reload; the member then gets
          // UNKNOWN_MEMBER_ID and rejoins with its instance id.)
          error_code err = error_code::none;
          if (!store_group(*g, &err)) {
            VLOG_WARN(kLog) << "group " << g->id << ": cannot store replaced static member: "
                            << protocol::error_name(err);
          }
          const bool leader = g->leader == new_id;
          join_result r = current_join_result(*g, placed, leader);
          r.skip_assignment = leader;
          done(std::move(r));
          return;
        }
        update_member_and_rebalance(*g, placed, params, std::move(done));
        return;
      }
      if (full) return fail(error_code::group_max_size_reached);
      add_member_and_rebalance(*g, params, new_id, std::move(done));
      return;
    }
    if (full) return fail(error_code::group_max_size_reached);
    if (params.require_known_member_id) {
      // KIP-394: hand out the id first; the member counts once it rejoins with it.
      g->pending_members[new_id] = now + params.session_timeout_ms;
      join_result r;
      r.error = error_code::member_id_required;
      r.member_id = new_id;
      done(std::move(r));
      return;
    }
    add_member_and_rebalance(*g, params, new_id, std::move(done));
    return;
  }

  if (g->fenced(params.group_instance_id, params.member_id)) {
    return fail(error_code::fenced_instance_id);
  }
  if (g->pending_members.erase(params.member_id)) {
    add_member_and_rebalance(*g, params, params.member_id, std::move(done));
    return;
  }
  auto mit = g->members.find(params.member_id);
  if (mit == g->members.end()) return fail(error_code::unknown_member_id);
  member& m = mit->second;
  m.heartbeat_deadline = now + params.session_timeout_ms;
  switch (g->state) {
    case group_state::preparing_rebalance:
      update_member_and_rebalance(*g, m, params, std::move(done));
      return;
    case group_state::completing_rebalance:
      if (same_protocols(m.protocols, params.protocols)) {
        // The member lost our JoinGroup response: send it again.
        done(current_join_result(*g, m, m.id == g->leader));
        return;
      }
      update_member_and_rebalance(*g, m, params, std::move(done));
      return;
    case group_state::stable:
      if (m.id == g->leader || !same_protocols(m.protocols, params.protocols)) {
        update_member_and_rebalance(*g, m, params, std::move(done));
      } else {
        done(current_join_result(*g, m, false));
      }
      return;
    case group_state::empty:
    case group_state::dead:
      return fail(error_code::unknown_member_id);
  }
}

void group_coordinator::add_member_and_rebalance(group& g, join_params& params,
                                                 std::string member_id,
                                                 std::function<void(join_result)> done) {
  if (g.members.empty()) g.protocol_type = params.protocol_type;
  member m;
  m.id = member_id;
  m.instance_id = params.group_instance_id;
  m.client_id = params.client_id;
  m.client_host = params.client_host;
  m.session_timeout_ms = params.session_timeout_ms;
  m.rebalance_timeout_ms = params.rebalance_timeout_ms;
  m.protocols = std::move(params.protocols);
  m.awaiting_join = std::move(done);
  const int64_t now = now_ms_();
  m.heartbeat_deadline = now + params.session_timeout_ms;
  if (m.instance_id) g.static_members[*m.instance_id] = member_id;
  g.members.emplace(member_id, std::move(m));
  if (g.state == group_state::preparing_rebalance && g.initial_delay) {
    // New members during the initial delay extend it, up to the rebalance timeout.
    g.rebalance_deadline = std::min(now + options_.initial_rebalance_delay_ms,
                                    g.initial_delay_limit);
  }
  if (g.state != group_state::preparing_rebalance) prepare_rebalance(g);
  maybe_complete_join(g);
}

void group_coordinator::update_member_and_rebalance(group& g, member& m, join_params& params,
                                                    std::function<void(join_result)> done) {
  m.protocols = std::move(params.protocols);
  m.session_timeout_ms = params.session_timeout_ms;
  m.rebalance_timeout_ms = params.rebalance_timeout_ms;
  if (m.awaiting_join) {
    join_result superseded;
    superseded.error = error_code::rebalance_in_progress;
    superseded.member_id = m.id;
    std::exchange(m.awaiting_join, nullptr)(std::move(superseded));
  }
  m.awaiting_join = std::move(done);
  if (g.state != group_state::preparing_rebalance) prepare_rebalance(g);
  maybe_complete_join(g);
}

void group_coordinator::fail_pending_syncs(group& g, error_code error) {
  for (auto& [id, m] : g.members) {
    if (m.awaiting_sync) {
      sync_result r;
      r.error = error;
      std::exchange(m.awaiting_sync, nullptr)(std::move(r));
    }
  }
}

void group_coordinator::prepare_rebalance(group& g) {
  if (g.state == group_state::completing_rebalance) {
    for (auto& [id, m] : g.members) m.assignment.clear();
    fail_pending_syncs(g, error_code::rebalance_in_progress);
  }
  const int64_t now = now_ms_();
  const int32_t timeout = g.max_rebalance_timeout();
  if (g.state == group_state::empty) {
    // group.initial.rebalance.delay.ms: let more of the first members arrive.
    g.initial_delay = true;
    g.rebalance_deadline = now + std::min(options_.initial_rebalance_delay_ms, timeout);
    g.initial_delay_limit = now + timeout;
  } else {
    g.initial_delay = false;
    g.rebalance_deadline = now + timeout;
  }
  set_state(g, group_state::preparing_rebalance);
  VLOG_INFO(kLog) << "group " << g.id << " is rebalancing (generation " << g.generation
                  << ", " << g.members.size() << " member(s))";
}

void group_coordinator::maybe_complete_join(group& g) {
  if (g.state != group_state::preparing_rebalance) return;
  const bool due = now_ms_() >= g.rebalance_deadline;
  if (due || (!g.initial_delay && g.all_joined())) complete_join(g);
}

void group_coordinator::complete_join(group& g) {
  // Members that did not rejoin within the rebalance timeout leave the group.
  for (auto it = g.members.begin(); it != g.members.end();) {
    if (it->second.awaiting_join) {
      ++it;
      continue;
    }
    VLOG_INFO(kLog) << "group " << g.id << ": member " << it->first
                    << " did not rejoin in time and is removed";
    if (it->second.instance_id) g.static_members.erase(*it->second.instance_id);
    it = g.members.erase(it);
  }
  g.pending_members.clear();
  g.initial_delay = false;
  ++g.generation;
  if (g.members.empty()) {
    set_state(g, group_state::empty);
    g.protocol_name.reset();
    g.leader.clear();
    error_code err = error_code::none;
    if (!store_group(g, &err)) {
      VLOG_WARN(kLog) << "group " << g.id << ": cannot store its Empty state: "
                      << protocol::error_name(err);
    }
    return;
  }
  if (!g.members.count(g.leader)) g.leader = g.members.begin()->first;
  g.protocol_name = g.select_protocol();
  set_state(g, group_state::completing_rebalance);
  VLOG_INFO(kLog) << "group " << g.id << " generation " << g.generation << " with "
                  << g.members.size() << " member(s), protocol "
                  << g.protocol_name.value_or("?") << ", leader " << g.leader;
  const int64_t now = now_ms_();
  for (auto& [id, m] : g.members) {
    m.heartbeat_deadline = now + m.session_timeout_ms;
    auto cb = std::exchange(m.awaiting_join, nullptr);
    cb(current_join_result(g, m, id == g.leader));
  }
}

void group_coordinator::sync(int32_t p, sync_params params,
                             std::function<void(sync_result)> done) {
  auto fail = [&](error_code e) {
    sync_result r;
    r.error = e;
    done(std::move(r));
  };
  if (auto e = check_partition(p); e != error_code::none) return fail(e);
  group* g = find_group(params.group_id);
  if (!g) return fail(error_code::unknown_member_id);
  if (g->state == group_state::dead) return fail(error_code::coordinator_not_available);
  if (g->fenced(params.group_instance_id, params.member_id)) {
    return fail(error_code::fenced_instance_id);
  }
  auto mit = g->members.find(params.member_id);
  if (mit == g->members.end()) return fail(error_code::unknown_member_id);
  if (params.generation_id != g->generation) return fail(error_code::illegal_generation);
  if ((params.protocol_type && *params.protocol_type != g->protocol_type) ||
      (params.protocol_name && *params.protocol_name != g->protocol_name)) {
    return fail(error_code::inconsistent_group_protocol);
  }
  member& m = mit->second;
  switch (g->state) {
    case group_state::empty:
    case group_state::dead:
      return fail(error_code::unknown_member_id);
    case group_state::preparing_rebalance:
      return fail(error_code::rebalance_in_progress);
    case group_state::completing_rebalance: {
      m.heartbeat_deadline = now_ms_() + m.session_timeout_ms;
      m.awaiting_sync = std::move(done);
      if (m.id != g->leader) return;
      for (auto& [id, other] : g->members) other.assignment.clear();
      for (auto& [id, assignment] : params.assignments) {
        if (auto it = g->members.find(id); it != g->members.end()) {
          it->second.assignment = std::move(assignment);
        }
      }
      set_state(*g, group_state::stable);
      error_code err = error_code::none;
      if (!store_group(*g, &err)) {
        // Kafka's answer too: every member learns the error and the group rebalances.
        VLOG_WARN(kLog) << "group " << g->id << ": cannot store generation " << g->generation
                        << ": " << protocol::error_name(err) << "; rebalancing";
        for (auto& [id, other] : g->members) other.assignment.clear();
        fail_pending_syncs(*g, err);
        prepare_rebalance(*g);
        return;
      }
      for (auto& [id, other] : g->members) {
        if (!other.awaiting_sync) continue;
        sync_result r;
        r.protocol_type = g->protocol_type;
        r.protocol_name = g->protocol_name;
        r.assignment = other.assignment;
        std::exchange(other.awaiting_sync, nullptr)(std::move(r));
      }
      return;
    }
    case group_state::stable: {
      m.heartbeat_deadline = now_ms_() + m.session_timeout_ms;
      sync_result r;
      r.protocol_type = g->protocol_type;
      r.protocol_name = g->protocol_name;
      r.assignment = m.assignment;
      done(std::move(r));
      return;
    }
  }
}

error_code group_coordinator::heartbeat(int32_t p, const std::string& group_id,
                                        int32_t generation_id, const std::string& member_id,
                                        const std::optional<std::string>& group_instance_id) {
  if (auto e = check_partition(p); e != error_code::none) return e;
  group* g = find_group(group_id);
  if (!g) return error_code::unknown_member_id;
  if (g->state == group_state::dead) return error_code::coordinator_not_available;
  if (g->fenced(group_instance_id, member_id)) return error_code::fenced_instance_id;
  auto mit = g->members.find(member_id);
  if (mit == g->members.end()) return error_code::unknown_member_id;
  if (generation_id != g->generation) return error_code::illegal_generation;
  mit->second.heartbeat_deadline = now_ms_() + mit->second.session_timeout_ms;
  switch (g->state) {
    case group_state::empty:
    case group_state::dead:
      return error_code::unknown_member_id;
    case group_state::preparing_rebalance:
      return error_code::rebalance_in_progress;
    case group_state::completing_rebalance:
    case group_state::stable:
      return error_code::none;
  }
  return error_code::none;
}

void group_coordinator::remove_member(group& g, const std::string& member_id,
                                      error_code pending_error) {
  auto it = g.members.find(member_id);
  if (it == g.members.end()) return;
  member m = std::move(it->second);
  g.members.erase(it);
  if (m.instance_id) g.static_members.erase(*m.instance_id);
  if (m.awaiting_join) {
    join_result r;
    r.error = pending_error;
    r.member_id = m.id;
    m.awaiting_join(std::move(r));
  }
  if (m.awaiting_sync) {
    sync_result r;
    r.error = pending_error;
    m.awaiting_sync(std::move(r));
  }
  switch (g.state) {
    case group_state::stable:
    case group_state::completing_rebalance:
      prepare_rebalance(g);
      maybe_complete_join(g);
      break;
    case group_state::preparing_rebalance:
      maybe_complete_join(g);
      break;
    default:
      break;
  }
}

leave_result group_coordinator::leave(int32_t p, const std::string& group_id,
                                      const std::vector<member_identity>& members) {
  leave_result out;
  if (auto e = check_partition(p); e != error_code::none) {
    out.error = e;
    return out;
  }
  group* g = find_group(group_id);
  if (g && g->state == group_state::dead) {
    out.error = error_code::coordinator_not_available;
    return out;
  }
  for (const auto& who : members) {
    error_code e = error_code::none;
    std::string id = who.member_id;
    if (!g) {
      e = error_code::unknown_member_id;
    } else if (id.empty() && who.group_instance_id) {
      auto sit = g->static_members.find(*who.group_instance_id);
      if (sit == g->static_members.end()) {
        e = error_code::unknown_member_id;
      } else {
        id = sit->second;
      }
    } else if (g->fenced(who.group_instance_id, id)) {
      e = error_code::fenced_instance_id;
    }
    if (e == error_code::none && g->pending_members.erase(id)) {
      maybe_complete_join(*g);
    } else if (e == error_code::none) {
      if (!g->members.count(id)) {
        e = error_code::unknown_member_id;
      } else {
        VLOG_INFO(kLog) << "group " << group_id << ": member " << id << " left";
        remove_member(*g, id, error_code::unknown_member_id);
      }
    }
    out.members.emplace_back(who, e);
  }
  return out;
}

void group_coordinator::tick() {
  const int64_t now = now_ms_();
  for (auto& [gid, gp] : groups_) {
    group& g = *gp;
    bool pending_expired = false;
    for (auto it = g.pending_members.begin(); it != g.pending_members.end();) {
      if (it->second <= now) {
        it = g.pending_members.erase(it);
        pending_expired = true;
      } else {
        ++it;
      }
    }
    std::vector<std::string> expired;
    for (const auto& [id, m] : g.members) {
      // Members waiting for a rebalance to finish are kept alive (Kafka's shouldKeepAlive).
      if (!m.awaiting_join && !m.awaiting_sync && m.heartbeat_deadline <= now) {
        expired.push_back(id);
      }
    }
    for (const auto& id : expired) {
      VLOG_INFO(kLog) << "group " << g.id << ": member " << id
                      << " session timed out, removing it";
      remove_member(g, id, error_code::unknown_member_id);
    }
    if (pending_expired || g.state == group_state::preparing_rebalance) maybe_complete_join(g);
  }
  if (!load_retry_.empty()) retry_loads();
  if (next_retention_check_ < 0 || now >= next_retention_check_) {
    next_retention_check_ = now + options_.offsets_retention_check_interval_ms;
    expire_offsets();
  }
}

size_t group_coordinator::expire_offsets() {
  const int64_t now = wall_ms_();
  const int64_t retention = options_.offsets_retention_ms;
  size_t expired_total = 0;
  std::vector<std::string> dead;
  for (auto& [gid, gp] : groups_) {
    group& g = *gp;
    if (loading_.count(g.partition) || !g.pending_members.empty()) continue;
    const bool empty = g.state == group_state::empty;
    // When a Stable consumer group's subscriptions are all known, offsets of topics none
    // of its members subscribes to can expire.
    std::optional<std::set<std::string>> subscribed;
    if (g.state == group_state::stable && g.protocol_type == "consumer") {
      subscribed.emplace();
      for (const auto& [id, m] : g.members) {
        const bytes* md = m.metadata_for(g.protocol_name);
        auto topics = md ? subscribed_topics(*md) : std::nullopt;
        if (!topics) {
          subscribed.reset();
          break;
        }
        subscribed->insert(topics->begin(), topics->end());
      }
    }
    std::vector<topic_partition> expired;
    for (const auto& [tp, v] : g.offsets) {
      int64_t base = -1;
      if (g.protocol_type.empty()) {
        base = v.commit_timestamp;  // "simple" group: Kafka is only its offset store
      } else if (empty) {
        base = g.state_timestamp >= 0 ? g.state_timestamp : v.commit_timestamp;
      } else if (subscribed && !subscribed->count(tp.topic)) {
        base = v.commit_timestamp;
      } else {
        continue;
      }
      const bool due = v.expire_timestamp >= 0 ? now >= v.expire_timestamp
                                               : now - base >= retention;
      if (due) expired.push_back(tp);
    }
    const bool becomes_dead = empty && g.members.empty() && expired.size() == g.offsets.size();
    if (expired.empty() && !becomes_dead) continue;
    std::vector<std::pair<bytes, std::optional<bytes>>> kvs;
    for (const auto& tp : expired) {
      kvs.emplace_back(encode_offset_key({gid, tp.topic, tp.partition}), std::nullopt);
    }
    if (becomes_dead) kvs.emplace_back(encode_group_metadata_key(gid), std::nullopt);
    error_code err = error_code::none;
    if (!append_records(g.partition, kvs, &err)) {
      VLOG_WARN(kLog) << "group " << gid << ": cannot write expiry tombstones ("
                      << protocol::error_name(err) << "); will retry at the next check";
      continue;
    }
    for (const auto& tp : expired) g.offsets.erase(tp);
    expired_total += expired.size();
    if (!expired.empty()) {
      VLOG_INFO(kLog) << "group " << gid << ": " << expired.size() << " offset(s) expired";
    }
    if (becomes_dead) {
      set_state(g, group_state::dead);
      dead.push_back(gid);
    }
  }
  for (const auto& gid : dead) {
    VLOG_INFO(kLog) << "group " << gid << " is Dead (no members, no offsets) and removed";
    groups_.erase(gid);
  }
  return expired_total;
}

// ---------------------------------------------------------------- offsets

bool group_coordinator::append_records(
    int32_t p, const std::vector<std::pair<bytes, std::optional<bytes>>>& kvs, error_code* error) {
  replication::partition* part = partitions_(p);
  if (!part) {
    *error = error_code::not_coordinator;
    return false;
  }
  const int64_t now = wall_ms_();
  std::vector<protocol::record> records;
  records.reserve(kvs.size());
  for (const auto& [k, v] : kvs) {
    protocol::record r;
    r.timestamp = now;
    r.key = k;
    r.value = v;
    records.push_back(std::move(r));
  }
  std::vector<uint8_t> batch = protocol::build_batch(records, protocol::batch_builder_options{});
  auto out = part->append(std::span<uint8_t>(batch), -1, now);
  *error = map_append_error(out.error);
  if (out.error != error_code::none) {
    VLOG_WARN(kLog) << "append to __consumer_offsets-" << p << " failed: "
                    << protocol::error_name(out.error) << " " << out.error_message;
    return false;
  }
  return true;
}

error_code group_coordinator::commit_offsets(int32_t p, const commit_params& params,
                                             std::vector<commit_entry>& entries) {
  auto fail_all = [&](error_code e) {
    for (auto& en : entries) en.error = e;
    return e;
  };
  if (params.group_id.empty()) return fail_all(error_code::invalid_group_id);
  if (auto e = check_partition(p); e != error_code::none) return fail_all(e);
  group* g = find_group(params.group_id);
  if (!g) {
    // A group that does not use Kafka for membership ("simple" commit) may commit.
    if (params.generation_id >= 0) return fail_all(error_code::illegal_generation);
    g = &get_or_create(p, params.group_id);
  } else if (g->state == group_state::dead) {
    return fail_all(error_code::coordinator_not_available);
  } else if (g->fenced(params.group_instance_id, params.member_id)) {
    return fail_all(error_code::fenced_instance_id);
  } else if (params.generation_id < 0 && g->state == group_state::empty) {
    // simple commit into a group without members
  } else if (g->state == group_state::completing_rebalance) {
    return fail_all(error_code::rebalance_in_progress);
  } else if (!g->members.count(params.member_id)) {
    return fail_all(error_code::unknown_member_id);
  } else if (params.generation_id != g->generation) {
    return fail_all(error_code::illegal_generation);
  } else {
    member& m = g->members.at(params.member_id);
    m.heartbeat_deadline = now_ms_() + m.session_timeout_ms;
  }
  std::vector<std::pair<bytes, std::optional<bytes>>> kvs;
  const int64_t now = wall_ms_();
  for (auto& en : entries) {
    if (en.error != error_code::none) continue;
    if (static_cast<int64_t>(en.value.metadata.size()) > options_.offset_metadata_max_bytes) {
      en.error = error_code::offset_metadata_too_large;
      continue;
    }
    en.value.commit_timestamp = now;
    offset_value v{en.value.offset, en.value.leader_epoch, en.value.metadata, now, -1};
    kvs.emplace_back(encode_offset_key({params.group_id, en.tp.topic, en.tp.partition}),
                     encode_offset_value(v));
  }
  if (kvs.empty()) return error_code::none;
  error_code err = error_code::none;
  if (!append_records(p, kvs, &err)) {
    for (auto& en : entries) {
      if (en.error == error_code::none) en.error = err;
    }
    return error_code::none;
  }
  for (const auto& en : entries) {
    if (en.error == error_code::none) g->offsets[en.tp] = en.value;
  }
  return error_code::none;
}

error_code group_coordinator::commit_txn_offsets(int32_t p, const txn_commit_params& params,
                                                 std::vector<commit_entry>& entries) {
  auto fail_all = [&](error_code e) {
    for (auto& en : entries) en.error = e;
    return e;
  };
  if (params.group_id.empty()) return fail_all(error_code::invalid_group_id);
  if (auto e = check_partition(p); e != error_code::none) return fail_all(e);
  group* g = find_group(params.group_id);
  if (!g) {
    g = &get_or_create(p, params.group_id);
  } else if (g->state == group_state::dead) {
    return fail_all(error_code::coordinator_not_available);
  } else if (g->fenced(params.group_instance_id, params.member_id)) {
    return fail_all(error_code::fenced_instance_id);
  } else if (params.generation_id >= 0 || !params.member_id.empty()) {
    // KIP-447: a producer committing for a consumer that has since been kicked out of the
    // group (zombie) is refused.
    if (!g->members.count(params.member_id)) return fail_all(error_code::unknown_member_id);
    if (params.generation_id != g->generation) return fail_all(error_code::illegal_generation);
  }
  std::vector<protocol::record> records;
  const int64_t now = wall_ms_();
  for (auto& en : entries) {
    if (en.error != error_code::none) continue;
    if (static_cast<int64_t>(en.value.metadata.size()) > options_.offset_metadata_max_bytes) {
      en.error = error_code::offset_metadata_too_large;
      continue;
    }
    en.value.commit_timestamp = now;
    offset_value v{en.value.offset, en.value.leader_epoch, en.value.metadata, now, -1};
    protocol::record r;
    r.timestamp = now;
    r.key = encode_offset_key({params.group_id, en.tp.topic, en.tp.partition});
    r.value = encode_offset_value(v);
    records.push_back(std::move(r));
  }
  if (records.empty()) return error_code::none;
  replication::partition* part = partitions_(p);
  error_code err = error_code::not_coordinator;
  if (part) {
    protocol::batch_builder_options o;
    o.producer_id = params.producer_id;
    o.producer_epoch = params.producer_epoch;
    o.transactional = true;
    std::vector<uint8_t> batch = protocol::build_batch(records, o);
    auto out = part->append_txn_offsets(std::span<uint8_t>(batch), now);
    err = out.error == error_code::invalid_producer_epoch ? error_code::producer_fenced
                                                          : map_append_error(out.error);
    if (out.error != error_code::none) {
      VLOG_WARN(kLog) << "transactional offset commit to __consumer_offsets-" << p
                      << " failed: " << protocol::error_name(out.error) << " "
                      << out.error_message;
    }
  }
  for (auto& en : entries) {
    if (en.error != error_code::none) continue;
    if (err != error_code::none) {
      en.error = err;
    } else {
      g->pending_txn_offsets[params.producer_id][en.tp] = en.value;
    }
  }
  return error_code::none;
}

void group_coordinator::complete_txn(int32_t p, int64_t producer_id, bool commit) {
  for (auto& [id, g] : groups_) {
    if (g->partition != p) continue;
    auto it = g->pending_txn_offsets.find(producer_id);
    if (it == g->pending_txn_offsets.end()) continue;
    if (commit) {
      for (auto& [tp, v] : it->second) g->offsets[tp] = std::move(v);
    }
    g->pending_txn_offsets.erase(it);
  }
}

bool group_coordinator::has_pending_txn_offset(const std::string& group_id,
                                               const topic_partition& tp) const {
  const group* g = find_group(group_id);
  if (!g) return false;
  for (const auto& [pid, offsets] : g->pending_txn_offsets) {
    if (offsets.count(tp)) return true;
  }
  return false;
}

std::vector<std::pair<topic_partition, committed_offset>> group_coordinator::fetch_offsets(
    int32_t p, const std::string& group_id,
    const std::optional<std::vector<topic_partition>>& partitions) const {
  std::vector<std::pair<topic_partition, committed_offset>> out;
  const group* g = find_group(group_id);
  if (!partitions) {
    if (g) {
      for (const auto& [tp, v] : g->offsets) out.emplace_back(tp, v);
    }
    return out;
  }
  for (const auto& tp : *partitions) {
    committed_offset v;
    v.metadata = "";
    if (g) {
      if (auto it = g->offsets.find(tp); it != g->offsets.end()) v = it->second;
    }
    out.emplace_back(tp, v);
  }
  return out;
}

// ---------------------------------------------------------------- administration

group_description group_coordinator::describe(int32_t p, const std::string& group_id) const {
  group_description d;
  d.group_id = group_id;
  const group* g = find_group(group_id);
  if (!g) {
    d.state = state_name(group_state::dead);
    return d;
  }
  d.state = state_name(g->state);
  d.protocol_type = g->protocol_type;
  const bool stable = g->state == group_state::stable;
  if (stable && g->protocol_name) d.protocol_data = *g->protocol_name;
  for (const auto& [id, m] : g->members) {
    described_member dm;
    dm.member_id = id;
    dm.group_instance_id = m.instance_id;
    dm.client_id = m.client_id;
    dm.client_host = m.client_host;
    if (stable) {
      if (const bytes* md = m.metadata_for(g->protocol_name)) dm.metadata = *md;
      dm.assignment = m.assignment;
    }
    d.members.push_back(std::move(dm));
  }
  return d;
}

group_list group_coordinator::list() const {
  group_list out;
  if (!loading_.empty()) out.error = error_code::coordinator_load_in_progress;
  for (const auto& [id, g] : groups_) {
    if (g->state == group_state::dead || loading_.count(g->partition)) continue;
    out.groups.push_back({id, g->protocol_type, state_name(g->state)});
  }
  return out;
}

error_code group_coordinator::delete_group(int32_t p, const std::string& group_id) {
  if (group_id.empty()) return error_code::invalid_group_id;
  if (auto e = check_partition(p); e != error_code::none) return e;
  group* g = find_group(group_id);
  if (!g || g->state == group_state::dead) return error_code::group_id_not_found;
  if (g->state != group_state::empty || !g->members.empty()) return error_code::non_empty_group;
  std::vector<std::pair<bytes, std::optional<bytes>>> kvs;
  for (const auto& [tp, v] : g->offsets) {
    kvs.emplace_back(encode_offset_key({group_id, tp.topic, tp.partition}), std::nullopt);
  }
  kvs.emplace_back(encode_group_metadata_key(group_id), std::nullopt);
  error_code err = error_code::none;
  if (!append_records(p, kvs, &err)) return err;
  set_state(*g, group_state::dead);
  groups_.erase(group_id);
  VLOG_INFO(kLog) << "group " << group_id << " deleted";
  return error_code::none;
}

error_code group_coordinator::delete_offsets(
    int32_t p, const std::string& group_id, const std::vector<topic_partition>& partitions,
    std::vector<std::pair<topic_partition, error_code>>* results) {
  if (auto e = check_partition(p); e != error_code::none) return e;
  group* g = find_group(group_id);
  if (!g || g->state == group_state::dead) return error_code::group_id_not_found;
  std::set<std::string> subscribed;
  if (!g->members.empty()) {
    if (g->protocol_type != "consumer") return error_code::non_empty_group;
    for (const auto& [id, m] : g->members) {
      for (const auto& pe : m.protocols) {
        if (g->protocol_name && pe.name != *g->protocol_name) continue;
        auto topics = subscribed_topics(pe.metadata);
        if (topics) subscribed.insert(topics->begin(), topics->end());
      }
    }
  }
  std::vector<std::pair<bytes, std::optional<bytes>>> kvs;
  std::vector<topic_partition> deleted;
  for (const auto& tp : partitions) {
    if (subscribed.count(tp.topic)) {
      results->emplace_back(tp, error_code::group_subscribed_to_topic);
      continue;
    }
    results->emplace_back(tp, error_code::none);
    if (g->offsets.count(tp)) {
      kvs.emplace_back(encode_offset_key({group_id, tp.topic, tp.partition}), std::nullopt);
      deleted.push_back(tp);
    }
  }
  if (!kvs.empty()) {
    error_code err = error_code::none;
    if (!append_records(p, kvs, &err)) return err;
    for (const auto& tp : deleted) g->offsets.erase(tp);
  }
  return error_code::none;
}

}  // namespace varve::coordinator
