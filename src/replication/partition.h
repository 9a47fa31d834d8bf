#pragma once
// replication::partition — one replica of a topic partition on this broker (DESIGN.md §4).
//
// Owns the partition's storage::log and storage::producer_state. Kafka's replica state:
//   log_end_offset (LEO)  next offset to be written here
//   high_watermark (HW)   on the leader: min LEO over the ISR; consumers see only offsets
//                         below it, and acks=all completes once HW passes the batch.
//                         On a follower: min(leader's HW from the last fetch, own LEO).
//   leader_epoch          stamped into every batch appended as leader; recorded with its
//                         start offset in leader-epoch-checkpoint
//
// Roles come from the controller (LeaderAndIsr, through replica_manager):
//   become_leader   the epoch starts at the current LEO; follower LEOs are unknown until
//                   they fetch, so HW cannot advance past what every ISR member is known to
//                   hold. Produce is accepted; follower fetches update follower state.
//   become_follower produce and consumer fetch get NOT_LEADER_OR_FOLLOWER; the replica
//                   fetcher truncates by leader epoch (OffsetForLeaderEpoch, KIP-101/279) —
//                   never to the HW blindly — and then appends the leader's batches as is.
//
// ISR (leader only): a follower leaves the ISR when it has not caught up to the leader's LEO
// within replica.lag.time.max.ms; it joins when its LEO reaches the HW (and the start of the
// current epoch). The leader never edits the ISR itself: it proposes the change through the
// isr_change_sink (AlterPartition to the controller, the single writer) and applies what the
// controller publishes. While a proposal is in flight the HW is computed over the "maximal"
// ISR (current ISR plus proposed additions), so a shrink cannot commit anything early.
//
// Invariants: log_start_offset <= HW <= LEO; HW never moves backwards while leader. A
// follower truncates only where leader-epoch lookup says its log diverges from the
// leader's; offsets removed that way were never committed (the leader would hold them).
//
// Threading: owned by one shard's loop; every method must be called there.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cluster/metadata.h"
#include "protocol/error_code.h"
#include "storage/log.h"
#include "storage/producer_state.h"
#include "storage/txn_index.h"

namespace varve::replication {

struct topic_partition {
  std::string topic;
  int32_t partition = 0;
  auto operator<=>(const topic_partition&) const = default;
  std::string str() const { return topic + "-" + std::to_string(partition); }
};

struct partition_config {
  storage::log_config log;
  int32_t min_insync_replicas = 1;
  int64_t replica_lag_time_max_ms = 30000;  // replica.lag.time.max.ms
  bool cleaner_enable = true;  // log.cleaner.enable: compacted topics are cleaned
};

struct produce_outcome {
  protocol::error_code error = protocol::error_code::none;
  int64_t base_offset = -1;
  int64_t last_offset = -1;   // of the appended (or duplicate) batch; acks=all waits for HW > it
  int32_t leader_epoch = -1;  // the epoch it was appended in
  int64_t log_append_time = -1;
  int64_t log_start_offset = -1;
  int32_t batch_index = -1;  // which batch failed (record_errors), -1 if not batch-specific
  std::string error_message;
  int32_t record_count = 0;
  int64_t bytes = 0;
};

// An ISR change the leader asks the controller for (AlterPartition).
struct isr_proposal {
  topic_partition tp;
  int32_t leader_epoch = 0;
  int32_t partition_epoch = 0;
  std::vector<int32_t> new_isr;
};
using isr_change_sink = std::function<void(const isr_proposal&)>;

enum class isolation : int8_t { read_uncommitted = 0, read_committed = 1 };

struct fetch_outcome {
  protocol::error_code error = protocol::error_code::none;
  int64_t high_watermark = -1;
  int64_t last_stable_offset = -1;
  int64_t log_start_offset = -1;
  storage::read_info data;
  // read_committed only: the aborted transactions overlapping the returned batches
  // (FetchResponse aborted_transactions); empty for read_uncommitted and follower fetches.
  std::vector<storage::aborted_producer> aborted;
  uint64_t change_seq = 0;  // see partition::change_seq()
};

// Outcome of a transaction marker written by the leader (WriteTxnMarkers).
struct marker_outcome {
  protocol::error_code error = protocol::error_code::none;
  int64_t offset = -1;        // of the marker batch; the coordinator waits for HW > it
  int32_t leader_epoch = -1;  // the epoch it was appended in
};

class partition {
 public:
  // Opens (recovering if needed) the log in `dir`, loads the aborted-transaction index and
  // producer state (the index first: producer_state rebuilds missing entries from the log).
  static std::unique_ptr<partition> open(topic_partition tp, const std::filesystem::path& dir,
                                         const partition_config& config, int32_t node_id,
                                         int64_t recovery_point, int64_t hw_checkpoint,
                                         std::string* error);
  ~partition();

