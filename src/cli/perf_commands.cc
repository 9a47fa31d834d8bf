// varve perf produce / perf consume: throughput and latency in the output format of Kafka's
// kafka-producer-perf-test and kafka-consumer-perf-test.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <random>
#include <thread>

#include "cli/perf_stats.h"
#include "cli/rdkafka_util.h"

namespace varve::cli {
namespace {

struct perf_produce_state {
  perf_stats* stats;
  std::vector<int64_t>* send_us;  // send time of record i (microseconds, steady clock)
  int64_t failed = 0;
  std::string first_error;
};

int64_t steady_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void on_perf_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* s = static_cast<perf_produce_state*>(opaque);
  if (m->err) {
    ++s->failed;
    if (s->first_error.empty())
      s->first_error = std::string(rd_kafka_err2name(m->err)) + ": " + rd_kafka_err2str(m->err);
    return;
  }
  const size_t index = reinterpret_cast<uintptr_t>(m->_private);
  const int64_t latency_us = steady_us() - (*s->send_us)[index];
  s->stats->record(latency_us, m->len);
}

std::string format_time(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  char out[80];
  std::snprintf(out, sizeof out, "%s:%03d", buf, static_cast<int>(ms % 1000));
  return out;
}

}  // namespace

int perf_produce(context& ctx) {
  auto topic = ctx.args.get("--topic");
  int64_t num_records = 0, record_size = 0, throughput = -1, interval_ms = 5000;
  if (!topic) return usage_error("perf produce needs --topic T");
  if (!parse_int64(ctx.args.get_or("--num-records", ""), &num_records) || num_records <= 0)
    return usage_error("perf produce needs --num-records N (positive)");
  if (!parse_int64(ctx.args.get_or("--record-size", ""), &record_size) || record_size < 0 || record_size > (64 << 20))
    return usage_error("perf produce needs --record-size S (bytes, 0..64 MiB)");
  if (auto t = ctx.args.get("--throughput"); t && !parse_int64(*t, &throughput))
    return usage_error("--throughput must be an integer (records/sec, -1 = unlimited)");
  if (auto t = ctx.args.get("--reporting-interval-ms"); t && (!parse_int64(*t, &interval_ms) || interval_ms <= 0))
    return usage_error("--reporting-interval-ms must be positive");
  const std::string acks = ctx.args.get_or("--acks", "all");
  if (acks != "all" && acks != "-1" && acks != "1" && acks != "0") return usage_error("--acks must be all, 1 or 0");
  std::vector<std::pair<std::string, std::string>> settings = {{"acks", acks == "-1" ? "all" : acks},
                                                               {"linger.ms", "5"}};
  if (auto c = ctx.args.get("--compression")) settings.emplace_back("compression.codec", *c);
  rd_kafka_conf_t* conf = make_conf(ctx, settings);
  if (!conf) return 1;

  perf_stats stats(num_records);
  std::vector<int64_t> send_us(static_cast<size_t>(num_records));
  perf_produce_state state{&stats, &send_us, 0, {}};
  rd_kafka_conf_set_opaque(conf, &state);
  rd_kafka_conf_set_dr_msg_cb(conf, on_perf_delivery);
  char err[512];
  rd_kafka_ptr rk(rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err));
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return fail(std::string("cannot create producer: ") + err);
  }
  install_stop_handlers();
  // Random upper-case payload, as Kafka's tool generates by default.
  std::string payload(static_cast<size_t>(record_size), 'A');
  std::mt19937 rng(42);
  for (auto& c : payload) c = static_cast<char>('A' + rng() % 26);

  const int64_t start_us = steady_us();
  int64_t window_start_us = start_us;
  perf_stats::window last = stats.snapshot();
  int64_t sent = 0;
  for (; sent < num_records && !g_stop.load(); ++sent) {
    if (throughput > 0) {
      const int64_t due_us = start_us + sent * 1000000 / throughput;
      while (steady_us() < due_us) rd_kafka_poll(rk.get(), 1);
    }
    send_us[static_cast<size_t>(sent)] = steady_us();
    for (;;) {
      rd_kafka_resp_err_t e = rd_kafka_producev(
          rk.get(), RD_KAFKA_V_TOPIC(topic->c_str()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_VALUE(payload.data(), payload.size()),
          RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<uintptr_t>(sent))), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return fail("produce to " + *topic + ": " + rd_kafka_err2name(e) + " (" + rd_kafka_err2str(e) + ")");
      rd_kafka_poll(rk.get(), 10);
    }
    rd_kafka_poll(rk.get(), 0);
    const int64_t now = steady_us();
    if (!ctx.json && now - window_start_us >= interval_ms * 1000) {
      perf_stats::window w = stats.snapshot();
      std::cout << format_window(w, last, now - window_start_us) << "\n" << std::flush;
      last = w;
      window_start_us = now;
    }
  }
  rd_kafka_flush(rk.get(), std::max(ctx.timeout_ms, 60000));
  const int64_t elapsed_us = steady_us() - start_us;
  const perf_summary s = stats.summary(elapsed_us);
  if (ctx.json) {
    print_json({{"records_sent", s.records},
                {"records_per_sec", s.records_per_sec},
                {"mb_per_sec", s.mb_per_sec},
                {"avg_latency_ms", s.avg_latency_ms},
                {"max_latency_ms", s.max_latency_ms},
                {"p50_ms", s.p50_ms},
                {"p95_ms", s.p95_ms},
                {"p99_ms", s.p99_ms},
                {"p999_ms", s.p999_ms},
                {"failed", state.failed + (sent - s.records - state.failed)}});
  } else {
    std::cout << format_summary(s) << "\n";
  }
  const int64_t lost = sent - s.records;
  if (lost > 0)
    return fail(std::to_string(lost) + " of " + std::to_string(sent) + " records not acknowledged" +
                (state.first_error.empty() ? "" : ": " + state.first_error));
  return 0;
}

