#include "cli/rdkafka_util.h"

#include <chrono>
#include <csignal>

namespace varve::cli {

std::atomic<bool> g_stop{false};

namespace {
void on_signal(int) { g_stop.store(true); }
}  // namespace

void install_stop_handlers() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool conf_set(rd_kafka_conf_t* conf, const std::string& key, const std::string& value, std::string* error) {
  char err[512];
  if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
    *error = "librdkafka setting " + key + "=" + value + ": " + err;
    return false;
  }
  return true;
}

rd_kafka_conf_t* make_conf(const context& ctx, const std::vector<std::pair<std::string, std::string>>& settings) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::string error;
  std::vector<std::pair<std::string, std::string>> all = {{"bootstrap.servers", ctx.bootstrap},
                                                          {"client.id", "varve-cli"}};
  all.insert(all.end(), settings.begin(), settings.end());
  for (const auto& kv : ctx.args.all("--property")) {
    std::string k, v;
    if (!split_key_value(kv, &k, &v)) {
      rd_kafka_conf_destroy(conf);
      usage_error("--property expects key=value, got '" + kv + "'");
      return nullptr;
    }
    all.emplace_back(k, v);
  }
  for (const auto& [k, v] : all) {
    if (!conf_set(conf, k, v, &error)) {
      rd_kafka_conf_destroy(conf);
      fail(error);
      return nullptr;
    }
  }
  return conf;
}

int32_t partition_count(rd_kafka_t* rk, const std::string& topic, int timeout_ms, std::string* error) {
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
  rd_kafka_topic_destroy(t);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *error = "metadata for " + topic + ": " + rd_kafka_err2str(err);
    return -1;
  }
  int32_t n = -1;
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (topic != md->topics[i].topic) continue;
    if (md->topics[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      *error = "topic " + topic + ": " + rd_kafka_err2name(md->topics[i].err) + " (" +
               rd_kafka_err2str(md->topics[i].err) + ")";
    } else {
      n = md->topics[i].partition_cnt;
    }
  }
  rd_kafka_metadata_destroy(md);
  if (n < 0 && error->empty()) *error = "topic " + topic + " not in metadata";
  return n;
}

}  // namespace varve::cli
