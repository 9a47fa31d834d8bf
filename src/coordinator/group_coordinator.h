#pragma once
// coordinator::group_coordinator — Kafka's classic consumer group protocol for the groups
// whose __consumer_offsets partition this shard owns (DESIGN.md §6, docs/groups.md).
//
// Group states: Empty → PreparingRebalance → CompletingRebalance → Stable (→ Dead when
// deleted). A rebalance collects JoinGroup requests (they wait) until every known member
// has rejoined or the rebalance timeout passes, then bumps the generation, selects a
// protocol every member supports and answers all joins — the leader with the member list.
// SyncGroup requests wait until the leader's SyncGroup brings the assignments.
//
// Committed offsets are appended to the group's __consumer_offsets partition (acks=-1)
// before the commit is acknowledged. Group metadata (generation, protocol, leader, members
// with their subscriptions and assignments) is appended when a group becomes Stable (the
// leader's SyncGroup is answered only after the append) and when it becomes Empty; deleted
// and expired groups get tombstones. load_partition() rebuilds both from the partition:
// a Stable group comes back Stable at the same generation, its members' session timers
// restarted, so members that return keep heartbeating and the others expire normally.
//
// Offset retention (KIP-211): offsets of an Empty group expire offsets_retention_ms after
// the group became Empty; offsets of a group that never had members ("simple" commits)
// expire that long after their commit; offsets of a Stable consumer group for topics no
// member subscribes to expire that long after their commit. Expired offsets get
// tombstones; an Empty group left without offsets becomes Dead and is removed.
//
// Time: `now_ms` is a monotonic clock used for session/rebalance deadlines (tests pass a
// fake one); `wall_ms` is the wall clock written into records and used for retention.
// tick() expires members, completes timed-out rebalances, retries failed loads and runs the
// retention check when due — start() calls it from a timer on the owning loop. Waiting requests are answered through callbacks, which
// are called synchronously from within these methods or tick(); callers must not re-enter
// the coordinator from a callback (the server posts them to a coroutine).
//
// Threading: owned by one shard's loop; every method must be called there.
#include <asio.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "protocol/error_code.h"
#include "replication/partition.h"

