#pragma once
// Shared pieces of the CLI commands (internal to src/cli).
#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/admin_client.h"
#include "protocol/error_code.h"
#include "cli/args.h"

namespace varve::cli {

// What every command receives: its parsed arguments and the global options.
struct context {
  parsed_args args;
  bool json = false;                         // --output json
  std::string bootstrap = "127.0.0.1:9092";  // --bootstrap-server
  int timeout_ms = 30000;                    // --timeout-ms (admin requests)

  // Connects an admin client, or prints why not and returns nullptr.
  std::unique_ptr<admin_client> connect() const;
};

// Prints "varve: error: MSG" on stderr and returns exit code 1.
int fail(const std::string& message);
// Prints "varve: MSG" on stderr and returns exit code 2 (bad usage).
int usage_error(const std::string& message);
// Prints a JSON value (indented) on stdout.
void print_json(const nlohmann::json& j);

// Kafka's ConfigSource names (DescribeConfigs config_source).
std::string config_source_name(int8_t source);

// Each command: returns the exit code.
int topic_create(context& ctx);
int topic_list(context& ctx);
int topic_describe(context& ctx);
int topic_alter_config(context& ctx);
int topic_add_partitions(context& ctx);
int topic_delete(context& ctx);
int group_list(context& ctx);
int group_describe(context& ctx);
int group_reset_offsets(context& ctx);
int group_delete(context& ctx);
int cluster_info(context& ctx);
int cluster_brokers(context& ctx);
int config_describe(context& ctx);
int config_alter(context& ctx);
int produce_command(context& ctx);
int consume_command(context& ctx);
int perf_produce(context& ctx);
int perf_consume(context& ctx);

// Shared by `topic alter-config` and `config alter`: IncrementalAlterConfigs on one
// resource (resource_type 2 = topic, 4 = broker) with --set k=v / --delete k.
int alter_configs(context& ctx, int8_t resource_type, const std::string& resource_name);

}  // namespace varve::cli
