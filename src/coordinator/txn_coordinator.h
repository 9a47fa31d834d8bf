#pragma once
// coordinator::txn_coordinator — Kafka's transaction coordinator for the transactional ids
// whose __transaction_state partition this shard leads (DESIGN.md §6, docs/transactions.md).
//
// Every change of a transactional id's metadata is planned by the pure functions of
// txn_state.h, appended to its __transaction_state partition through the injected
// append_fn (the server appends with acks=all), and applied to the in-memory state only
// once that append succeeded. While an append is in flight the id has a pending
// transition and every other request for it gets CONCURRENT_TRANSACTIONS, so at most one
// append per id is outstanding and the log order is the order of applied transitions.
//
// Ending a transaction (EndTxn, a timeout, or InitProducerId finding one open):
//   1. PrepareCommit/PrepareAbort is appended; EndTxn is answered NONE after this append.
//   2. The injected marker_writer writes COMMIT/ABORT markers to every partition of the
//      transaction (WriteTxnMarkers to their leaders). A failed write is retried from
//      tick() after retry_backoff_ms.
//   3. CompleteCommit/CompleteAbort is appended (retried the same way if it fails).
// A coordinator-side abort (timeout, or InitProducerId from a new producer instance)
// bumps the epoch in its PrepareAbort record (PrepareEpochFence), so the markers fence
// the old producer on every partition it wrote to.
//
// Loading: on becoming leader of __transaction_state partition p the server calls
// begin_loading(p, leader_epoch), replay() for every record from the log start to the
// high watermark in order, then complete_loading(p), which resumes the marker writes of
// transactions found in PrepareCommit/PrepareAbort (failover finishes in-flight commits and
// aborts). Ongoing transactions keep their persisted start time and time out as before.
// unload(p) on losing leadership; appends and marker writes of an unloaded (or reloaded)
// partition that finish later are answered NOT_COORDINATOR and change nothing.
//
// Time: `now_ms` is the wall clock (start and update timestamps are persisted and compared
// after failover, as Kafka does). tick() aborts timed-out transactions (every
// abort_timed_out_transaction_cleanup_interval_ms), removes expired transactional ids
// (every remove_expired_transactional_ids_interval_ms) and retries failed marker writes;
// start() runs it from a timer on the owning loop.
//
// Callbacks: `done` callbacks, append_fn and marker_writer completions may run
// synchronously inside the call that started them or later on the owning loop; callers must
// not re-enter the coordinator from a `done` callback. Completions that arrive after the
// coordinator was destroyed are ignored (their `done` is never called).
//
// Threading: owned by one shard's loop; every method and every completion must run there.
#include <asio.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/txn_state.h"
#include "protocol/error_code.h"

