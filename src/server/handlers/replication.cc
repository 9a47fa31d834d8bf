// Inter-broker requests of the replication protocol (DESIGN.md §4–§5):
//   LeaderAndIsr, UpdateMetadata, StopReplica  controller → broker; applied on shard 0 (the
//                                               broker's metadata view) and then by every
//                                               shard's replica manager
//   AlterPartition, ControlledShutdown          broker → active controller
//   ElectLeaders                                admin → active controller (preferred leader)
//   Alter/ListPartitionReassignments            admin → active controller (KIP-455)
// A broker whose controller is not active answers the controller-bound requests with
// NOT_CONTROLLER, so the sender looks the controller up again.
#include "server/cluster_link.h"
#include "server/handlers/handlers.h"
#include "server/handlers/util.h"

namespace varve::server::handlers {

asio::awaitable<void> leader_and_isr(request_context& ctx, leader_and_isr_request& req,
                                     leader_and_isr_response& resp) {
  auto parts = decode_leader_and_isr(req);
  const int32_t controller_id = req.controller_id;
  const int32_t epoch = req.controller_epoch;
  broker& b = ctx.b;
  auto op = b.shards().invoke_on(0, [&b, &parts, controller_id, epoch] {
    return b.apply_leader_and_isr(controller_id, epoch, std::move(parts));
  });
  const error_code e = co_await std::move(op);
  resp.error_code = to_wire(e);
  for (const auto& t : req.topic_states) {
    auto& te = resp.topics.emplace_back();
    te.topic_id = t.topic_id;
    for (const auto& p : t.partition_states) {
      auto& pe = te.partition_errors.emplace_back();
      pe.topic_name = t.topic_name;
      pe.partition_index = p.partition_index;
      pe.error_code = to_wire(e);
      resp.partition_errors.push_back(pe);
    }
  }
}

asio::awaitable<void> update_metadata(request_context& ctx, update_metadata_request& req,
                                      update_metadata_response& resp) {
  auto snap = decode_update_metadata(req);
  const int32_t epoch = req.controller_epoch;
  broker& b = ctx.b;
  auto op = b.shards().invoke_on(0, [&b, &snap, epoch] {
    return b.apply_update_metadata(epoch, snap, false);
  });
  resp.error_code = to_wire(co_await std::move(op));
}

asio::awaitable<void> stop_replica(request_context& ctx, stop_replica_request& req,
                                   stop_replica_response& resp) {
  std::vector<std::pair<std::string, int32_t>> parts;
  bool del = req.delete_partitions;
  for (const auto& t : req.topics) {
    for (int32_t p : t.partition_indexes) parts.emplace_back(t.name, p);
  }
  for (const auto& t : req.topic_states) {
    for (const auto& p : t.partition_states) {
      parts.emplace_back(t.topic_name, p.partition_index);
      del = del || p.delete_partition;
    }
  }
  const int32_t epoch = req.controller_epoch;
  broker& b = ctx.b;
  auto op = b.shards().invoke_on(0, [&b, &parts, epoch, del] {
    return b.apply_stop_replica(epoch, parts, del);
  });
  const error_code e = co_await std::move(op);
  resp.error_code = to_wire(e);
  for (const auto& [topic, p] : parts) {
    auto& pe = resp.partition_errors.emplace_back();
    pe.topic_name = topic;
    pe.partition_index = p;
    pe.error_code = to_wire(e);
  }
}

namespace {
struct alter_item {
  std::string topic;
  int32_t partition = 0;
  int32_t leader_epoch = 0;
  int32_t partition_epoch = 0;
  std::vector<int32_t> isr;
  cluster::alter_partition_result result;
};

std::vector<alter_item> alter_items(const alter_partition_request& req) {
  std::vector<alter_item> out;
  for (const auto& t : req.topics) {
    for (const auto& p : t.partitions) {
      alter_item it;
      it.topic = t.topic_name;
      it.partition = p.partition_index;
      it.leader_epoch = p.leader_epoch;
      it.partition_epoch = p.partition_epoch;
      it.isr = p.new_isr;
      for (const auto& s : p.new_isr_with_epochs) it.isr.push_back(s.broker_id);
      out.push_back(std::move(it));
    }
  }
  return out;
}

void fill_alter(const std::vector<alter_item>& items, alter_partition_response& resp) {
  for (const auto& it : items) {
    alter_partition_response::topic_data* td = nullptr;
    for (auto& t : resp.topics) {
      if (t.topic_name == it.topic) td = &t;
    }
    if (!td) {
      td = &resp.topics.emplace_back();
      td->topic_name = it.topic;
    }
    auto& p = td->partitions.emplace_back();
    p.partition_index = it.partition;
    p.error_code = to_wire(it.result.error);
    p.leader_id = it.result.state.leader;
    p.leader_epoch = it.result.state.leader_epoch;
    p.isr = it.result.state.isr;
    p.partition_epoch = it.result.state.partition_epoch;
  }
}
}  // namespace

asio::awaitable<void> alter_partition(request_context& ctx, alter_partition_request& req,
                                      alter_partition_response& resp) {
  std::vector<alter_item> items = alter_items(req);
  const int32_t broker_id = req.broker_id;
  broker& b = ctx.b;
  auto op = b.shards().invoke_on(0, [&b, &items, broker_id] {
    cluster::controller& c = b.controller_on_loop();
    if (!c.active()) return error_code::not_controller;
    for (auto& it : items) {
      it.result = c.alter_partition(broker_id, it.topic, it.partition, it.leader_epoch,
                                    it.partition_epoch, it.isr);
    }
    return error_code::none;
  });
  const error_code e = co_await std::move(op);
  resp.error_code = to_wire(e);
  if (e == error_code::none) fill_alter(items, resp);
}

asio::awaitable<void> controlled_shutdown(request_context& ctx, controlled_shutdown_request& req,
                                          controlled_shutdown_response& resp) {
  const int32_t broker_id = req.broker_id;
  broker& b = ctx.b;
  std::vector<std::pair<std::string, int32_t>> remaining;
  auto op = b.shards().invoke_on(0, [&b, &remaining, broker_id] {
    error_code e = error_code::none;
    remaining = b.controller_on_loop().controlled_shutdown(broker_id, &e);
    return e;
  });
  resp.error_code = to_wire(co_await std::move(op));
  for (const auto& [topic, p] : remaining) {
    auto& r = resp.remaining_partitions.emplace_back();
    r.topic_name = topic;
    r.partition_index = p;
  }
}

namespace {
void fill_elect(const std::map<std::pair<std::string, int32_t>, cluster::topic_result>& results,
                elect_leaders_response& resp) {
  for (const auto& [key, r] : results) {
    elect_leaders_response::replica_election_result* er = nullptr;
    for (auto& x : resp.replica_election_results) {
      if (x.topic == key.first) er = &x;
    }
    if (!er) {
      er = &resp.replica_election_results.emplace_back();
      er->topic = key.first;
    }
    auto& pr = er->partition_result.emplace_back();
    pr.partition_id = key.second;
    pr.error_code = to_wire(r.error);
    if (!r.message.empty()) pr.error_message = r.message;
  }
}
}  // namespace

asio::awaitable<void> elect_leaders(request_context& ctx, elect_leaders_request& req,
                                    elect_leaders_response& resp) {
  std::vector<std::pair<std::string, int32_t>> wanted;
  if (req.topic_partitions) {
    for (const auto& t : *req.topic_partitions) {
      for (int32_t p : t.partitions) wanted.emplace_back(t.topic, p);
    }
  }
  if (ctx.version >= 1 && req.election_type != 0) {
    // Unclean elections on request (type 1) are not offered: they lose acknowledged data.
    resp.error_code = to_wire(error_code::invalid_request);
    co_return;
  }
  broker& b = ctx.b;
  std::map<std::pair<std::string, int32_t>, cluster::topic_result> results;
  auto op = b.shards().invoke_on(0, [&b, &wanted, &results] {
    if (!b.controller_on_loop().active()) return error_code::not_controller;
    results = b.controller_on_loop().elect_preferred(wanted);
    return error_code::none;
  });
  resp.error_code = to_wire(co_await std::move(op));
  fill_elect(results, resp);
}

}  // namespace varve::server::handlers