  const topic_partition& tp() const { return tp_; }
  bool is_leader() const { return leader_ == node_id_; }
  int32_t leader() const { return leader_; }
  int32_t leader_epoch() const { return leader_epoch_; }
  int32_t partition_epoch() const { return partition_epoch_; }
  const std::vector<int32_t>& isr() const { return isr_; }
  const std::vector<int32_t>& replicas() const { return replicas_; }

  // Applies the controller's state for this partition. Returns what changed:
  //   role_change  became leader / follower (or a new leader epoch): followers must
  //                (re)start fetching with truncation
  //   none         stale or identical state (older leader epoch / partition epoch)
  enum class state_change { none, isr_only, role_change };
  state_change apply_state(const cluster::partition_state& ps, int64_t now_ms);
  void set_isr_change_sink(isr_change_sink sink) { isr_sink_ = std::move(sink); }

  // --- leader side of replication ---
  // A follower's fetch (Fetch with replica id): records its LEO (= fetch_offset), updates
  // caught-up time, may advance the HW and propose an ISR expansion, then reads up to the
  // LEO (not the HW). Errors: NOT_LEADER_OR_FOLLOWER, FENCED/UNKNOWN_LEADER_EPOCH,
  // OFFSET_OUT_OF_RANGE (fetch_offset outside [log start, LEO]).
  fetch_outcome read_for_follower(int32_t replica_id, int64_t fetch_offset, uint32_t max_bytes,
                                  int32_t current_leader_epoch, int64_t now_ms);
  // acks=all: whether the batch ending before `required_offset` is committed. *done is true
  // once the HW reaches it (error NONE, or NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR is
  // below min.insync.replicas) or when this replica stopped being leader (error
  // NOT_LEADER_OR_FOLLOWER: the outcome is unknown to the producer, which retries).
  protocol::error_code acks_all_status(int64_t required_offset, int32_t epoch_at_append,
                                       bool* done) const;
  // Periodic ISR check: followers lagging more than replica.lag.time.max.ms are proposed
  // for removal.
  void maybe_shrink_isr(int64_t now_ms);

  // --- follower side ---
  // Appends batches fetched from the leader (offsets and epochs as the leader wrote them)
  // and moves the HW to min(leader_hw, LEO).
  protocol::error_code append_as_follower(std::span<const uint8_t> records, int64_t leader_hw,
                                          int64_t leader_log_start);
  // Truncation directed by leader-epoch lookup; reloads producer state.
  void truncate_to(int64_t offset);
  void truncate_fully_and_start_at(int64_t offset);
  // OffsetForLeaderEpoch on the leader: (largest epoch <= requested, its end offset).
  std::pair<int32_t, int64_t> end_offset_for_epoch(int32_t epoch) const;

  // Increases on every append, HW change and role change; a long-poll fetch compares it
  // to know whether anything happened since it read.
  uint64_t change_seq() const { return change_seq_; }

  // Appends the `records` of a produce request for this partition (exactly one batch, as
  // Kafka requires from produce v3). Rewrites the batch header in place (base offset,
  // leader epoch, LogAppendTime), so `records` must be exclusively owned by the request.
  // Idempotent batches are checked against producer state first: a duplicate answers
  // with the original base offset and writes nothing.
  produce_outcome append(std::span<uint8_t> records, int16_t acks, int64_t now_ms);

  // KIP-890 part 1: whether a transactional `records` batch would open a transaction here
  // (no open transaction for its producer). If so, returns a guard the caller keeps while
  // it asks the transaction coordinator whether this partition is in the producer's
  // transaction, and then passes to append_verified(); 0 (kNoVerification) when none is needed: the caller
  // must then append in the same task on this loop, before anything else can run here.
  uint64_t start_verification(std::span<const uint8_t> records);
  // Guard value for append_verified meaning "not verified": no KIP-890 check (append()).
  static constexpr uint64_t kNoVerification = 0;
  // append() for a batch verified with `guard` (0: none needed). A batch that needed
  // verification and whose guard was voided meanwhile (a marker ended the transaction, the
  // epoch changed) fails with INVALID_TXN_STATE: it would open a transaction nobody ends.
  produce_outcome append_verified(std::span<uint8_t> records, int16_t acks, int64_t now_ms,
                                  uint64_t guard);

  // TxnOffsetCommit (group coordinator, leader of the group's __consumer_offsets
  // partition): appends a transactional batch without sequence numbers (base_sequence -1)
  // for the producer; only its epoch is checked. The offsets stay pending until the marker.
  produce_outcome append_txn_offsets(std::span<uint8_t> records, int64_t now_ms);

  // WriteTxnMarkers on the leader: checks the marker against producer state
  // (INVALID_PRODUCER_EPOCH for an older producer epoch, TRANSACTION_COORDINATOR_FENCED for
  // an older coordinator epoch), appends a COMMIT/ABORT control batch and closes the
  // producer's transaction (an ABORT goes to the aborted-transaction index). Other errors:
  // NOT_LEADER_OR_FOLLOWER, the log's append errors. The caller waits for the HW to pass
  // `offset` (acks_all_status) before reporting the marker written.
  marker_outcome append_txn_marker(int64_t producer_id, int16_t producer_epoch, bool commit,
                                   int32_t coordinator_epoch, int64_t now_ms);

