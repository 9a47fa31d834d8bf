#pragma once
// The transaction state machine of one transactional id (docs/transactions.md), as pure
// functions: each plan_* function looks at the current metadata and a request and answers
// either an error for the client or the metadata to persist next. Nothing here performs
// I/O; txn_coordinator appends the planned metadata to __transaction_state and applies it
// only once the append succeeded.
//
// States and Kafka's legal transitions (to ← from):
//   Empty              ← Empty, CompleteCommit, CompleteAbort       (InitProducerId)
//   Ongoing            ← Empty, Ongoing, CompleteCommit, CompleteAbort (AddPartitions/Offsets)
//   PrepareCommit      ← Ongoing                                    (EndTxn commit)
//   PrepareAbort       ← Ongoing, PrepareEpochFence                 (EndTxn abort, fencing)
//   CompleteCommit     ← PrepareCommit                              (markers written)
//   CompleteAbort      ← PrepareAbort                               (markers written)
//   Dead               ← Empty, CompleteCommit, CompleteAbort       (id expired; tombstone)
//   PrepareEpochFence  ← Ongoing         (coordinator-initiated abort: timeout or a new
//                                         InitProducerId; never written to the log — the
//                                         PrepareAbort record that follows carries the
//                                         bumped epoch)
//
// Thread-safety: pure functions and plain values; no shared state.
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error_code.h"

namespace varve::coordinator {

// Values of TransactionLogValue.transaction_status (fixed by Kafka's log format).
enum class txn_state : int8_t {
  empty = 0,
  ongoing = 1,
  prepare_commit = 2,
  prepare_abort = 3,
  complete_commit = 4,
  complete_abort = 5,
  dead = 6,
  prepare_epoch_fence = 7,
};

// Kafka's names ("Empty", "Ongoing", "PrepareCommit", ...), used by ListTransactions and
// DescribeTransactions.
const char* txn_state_name(txn_state s);
// Inverse of txn_state_name (exact, case-sensitive match as in Kafka); nullopt if unknown.
std::optional<txn_state> txn_state_from_name(std::string_view name);
// nullopt for values outside 0..7.
std::optional<txn_state> txn_state_from_wire(int8_t v);
// Kafka's transition table above.
bool is_valid_transition(txn_state from, txn_state to);

inline constexpr int64_t kNoProducerId = -1;
inline constexpr int16_t kNoProducerEpoch = -1;
inline constexpr int16_t kMaxProducerEpoch = INT16_MAX;

// An epoch at which the coordinator rotates to a new producer id instead of bumping: one
// bump must stay available for fencing a transaction with a coordinator-side abort.
inline bool is_epoch_exhausted(int16_t epoch) { return epoch >= kMaxProducerEpoch - 1; }

struct txn_partition {
  std::string topic;
  int32_t partition = 0;
  auto operator<=>(const txn_partition&) const = default;
};

struct producer_id_and_epoch {
  int64_t producer_id = kNoProducerId;
  int16_t epoch = kNoProducerEpoch;
  bool operator==(const producer_id_and_epoch&) const = default;
};

// The coordinator's view of one transactional id.
struct txn_metadata {
  std::string transactional_id;
  int64_t producer_id = kNoProducerId;
  // The producer id before the last rotation (epoch exhaustion), so that a producer retrying
  // an InitProducerId whose answer it lost is recognised (KIP-360).
  int64_t last_producer_id = kNoProducerId;
  int16_t producer_epoch = kNoProducerEpoch;
  // The epoch before the last bump, kept in memory only (the log has no field for it, as in
  // Kafka): a retried InitProducerId naming it gets the current epoch instead of a fence.
  int16_t last_producer_epoch = kNoProducerEpoch;
  int32_t timeout_ms = 0;
  txn_state state = txn_state::empty;
  std::set<txn_partition> partitions;  // empty unless Ongoing or Prepare*
  int64_t start_timestamp_ms = -1;     // when the current transaction began; -1 if none
  int64_t last_update_timestamp_ms = -1;