int perf_consume(context& ctx) {
  auto topic = ctx.args.get("--topic");
  int64_t messages = 0, idle_ms = 10000;
  if (!topic) return usage_error("perf consume needs --topic T");
  if (!parse_int64(ctx.args.get_or("--messages", ""), &messages) || messages <= 0)
    return usage_error("perf consume needs --messages N (positive)");
  if (auto t = ctx.args.get("--idle-timeout-ms"); t && (!parse_int64(*t, &idle_ms) || idle_ms <= 0))
    return usage_error("--idle-timeout-ms must be positive");
  std::mt19937_64 rng(std::random_device{}());
  const std::string group = ctx.args.get_or("--group", "perf-consumer-" + std::to_string(rng() % 100000));
  rd_kafka_conf_t* conf = make_conf(
      ctx, {{"group.id", group},
            {"enable.auto.commit", "false"},
            {"auto.offset.reset", ctx.args.has("--from-latest") ? "latest" : "earliest"}});
  if (!conf) return 1;
  char err[512];
  rd_kafka_ptr rk(rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err));
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return fail(std::string("cannot create consumer: ") + err);
  }
  rd_kafka_poll_set_consumer(rk.get());
  install_stop_handlers();
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic->c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t se = rd_kafka_subscribe(rk.get(), list);
  rd_kafka_topic_partition_list_destroy(list);
  if (se) return fail(std::string("subscribe: ") + rd_kafka_err2str(se));

  const int64_t start_ms = now_ms();
  int64_t first_ms = -1, last_ms = start_ms, count = 0, bytes = 0;
  while (count < messages && !g_stop.load()) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 100);
    if (!m) {
      if (now_ms() - last_ms >= idle_ms) break;
      continue;
    }
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        std::cerr << "varve: consume error: " << rd_kafka_err2name(m->err) << ": " << rd_kafka_message_errstr(m) << "\n";
      rd_kafka_message_destroy(m);
      continue;
    }
    last_ms = now_ms();
    if (first_ms < 0) first_ms = last_ms;
    ++count;
    bytes += static_cast<int64_t>(m->len + m->key_len);
    rd_kafka_message_destroy(m);
  }
  const int64_t end_ms = now_ms();
  rd_kafka_consumer_close(rk.get());
  if (count < messages)
    std::cerr << "WARNING: Exiting before consuming the expected number of messages: consumed " << count << " of "
              << messages << " (idle timeout " << idle_ms << " ms)\n";
  const double mb = static_cast<double>(bytes) / (1024.0 * 1024.0);
  const double secs = std::max(1, static_cast<int>(end_ms - start_ms)) / 1000.0;
  const int64_t rebalance_ms = first_ms < 0 ? 0 : first_ms - start_ms;
  const double fetch_secs = std::max<int64_t>(1, end_ms - start_ms - rebalance_ms) / 1000.0;
  if (ctx.json) {
    print_json({{"start_time", format_time(start_ms)}, {"end_time", format_time(end_ms)},
                {"data_consumed_mb", mb},            {"mb_per_sec", mb / secs},
                {"messages", count},                 {"messages_per_sec", count / secs},
                {"rebalance_time_ms", rebalance_ms}, {"fetch_time_ms", end_ms - start_ms - rebalance_ms},
                {"fetch_mb_per_sec", mb / fetch_secs}, {"fetch_messages_per_sec", count / fetch_secs}});
  } else {
    std::printf("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
                "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n");
    std::printf("%s, %s, %.4f, %.4f, %lld, %.4f, %lld, %lld, %.4f, %.4f\n", format_time(start_ms).c_str(),
                format_time(end_ms).c_str(), mb, mb / secs, static_cast<long long>(count), count / secs,
                static_cast<long long>(rebalance_ms), static_cast<long long>(end_ms - start_ms - rebalance_ms),
                mb / fetch_secs, count / fetch_secs);
  }
  return count > 0 ? 0 : fail("no messages consumed from " + *topic);
}

}  // namespace varve::cli