namespace varve::coordinator {

using protocol::error_code;
using bytes = std::vector<uint8_t>;

struct coordinator_options {
  int32_t min_session_timeout_ms = 6000;       // group.min.session.timeout.ms
  int32_t max_session_timeout_ms = 1800000;    // group.max.session.timeout.ms
  int32_t initial_rebalance_delay_ms = 3000;   // group.initial.rebalance.delay.ms
  int32_t max_group_size = INT32_MAX;          // group.max.size
  int32_t offset_metadata_max_bytes = 4096;    // offset.metadata.max.bytes
  int64_t tick_interval_ms = 100;              // how often start()'s timer calls tick()
  int64_t offsets_retention_ms = 7LL * 24 * 60 * 60 * 1000;  // offsets.retention.minutes
  int64_t offsets_retention_check_interval_ms = 600000;  // offsets.retention.check.interval.ms
  // A failed partition load is retried after this delay, doubling up to the maximum.
  int64_t load_retry_backoff_ms = 200;
  int64_t load_retry_backoff_max_ms = 30000;
};

enum class group_state { empty, preparing_rebalance, completing_rebalance, stable, dead };
// Kafka's names: "Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead".
const char* state_name(group_state s);

struct protocol_entry {
  std::string name;
  bytes metadata;
};

struct join_params {
  std::string group_id;
  std::string member_id;  // "" = unknown member
  std::optional<std::string> group_instance_id;
  std::string client_id;
  std::string client_host;
  int32_t session_timeout_ms = 0;
  int32_t rebalance_timeout_ms = 0;
  std::string protocol_type;
  std::vector<protocol_entry> protocols;
  bool require_known_member_id = false;  // JoinGroup v4+
};

struct join_member {
  std::string member_id;
  std::optional<std::string> group_instance_id;
  bytes metadata;
};

struct join_result {
  error_code error = error_code::none;
  int32_t generation_id = -1;
  std::string protocol_type;
  std::optional<std::string> protocol_name;
  std::string leader;
  std::string member_id;
  bool skip_assignment = false;
  std::vector<join_member> members;  // only for the leader
};

struct sync_params {
  std::string group_id;
  int32_t generation_id = -1;
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::optional<std::string> protocol_type;
  std::optional<std::string> protocol_name;
  std::vector<std::pair<std::string, bytes>> assignments;
};

struct sync_result {
  error_code error = error_code::none;
  std::optional<std::string> protocol_type;
  std::optional<std::string> protocol_name;
  bytes assignment;
};

struct member_identity {
  std::string member_id;
  std::optional<std::string> group_instance_id;
};

struct leave_result {
  error_code error = error_code::none;  // group level
  std::vector<std::pair<member_identity, error_code>> members;
};

struct committed_offset {
  int64_t offset = -1;
  int32_t leader_epoch = -1;
  std::string metadata;
  int64_t commit_timestamp = -1;
  int64_t expire_timestamp = -1;  // explicit expiry (only from old value version 1 records)
};

using topic_partition = replication::topic_partition;

struct commit_entry {
  topic_partition tp;
  committed_offset value;
  error_code error = error_code::none;  // filled by commit_offsets
};

struct commit_params {
  std::string group_id;
  int32_t generation_id = -1;
  std::string member_id;
  std::optional<std::string> group_instance_id;
};

// TxnOffsetCommit: the producer of the transaction and, from v3 (KIP-447), the consumer
// group member it commits for (generation -1 and an empty member id skip that check).
struct txn_commit_params {
  std::string group_id;
  int64_t producer_id = -1;
  int16_t producer_epoch = -1;
  int32_t generation_id = -1;
  std::string member_id;
  std::optional<std::string> group_instance_id;
};

struct described_member {
  std::string member_id;
  std::optional<std::string> group_instance_id;
  std::string client_id;
  std::string client_host;
  bytes metadata;    // for the selected protocol, only when Stable
  bytes assignment;  // only when Stable
};

struct group_description {
  error_code error = error_code::none;
  std::string group_id;
  std::string state;
  std::string protocol_type;
  std::string protocol_data;  // the selected protocol, only when Stable
  std::vector<described_member> members;
};

struct group_listing {
  std::string group_id;
  std::string protocol_type;
  std::string state;
};

struct group_list {
  // COORDINATOR_LOAD_IN_PROGRESS while any partition of this shard is still loading (the
  // groups of loaded partitions are listed anyway, as Kafka does).
  error_code error = error_code::none;
  std::vector<group_listing> groups;
};

class group_coordinator {
 public:
  // The shard's replica of __consumer_offsets partition `p`, or null if not hosted here.
  using partition_lookup = std::function<replication::partition*(int32_t p)>;
  using clock = std::function<int64_t()>;

  group_coordinator(coordinator_options options, partition_lookup partitions, clock now_ms,
                    clock wall_ms);
  ~group_coordinator();

  // Runs tick() every options.tick_interval_ms on `loop` until stop().
  void start(asio::io_context& loop);
  void stop();

  // --- loading (__consumer_offsets partition → committed offsets) ---
  // Marks `p` as loading: requests for its groups get COORDINATOR_LOAD_IN_PROGRESS until
  // load_partition(p) runs.
  void begin_loading(int32_t p);
  // Reads partition p's log from its start to the high watermark and rebuilds its groups:
  // committed offsets and group metadata (later records win; tombstones delete). False
  // with *error if the partition is not hosted or a batch cannot be read; then p stays
  // loading and tick() retries it after a backoff (load_retry_backoff_ms, doubling up to
  // load_retry_backoff_max_ms).
  bool load_partition(int32_t p, std::string* error);
  // NONE if groups of partition p can be served; COORDINATOR_LOAD_IN_PROGRESS while loading;
  // NOT_COORDINATOR if p is not hosted here. A hosted partition never seen before (created
  // after startup) is loaded on the spot.
  error_code check_partition(int32_t p);
  // This broker is no longer the leader of partition p (its leadership moved): its groups
  // are dropped from memory (waiting requests get NOT_COORDINATOR); the new leader's
  // coordinator loads them from the replicated log.
  void unload_partition(int32_t p);

  // --- group membership (p = the group's __consumer_offsets partition) ---
  void join(int32_t p, join_params params, std::function<void(join_result)> done);
  void sync(int32_t p, sync_params params, std::function<void(sync_result)> done);
  error_code heartbeat(int32_t p, const std::string& group_id, int32_t generation_id,
                       const std::string& member_id,
                       const std::optional<std::string>& group_instance_id);
  leave_result leave(int32_t p, const std::string& group_id,
                     const std::vector<member_identity>& members);