namespace varve::coordinator {

struct txn_coordinator_options {
  int32_t transaction_max_timeout_ms = 900000;  // transaction.max.timeout.ms
  int64_t transactional_id_expiration_ms =
      7LL * 24 * 60 * 60 * 1000;  // transactional.id.expiration.ms
  // transaction.abort.timed.out.transaction.cleanup.interval.ms
  int64_t abort_timed_out_transaction_cleanup_interval_ms = 10000;
  // transaction.remove.expired.transaction.cleanup.interval.ms
  int64_t remove_expired_transactional_ids_interval_ms = 3600000;
  int32_t transaction_state_num_partitions = 50;  // transaction.state.log.num.partitions
  int32_t offsets_topic_num_partitions = 50;      // offsets.topic.num.partitions
  int64_t retry_backoff_ms = 100;  // before retrying a failed marker write or completion
  int64_t tick_interval_ms = 100;  // how often start()'s timer calls tick()
};

// One record for __transaction_state: value nullopt is a tombstone.
struct txn_log_entry {
  std::vector<uint8_t> key;
  std::optional<std::vector<uint8_t>> value;
};

// The markers of one transaction outcome, for every partition in the transaction.
struct txn_marker_request {
  std::string transactional_id;
  int64_t producer_id = kNoProducerId;
  int16_t producer_epoch = kNoProducerEpoch;
  bool commit = false;
  int32_t coordinator_epoch = -1;  // leader epoch of the __transaction_state partition
  std::vector<txn_partition> partitions;
};

struct init_producer_id_result {
  protocol::error_code error = protocol::error_code::none;
  int64_t producer_id = kNoProducerId;
  int16_t producer_epoch = kNoProducerEpoch;
};

struct txn_listing {
  std::string transactional_id;
  int64_t producer_id = kNoProducerId;
  std::string state;
};

struct txn_list {
  protocol::error_code error = protocol::error_code::none;
  std::vector<std::string> unknown_state_filters;
  std::vector<txn_listing> transactions;
};

struct txn_description {
  protocol::error_code error = protocol::error_code::none;
  std::string transactional_id;
  std::string state;
  int32_t timeout_ms = 0;
  int64_t start_timestamp_ms = -1;
  int64_t producer_id = kNoProducerId;
  int16_t producer_epoch = kNoProducerEpoch;
  std::vector<txn_partition> partitions;  // ordered by topic, then partition
};

class txn_coordinator {
 public:
  using done_fn = std::function<void(protocol::error_code)>;
  // Appends `records` to __transaction_state partition p (acks=all) and calls `done` once
  // with the partition's error (NONE when replicated). Must call `done` exactly once.
  using append_fn =
      std::function<void(int32_t p, std::vector<txn_log_entry> records, done_fn done)>;
  // Writes the markers and calls `done` once: NONE when every partition has its marker
  // (or no longer exists); any error makes the coordinator retry the whole request later.
  using marker_writer = std::function<void(txn_marker_request request, done_fn done)>;
  using clock = std::function<int64_t()>;

  txn_coordinator(txn_coordinator_options options, append_fn append, marker_writer markers,
                  producer_id_allocator allocate, clock now_ms);
  ~txn_coordinator();
  txn_coordinator(const txn_coordinator&) = delete;
  txn_coordinator& operator=(const txn_coordinator&) = delete;

  // The __transaction_state partition of a transactional id.
  int32_t partition_for(std::string_view transactional_id) const;

  // --- loading ---
  // Starts (re)loading partition p: forgets its ids; requests for them get
  // COORDINATOR_LOAD_IN_PROGRESS until complete_loading(p).
  void begin_loading(int32_t p, int32_t coordinator_epoch);
  // Applies one record of partition p in log order (later records win; a null value removes
  // the id). False if p is not loading or the record is malformed (it is then skipped).
  bool replay(int32_t p, std::span<const uint8_t> key,
              std::optional<std::span<const uint8_t>> value);
  // Serves partition p and resumes marker writes for its Prepare* transactions.
  void complete_loading(int32_t p);
  // Stops serving partition p (leadership lost) and forgets its ids.
  void unload(int32_t p);
  // NONE if p is served; COORDINATOR_LOAD_IN_PROGRESS while loading; NOT_COORDINATOR if
  // p is not this shard's.
  protocol::error_code check_partition(int32_t p) const;

  // --- requests ---
  // InitProducerId. Without a transactional id: a new producer id at epoch 0 (idempotent
  // producer). With one: INVALID_REQUEST if empty, INVALID_TRANSACTION_TIMEOUT unless
  // 0 < timeout_ms <= transaction_max_timeout_ms, then plan_init_producer_id (the new
  // metadata is persisted before the answer). `expected` is KIP-360's producer id/epoch,
  // nullopt when the request carries -1/-1.
  void init_producer_id(const std::optional<std::string>& transactional_id, int32_t timeout_ms,
                        const std::optional<producer_id_and_epoch>& expected,
                        std::function<void(init_producer_id_result)> done);
  // AddPartitionsToTxn (not verify-only): one error for all the partitions.
  void add_partitions(const std::string& transactional_id, int64_t producer_id, int16_t epoch,
                      const std::vector<txn_partition>& partitions, done_fn done);
  // AddPartitionsToTxn with verify_only (v4+, from partition leaders): one error per
  // partition (see verify_partitions in txn_state.h); synchronous, writes nothing.
  std::vector<protocol::error_code> verify_partitions(
      const std::string& transactional_id, int64_t producer_id, int16_t epoch,
      const std::vector<txn_partition>& partitions) const;
  // AddOffsetsToTxn: adds the group's __consumer_offsets partition to the transaction.
  void add_offsets(const std::string& transactional_id, int64_t producer_id, int16_t epoch,
                   const std::string& group_id, done_fn done);
  // EndTxn from a client; answered after the PrepareCommit/PrepareAbort append.
  void end_txn(const std::string& transactional_id, int64_t producer_id, int16_t epoch, bool commit,
               done_fn done);