  // Fetch from a consumer: whole batches from `offset`, bounded by HW (read_uncommitted)
  // or LSO (read_committed). `current_leader_epoch` (-1 = not given) is checked against
  // ours (KIP-320): older → FENCED_LEADER_EPOCH, newer → UNKNOWN_LEADER_EPOCH.
  fetch_outcome read(int64_t offset, uint32_t max_bytes, bool min_one_batch, isolation iso,
                     int32_t current_leader_epoch) const;

  protocol::error_code check_leader_epoch(int32_t current_leader_epoch) const;

  int64_t log_start_offset() const { return log_->log_start_offset(); }
  int64_t log_end_offset() const { return log_->log_end_offset(); }
  int64_t high_watermark() const { return high_watermark_; }
  // The read_committed limit: below every transaction still open or whose marker the HW
  // has not passed; never above the HW.
  int64_t last_stable_offset() const {
    return producer_state_.last_stable_offset(high_watermark_, log_->log_start_offset());
  }
  const storage::producer_state& producers() const { return producer_state_; }
  const storage::txn_index& aborted_index() const { return txn_index_; }
  const storage::log& log() const { return *log_; }
  storage::log& log() { return *log_; }
  // Bytes and records appended by produce requests (and coordinator writes) since this
  // replica was opened; read by the metrics scrape on this partition's loop.
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t records_in() const { return records_in_; }

  // DeleteRecords: `offset` -1 means the high watermark.
  protocol::error_code delete_records(int64_t offset, int64_t* new_log_start);

  // Registers a one-shot callback run (on this partition's loop) after the next append
  // that moves the high watermark. Used by long-poll fetches. The waiter is dropped
  // without being called once `alive` has expired (the fetch finished), so idle
  // partitions polled by many consumers do not accumulate waiters.
  void add_waiter(std::weak_ptr<void> alive, std::function<void()> fn);

  void update_config(const partition_config& config);
  // Periodic work: flush policy, time-based roll, retention (when `retention_due`), and
  // when producer_expiration_ms >= 0 (producer.id.expiration.ms, on its check interval) the
  // removal of producers with no open transaction whose last batch is older than that —
  // Kafka's rule, on leaders and followers alike. A removed producer is unknown again: its
  // next batch is accepted as from a new producer (duplicate detection restarts).
  void housekeeping(int64_t now_ms, bool retention_due, int64_t producer_expiration_ms = -1);
  // Flushes, snapshots producer state and closes the log cleanly.
  void close();
  // Deletes the partition's data (topic deleted).
  void remove();

 private:
  partition(topic_partition tp, int32_t node_id, std::unique_ptr<storage::log> log,
            partition_config config);
  // Leader: HW = min LEO over the maximal ISR, never backwards. Notifies on change.
  void maybe_advance_high_watermark();
  produce_outcome append_impl(std::span<uint8_t> records, int16_t acks, int64_t now_ms,
                              uint64_t guard, bool from_coordinator);
  void set_high_watermark(int64_t hw);
  void maybe_expand_isr(int32_t replica_id);
  void propose_isr(std::vector<int32_t> new_isr);
  std::vector<int32_t> maximal_isr() const;
  void notify_waiters();

  struct follower_state {
    int64_t log_end_offset = -1;  // -1: unknown (has not fetched in this epoch)
    int64_t last_caught_up_ms = 0;
    int64_t last_fetch_leader_leo = -1;
    int64_t last_fetch_ms = 0;
  };

  topic_partition tp_;
  int32_t node_id_;
  std::unique_ptr<storage::log> log_;
  storage::producer_state producer_state_;
  storage::txn_index txn_index_;
  partition_config config_;
  int32_t leader_ = -1;
  int32_t leader_epoch_ = -1;
  int32_t partition_epoch_ = -1;
  std::vector<int32_t> replicas_;
  std::vector<int32_t> isr_;
  std::map<int32_t, follower_state> followers_;  // leader only
  std::optional<std::vector<int32_t>> pending_isr_;  // proposal in flight
  int64_t pending_isr_since_ms_ = 0;
  int64_t leader_epoch_start_offset_ = 0;
  int32_t leadership_start_epoch_ = -1;  // epoch in which this replica last became leader
  isr_change_sink isr_sink_;
  uint64_t change_seq_ = 0;
  int64_t high_watermark_ = 0;
  uint64_t bytes_in_ = 0;
  uint64_t records_in_ = 0;
  size_t segments_at_last_snapshot_ = 0;
  std::vector<std::pair<std::weak_ptr<void>, std::function<void()>>> waiters_;
};

}  // namespace varve::replication
