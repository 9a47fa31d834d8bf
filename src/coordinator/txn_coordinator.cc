#include "coordinator/txn_coordinator.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "common/log.h"
#include "coordinator/offsets_format.h"
#include "coordinator/txn_log_format.h"

namespace varve::coordinator {

using protocol::error_code;

namespace {

constexpr std::string_view kLog = "txn";

// Kafka's translation of a failed __transaction_state append into what the client sees.
error_code map_append_error(error_code e) {
  switch (e) {
    case error_code::none:
    case error_code::not_coordinator:
    case error_code::coordinator_not_available:
    case error_code::coordinator_load_in_progress:
      return e;
    case error_code::unknown_topic_or_partition:
    case error_code::not_enough_replicas:
    case error_code::not_enough_replicas_after_append:
    case error_code::request_timed_out:
      return error_code::coordinator_not_available;
    case error_code::not_leader_or_follower:
    case error_code::kafka_storage_error:
      return error_code::not_coordinator;
    default:
      return error_code::unknown_server_error;
  }
}

bool is_prepare(txn_state s) {
  return s == txn_state::prepare_commit || s == txn_state::prepare_abort;
}

}  // namespace

struct txn_coordinator::entry {
  txn_metadata meta;
  int32_t partition = 0;
  // Target of the append in flight, if any.
  std::optional<txn_state> pending;
  bool in_log = false;             // some record of this id was appended or replayed
  bool markers_in_flight = false;  // marker_writer has not called back yet
  bool markers_written = false;    // markers done; CompleteX still to be appended
  int64_t retry_at = -1;           // when tick() retries markers/completion; -1 = not due
};

txn_coordinator::txn_coordinator(txn_coordinator_options options, append_fn append,
                                 marker_writer markers, producer_id_allocator allocate,
                                 clock now_ms)
    : options_(options),
      append_(std::move(append)),
      markers_(std::move(markers)),
      allocate_(std::move(allocate)),
      now_ms_(std::move(now_ms)) {}

txn_coordinator::~txn_coordinator() {
  *alive_ = false;
  stop();
}

void txn_coordinator::start(asio::io_context& loop) {
  stopped_ = false;
  timer_ = std::make_unique<asio::steady_timer>(loop);
  schedule_tick();
}

void txn_coordinator::stop() {
  stopped_ = true;
  if (timer_) timer_->cancel();
}

void txn_coordinator::schedule_tick() {
  if (stopped_ || !timer_) return;
  timer_->expires_after(std::chrono::milliseconds(options_.tick_interval_ms));
  std::weak_ptr<bool> alive = alive_;
  timer_->async_wait([this, alive](const asio::error_code& ec) {
    auto token = alive.lock();
    if (ec || !token || !*token || stopped_) return;
    tick();
    schedule_tick();
  });
}

int32_t txn_coordinator::partition_for(std::string_view transactional_id) const {
  return txn_partition_for(transactional_id, options_.transaction_state_num_partitions);
}

// --- loading ---

void txn_coordinator::forget_partition(int32_t p) {
  for (auto it = txns_.begin(); it != txns_.end();) {
    if (it->second->partition == p) {
      it = txns_.erase(it);
    } else {
      ++it;
    }
  }
}

void txn_coordinator::begin_loading(int32_t p, int32_t coordinator_epoch) {
  forget_partition(p);
  partitions_[p] = partition_state{true, coordinator_epoch, next_generation_++};
  VLOG_INFO(kLog) << "loading __transaction_state-" << p << " at coordinator epoch "
                  << coordinator_epoch;
}

bool txn_coordinator::replay(int32_t p, std::span<const uint8_t> key,
                             std::optional<std::span<const uint8_t>> value) {
  auto pit = partitions_.find(p);
  if (pit == partitions_.end() || !pit->second.loading) return false;
  std::optional<std::string> id = decode_txn_key(key);
  if (!id) {
    VLOG_WARN(kLog) << "skipping malformed key in __transaction_state-" << p;
    return false;
  }
  if (!value) {
    txns_.erase(*id);
    return true;
  }
  std::optional<txn_log_value> v = decode_txn_value(*value);
  if (!v) {
    VLOG_WARN(kLog) << "skipping malformed value of transactional id " << *id
                    << " in __transaction_state-" << p;
    return false;
  }
  auto e = std::make_unique<entry>();
  e->meta = from_log_value(*id, *v);
  e->partition = p;
  e->in_log = true;
  txns_[*id] = std::move(e);
  return true;
}

void txn_coordinator::complete_loading(int32_t p) {
  auto pit = partitions_.find(p);
  if (pit == partitions_.end() || !pit->second.loading) return;
  pit->second.loading = false;
  std::vector<std::string> unfinished;
  size_t count = 0;
  for (const auto& [id, e] : txns_) {
    if (e->partition != p) continue;
    ++count;
    if (is_prepare(e->meta.state)) unfinished.push_back(id);
  }
  VLOG_INFO(kLog) << "loaded __transaction_state-" << p << ": " << count << " transactional ids, "
                  << unfinished.size() << " transactions to complete";
  for (const auto& id : unfinished) write_markers(id);
}

void txn_coordinator::unload(int32_t p) {
  forget_partition(p);
  partitions_.erase(p);
  VLOG_INFO(kLog) << "unloaded __transaction_state-" << p;
}

error_code txn_coordinator::check_partition(int32_t p) const {
  auto it = partitions_.find(p);
  if (it == partitions_.end()) return error_code::not_coordinator;
  if (it->second.loading) return error_code::coordinator_load_in_progress;
  return error_code::none;
}

error_code txn_coordinator::check_id(const std::string& id) const {
  if (id.empty()) return error_code::invalid_request;
  return check_partition(partition_for(id));
}

bool txn_coordinator::still_current(int32_t p, uint64_t generation) const {
  auto it = partitions_.find(p);
  return it != partitions_.end() && !it->second.loading && it->second.generation == generation;
}

txn_coordinator::entry* txn_coordinator::find_entry(const std::string& id) const {
  auto it = txns_.find(id);
  return it == txns_.end() ? nullptr : it->second.get();
}

const txn_metadata* txn_coordinator::find(const std::string& transactional_id) const {
  entry* e = find_entry(transactional_id);
  return e ? &e->meta : nullptr;
}

bool txn_coordinator::is_busy(const std::string& transactional_id) const {
  entry* e = find_entry(transactional_id);
  return e && (e->pending || e->markers_in_flight);
}

std::optional<txn_state> txn_coordinator::pending_state(const std::string& transactional_id) const {
  entry* e = find_entry(transactional_id);
  return e ? e->pending : std::nullopt;
}

// --- appends ---

void txn_coordinator::persist(entry& e, txn_metadata next, txn_state pending, done_fn done) {
  assert(!e.pending);
  assert(!e.in_log || is_valid_transition(e.meta.state, next.state));
  const int32_t p = e.partition;
  const uint64_t generation = partitions_.at(p).generation;
  e.pending = pending;
  std::vector<txn_log_entry> records;
  records.push_back({encode_txn_key(next.transactional_id), encode_txn_value(to_log_value(next))});
  std::weak_ptr<bool> alive = alive_;
  append_(p, std::move(records),
          [this, alive, p, generation, next = std::move(next),
           done = std::move(done)](error_code err) mutable {
            auto token = alive.lock();
            if (!token || !*token) return;
            if (!still_current(p, generation)) {
              if (done) done(error_code::not_coordinator);
              return;
            }
            entry* cur = find_entry(next.transactional_id);
            assert(cur && cur->pending);
            cur->pending.reset();
            if (err != error_code::none) {
              VLOG_WARN(kLog) << "append for transactional id " << next.transactional_id
                              << " to __transaction_state-" << p
                              << " failed: " << protocol::error_name(err);
              if (!cur->in_log) txns_.erase(next.transactional_id);
              if (done) done(map_append_error(err));
              return;
            }
            cur->meta = std::move(next);
            cur->in_log = true;
            if (done) done(error_code::none);
          });
}

void txn_coordinator::write_tombstone(entry& e) {
  assert(!e.pending);
  const int32_t p = e.partition;
  const uint64_t generation = partitions_.at(p).generation;
  const std::string id = e.meta.transactional_id;
  e.pending = txn_state::dead;
  std::vector<txn_log_entry> records;
  records.push_back({encode_txn_key(id), std::nullopt});
  std::weak_ptr<bool> alive = alive_;
  append_(p, std::move(records), [this, alive, p, generation, id](error_code err) {
    auto token = alive.lock();
    if (!token || !*token || !still_current(p, generation)) return;
    entry* cur = find_entry(id);
    assert(cur && cur->pending == txn_state::dead);
    if (err != error_code::none) {
      cur->pending.reset();  // expired again at the next check
      return;
    }
    VLOG_INFO(kLog) << "transactional id " << id << " expired";
    txns_.erase(id);
  });
}

// --- requests ---

void txn_coordinator::init_producer_id(const std::optional<std::string>& transactional_id,
                                       int32_t timeout_ms,
                                       const std::optional<producer_id_and_epoch>& expected,
                                       std::function<void(init_producer_id_result)> done) {
  auto fail = [&](error_code e) {
    done(init_producer_id_result{e, kNoProducerId, kNoProducerEpoch});
  };
  if (!transactional_id) {
    // Idempotent producer: a fresh producer id, no state kept here.
    std::optional<int64_t> pid = allocate_();
    if (!pid) return fail(error_code::coordinator_load_in_progress);
    return done(init_producer_id_result{error_code::none, *pid, 0});
  }
  const std::string& id = *transactional_id;
  if (id.empty()) return fail(error_code::invalid_request);
  if (timeout_ms <= 0 || timeout_ms > options_.transaction_max_timeout_ms) {
    return fail(error_code::invalid_transaction_timeout);
  }
  if (auto e = check_id(id); e != error_code::none) return fail(e);
  const int64_t now = now_ms_();
  entry* e = find_entry(id);
  if (!e) {
    std::optional<int64_t> pid = allocate_();
    if (!pid) return fail(error_code::coordinator_load_in_progress);
    auto fresh = std::make_unique<entry>();
    fresh->meta = new_txn_metadata(id, *pid, timeout_ms, now);
    fresh->partition = partition_for(id);
    e = fresh.get();
    txns_[id] = std::move(fresh);
  }
  if (e->pending) return fail(error_code::concurrent_transactions);
  txn_plan plan = plan_init_producer_id(e->meta, timeout_ms, expected, now, allocate_);
  if (plan.error != error_code::none) {
    if (!e->in_log) txns_.erase(id);
    return fail(plan.error);
  }
  assert(plan.next);
  if (plan.fences_ongoing) {
    VLOG_INFO(kLog) << "InitProducerId for transactional id " << id
                    << " aborts its ongoing transaction";
    return fence_and_abort(*e, [done = std::move(done)](error_code err) {
      // The new producer retries once the abort completed.
      done(init_producer_id_result{
          err == error_code::none ? error_code::concurrent_transactions : err, kNoProducerId,
          kNoProducerEpoch});
    });
  }
  const int64_t pid = plan.next->producer_id;
  const int16_t epoch = plan.next->producer_epoch;
  persist(*e, std::move(*plan.next), txn_state::empty,
          [done = std::move(done), pid, epoch](error_code err) {
            if (err != error_code::none) {
              done(init_producer_id_result{err, kNoProducerId, kNoProducerEpoch});
            } else {
              done(init_producer_id_result{error_code::none, pid, epoch});
            }
          });
}

void txn_coordinator::add_partitions(const std::string& transactional_id, int64_t producer_id,
                                     int16_t epoch, const std::vector<txn_partition>& partitions,
                                     done_fn done) {
  if (auto e = check_id(transactional_id); e != error_code::none) return done(e);
  entry* e = find_entry(transactional_id);
  if (!e || !e->in_log) return done(error_code::invalid_producer_id_mapping);
  if (e->pending) return done(error_code::concurrent_transactions);
  txn_plan plan = plan_add_partitions(e->meta, producer_id, epoch, partitions, now_ms_());
  if (plan.error != error_code::none || !plan.next) return done(plan.error);
  persist(*e, std::move(*plan.next), txn_state::ongoing, std::move(done));
}

std::vector<error_code> txn_coordinator::verify_partitions(
    const std::string& transactional_id, int64_t producer_id, int16_t epoch,
    const std::vector<txn_partition>& partitions) const {
  error_code all = check_id(transactional_id);
  const entry* e = all == error_code::none ? find_entry(transactional_id) : nullptr;
  if (all == error_code::none && (!e || !e->in_log)) all = error_code::invalid_producer_id_mapping;
  if (all != error_code::none) return std::vector<error_code>(partitions.size(), all);
  auto out = coordinator::verify_partitions(e->meta, producer_id, epoch, partitions);
  // While the transaction is being ended (or fenced) no write may join it any more.
  if (e->pending && *e->pending != txn_state::ongoing) {
    for (auto& err : out) {
      if (err == error_code::none) err = error_code::concurrent_transactions;
    }
  }
  return out;
}

void txn_coordinator::add_offsets(const std::string& transactional_id, int64_t producer_id,
                                  int16_t epoch, const std::string& group_id, done_fn done) {
  const txn_partition offsets{
      std::string(kOffsetsTopic),
      offsets_partition_for(group_id, options_.offsets_topic_num_partitions)};
  add_partitions(transactional_id, producer_id, epoch, {offsets}, std::move(done));
}

void txn_coordinator::end_txn(const std::string& transactional_id, int64_t producer_id,
                              int16_t epoch, bool commit, done_fn done) {
  if (auto e = check_id(transactional_id); e != error_code::none) return done(e);
  entry* e = find_entry(transactional_id);
  if (!e || !e->in_log) return done(error_code::invalid_producer_id_mapping);
  if (e->pending) return done(error_code::concurrent_transactions);
  txn_plan plan = plan_end_txn(e->meta, producer_id, epoch, commit, true, now_ms_());
  if (plan.error != error_code::none || !plan.next) return done(plan.error);
  const txn_state target = plan.next->state;
  persist(*e, std::move(*plan.next), target,
          [this, id = transactional_id, done = std::move(done)](error_code err) {
            done(err);
            if (err == error_code::none) write_markers(id);
          });
}

// --- ending transactions ---

void txn_coordinator::fence_and_abort(entry& e, done_fn done) {
  txn_metadata next = plan_fence_and_abort(e.meta, now_ms_());
  VLOG_INFO(kLog) << "aborting the transaction of " << e.meta.transactional_id
                  << " and fencing producer " << e.meta.producer_id << " at epoch "
                  << next.producer_epoch;
  persist(e, std::move(next), txn_state::prepare_epoch_fence,
          [this, id = e.meta.transactional_id, done = std::move(done)](error_code err) {
            if (done) done(err);
            if (err == error_code::none) write_markers(id);
          });
}

void txn_coordinator::write_markers(const std::string& id) {
  entry* e = find_entry(id);
  if (!e || !is_prepare(e->meta.state) || e->pending || e->markers_in_flight) return;
  e->retry_at = -1;
  if (e->markers_written || e->meta.partitions.empty()) {
    e->markers_written = true;
    return write_complete(id);
  }
  txn_marker_request request;
  request.transactional_id = id;
  request.producer_id = e->meta.producer_id;
  request.producer_epoch = e->meta.producer_epoch;
  request.commit = e->meta.state == txn_state::prepare_commit;
  request.coordinator_epoch = partitions_.at(e->partition).coordinator_epoch;
  request.partitions.assign(e->meta.partitions.begin(), e->meta.partitions.end());
  const int32_t p = e->partition;
  const uint64_t generation = partitions_.at(p).generation;
  e->markers_in_flight = true;
  std::weak_ptr<bool> alive = alive_;
  markers_(std::move(request), [this, alive, p, generation, id](error_code err) {
    auto token = alive.lock();
    if (!token || !*token || !still_current(p, generation)) return;
    entry* cur = find_entry(id);
    assert(cur && cur->markers_in_flight);
    cur->markers_in_flight = false;
    if (err != error_code::none) {
      VLOG_WARN(kLog) << "writing markers of transactional id " << id
                      << " failed: " << protocol::error_name(err) << "; retrying";
      cur->retry_at = now_ms_() + options_.retry_backoff_ms;
      return;
    }
    cur->markers_written = true;
    write_complete(id);
  });
}

void txn_coordinator::write_complete(const std::string& id) {
  entry* e = find_entry(id);
  if (!e || !is_prepare(e->meta.state) || e->pending) return;
  assert(e->markers_written);
  txn_metadata next = plan_complete(e->meta, now_ms_());
  const txn_state target = next.state;
  const int32_t p = e->partition;
  const uint64_t generation = partitions_.at(p).generation;
  persist(*e, std::move(next), target, [this, id, p, generation, target](error_code err) {
    if (!still_current(p, generation)) return;  // unloaded meanwhile: the next leader finishes
    entry* cur = find_entry(id);
    if (!cur) return;
    if (err != error_code::none) {
      cur->retry_at = now_ms_() + options_.retry_backoff_ms;
      return;
    }
    cur->markers_written = false;
    ++(target == txn_state::complete_commit ? committed_ : aborted_);
  });
}

// --- periodic work ---

void txn_coordinator::retry_due(int64_t now) {
  std::vector<std::string> due;
  for (const auto& [id, e] : txns_) {
    if (e->retry_at >= 0 && e->retry_at <= now && !e->pending && !e->markers_in_flight &&
        check_partition(e->partition) == error_code::none) {
      due.push_back(id);
    }
  }
  for (const auto& id : due) write_markers(id);
}

void txn_coordinator::abort_timed_out(int64_t now) {
  std::vector<std::string> timed_out;
  for (const auto& [id, e] : txns_) {
    if (!e->pending && is_timed_out(e->meta, now) &&
        check_partition(e->partition) == error_code::none) {
      timed_out.push_back(id);
    }
  }
  for (const auto& id : timed_out) {
    entry* e = find_entry(id);
    if (!e || e->pending || !is_timed_out(e->meta, now)) continue;
    VLOG_INFO(kLog) << "transaction of " << id << " timed out after " << e->meta.timeout_ms
                    << " ms";
    fence_and_abort(*e, nullptr);
  }
}

void txn_coordinator::expire_ids(int64_t now) {
  std::vector<std::string> expired;
  for (const auto& [id, e] : txns_) {
    if (!e->pending && e->in_log &&
        is_expired(e->meta, now, options_.transactional_id_expiration_ms) &&
        check_partition(e->partition) == error_code::none) {
      expired.push_back(id);
    }
  }
  for (const auto& id : expired) {
    entry* e = find_entry(id);
    if (e && !e->pending) write_tombstone(*e);
  }
}

void txn_coordinator::tick() {
  const int64_t now = now_ms_();
  retry_due(now);
  if (next_abort_check_ < 0 || now >= next_abort_check_) {
    next_abort_check_ = now + options_.abort_timed_out_transaction_cleanup_interval_ms;
    abort_timed_out(now);
  }
  if (next_expiry_check_ < 0 || now >= next_expiry_check_) {
    next_expiry_check_ = now + options_.remove_expired_transactional_ids_interval_ms;
    expire_ids(now);
  }
}

// --- administration ---

txn_list txn_coordinator::list(const std::vector<std::string>& state_filters,
                               const std::vector<int64_t>& producer_id_filters,
                               int64_t duration_filter_ms) const {
  txn_list out;
  std::vector<txn_state> states;
  for (const auto& name : state_filters) {
    if (auto s = txn_state_from_name(name)) {
      states.push_back(*s);
    } else {
      out.unknown_state_filters.push_back(name);
    }
  }
  for (const auto& [p, ps] : partitions_) {
    if (ps.loading) {
      out.error = error_code::coordinator_load_in_progress;
      return out;
    }
  }
  const int64_t now = now_ms_();
  for (const auto& [id, e] : txns_) {
    const txn_metadata& m = e->meta;
    if (!e->in_log || m.state == txn_state::dead) continue;
    if (!state_filters.empty() &&
        std::find(states.begin(), states.end(), m.state) == states.end()) {
      continue;
    }
    if (!producer_id_filters.empty() &&
        std::find(producer_id_filters.begin(), producer_id_filters.end(), m.producer_id) ==
            producer_id_filters.end()) {
      continue;
    }
    if (duration_filter_ms >= 0 &&
        (m.start_timestamp_ms < 0 || now - m.start_timestamp_ms <= duration_filter_ms)) {
      continue;
    }
    out.transactions.push_back({id, m.producer_id, txn_state_name(m.state)});
  }
  return out;
}

txn_description txn_coordinator::describe(const std::string& transactional_id) const {
  txn_description d;
  d.transactional_id = transactional_id;
  d.error = check_id(transactional_id);  // INVALID_REQUEST for an empty id, as Kafka
  if (d.error != error_code::none) return d;
  const entry* e = find_entry(transactional_id);
  if (!e || !e->in_log || e->meta.state == txn_state::dead) {
    d.error = error_code::transactional_id_not_found;
    return d;
  }
  const txn_metadata& m = e->meta;
  d.state = txn_state_name(m.state);
  d.timeout_ms = m.timeout_ms;
  d.start_timestamp_ms = m.start_timestamp_ms;
  d.producer_id = m.producer_id;
  d.producer_epoch = m.producer_epoch;
  d.partitions.assign(m.partitions.begin(), m.partitions.end());
  return d;
}

}  // namespace varve::coordinator
