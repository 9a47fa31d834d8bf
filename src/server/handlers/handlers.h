#pragma once
// One thin handler per Kafka API (STYLE.md): decode is done by the dispatcher, the handler
// calls the subsystems and fills the response; per-partition failures are data in the
// response. Each handler is `asio::awaitable<void> handle(request_context&, Req&, Resp&)`.
#include <asio.hpp>

#include "protocol/error_code.h"
#include "protocol/messages.h"
#include "server/dispatcher.h"

namespace varve::server::handlers {
using namespace varve::protocol;

asio::awaitable<void> api_versions(request_context&, api_versions_request&, api_versions_response&);
asio::awaitable<void> metadata(request_context&, metadata_request&, metadata_response&);
asio::awaitable<void> produce(request_context&, produce_request&, produce_response&);
asio::awaitable<void> fetch(request_context&, fetch_request&, fetch_response&);
asio::awaitable<void> list_offsets(request_context&, list_offsets_request&, list_offsets_response&);
asio::awaitable<void> init_producer_id(request_context&, init_producer_id_request&,
                                       init_producer_id_response&);
asio::awaitable<void> create_topics(request_context&, create_topics_request&,
                                    create_topics_response&);
asio::awaitable<void> delete_topics(request_context&, delete_topics_request&,
                                    delete_topics_response&);
asio::awaitable<void> create_partitions(request_context&, create_partitions_request&,
                                        create_partitions_response&);
asio::awaitable<void> delete_records(request_context&, delete_records_request&,
                                     delete_records_response&);
asio::awaitable<void> describe_configs(request_context&, describe_configs_request&,
                                       describe_configs_response&);
asio::awaitable<void> alter_configs(request_context&, alter_configs_request&,
                                    alter_configs_response&);
asio::awaitable<void> incremental_alter_configs(request_context&,
                                                incremental_alter_configs_request&,
                                                incremental_alter_configs_response&);
asio::awaitable<void> describe_cluster(request_context&, describe_cluster_request&,
                                       describe_cluster_response&);
asio::awaitable<void> offset_for_leader_epoch(request_context&, offset_for_leader_epoch_request&,
                                              offset_for_leader_epoch_response&);

// Consumer groups (group.cc).
asio::awaitable<void> leader_and_isr(request_context&, leader_and_isr_request&,
                                     leader_and_isr_response&);
asio::awaitable<void> update_metadata(request_context&, update_metadata_request&,
                                      update_metadata_response&);
asio::awaitable<void> stop_replica(request_context&, stop_replica_request&, stop_replica_response&);
asio::awaitable<void> alter_partition(request_context&, alter_partition_request&,
                                      alter_partition_response&);
asio::awaitable<void> controlled_shutdown(request_context&, controlled_shutdown_request&,
                                          controlled_shutdown_response&);
asio::awaitable<void> elect_leaders(request_context&, elect_leaders_request&,
                                    elect_leaders_response&);
asio::awaitable<void> alter_partition_reassignments(request_context&,
                                                    alter_partition_reassignments_request&,
                                                    alter_partition_reassignments_response&);
asio::awaitable<void> list_partition_reassignments(request_context&,
                                                   list_partition_reassignments_request&,
                                                   list_partition_reassignments_response&);
asio::awaitable<void> find_coordinator(request_context&, find_coordinator_request&,
                                       find_coordinator_response&);
asio::awaitable<void> join_group(request_context&, join_group_request&, join_group_response&);
asio::awaitable<void> sync_group(request_context&, sync_group_request&, sync_group_response&);
asio::awaitable<void> heartbeat(request_context&, heartbeat_request&, heartbeat_response&);
asio::awaitable<void> leave_group(request_context&, leave_group_request&, leave_group_response&);
asio::awaitable<void> offset_commit(request_context&, offset_commit_request&,
                                    offset_commit_response&);
asio::awaitable<void> offset_fetch(request_context&, offset_fetch_request&, offset_fetch_response&);
asio::awaitable<void> list_groups(request_context&, list_groups_request&, list_groups_response&);
asio::awaitable<void> describe_groups(request_context&, describe_groups_request&,
                                      describe_groups_response&);
asio::awaitable<void> delete_groups(request_context&, delete_groups_request&,
                                    delete_groups_response&);
asio::awaitable<void> offset_delete(request_context&, offset_delete_request&,
                                    offset_delete_response&);

// Transactions (txn.cc).
asio::awaitable<void> add_partitions_to_txn(request_context&, add_partitions_to_txn_request&,
                                            add_partitions_to_txn_response&);
asio::awaitable<void> add_offsets_to_txn(request_context&, add_offsets_to_txn_request&,
                                         add_offsets_to_txn_response&);
asio::awaitable<void> end_txn(request_context&, end_txn_request&, end_txn_response&);
asio::awaitable<void> list_transactions(request_context&, list_transactions_request&,
                                        list_transactions_response&);
asio::awaitable<void> describe_transactions(request_context&, describe_transactions_request&,
                                            describe_transactions_response&);
asio::awaitable<void> describe_producers(request_context&, describe_producers_request&,
                                         describe_producers_response&);
// FindCoordinator key type 1: creates __transaction_state on first use and answers the
// leader of the id's partition (group.cc's find_coordinator calls it).
asio::awaitable<protocol::error_code> find_txn_coordinator(request_context&, const std::string& key,
                                                 int32_t* node_id, std::string* host,
                                                 int32_t* port);
// KIP-890 part 1 for Produce and TxnOffsetCommit: asks the transactional id's coordinator (on
// this broker or another) whether each partition is in the producer's ongoing transaction;
// one error per partition, in order (NONE = append).
asio::awaitable<std::vector<protocol::error_code>> verify_txn_partitions(
    request_context&, const std::string& transactional_id, int64_t producer_id,
    int16_t producer_epoch, const std::vector<std::pair<std::string, int32_t>>& partitions);
// What the client is told when verification did not say yes: `busy` for coordinator trouble
// it should retry (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS,
// CONCURRENT_TRANSACTIONS, a failed call), `not_in_txn` for TRANSACTION_ABORTABLE (the
// partition is not in the transaction); any other error as it is.
protocol::error_code verification_answer(protocol::error_code e, protocol::error_code busy,
                                         protocol::error_code not_in_txn);
asio::awaitable<void> write_txn_markers(request_context&, write_txn_markers_request&,
                                        write_txn_markers_response&);
asio::awaitable<void> txn_offset_commit(request_context&, txn_offset_commit_request&,
                                        txn_offset_commit_response&);

}  // namespace varve::server::handlers
