// Transactions (docs/transactions.md): WriteTxnMarkers (partition leaders write the COMMIT/
// ABORT markers the transaction coordinator asks for) and TxnOffsetCommit (offsets of a
// transaction, pending in the group coordinator until the marker reaches the group's
// __consumer_offsets partition).
#include <asio/this_coro.hpp>

#include <algorithm>
#include <map>

#include "common/log.h"
#include "coordinator/group_coordinator.h"
#include "coordinator/offsets_format.h"
#include "coordinator/txn_coordinator.h"
#include "coordinator/txn_log_format.h"
#include "server/handlers/handlers.h"
#include "server/handlers/util.h"

namespace varve::server::handlers {
namespace {
constexpr std::string_view kLog = "txn";
using coordinator::txn_coordinator;

// --- routing: a transactional id lives in partition txn_partition_for(id) of
// __transaction_state; its coordinator is that partition's leader, on the shard owning it.

struct txn_route {
  error_code error = error_code::none;
  int32_t partition = 0;
  unsigned shard = 0;
};

txn_route route_txn(broker& b, const std::string& transactional_id) {
  txn_route r;
  auto md = b.metadata();
  auto t = md->find(std::string(coordinator::kTransactionStateTopic));
  if (!t || t->partitions.empty()) {
    r.error = error_code::coordinator_not_available;
    return r;
  }
  r.partition = coordinator::txn_partition_for(transactional_id,
                                               static_cast<int32_t>(t->partitions.size()));
  r.shard = b.shard_of({std::string(coordinator::kTransactionStateTopic), r.partition});
  if (t->partitions[r.partition].leader != b.node_id()) r.error = error_code::not_coordinator;
  return r;
}

// True if `t` (a metadata lookup: null when the topic does not exist) has partition p.
bool has_partition(const std::shared_ptr<const cluster::topic_metadata>& t, int32_t p) {
  return t && p >= 0 && p < static_cast<int32_t>(t->partitions.size());
}

// The broker leading __transaction_state partition p, or -1.
int32_t coordinator_node(broker& b, int32_t p) {
  auto t = b.metadata()->find(std::string(coordinator::kTransactionStateTopic));
  return has_partition(t, p) ? t->partitions[p].leader : -1;
}

// Runs start(coordinator, done) on `shard` and waits until the coordinator calls done.
template <typename T, typename Start>
asio::awaitable<T> wait_on_txn(broker& b, unsigned shard, Start& start) {
  auto waiter = [&b, &start, shard]() -> asio::awaitable<T> {
    auto init = [&b, &start, shard](auto handler) {
      auto h = std::make_shared<decltype(handler)>(std::move(handler));
      start(b.txns(shard), [h](T result) {
        // Resume from the coroutine's executor, never from inside the coordinator.
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

// The error the coordinator of `transactional_id` answers start(coordinator, done) with, or
// the routing error (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE) without calling it.
template <typename Start>
asio::awaitable<error_code> call_coordinator(broker& b, const std::string& transactional_id,
                                             Start& start) {
  const txn_route route = route_txn(b, transactional_id);
  if (route.error != error_code::none) co_return route.error;
  auto wait = wait_on_txn<error_code>(b, route.shard, start);
  co_return co_await std::move(wait);
}

// Creates __transaction_state on first use (compacted, internal).
asio::awaitable<error_code> ensure_txn_topic(broker& b) {
  const auto& cfg = b.config();
  internal_topic_spec s;
  s.name = std::string(coordinator::kTransactionStateTopic);
  s.partitions = cfg.get_int("transaction.state.log.num.partitions");
  s.replication_factor =
      internal_replication_factor(cfg, cfg.get_int("transaction.state.log.replication.factor"));
  const int32_t min_isr =
      std::min<int32_t>(cfg.get_int("transaction.state.log.min.isr"), s.replication_factor);
  s.configs = {{"cleanup.policy", "compact"},
               {"min.insync.replicas", std::to_string(std::max(min_isr, 1))},
               {"segment.bytes", std::to_string(cfg.get_int("transaction.state.log.segment.bytes"))}};
  auto op = ensure_internal_topic(b, std::move(s));
  co_return co_await std::move(op);
}

// KIP-588: clients older than these versions do not know PRODUCER_FENCED.
error_code fenced_for_version(error_code e, int16_t version, int16_t first_with_fenced) {
  if (e == error_code::producer_fenced && version < first_with_fenced) {
    return error_code::invalid_producer_epoch;
  }
  return e;
}

using add_partitions_topics =
    std::vector<add_partitions_to_txn_request::add_partitions_to_txn_topic>;
using add_partitions_results =
    std::vector<add_partitions_to_txn_response::add_partitions_to_txn_topic_result>;

std::vector<coordinator::txn_partition> txn_partitions_of(const add_partitions_topics& topics) {
  std::vector<coordinator::txn_partition> out;
  for (const auto& t : topics) {
    for (int32_t p : t.partitions) out.push_back({t.name, p});
  }
  return out;
}

add_partitions_results partition_results(const add_partitions_topics& topics,
                                         const std::vector<error_code>& errors) {
  add_partitions_results out;
  size_t i = 0;
  for (const auto& t : topics) {
    auto& tr = out.emplace_back();
    tr.name = t.name;
    for (int32_t p : t.partitions) {
      auto& pr = tr.results_by_partition.emplace_back();
      pr.partition_index = p;
      pr.partition_error_code = to_wire(i < errors.size() ? errors[i] : errors.back());
      ++i;
    }
  }
  return out;
}

// One transaction of an AddPartitionsToTxn request.
struct add_partitions_call {
  std::string transactional_id;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  bool verify_only = false;
  std::vector<coordinator::txn_partition> partitions;
};

asio::awaitable<std::vector<error_code>> add_partitions_one(broker& b, const add_partitions_call& c) {
  const size_t n = std::max<size_t>(c.partitions.size(), 1);
  const txn_route route = route_txn(b, c.transactional_id);
  if (route.error != error_code::none) co_return std::vector<error_code>(n, route.error);
  if (c.verify_only) {
    const unsigned shard = route.shard;
    auto op = b.shards().invoke_on(shard, [&b, shard, &c] {
      return b.txns(shard).verify_partitions(c.transactional_id, c.producer_id, c.producer_epoch,
                                             c.partitions);
    });
    co_return co_await std::move(op);
  }
  auto start = [&c](txn_coordinator& tc, std::function<void(error_code)> done) {
    tc.add_partitions(c.transactional_id, c.producer_id, c.producer_epoch, c.partitions,
                      std::move(done));
  };
  auto wait = wait_on_txn<error_code>(b, route.shard, start);
  const error_code e = co_await std::move(wait);
  co_return std::vector<error_code>(n, e);
}

// AddPartitionsToTxn's answer (at `version`) for one transaction: one result per requested
// partition, in the request's order.
asio::awaitable<add_partitions_results> answer_add_partitions(broker& b, int16_t version,
                                                              add_partitions_call c,
                                                              const add_partitions_topics& topics) {
  c.partitions = txn_partitions_of(topics);
  auto op = add_partitions_one(b, c);
  std::vector<error_code> errors = co_await std::move(op);
  for (auto& e : errors) {
    e = fenced_for_version(e, version, 2);
    if (e == error_code::transaction_abortable && version <= 4) e = error_code::invalid_txn_state;
  }
  co_return partition_results(topics, errors);
}

// How long a leader waits for its followers to replicate a marker before answering
// REQUEST_TIMED_OUT (the coordinator retries the markers).
constexpr int64_t kMarkerReplicationTimeoutMs = 30000;

struct marker_wait {
  explicit marker_wait(asio::any_io_executor ex) : timer(ex) {}
  bool notified = false;
  asio::steady_timer timer;
};

// On the partition's loop: appends the marker and, for __consumer_offsets, completes the
// transaction's offsets in the group coordinator of that shard.
replication::marker_outcome write_marker(broker& b, const replication::topic_partition& tp,
                                         int64_t producer_id, int16_t producer_epoch,
                                         bool commit, int32_t coordinator_epoch) {
  const unsigned shard = b.shard_of(tp);
  replication::partition* p = b.replicas(shard).get(tp);
  if (!p) {
    replication::marker_outcome o;
    o.error = error_code::not_leader_or_follower;
    return o;
  }
  auto out = p->append_txn_marker(producer_id, producer_epoch, commit, coordinator_epoch, now_ms());
  if (out.error == error_code::none && tp.topic == coordinator::kOffsetsTopic) {
    b.groups(shard).complete_txn(tp.partition, producer_id, commit);
  }
  return out;
}

// On the partition's loop: NONE once the HW passed the marker, or the error that ends the
// wait; nullopt (and a wake-up registered) while it has not.
std::optional<error_code> replicated_or_wait(replication::partition* p,
                                             const replication::marker_outcome& m,
                                             std::weak_ptr<marker_wait> weak,
                                             asio::any_io_executor home) {
  if (!p) return error_code::not_leader_or_follower;
  bool done = false;
  const error_code e = p->acks_all_status(m.offset + 1, m.leader_epoch, &done);
  if (done) return e;
  p->add_waiter(weak, [weak, home] {
    asio::post(home, [weak] {
      if (auto w = weak.lock()) {
        w->notified = true;
        w->timer.cancel();
      }
    });
  });
  return std::nullopt;
}

// Waits until every ISR member has the marker (Kafka appends markers with acks=all).
asio::awaitable<error_code> wait_replicated(broker& b, const replication::topic_partition& tp,
                                            const replication::marker_outcome& m) {
  const auto home = co_await asio::this_coro::executor;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kMarkerReplicationTimeoutMs);
  for (;;) {
    auto wait = std::make_shared<marker_wait>(home);
    wait->timer.expires_at(deadline);
    std::weak_ptr<marker_wait> weak = wait;
    auto op = on_partition(b, tp, [&m, weak, home](replication::partition* p) {
      return replicated_or_wait(p, m, weak, home);
    });
    const std::optional<error_code> result = co_await std::move(op);
    if (result) co_return *result;
    if (std::chrono::steady_clock::now() >= deadline) co_return error_code::request_timed_out;
    if (wait->notified) continue;
    asio::error_code ec;
    co_await wait->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

// TxnOffsetCommit's entries, with UNKNOWN_TOPIC_OR_PARTITION for partitions that do not
// exist (they are not written).
std::vector<coordinator::commit_entry> txn_commit_entries(const cluster::metadata_snapshot& md,
                                                          const txn_offset_commit_request& req) {
  std::vector<coordinator::commit_entry> out;
  for (const auto& t : req.topics) {
    auto tmeta = md.find(t.name);
    for (const auto& p : t.partitions) {
      coordinator::commit_entry e;
      e.tp = {t.name, p.partition_index};
      e.value.offset = p.committed_offset;
      e.value.leader_epoch = p.committed_leader_epoch;
      e.value.metadata = p.committed_metadata.value_or("");
      if (!has_partition(tmeta, p.partition_index)) {
        e.error = error_code::unknown_topic_or_partition;
      }
      out.push_back(std::move(e));
    }
  }
  return out;
}

error_code commit_txn_on_shard(coordinator::group_coordinator& c, int32_t p,
                               const coordinator::txn_commit_params& params,
                               std::vector<coordinator::commit_entry>& entries) {
  return c.commit_txn_offsets(p, params, entries);
}

}  // namespace

asio::awaitable<void> txn_offset_commit(request_context& ctx, txn_offset_commit_request& req,
                                        txn_offset_commit_response& resp) {
  auto md = ctx.b.metadata();
  std::vector<coordinator::commit_entry> entries = txn_commit_entries(*md, req);
  error_code route_error = error_code::none;
  auto offsets = md->find(std::string(coordinator::kOffsetsTopic));
  int32_t p = 0;
  if (!offsets || offsets->partitions.empty()) {
    route_error = error_code::coordinator_not_available;
  } else {
    p = coordinator::offsets_partition_for(req.group_id,
                                           static_cast<int32_t>(offsets->partitions.size()));
  }
  if (route_error == error_code::none) {
    const std::vector<std::pair<std::string, int32_t>> offsets_partition{
        {std::string(coordinator::kOffsetsTopic), p}};
    auto verify = verify_txn_partitions(ctx, req.transactional_id, req.producer_id,
                                        req.producer_epoch, offsets_partition);
    const std::vector<error_code> verified = co_await std::move(verify);
    // KIP-890 part 1 for TxnOffsetCommit (as KAFKA-15449): the group's __consumer_offsets
    // partition must be in the ongoing transaction (AddOffsetsToTxn put it there), or a
    // delayed TxnOffsetCommit could write into a later transaction. Coordinator trouble is
    // retriable for the client as COORDINATOR_NOT_AVAILABLE; fencing stays fencing.
    if (!verified.empty()) {
      route_error = verification_answer(verified.front(), error_code::coordinator_not_available,
                                        error_code::invalid_txn_state);
    }
  }
  if (route_error != error_code::none) {
    for (auto& e : entries) {
      if (e.error == error_code::none) e.error = route_error;
    }
  } else {
    coordinator::txn_commit_params params;
    params.group_id = req.group_id;
    params.producer_id = req.producer_id;
    params.producer_epoch = req.producer_epoch;
    params.generation_id = req.generation_id;
    params.member_id = req.member_id;
    params.group_instance_id = req.group_instance_id;
    broker& b = ctx.b;
    const unsigned shard = b.shard_of({std::string(coordinator::kOffsetsTopic), p});
    auto op = b.shards().invoke_on(shard, [&b, shard, p, &params, &entries] {
      return commit_txn_on_shard(b.groups(shard), p, params, entries);
    });
    co_await std::move(op);
  }
  // Older clients do not know PRODUCER_FENCED (KIP-588: v3+ only).
  size_t i = 0;
  for (const auto& t : req.topics) {
    auto& tr = resp.topics.emplace_back();
    tr.name = t.name;
    for (const auto& part : t.partitions) {
      auto& pr = tr.partitions.emplace_back();
      pr.partition_index = part.partition_index;
      pr.error_code = to_wire(fenced_for_version(entries[i++].error, ctx.version, 3));
    }
  }
}

// --- handlers

asio::awaitable<void> init_producer_id(request_context& ctx, init_producer_id_request& req,
                                       init_producer_id_response& resp) {
  resp.producer_id = -1;
  resp.producer_epoch = -1;
  if (!req.transactional_id) {
    // Idempotent producer: a fresh producer id with epoch 0, as Kafka does — also when the
    // client asks to bump an existing id (KIP-360), since a new id fences nothing here.
    auto op = ctx.b.shards().invoke_on(
        0, [&ctx] { return ctx.b.allocate_producer_id_on_controller_loop(); });
    resp.producer_id = co_await std::move(op);
    resp.producer_epoch = 0;
    co_return;
  }
  if (req.transactional_id->empty()) {
    resp.error_code = to_wire(error_code::invalid_request);
    co_return;
  }
  broker& b = ctx.b;
  const error_code created = co_await ensure_txn_topic(b);
  const txn_route route = route_txn(b, *req.transactional_id);
  error_code e = created != error_code::none ? created : route.error;
  if (e != error_code::none) {
    resp.error_code = to_wire(e);
    co_return;
  }
  std::optional<coordinator::producer_id_and_epoch> expected;
  if (req.producer_id >= 0 || req.producer_epoch >= 0) {
    expected = coordinator::producer_id_and_epoch{req.producer_id, req.producer_epoch};
  }
  const std::optional<std::string> id = req.transactional_id;
  const int32_t timeout = req.transaction_timeout_ms;
  auto start = [&id, timeout, &expected](txn_coordinator& tc,
                                         std::function<void(coordinator::init_producer_id_result)> done) {
    tc.init_producer_id(id, timeout, expected, std::move(done));
  };
  auto wait = wait_on_txn<coordinator::init_producer_id_result>(b, route.shard, start);
  const coordinator::init_producer_id_result r = co_await std::move(wait);
  resp.error_code = to_wire(fenced_for_version(r.error, ctx.version, 4));
  if (r.error == error_code::none) {
    resp.producer_id = r.producer_id;
    resp.producer_epoch = r.producer_epoch;
  }
}

asio::awaitable<void> add_partitions_to_txn(request_context& ctx, add_partitions_to_txn_request& req,
                                            add_partitions_to_txn_response& resp) {
  broker& b = ctx.b;
  if (ctx.version <= 3) {
    add_partitions_call c{req.v3_and_below_transactional_id, req.v3_and_below_producer_id,
                          req.v3_and_below_producer_epoch, false, {}};
    auto op = answer_add_partitions(b, ctx.version, std::move(c), req.v3_and_below_topics);
    resp.results_by_topic_v3_and_below = co_await std::move(op);
    co_return;
  }
  for (const auto& t : req.transactions) {
    add_partitions_call c{t.transactional_id, t.producer_id, t.producer_epoch, t.verify_only, {}};
    auto op = answer_add_partitions(b, ctx.version, std::move(c), t.topics);
    add_partitions_results results = co_await std::move(op);
    auto& out = resp.results_by_transaction.emplace_back();
    out.transactional_id = t.transactional_id;
    out.topic_results = std::move(results);
  }
}

asio::awaitable<void> add_offsets_to_txn(request_context& ctx, add_offsets_to_txn_request& req,
                                         add_offsets_to_txn_response& resp) {
  auto start = [&req](txn_coordinator& tc, std::function<void(error_code)> done) {
    tc.add_offsets(req.transactional_id, req.producer_id, req.producer_epoch, req.group_id,
                   std::move(done));
  };
  auto op = call_coordinator(ctx.b, req.transactional_id, start);
  const error_code e = co_await std::move(op);
  resp.error_code = to_wire(fenced_for_version(e, ctx.version, 2));
}

asio::awaitable<void> end_txn(request_context& ctx, end_txn_request& req, end_txn_response& resp) {
  auto start = [&req](txn_coordinator& tc, std::function<void(error_code)> done) {
    tc.end_txn(req.transactional_id, req.producer_id, req.producer_epoch, req.committed,
               std::move(done));
  };
  auto op = call_coordinator(ctx.b, req.transactional_id, start);
  const error_code e = co_await std::move(op);
  resp.error_code = to_wire(fenced_for_version(e, ctx.version, 2));
}

namespace {
void fill_listed(const coordinator::txn_list& l, list_transactions_response& resp) {
  if (l.error != error_code::none) resp.error_code = to_wire(l.error);
  for (const auto& u : l.unknown_state_filters) {
    if (std::find(resp.unknown_state_filters.begin(), resp.unknown_state_filters.end(), u) ==
        resp.unknown_state_filters.end()) {
      resp.unknown_state_filters.push_back(u);
    }
  }
  for (const auto& t : l.transactions) {
    auto& out = resp.transaction_states.emplace_back();
    out.transactional_id = t.transactional_id;
    out.producer_id = t.producer_id;
    out.transaction_state = t.state;
  }
}

void fill_described(const coordinator::txn_description& d, describe_transactions_response& resp) {
  auto& out = resp.transaction_states.emplace_back();
  out.error_code = to_wire(d.error);
  out.transactional_id = d.transactional_id;
  if (d.error != error_code::none) return;
  out.transaction_state = d.state;
  out.transaction_timeout_ms = d.timeout_ms;
  out.transaction_start_time_ms = d.start_timestamp_ms;
  out.producer_id = d.producer_id;
  out.producer_epoch = d.producer_epoch;
  for (const auto& tp : d.partitions) {
    if (out.topics.empty() || out.topics.back().topic != tp.topic) {
      out.topics.emplace_back().topic = tp.topic;
    }
    out.topics.back().partitions.push_back(tp.partition);
  }
}

// DescribeProducers for one partition, on its shard.
describe_producers_response::partition_response describe_partition_producers(
    replication::partition* p, int32_t index) {
  describe_producers_response::partition_response out;
  out.partition_index = index;
  if (!p || !p->is_leader()) {
    out.error_code = to_wire(error_code::not_leader_or_follower);
    return out;
  }
  for (const auto& [pid, e] : p->producers().producers()) {
    auto& ps = out.active_producers.emplace_back();
    ps.producer_id = pid;
    ps.producer_epoch = e.epoch;
    ps.last_sequence = e.batches.empty() ? -1 : e.batches.back().last_seq;
    ps.last_timestamp = e.last_timestamp;
    ps.coordinator_epoch = e.coordinator_epoch;
    ps.current_txn_start_offset = e.current_txn_first_offset;
  }
  return out;
}
}  // namespace

asio::awaitable<void> list_transactions(request_context& ctx, list_transactions_request& req,
                                        list_transactions_response& resp) {
  broker& b = ctx.b;
  const int64_t duration = ctx.version >= 1 ? req.duration_filter : -1;
  for (unsigned s = 0; s < b.shards().count(); ++s) {
    auto op = b.shards().invoke_on(s, [&b, s, &req, duration] {
      return b.txns(s).list(req.state_filters, req.producer_id_filters, duration);
    });
    coordinator::txn_list l = co_await std::move(op);
    fill_listed(l, resp);
  }
}

asio::awaitable<void> describe_transactions(request_context& ctx, describe_transactions_request& req,
                                            describe_transactions_response& resp) {
  broker& b = ctx.b;
  for (const auto& id : req.transactional_ids) {
    coordinator::txn_description d;
    d.transactional_id = id;
    const txn_route route = id.empty() ? txn_route{error_code::invalid_request} : route_txn(b, id);
    if (route.error != error_code::none) {
      d.error = route.error;
    } else {
      const unsigned shard = route.shard;
      auto op = b.shards().invoke_on(shard, [&b, shard, &id] { return b.txns(shard).describe(id); });
      d = co_await std::move(op);
    }
    fill_described(d, resp);
  }
}

asio::awaitable<void> describe_producers(request_context& ctx, describe_producers_request& req,
                                         describe_producers_response& resp) {
  auto md = ctx.b.metadata();
  for (const auto& t : req.topics) {
    auto& tr = resp.topics.emplace_back();
    tr.name = t.name;
    auto tmeta = md->find(t.name);
    for (int32_t index : t.partition_indexes) {
      if (!has_partition(tmeta, index)) {
        auto& pr = tr.partitions.emplace_back();
        pr.partition_index = index;
        pr.error_code = to_wire(error_code::unknown_topic_or_partition);
        continue;
      }
      const replication::topic_partition tp{t.name, index};
      auto op = on_partition(ctx.b, tp, [index](replication::partition* p) {
        return describe_partition_producers(p, index);
      });
      auto pr = co_await std::move(op);
      tr.partitions.push_back(std::move(pr));
    }
  }
}

asio::awaitable<error_code> find_txn_coordinator(request_context& ctx, const std::string& key,
                                                 int32_t* node_id, std::string* host,
                                                 int32_t* port) {
  broker& b = ctx.b;
  const error_code created = co_await ensure_txn_topic(b);
  if (created != error_code::none) co_return created;
  auto md = b.metadata();
  auto t = md->find(std::string(coordinator::kTransactionStateTopic));
  if (!t || t->partitions.empty()) co_return error_code::coordinator_not_available;
  const int32_t p =
      coordinator::txn_partition_for(key, static_cast<int32_t>(t->partitions.size()));
  const int32_t leader = t->partitions[p].leader;
  for (const auto& be : md->brokers) {
    if (be.id == leader) {
      *node_id = be.id;
      *host = be.host;
      *port = be.port;
      co_return error_code::none;
    }
  }
  co_return error_code::coordinator_not_available;
}

asio::awaitable<std::vector<error_code>> verify_txn_partitions(
    request_context& ctx, const std::string& transactional_id, int64_t producer_id,
    int16_t producer_epoch, const std::vector<std::pair<std::string, int32_t>>& partitions) {
  broker& b = ctx.b;
  add_partitions_call c;
  c.transactional_id = transactional_id;
  c.producer_id = producer_id;
  c.producer_epoch = producer_epoch;
  c.verify_only = true;
  for (const auto& [topic, p] : partitions) c.partitions.push_back({topic, p});
  const txn_route route = route_txn(b, transactional_id);
  if (route.error != error_code::not_coordinator) {
    // Served here (or no coordinator at all: that error for every partition).
    auto op = add_partitions_one(b, c);
    co_return co_await std::move(op);
  }
  const int32_t node = coordinator_node(b, route.partition);
  if (node < 0) co_return std::vector<error_code>(partitions.size(), error_code::not_coordinator);
  const unsigned shard = static_cast<unsigned>(std::max(shard_set::current(), 0));
  auto init = [&b, shard, node, &c](auto handler) {
    auto h = std::make_shared<decltype(handler)>(std::move(handler));
    b.txn_services(shard).verify_remote(node, c.transactional_id, c.producer_id,
                                        c.producer_epoch, c.partitions,
                                        [h](std::vector<error_code> r) { (*h)(std::move(r)); });
  };
  auto wait = asio::async_initiate<const asio::use_awaitable_t<>&, void(std::vector<error_code>)>(
      init, asio::use_awaitable);
  co_return co_await std::move(wait);
}

error_code verification_answer(error_code e, error_code busy, error_code not_in_txn) {
  switch (e) {
    case error_code::not_coordinator:
    case error_code::coordinator_not_available:
    case error_code::coordinator_load_in_progress:
    case error_code::concurrent_transactions:
    case error_code::network_exception:
      return busy;
    case error_code::transaction_abortable:
      return not_in_txn;
    default:
      return e;
  }
}

asio::awaitable<void> write_txn_markers(request_context& ctx, write_txn_markers_request& req,
                                        write_txn_markers_response& resp) {
  auto md = ctx.b.metadata();
  for (const auto& marker : req.markers) {
    auto& mr = resp.markers.emplace_back();
    mr.producer_id = marker.producer_id;
    for (const auto& topic : marker.topics) {
      auto& tr = mr.topics.emplace_back();
      tr.name = topic.name;
      auto tmeta = md->find(topic.name);
      for (int32_t index : topic.partition_indexes) {
        auto& pr = tr.partitions.emplace_back();
        pr.partition_index = index;
        if (!has_partition(tmeta, index)) {
          pr.error_code = to_wire(error_code::unknown_topic_or_partition);
          continue;
        }
        const replication::topic_partition tp{topic.name, index};
        const int64_t pid = marker.producer_id;
        const int16_t epoch = marker.producer_epoch;
        const bool commit = marker.transaction_result;
        const int32_t coordinator_epoch = marker.coordinator_epoch;
        broker& b = ctx.b;
        auto op = b.shards().invoke_on(b.shard_of(tp), [&b, &tp, pid, epoch, commit,
                                                       coordinator_epoch] {
          return write_marker(b, tp, pid, epoch, commit, coordinator_epoch);
        });
        const replication::marker_outcome out = co_await std::move(op);
        error_code e = out.error;
        if (e == error_code::none) {
          auto wait = wait_replicated(b, tp, out);
          e = co_await std::move(wait);
        }
        pr.error_code = to_wire(e);
      }
    }
  }
}

}  // namespace varve::server::handlers
