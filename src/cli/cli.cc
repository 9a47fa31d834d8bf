#include "cli/cli.h"

#include <cstring>
#include <vector>

#include "cli/commands.h"

namespace varve::cli {
namespace {

struct command_def {
  const char* group;  // "topic", or the command itself for produce/consume
  const char* name;   // sub-command, "" when the group is the command
  option_spec spec;
  int (*fn)(context&);
  const char* usage;
};

const std::vector<command_def>& commands() {
  static const std::vector<command_def> table = {
      {"topic", "create", {{"--if-not-exists"}, {"--partitions", "--replication-factor", "--config"}},
       topic_create, "topic create NAME [--partitions N] [--replication-factor N] [--config k=v]..."},
      {"topic", "list", {{"--exclude-internal"}, {}}, topic_list, "topic list [--exclude-internal]"},
      {"topic", "describe", {{}, {}}, topic_describe, "topic describe NAME"},
      {"topic", "alter-config", {{}, {"--set", "--delete"}}, topic_alter_config,
       "topic alter-config NAME [--set k=v]... [--delete k]..."},
      {"topic", "add-partitions", {{}, {"--total"}}, topic_add_partitions,
       "topic add-partitions NAME --total N"},
      {"topic", "delete", {{}, {}}, topic_delete, "topic delete NAME"},
      {"group", "list", {{}, {}}, group_list, "group list"},
      {"group", "describe", {{}, {}}, group_describe, "group describe GROUP"},
      {"group", "reset-offsets",
       {{"--to-earliest", "--to-latest", "--execute", "--dry-run"},
        {"--topic", "--to-datetime", "--shift-by", "--to-offset"}},
       group_reset_offsets,
       "group reset-offsets GROUP --topic T[:P,P...] (--to-earliest|--to-latest|--to-offset N|"
       "--to-datetime ISO|--shift-by N) [--execute]"},
      {"group", "delete", {{}, {}}, group_delete, "group delete GROUP"},
      {"cluster", "info", {{}, {}}, cluster_info, "cluster info"},
      {"cluster", "brokers", {{}, {}}, cluster_brokers, "cluster brokers"},
      {"config", "describe", {{}, {"--topic", "--broker"}}, config_describe,
       "config describe (--topic T|--broker ID)"},
      {"config", "alter", {{}, {"--topic", "--broker", "--set", "--delete"}}, config_alter,
       "config alter (--topic T|--broker ID) [--set k=v]... [--delete k]..."},
      {"produce", "",
       {{"--idempotent"},
        {"--acks", "--key-separator", "--header", "--partition", "--compression",
         "--transactional-id", "--property"}},
       produce_command,
       "produce TOPIC [--acks all|1|0] [--idempotent] [--transactional-id ID] "
       "[--key-separator SEP] [--header k=v]... [--partition N] [--compression codec] "
       "[--property k=v]...   (one record per stdin line)"},
      {"consume", "",
       {{"--from-beginning", "--no-commit"},
        {"--group", "--offset", "--partition", "--max-messages", "--isolation-level", "--format",
         "--idle-timeout-ms", "--property"}},
       consume_command,
       "consume TOPIC [--group G] [--from-beginning|--offset N] [--partition N] "
       "[--max-messages N] [--isolation-level read_committed|read_uncommitted] "
       "[--format FMT] [--idle-timeout-ms N] [--property k=v]..."},
      {"perf", "produce",
       {{}, {"--topic", "--num-records", "--record-size", "--acks", "--throughput",
             "--compression", "--property", "--reporting-interval-ms"}},
       perf_produce,
       "perf produce --topic T --num-records N --record-size S [--acks all|1|0] "
       "[--throughput RECORDS_PER_SEC] [--compression codec] [--property k=v]..."},
      {"perf", "consume",
       {{"--from-latest"}, {"--topic", "--messages", "--group", "--property", "--idle-timeout-ms"}},
       perf_consume, "perf consume --topic T --messages N [--group G] [--idle-timeout-ms N]"},
  };
  return table;
}

int print_usage(std::ostream& out, int code) {
  out << "usage: varve broker FILE [--override key=value]...\n"
         "       varve COMMAND [options] [--bootstrap-server host:port] [--output json]\n"
         "commands:\n";
  for (const auto& c : commands()) out << "  varve " << c.usage << "\n";
  out << "global options: --bootstrap-server host:port (default 127.0.0.1:9092), "
         "--output table|json, --timeout-ms N\n";
  return code;
}

}  // namespace

int fail(const std::string& message) {
  std::cerr << "varve: error: " << message << "\n";
  return 1;
}

int usage_error(const std::string& message) {
  std::cerr << "varve: " << message << "\n";
  return 2;
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << "\n"; }

std::string config_source_name(int8_t source) {
  switch (source) {
    case 1: return "DYNAMIC_TOPIC_CONFIG";
    case 2: return "DYNAMIC_BROKER_CONFIG";
    case 3: return "DYNAMIC_DEFAULT_BROKER_CONFIG";
    case 4: return "STATIC_BROKER_CONFIG";
    case 5: return "DEFAULT_CONFIG";
    case 6: return "DYNAMIC_BROKER_LOGGER_CONFIG";
    case 7: return "CLIENT_METRICS_CONFIG";
    case 8: return "GROUP_CONFIG";
    default: return "UNKNOWN";
  }
}

std::unique_ptr<admin_client> context::connect() const {
  std::string error;
  auto c = admin_client::connect(bootstrap, timeout_ms, &error);
  if (!c) fail(error);
  return c;
}

int run(int argc, char** argv) {
  if (argc < 2) return print_usage(std::cerr, 2);
  const std::string group = argv[1];
  if (group == "help" || group == "--help" || group == "-h") return print_usage(std::cout, 0);
  const std::string sub = argc >= 3 ? argv[2] : "";
  const command_def* found = nullptr;
  bool group_known = false;
  for (const auto& c : commands()) {
    if (group != c.group) continue;
    group_known = true;
    if (std::strlen(c.name) == 0 || sub == c.name) {
      found = &c;
      break;
    }
  }
  if (!found) {
    if (!group_known) return usage_error("unknown command '" + group + "'; see `varve help`");
    std::cerr << "varve: unknown or missing sub-command for '" << group << "'\n";
    for (const auto& c : commands())
      if (group == c.group) std::cerr << "  varve " << c.usage << "\n";
    return 2;
  }
  const int first = std::strlen(found->name) == 0 ? 2 : 3;
  context ctx;
  std::string error;
  for (int i = first; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::cout << "usage: varve " << found->usage << "\n";
      return 0;
    }
  }
  if (!parse_args(argc, argv, first, found->spec, &ctx.args, &error))
    return usage_error(error + "\nusage: varve " + found->usage);
  ctx.bootstrap = ctx.args.get_or("--bootstrap-server", ctx.bootstrap);
  const std::string output = ctx.args.get_or("--output", "table");
  if (output != "table" && output != "json")
    return usage_error("--output must be table or json, not '" + output + "'");
  ctx.json = output == "json";
  if (auto t = ctx.args.get("--timeout-ms")) {
    int32_t v = 0;
    if (!parse_int32(*t, &v) || v <= 0) return usage_error("--timeout-ms must be a positive integer");
    ctx.timeout_ms = v;
  }
  return found->fn(ctx);
}

}  // namespace varve::cli