  // --- offsets ---
  // Validates the commit (generation/member, or a "simple" commit with generation -1 and
  // no member into a group without members), appends every valid offset to partition p in
  // one batch with acks=-1 and updates the cache only after the append succeeded. Returns
  // a group-level error (every entry failed with it) or NONE with per-entry errors.
  error_code commit_offsets(int32_t p, const commit_params& params,
                            std::vector<commit_entry>& entries);
  // Committed offsets of a group: `topics` nullopt = everything committed; otherwise one
  // entry per requested partition (offset -1 when none).
  std::vector<std::pair<topic_partition, committed_offset>> fetch_offsets(
      int32_t p, const std::string& group_id,
      const std::optional<std::vector<topic_partition>>& partitions) const;

  // --- offsets inside transactions (docs/transactions.md) ---
  // TxnOffsetCommit: validates like commit_offsets (member/generation only when given),
  // appends the offsets to partition p as a transactional batch of the producer and keeps
  // them pending for that producer: fetch_offsets does not return them until the
  // transaction's COMMIT marker reaches partition p (complete_txn); an ABORT drops them.
  error_code commit_txn_offsets(int32_t p, const txn_commit_params& params,
                                std::vector<commit_entry>& entries);
  // A COMMIT/ABORT marker of `producer_id` was appended to (or replicated into) partition p:
  // its pending offsets become committed (commit) or are dropped (abort).
  void complete_txn(int32_t p, int64_t producer_id, bool commit);
  // True if a transaction has uncommitted offsets for the group's partition (OffsetFetch
  // with require_stable answers UNSTABLE_OFFSET_COMMIT for it).
  bool has_pending_txn_offset(const std::string& group_id, const topic_partition& tp) const;

  // --- administration ---
  group_description describe(int32_t p, const std::string& group_id) const;
  group_list list() const;
  // DeleteGroups for one group: NONE, GROUP_ID_NOT_FOUND or NON_EMPTY_GROUP; writes
  // tombstones for its offsets and its group metadata.
  error_code delete_group(int32_t p, const std::string& group_id);
  // OffsetDelete: group-level error, or per-partition errors in `results`.
  error_code delete_offsets(int32_t p, const std::string& group_id,
                            const std::vector<topic_partition>& partitions,
                            std::vector<std::pair<topic_partition, error_code>>* results);

  // Expires members whose session timed out, completes rebalances whose deadline passed,
  // retries failed loads that are due, and calls expire_offsets() every
  // offsets_retention_check_interval_ms.
  void tick();
  // The retention check (see the class comment), at wall_ms(). Returns how many offsets
  // expired.
  size_t expire_offsets();

  // For tests and descriptions.
  std::optional<group_state> state_of(const std::string& group_id) const;
  int32_t generation_of(const std::string& group_id) const;

 private:
  struct member;
  struct group;
  group* find_group(const std::string& id) const;
  group& get_or_create(int32_t p, const std::string& id);
  void add_member_and_rebalance(group& g, join_params& params, std::string member_id,
                                std::function<void(join_result)> done);
  void update_member_and_rebalance(group& g, member& m, join_params& params,
                                   std::function<void(join_result)> done);
  void prepare_rebalance(group& g);
  void maybe_complete_join(group& g);
  void complete_join(group& g);
  void remove_member(group& g, const std::string& member_id, error_code pending_error);
  void fail_pending_syncs(group& g, error_code error);
  join_result current_join_result(const group& g, const member& m, bool with_members) const;
  bool append_records(int32_t p, const std::vector<std::pair<bytes, std::optional<bytes>>>& kvs,
                      error_code* error);
  void schedule_tick();
  void set_state(group& g, group_state s);
  // Appends g's group metadata record; false (with *error) if the append failed.
  bool store_group(group& g, error_code* error);
  // Drops groups of partition p (before a load, so a retried load starts clean); waiting
  // JoinGroup/SyncGroup requests of those groups are answered NOT_COORDINATOR.
  void forget_partition(int32_t p);
  void retry_loads();

  coordinator_options options_;
  partition_lookup partitions_;
  clock now_ms_;
  clock wall_ms_;
  std::map<std::string, std::unique_ptr<group>> groups_;
  std::set<int32_t> loading_;
  std::set<int32_t> loaded_;
  std::map<int32_t, std::pair<int64_t, int64_t>> load_retry_;  // p → (due at, next backoff)
  int64_t next_retention_check_ = -1;
  std::unique_ptr<asio::steady_timer> timer_;
  bool stopped_ = false;
};

// Generates a member id as Kafka does: `<client_id>-<random UUID>`.
std::string generate_member_id(const std::string& client_id);

}  // namespace varve::coordinator
