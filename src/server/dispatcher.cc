#include "server/dispatcher.h"

#include <chrono>

#include "common/log.h"
#include "server/broker.h"
#include "server/handlers/handlers.h"

namespace varve::server {
namespace {
constexpr std::string_view kLog = "dispatch";
using net::handler_result;

handler_result close_connection() {
  handler_result r;
  r.what = handler_result::action::close;
  return r;
}

// Encodes size placeholder + response header + body into a response frame.
template <typename Resp>
handler_result encode_response(const protocol::request_header& header, int16_t version,
                               const Resp& resp) {
  protocol::writer w;
  w.write_int32(0);  // frame size, patched by the connection
  protocol::response_header rh;
  rh.correlation_id = header.correlation_id;
  rh.encode(w, protocol::response_header_version(Resp::api_key, version));
  resp.encode(w, version);
  handler_result r;
  r.response.bytes = std::move(w.bytes());
  r.response.splices = w.splices();
  return r;
}

template <typename Req, typename Resp,
          asio::awaitable<void> (*Handle)(request_context&, Req&, Resp&)>
asio::awaitable<handler_result> run(request_context& ctx, protocol::reader& r) {
  Req req;
  if (!req.decode(r, ctx.version) || !r.ok()) {
    VLOG_WARN(kLog) << "malformed " << ctx.api_name << " v" << ctx.version << " request from "
                    << ctx.conn.peer << "; closing the connection";
    co_return close_connection();
  }
  Resp resp;
  co_await Handle(ctx, req, resp);
  if (ctx.close_connection) co_return close_connection();
  if (!ctx.send_response) {
    handler_result none;
    none.what = handler_result::action::no_response;
    co_return none;
  }
  co_return encode_response(ctx.header, ctx.version, resp);
}

template <typename Req, typename Resp,
          asio::awaitable<void> (*Handle)(request_context&, Req&, Resp&)>
constexpr api_entry entry(std::string_view name) {
  return api_entry{Req::api_key,       name, Req::min_version, Req::max_version,
                   Req::flexible_from, &run<Req, Resp, Handle>};
}

using namespace protocol;
namespace h = handlers;
constexpr api_entry kApis[] = {
    entry<produce_request, produce_response, h::produce>("Produce"),
    entry<fetch_request, fetch_response, h::fetch>("Fetch"),
    entry<list_offsets_request, list_offsets_response, h::list_offsets>("ListOffsets"),
    entry<metadata_request, metadata_response, h::metadata>("Metadata"),
    entry<api_versions_request, api_versions_response, h::api_versions>("ApiVersions"),
    entry<create_topics_request, create_topics_response, h::create_topics>("CreateTopics"),
    entry<delete_topics_request, delete_topics_response, h::delete_topics>("DeleteTopics"),
    entry<delete_records_request, delete_records_response, h::delete_records>("DeleteRecords"),
    entry<init_producer_id_request, init_producer_id_response, h::init_producer_id>(
        "InitProducerId"),
    entry<offset_for_leader_epoch_request, offset_for_leader_epoch_response,
          h::offset_for_leader_epoch>("OffsetForLeaderEpoch"),
    entry<describe_configs_request, describe_configs_response, h::describe_configs>(
        "DescribeConfigs"),
    entry<alter_configs_request, alter_configs_response, h::alter_configs>("AlterConfigs"),
    entry<create_partitions_request, create_partitions_response, h::create_partitions>(
        "CreatePartitions"),
    entry<incremental_alter_configs_request, incremental_alter_configs_response,
          h::incremental_alter_configs>("IncrementalAlterConfigs"),
    entry<describe_cluster_request, describe_cluster_response, h::describe_cluster>(
        "DescribeCluster"),
    entry<find_coordinator_request, find_coordinator_response, h::find_coordinator>(
        "FindCoordinator"),
    entry<leader_and_isr_request, leader_and_isr_response, h::leader_and_isr>("LeaderAndIsr"),
    entry<update_metadata_request, update_metadata_response, h::update_metadata>(
        "UpdateMetadata"),
    entry<stop_replica_request, stop_replica_response, h::stop_replica>("StopReplica"),
    entry<alter_partition_request, alter_partition_response, h::alter_partition>(
        "AlterPartition"),
    entry<controlled_shutdown_request, controlled_shutdown_response, h::controlled_shutdown>(
        "ControlledShutdown"),
    entry<elect_leaders_request, elect_leaders_response, h::elect_leaders>("ElectLeaders"),
    entry<alter_partition_reassignments_request, alter_partition_reassignments_response,
          h::alter_partition_reassignments>("AlterPartitionReassignments"),
    entry<list_partition_reassignments_request, list_partition_reassignments_response,
          h::list_partition_reassignments>("ListPartitionReassignments"),
    entry<join_group_request, join_group_response, h::join_group>("JoinGroup"),
    entry<sync_group_request, sync_group_response, h::sync_group>("SyncGroup"),
    entry<heartbeat_request, heartbeat_response, h::heartbeat>("Heartbeat"),
    entry<leave_group_request, leave_group_response, h::leave_group>("LeaveGroup"),
    entry<offset_commit_request, offset_commit_response, h::offset_commit>("OffsetCommit"),
    entry<offset_fetch_request, offset_fetch_response, h::offset_fetch>("OffsetFetch"),
    entry<list_groups_request, list_groups_response, h::list_groups>("ListGroups"),
    entry<describe_groups_request, describe_groups_response, h::describe_groups>(
        "DescribeGroups"),
    entry<delete_groups_request, delete_groups_response, h::delete_groups>("DeleteGroups"),
    entry<offset_delete_request, offset_delete_response, h::offset_delete>("OffsetDelete"),
    entry<write_txn_markers_request, write_txn_markers_response, h::write_txn_markers>(
        "WriteTxnMarkers"),
    entry<txn_offset_commit_request, txn_offset_commit_response, h::txn_offset_commit>(
        "TxnOffsetCommit"),
    entry<add_partitions_to_txn_request, add_partitions_to_txn_response,
          h::add_partitions_to_txn>("AddPartitionsToTxn"),
    entry<add_offsets_to_txn_request, add_offsets_to_txn_response, h::add_offsets_to_txn>(
        "AddOffsetsToTxn"),
    entry<end_txn_request, end_txn_response, h::end_txn>("EndTxn"),
    entry<list_transactions_request, list_transactions_response, h::list_transactions>(
        "ListTransactions"),
    entry<describe_transactions_request, describe_transactions_response,
          h::describe_transactions>("DescribeTransactions"),
    entry<describe_producers_request, describe_producers_response, h::describe_producers>(
        "DescribeProducers"),
};

const api_entry* find_api(int16_t key) {
  for (const auto& e : kApis) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

// Request count and latency (decode to encoded response) on the calling shard's probe.
void record_request(broker& b, int16_t api_key, std::chrono::steady_clock::time_point started) {
  if (metrics::shard_probe* p = b.probe()) {
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
    p->record_request(api_key, took.count());
  }
}

int16_t read_int16(std::span<const uint8_t> b, size_t at) {
  return static_cast<int16_t>((uint16_t{b[at]} << 8) | b[at + 1]);
}
}  // namespace

std::span<const api_entry> api_table() { return kApis; }

asio::awaitable<handler_result> dispatch(broker& b, const net::connection_info& conn,
                                         net::request_frame frame) {
  const auto bytes = frame.bytes();
  if (bytes.size() < 8) {
    VLOG_WARN(kLog) << "request frame of " << bytes.size() << " bytes from " << conn.peer
                    << " is shorter than a request header; closing the connection";
    co_return close_connection();
  }
  const int16_t api_key = read_int16(bytes, 0);
  const int16_t version = read_int16(bytes, 2);
  const api_entry* api = find_api(api_key);
  if (!api) {
    VLOG_WARN(kLog) << "unknown api key " << api_key << " from " << conn.peer
                    << "; closing the connection";
    co_return close_connection();
  }
  protocol::reader r(bytes, frame.owner);
  protocol::request_header header;
  const bool version_ok = version >= api->min_version && version <= api->max_version;
  if (!version_ok && api_key == protocol::api_versions_request::api_key) {
    // KIP-511: a client newer than us asks with a version we do not know. Answer at v0 with
    // UNSUPPORTED_VERSION and our ranges so it can pick a version we both speak.
    header.decode(r, protocol::request_header_version(api_key, 0));
    if (!r.ok()) co_return close_connection();
    protocol::api_versions_response resp;
    resp.error_code = protocol::to_wire(protocol::error_code::unsupported_version);
    for (const auto& e : kApis) {
      protocol::api_versions_response::api_version v;
      v.api_key = e.key;
      v.min_version = e.min_version;
      v.max_version = e.max_version;
      resp.api_keys.push_back(v);
    }
    co_return encode_response(header, 0, resp);
  }
  if (!version_ok) {
    VLOG_WARN(kLog) << api->name << " v" << version << " from " << conn.peer
                    << " is outside the supported range " << api->min_version << "-"
                    << api->max_version << "; closing the connection";
    co_return close_connection();
  }
  if (!header.decode(r, protocol::request_header_version(api_key, version)) || !r.ok()) {
    VLOG_WARN(kLog) << "malformed request header from " << conn.peer
                    << "; closing the connection";
    co_return close_connection();
  }
  request_context ctx{b, conn, header, version, std::move(frame), api->name};
  try {
    const auto started = std::chrono::steady_clock::now();
    auto op = api->run(ctx, r);  // named awaitable (GCC 12, see broker::with_controller)
    auto result = co_await std::move(op);
    record_request(b, api_key, started);
    co_return result;
  } catch (const std::exception& e) {
    // A handler bug must not take the broker down; the client sees a closed connection.
    VLOG_ERROR(kLog) << api->name << " v" << version << " from " << conn.peer
                     << " failed: " << e.what();
    co_return close_connection();
  }
}

}  // namespace varve::server