  bool operator==(const txn_metadata&) const = default;
};

// The outcome of planning a transition. `error` != NONE: answer the client with it and
// change nothing. Otherwise `next`, when set, is the metadata to append and then apply; an
// unset `next` with NONE means the request is already satisfied (a retry) and needs no write.
struct txn_plan {
  protocol::error_code error = protocol::error_code::none;
  std::optional<txn_metadata> next;
  // InitProducerId on an Ongoing transaction: `next` is the fencing abort (PrepareAbort at a
  // bumped epoch, via PrepareEpochFence); the client is answered CONCURRENT_TRANSACTIONS
  // and retries once the abort completed.
  bool fences_ongoing = false;
};

// Allocates a fresh producer id; nullopt when none is available right now.
using producer_id_allocator = std::function<std::optional<int64_t>()>;

// A new transactional id's metadata before its first InitProducerId: a freshly allocated
// producer id at kNoProducerEpoch, Empty.
txn_metadata new_txn_metadata(std::string transactional_id, int64_t producer_id, int32_t timeout_ms,
                              int64_t now_ms);

// InitProducerId with a transactional id (timeout already validated). `expected` is the
// producer id/epoch the client names when recovering (KIP-360), nullopt when it names none.
// Empty/Complete*: bump the epoch (or rotate to a new producer id when exhausted), clear the
// transaction. Ongoing: fence it (see txn_plan). Prepare*/PrepareEpochFence/Dead:
// CONCURRENT_TRANSACTIONS. An `expected` naming another producer id (other than the one
// before a rotation, at an exhausted epoch) is PRODUCER_FENCED in every state, checked
// first; one naming neither the current nor the last epoch is PRODUCER_FENCED too.
txn_plan plan_init_producer_id(const txn_metadata& cur, int32_t timeout_ms,
                               const std::optional<producer_id_and_epoch>& expected, int64_t now_ms,
                               const producer_id_allocator& allocate);

// AddPartitionsToTxn / AddOffsetsToTxn: adds `partitions` and makes the transaction Ongoing
// (starting it when it was not). No write when it is Ongoing and holds them all already.
txn_plan plan_add_partitions(const txn_metadata& cur, int64_t producer_id, int16_t epoch,
                             const std::vector<txn_partition>& partitions, int64_t now_ms);

// AddPartitionsToTxn with verify_only (KIP-890 part 1), asked by a partition leader before
// a transactional write: one error per partition — NONE if it is in the ongoing
// transaction, TRANSACTION_ABORTABLE if not. A producer mismatch fails every partition
// (INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED, CONCURRENT_TRANSACTIONS while completing).
std::vector<protocol::error_code> verify_partitions(const txn_metadata& cur, int64_t producer_id,
                                                    int16_t epoch,
                                                    const std::vector<txn_partition>& partitions);

// EndTxn: Ongoing → PrepareCommit/PrepareAbort. A retried EndTxn of a completed (or
// completing) transaction with the same outcome answers NONE (or CONCURRENT_TRANSACTIONS
// while markers are being written); the other outcome is INVALID_TXN_STATE. A client must
// name the current epoch exactly; coordinator-side aborts (from_client=false) may carry a
// bumped one.
txn_plan plan_end_txn(const txn_metadata& cur, int64_t producer_id, int16_t epoch, bool commit,
                      bool from_client, int64_t now_ms);

// The coordinator-side abort of an Ongoing transaction (timeout, or a new InitProducerId):
// PrepareAbort at epoch + 1 (the same epoch if it is already the maximum), so the old
// producer is fenced by the markers. Requires cur.state == Ongoing.
txn_metadata plan_fence_and_abort(const txn_metadata& cur, int64_t now_ms);

// After every marker of a PrepareCommit/PrepareAbort transaction is written:
// CompleteCommit/CompleteAbort with no partitions.
txn_metadata plan_complete(const txn_metadata& cur, int64_t now_ms);

// Ongoing and started more than timeout_ms ago.
bool is_timed_out(const txn_metadata& m, int64_t now_ms);
// No transaction in progress (Empty/Complete*) and untouched for expiration_ms: the id can
// be removed (transactional.id.expiration.ms).
bool is_expired(const txn_metadata& m, int64_t now_ms, int64_t expiration_ms);

}  // namespace varve::coordinator
