// Checks the files shipped with the broker against the key table: the sample
// config/server.properties must load cleanly, and docs/configuration.md must list every key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/broker_config.h"
#include "config/config_def.h"

namespace varve::config {
namespace {

const std::filesystem::path kRepo =
    std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(config_files, shipped_server_properties_is_a_clean_single_node_config) {
  std::string error;
  auto c = broker_config::load((kRepo / "config/server.properties").string(), {}, &error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->node_id(), 0);
  EXPECT_EQ(c->log_dirs(), std::vector<std::string>{"./data"});
  EXPECT_EQ(c->listeners()[0], (listener{"PLAINTEXT", "127.0.0.1", 9092, "PLAINTEXT"}));
  EXPECT_EQ(c->num_partitions(), 1);
  EXPECT_FALSE(c->cluster_mode());
  EXPECT_EQ(c->get_int("offsets.topic.replication.factor"), 1);
  EXPECT_TRUE(c->warnings().empty()) << c->warnings().front();
}

TEST(config_files, configuration_doc_lists_every_key) {
  std::string doc = read(kRepo / "docs/configuration.md");
  ASSERT_FALSE(doc.empty());
  for (const auto* defs : {&broker_config_defs(), &topic_config_defs()})
    for (const auto& d : *defs)
      EXPECT_NE(doc.find("| `" + std::string(d.name) + "` |"), std::string::npos)
          << d.name << " is missing from docs/configuration.md";
}

}  // namespace
}  // namespace varve::config
