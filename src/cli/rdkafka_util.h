#pragma once
// librdkafka helpers shared by produce, consume and perf (the CLI's data plane).
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace varve::cli {

struct rd_kafka_deleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using rd_kafka_ptr = std::unique_ptr<rd_kafka_t, rd_kafka_deleter>;

// A configuration with bootstrap.servers and client.id set, then each `--property k=v` of
// the command applied (so a user can pass any librdkafka setting). nullptr after printing
// the error when a setting is rejected.
rd_kafka_conf_t* make_conf(const context& ctx, const std::vector<std::pair<std::string, std::string>>& settings);

// Sets one property; false (and *error) when librdkafka rejects it.
bool conf_set(rd_kafka_conf_t* conf, const std::string& key, const std::string& value, std::string* error);

// Number of partitions of `topic`, or -1 (and *error).
int32_t partition_count(rd_kafka_t* rk, const std::string& topic, int timeout_ms, std::string* error);

// Set by SIGINT/SIGTERM while produce/consume run; loops stop when it is true.
extern std::atomic<bool> g_stop;
void install_stop_handlers();

int64_t now_ms();

}  // namespace varve::cli
