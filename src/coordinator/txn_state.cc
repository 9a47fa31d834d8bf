#include "coordinator/txn_state.h"

#include <algorithm>
#include <cassert>

namespace varve::coordinator {

using protocol::error_code;

namespace {

constexpr struct {
  txn_state state;
  const char* name;
} kStateNames[] = {
    {txn_state::empty, "Empty"},
    {txn_state::ongoing, "Ongoing"},
    {txn_state::prepare_commit, "PrepareCommit"},
    {txn_state::prepare_abort, "PrepareAbort"},
    {txn_state::complete_commit, "CompleteCommit"},
    {txn_state::complete_abort, "CompleteAbort"},
    {txn_state::dead, "Dead"},
    {txn_state::prepare_epoch_fence, "PrepareEpochFence"},
};

bool is_complete_or_empty(txn_state s) {
  return s == txn_state::empty || s == txn_state::complete_commit || s == txn_state::complete_abort;
}

txn_plan fail(error_code e) { return txn_plan{e, std::nullopt, false}; }

}  // namespace

const char* txn_state_name(txn_state s) {
  for (const auto& e : kStateNames) {
    if (e.state == s) return e.name;
  }
  return "Unknown";
}

std::optional<txn_state> txn_state_from_name(std::string_view name) {
  for (const auto& e : kStateNames) {
    if (name == e.name) return e.state;
  }
  return std::nullopt;
}

std::optional<txn_state> txn_state_from_wire(int8_t v) {
  if (v < 0 || v > static_cast<int8_t>(txn_state::prepare_epoch_fence)) return std::nullopt;
  return static_cast<txn_state>(v);
}

bool is_valid_transition(txn_state from, txn_state to) {
  switch (to) {
    case txn_state::empty:
    case txn_state::dead:
      return is_complete_or_empty(from);
    case txn_state::ongoing:
      return from == txn_state::ongoing || is_complete_or_empty(from);
    case txn_state::prepare_commit:
    case txn_state::prepare_epoch_fence:
      return from == txn_state::ongoing;
    case txn_state::prepare_abort:
      return from == txn_state::ongoing || from == txn_state::prepare_epoch_fence;
    case txn_state::complete_commit:
      return from == txn_state::prepare_commit;
    case txn_state::complete_abort:
      return from == txn_state::prepare_abort;
  }
  return false;
}

txn_metadata new_txn_metadata(std::string transactional_id, int64_t producer_id, int32_t timeout_ms,
                              int64_t now_ms) {
  txn_metadata m;
  m.transactional_id = std::move(transactional_id);
  m.producer_id = producer_id;
  m.producer_epoch = kNoProducerEpoch;
  m.timeout_ms = timeout_ms;
  m.state = txn_state::empty;
  m.last_update_timestamp_ms = now_ms;
  return m;
}

txn_plan plan_init_producer_id(const txn_metadata& cur, int32_t timeout_ms,
                               const std::optional<producer_id_and_epoch>& expected, int64_t now_ms,
                               const producer_id_allocator& allocate) {
  // Checked before the state: a stale instance naming an old producer must not abort the
  // current producer's transaction.
  if (expected) {
    // A named producer must be the current one, the metadata must be fresh (an idempotent
    // producer turning transactional), or it is a retry after a rotation whose answer was
    // lost (previous producer id at an exhausted epoch).
    const bool known =
        cur.producer_epoch == kNoProducerEpoch || expected->producer_id == cur.producer_id ||
        (expected->producer_id == cur.last_producer_id && is_epoch_exhausted(expected->epoch));
    if (!known) return fail(error_code::producer_fenced);
  }

  switch (cur.state) {
    case txn_state::prepare_commit:
    case txn_state::prepare_abort:
    case txn_state::prepare_epoch_fence:
    case txn_state::dead:
      return fail(error_code::concurrent_transactions);
    case txn_state::ongoing: {
      // The previous producer left a transaction open: abort it at a bumped epoch (which
      // fences that producer) and let the new one retry once the abort is complete.
      txn_plan plan;
      plan.next = plan_fence_and_abort(cur, now_ms);
      plan.fences_ongoing = true;
      return plan;
    }
    case txn_state::empty:
    case txn_state::complete_commit:
    case txn_state::complete_abort:
      break;
  }

  txn_metadata next = cur;
  next.timeout_ms = timeout_ms;
  next.state = txn_state::empty;
  next.partitions.clear();
  next.start_timestamp_ms = -1;
  next.last_update_timestamp_ms = now_ms;

  if (is_epoch_exhausted(cur.producer_epoch) &&
      (!expected || expected->epoch == cur.producer_epoch)) {
    const std::optional<int64_t> pid = allocate();
    if (!pid) return fail(error_code::coordinator_load_in_progress);
    next.last_producer_id = cur.producer_id;
    next.producer_id = *pid;
    next.producer_epoch = 0;
    next.last_producer_epoch = expected ? cur.producer_epoch : kNoProducerEpoch;
    return txn_plan{error_code::none, std::move(next), false};
  }

  const auto bumped = static_cast<int16_t>(cur.producer_epoch + 1);
  if (!expected) {
    // A producer starting (or restarting) without naming itself: always a new epoch, and
    // nobody may claim the old one any more.
    next.producer_epoch = bumped;
    next.last_producer_epoch = kNoProducerEpoch;
  } else if (cur.producer_epoch == kNoProducerEpoch || expected->epoch == cur.producer_epoch) {
    // The current producer recovering from an abortable error (KIP-360).
    next.producer_epoch = bumped;
    next.last_producer_epoch = cur.producer_epoch;
  } else if (expected->epoch == cur.last_producer_epoch) {
    // A retry of a bump (or of a rotation, naming the old producer id) whose answer was
    // lost: the same producer id and epoch again.
  } else {
    return fail(error_code::producer_fenced);
  }
  return txn_plan{error_code::none, std::move(next), false};
}

namespace {
// The checks shared by AddPartitions, verification and EndTxn: the request's producer must
// be the transaction's current one.
error_code check_producer(const txn_metadata& cur, int64_t producer_id, int16_t epoch) {
  if (producer_id != cur.producer_id) return error_code::invalid_producer_id_mapping;
  if (epoch != cur.producer_epoch) return error_code::producer_fenced;
  return error_code::none;
}
}  // namespace

txn_plan plan_add_partitions(const txn_metadata& cur, int64_t producer_id, int16_t epoch,
                             const std::vector<txn_partition>& partitions, int64_t now_ms) {
  if (auto e = check_producer(cur, producer_id, epoch); e != error_code::none) return fail(e);
  switch (cur.state) {
    case txn_state::prepare_commit:
    case txn_state::prepare_abort:
    case txn_state::prepare_epoch_fence:
    case txn_state::dead:
      return fail(error_code::concurrent_transactions);
    case txn_state::ongoing:
      if (std::all_of(partitions.begin(), partitions.end(),
                      [&](const txn_partition& tp) { return cur.partitions.count(tp) > 0; })) {
        return txn_plan{};
      }
      break;
    case txn_state::empty:
    case txn_state::complete_commit:
    case txn_state::complete_abort:
      break;
  }
  txn_metadata next = cur;
  if (cur.state != txn_state::ongoing) {
    next.partitions.clear();
    next.start_timestamp_ms = now_ms;
  }
  next.state = txn_state::ongoing;
  next.partitions.insert(partitions.begin(), partitions.end());
  next.last_update_timestamp_ms = now_ms;
  return txn_plan{error_code::none, std::move(next), false};
}

std::vector<error_code> verify_partitions(const txn_metadata& cur, int64_t producer_id,
                                          int16_t epoch,
                                          const std::vector<txn_partition>& partitions) {
  error_code all = check_producer(cur, producer_id, epoch);
  if (all == error_code::none &&
      (cur.state == txn_state::prepare_commit || cur.state == txn_state::prepare_abort ||
       cur.state == txn_state::prepare_epoch_fence || cur.state == txn_state::dead)) {
    all = error_code::concurrent_transactions;
  }
  std::vector<error_code> out(partitions.size(), all);
  if (all != error_code::none) return out;
  for (size_t i = 0; i < partitions.size(); ++i) {
    const bool in_txn = cur.state == txn_state::ongoing && cur.partitions.count(partitions[i]);
    out[i] = in_txn ? error_code::none : error_code::transaction_abortable;
  }
  return out;
}

txn_plan plan_end_txn(const txn_metadata& cur, int64_t producer_id, int16_t epoch, bool commit,
                      bool from_client, int64_t now_ms) {
  if (producer_id != cur.producer_id) return fail(error_code::invalid_producer_id_mapping);
  // Clients must name the current epoch; the coordinator's own abort carries a bumped one.
  if ((from_client && epoch != cur.producer_epoch) || epoch < cur.producer_epoch) {
    return fail(error_code::producer_fenced);
  }
  switch (cur.state) {
    case txn_state::ongoing: {
      txn_metadata next = cur;
      next.state = commit ? txn_state::prepare_commit : txn_state::prepare_abort;
      next.producer_epoch = epoch;
      if (epoch != cur.producer_epoch) next.last_producer_epoch = kNoProducerEpoch;
      next.last_update_timestamp_ms = now_ms;
      return txn_plan{error_code::none, std::move(next), false};
    }
    case txn_state::complete_commit:
      return commit ? txn_plan{} : fail(error_code::invalid_txn_state);
    case txn_state::complete_abort:
      return commit ? fail(error_code::invalid_txn_state) : txn_plan{};
    case txn_state::prepare_commit:
      return fail(commit ? error_code::concurrent_transactions : error_code::invalid_txn_state);
    case txn_state::prepare_abort:
      return fail(commit ? error_code::invalid_txn_state : error_code::concurrent_transactions);
    case txn_state::empty:
      return fail(error_code::invalid_txn_state);
    case txn_state::prepare_epoch_fence:
    case txn_state::dead:
      return fail(error_code::concurrent_transactions);
  }
  return fail(error_code::invalid_txn_state);
}

txn_metadata plan_fence_and_abort(const txn_metadata& cur, int64_t now_ms) {
  assert(cur.state == txn_state::ongoing);
  assert(is_valid_transition(cur.state, txn_state::prepare_epoch_fence));
  txn_metadata next = cur;
  if (cur.producer_epoch < kMaxProducerEpoch) {
    next.producer_epoch = static_cast<int16_t>(cur.producer_epoch + 1);
  }
  next.last_producer_epoch = kNoProducerEpoch;
  next.state = txn_state::prepare_abort;
  next.last_update_timestamp_ms = now_ms;
  return next;
}

txn_metadata plan_complete(const txn_metadata& cur, int64_t now_ms) {
  assert(cur.state == txn_state::prepare_commit || cur.state == txn_state::prepare_abort);
  txn_metadata next = cur;
  next.state = cur.state == txn_state::prepare_commit ? txn_state::complete_commit
                                                      : txn_state::complete_abort;
  next.partitions.clear();
  next.last_update_timestamp_ms = now_ms;
  return next;
}

bool is_timed_out(const txn_metadata& m, int64_t now_ms) {
  return m.state == txn_state::ongoing && m.start_timestamp_ms >= 0 &&
         m.start_timestamp_ms + m.timeout_ms < now_ms;
}

bool is_expired(const txn_metadata& m, int64_t now_ms, int64_t expiration_ms) {
  return is_complete_or_empty(m.state) && m.last_update_timestamp_ms + expiration_ms <= now_ms;
}

}  // namespace varve::coordinator