  // --- administration ---
  // ListTransactions over the served partitions. Empty filters match everything;
  // duration_filter_ms >= 0 keeps transactions started more than that long ago.
  // COORDINATOR_LOAD_IN_PROGRESS (and nothing listed) while any partition is loading.
  txn_list list(const std::vector<std::string>& state_filters,
                const std::vector<int64_t>& producer_id_filters, int64_t duration_filter_ms) const;
  // DescribeTransactions for one id: INVALID_REQUEST (empty id) / NOT_COORDINATOR /
  // COORDINATOR_LOAD_IN_PROGRESS / TRANSACTIONAL_ID_NOT_FOUND, or its metadata.
  txn_description describe(const std::string& transactional_id) const;

  // Runs tick() every options.tick_interval_ms on `loop` (the owning shard's) until stop()
  // or destruction. `loop` must outlive the coordinator.
  void start(asio::io_context& loop);
  void stop();
  // Periodic work (see the class comment); start() calls it from a timer.
  void tick();

  // For tests and diagnostics: the applied metadata, null if unknown.
  const txn_metadata* find(const std::string& transactional_id) const;
  // True while an append or marker write for the id is in flight.
  bool is_busy(const std::string& transactional_id) const;
  // The state an in-flight append will move the id to (PrepareEpochFence while a fencing
  // abort is written, Dead while its tombstone is), if any.
  std::optional<txn_state> pending_state(const std::string& transactional_id) const;

  // Transactions completed by this coordinator since start (metrics: outcome counts).
  uint64_t committed_count() const { return committed_; }
  uint64_t aborted_count() const { return aborted_; }

 private:
  uint64_t committed_ = 0;
  uint64_t aborted_ = 0;
  struct entry;
  struct partition_state {
    bool loading = true;
    int32_t coordinator_epoch = -1;
    uint64_t generation = 0;
  };

  entry* find_entry(const std::string& id) const;
  // NONE, or why requests for this id cannot be served now.
  protocol::error_code check_id(const std::string& id) const;
  bool still_current(int32_t p, uint64_t generation) const;
  // Appends `next` for e and applies it on success; `pending` is what the id shows as
  // pending meanwhile. `done` gets NONE, the mapped append error, or NOT_COORDINATOR if the
  // partition was unloaded meanwhile. An id never written before is forgotten if the
  // append fails.
  void persist(entry& e, txn_metadata next, txn_state pending, done_fn done);
  void fence_and_abort(entry& e, done_fn done);
  void write_markers(const std::string& id);
  void write_complete(const std::string& id);
  void write_tombstone(entry& e);
  void retry_due(int64_t now);
  void abort_timed_out(int64_t now);
  void expire_ids(int64_t now);
  void forget_partition(int32_t p);
  void schedule_tick();

  txn_coordinator_options options_;
  append_fn append_;
  marker_writer markers_;
  producer_id_allocator allocate_;
  clock now_ms_;
  std::map<std::string, std::unique_ptr<entry>> txns_;
  std::map<int32_t, partition_state> partitions_;
  uint64_t next_generation_ = 1;
  int64_t next_abort_check_ = -1;
  int64_t next_expiry_check_ = -1;
  std::unique_ptr<asio::steady_timer> timer_;
  bool stopped_ = false;
  // Completions check this before touching the coordinator.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace varve::coordinator