namespace varve::server::handlers {
namespace {
struct reassignment_item {
  std::string topic;
  int32_t partition = 0;
  std::vector<int32_t> target;  // empty: cancel
  cluster::topic_result result;
};

std::vector<reassignment_item> reassignment_items(const alter_partition_reassignments_request& req) {
  std::vector<reassignment_item> out;
  for (const auto& t : req.topics) {
    for (const auto& p : t.partitions) {
      reassignment_item it;
      it.topic = t.name;
      it.partition = p.partition_index;
      if (p.replicas) {
        it.target = *p.replicas;
        if (it.target.empty()) {
          it.result = {error_code::invalid_replica_assignment, "the target replica list is empty"};
        }
      }
      out.push_back(std::move(it));
    }
  }
  return out;
}

void fill_reassignments(const std::vector<reassignment_item>& items,
                        alter_partition_reassignments_response& resp) {
  for (const auto& it : items) {
    alter_partition_reassignments_response::reassignable_topic_response* tr = nullptr;
    for (auto& x : resp.responses) {
      if (x.name == it.topic) tr = &x;
    }
    if (!tr) {
      tr = &resp.responses.emplace_back();
      tr->name = it.topic;
    }
    auto& pr = tr->partitions.emplace_back();
    pr.partition_index = it.partition;
    pr.error_code = to_wire(it.result.error);
    if (!it.result.message.empty()) pr.error_message = it.result.message;
  }
}

void fill_ongoing(const std::vector<cluster::partition_update>& ongoing,
                  const list_partition_reassignments_request& req,
                  list_partition_reassignments_response& resp) {
  for (const auto& u : ongoing) {
    if (req.topics) {
      bool wanted = false;
      for (const auto& t : *req.topics) {
        wanted = wanted || (t.name == u.topic &&
                            std::find(t.partition_indexes.begin(), t.partition_indexes.end(),
                                      u.state.partition) != t.partition_indexes.end());
      }
      if (!wanted) continue;
    }
    list_partition_reassignments_response::ongoing_topic_reassignment* tr = nullptr;
    for (auto& x : resp.topics) {
      if (x.name == u.topic) tr = &x;
    }
    if (!tr) {
      tr = &resp.topics.emplace_back();
      tr->name = u.topic;
    }
    auto& pr = tr->partitions.emplace_back();
    pr.partition_index = u.state.partition;
    pr.replicas = u.state.replicas;
    pr.adding_replicas = u.state.adding_replicas;
    pr.removing_replicas = u.state.removing_replicas;
  }
}
}  // namespace

asio::awaitable<void> alter_partition_reassignments(request_context& ctx,
                                                    alter_partition_reassignments_request& req,
                                                    alter_partition_reassignments_response& resp) {
  std::vector<reassignment_item> items = reassignment_items(req);
  broker& b = ctx.b;
  auto op = b.shards().invoke_on(0, [&b, &items] {
    cluster::controller& c = b.controller_on_loop();
    if (!c.active()) return error_code::not_controller;
    for (auto& it : items) {
      if (it.result.error == error_code::none) it.result = c.reassign(it.topic, it.partition, it.target);
    }
    return error_code::none;
  });
  const error_code e = co_await std::move(op);
  resp.error_code = to_wire(e);
  if (e == error_code::none) fill_reassignments(items, resp);
}

asio::awaitable<void> list_partition_reassignments(request_context& ctx,
                                                   list_partition_reassignments_request& req,
                                                   list_partition_reassignments_response& resp) {
  broker& b = ctx.b;
  std::vector<cluster::partition_update> ongoing;
  auto op = b.shards().invoke_on(0, [&b, &ongoing] {
    cluster::controller& c = b.controller_on_loop();
    if (!c.active()) return error_code::not_controller;
    ongoing = c.reassignments_in_progress();
    return error_code::none;
  });
  const error_code e = co_await std::move(op);
  resp.error_code = to_wire(e);
  if (e == error_code::none) fill_ongoing(ongoing, req, resp);
}

}  // namespace varve::server::handlers
