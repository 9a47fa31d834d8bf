// varve — the broker and the operator CLI in one binary.
//   varve broker FILE [--override key=value]...
//   varve topic|group|cluster|config|produce|consume|perf ...   (src/cli, docs/cli.md)
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "common/log.h"
#include "config/broker_config.h"
#include "server/broker.h"

namespace {
int usage() {
  std::cerr << "usage: varve broker FILE [--override key=value]...\n"
               "  Starts a broker from a Kafka server.properties file.\n";
  return 2;
}

int run_broker(int argc, char** argv) {
  if (argc < 3) return usage();
  const std::string file = argv[2];
  std::vector<std::string> overrides;
  for (int i = 3; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--override" && i + 1 < argc) {
      overrides.push_back(argv[++i]);
    } else if (arg.rfind("--override=", 0) == 0) {
      overrides.push_back(arg.substr(std::strlen("--override=")));
    } else {
      std::cerr << "varve broker: unexpected argument '" << arg << "'\n";
      return usage();
    }
  }
  std::string error;
  auto config = varve::config::broker_config::load(file, overrides, &error);
  if (!config) {
    std::cerr << "varve broker: invalid configuration: " << error << "\n";
    return 1;
  }
  varve::log::level level;
  if (varve::log::parse_level(config->log_level(), level)) varve::log::set_level(level);
  for (const auto& w : config->warnings()) VLOG_WARN("config") << w;
  config->log_summary();
  varve::server::broker broker(std::move(*config));
  if (!broker.start(&error)) {
    VLOG_ERROR("broker") << "cannot start: " << error;
    return 1;
  }
  broker.run();
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "broker") return run_broker(argc, argv);
  if (argc >= 2) return varve::cli::run(argc, argv);
  return usage();
}
