// varve-loadgen: the benchmark's load generator, on librdkafka's C API so that the client
// costs little CPU next to the broker it measures. One binary, one mode per run:
//
//   create    CreateTopics (partitions, RF, topic configs), then waits for every leader.
//   produce   N records of S bytes as fast as the broker takes them (or at --throughput);
//             reports records/s, MB/s and send→ack latency percentiles, like Kafka's
//             kafka-producer-perf-test.
//   consume   reads N records from the beginning of every partition (no consumer group);
//             reports records/s and MB/s.
//   e2e       produces at a fixed rate and consumes in the same process; reports
//             produce→consume latency percentiles.
//   probe     W6: retries until one produce is acknowledged; reports the time since a
//             given wall-clock instant (the broker's start).
//   loopback  the machine's loopback TCP bandwidth (no broker involved).
//
// Every mode prints one human-readable line and one machine-readable line
// "RESULT mode=<mode> key=value ..." that bench/run.sh parses. Exit status is non-zero when
// the workload did not complete (a delivery error, a timeout, fewer records than asked).
//
// Thread-safety: produce/consume/probe are single-threaded; e2e runs the consumer on a
// second thread that shares only atomics and its own latency vector (joined before use).

#include <librdkafka/rdkafka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
      .count();
}

int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "loadgen: %s\n", msg.c_str());
  std::exit(2);
}

// --key value options; every option of every mode has a default below.
class options {
 public:
  options(int argc, char** argv) {
    for (int i = 2; i < argc; ++i) {
      std::string k = argv[i];
      if (k.rfind("--", 0) != 0 || i + 1 >= argc) die("bad argument: " + k);
      values_[k.substr(2)] = argv[++i];
    }
  }
  std::string str(const std::string& k, const std::string& def) const {
    auto it = values_.find(k);
    return it == values_.end() ? def : it->second;
  }
  int64_t num(const std::string& k, int64_t def) const {
    auto it = values_.find(k);
    return it == values_.end() ? def : std::stoll(it->second);
  }
  // Every "--X.Y value" with a dot in the key is passed to librdkafka as-is.
  std::vector<std::pair<std::string, std::string>> rdkafka_props() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [k, v] : values_)
      if (k.find('.') != std::string::npos) out.emplace_back(k, v);
    return out;
  }

 private:
  std::map<std::string, std::string> values_;
};

void set(rd_kafka_conf_t* conf, const std::string& k, const std::string& v) {
  char err[512];
  if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
    die("config " + k + "=" + v + ": " + err);
}

rd_kafka_conf_t* base_conf(const options& o) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  set(conf, "bootstrap.servers", o.str("brokers", "127.0.0.1:9092"));
  set(conf, "client.id", "varve-loadgen");
  set(conf, "log_level", "3");
  return conf;
}

void apply_overrides(rd_kafka_conf_t* conf, const options& o) {
  for (const auto& [k, v] : o.rdkafka_props()) set(conf, k, v);
}

rd_kafka_t* make_client(rd_kafka_type_t type, rd_kafka_conf_t* conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) die(std::string("rd_kafka_new: ") + err);
  return rk;
}

// Latency samples in microseconds; percentiles by sorting once at the end.
struct latency_summary {
  double avg_ms = 0, p50_ms = 0, p95_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
};

latency_summary summarize(std::vector<uint32_t>& us) {
  latency_summary s;
  if (us.empty()) return s;
  std::sort(us.begin(), us.end());
  double sum = 0;
  for (uint32_t v : us) sum += v;
  auto pct = [&](double p) {
    size_t i = static_cast<size_t>(p * static_cast<double>(us.size() - 1));
    return us[i] / 1000.0;
  };
  s.avg_ms = sum / static_cast<double>(us.size()) / 1000.0;
  s.p50_ms = pct(0.50);
  s.p95_ms = pct(0.95);
  s.p99_ms = pct(0.99);
  s.p999_ms = pct(0.999);
  s.max_ms = us.back() / 1000.0;
  return s;
}

std::string latency_fields(const latency_summary& s) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "avg_ms=%.3f p50_ms=%.3f p95_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f",
                s.avg_ms, s.p50_ms, s.p95_ms, s.p99_ms, s.p999_ms, s.max_ms);
  return buf;
}

int partition_count(rd_kafka_t* rk, rd_kafka_topic_t* rkt, int timeout_ms) {
  const rd_kafka_metadata_t* md = nullptr;
  int64_t deadline = now_ns() + int64_t(timeout_ms) * 1000000;
  while (now_ns() < deadline) {
    if (rd_kafka_metadata(rk, 0, rkt, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      int n = 0;
      bool leaders = md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR;
      if (leaders) {
        n = md->topics[0].partition_cnt;
        for (int i = 0; i < n; ++i)
          if (md->topics[0].partitions[i].leader < 0) leaders = false;
      }
      rd_kafka_metadata_destroy(md);
      if (leaders && n > 0) return n;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  die(std::string("no leaders for topic ") + rd_kafka_topic_name(rkt));
}

// ---------------------------------------------------------------------------------- create

int run_create(const options& o) {
  std::string topic = o.str("topic", "bench");
  rd_kafka_conf_t* conf = base_conf(o);
  rd_kafka_t* rk = make_client(RD_KAFKA_PRODUCER, conf);
  char err[512];
  rd_kafka_NewTopic_t* nt =
      rd_kafka_NewTopic_new(topic.c_str(), static_cast<int>(o.num("partitions", 6)),
                            static_cast<int>(o.num("replication-factor", 1)), err, sizeof err);
  if (!nt) die(err);
  // --config a=b,c=d
  std::string cfgs = o.str("config", "");
  size_t pos = 0;
  while (pos < cfgs.size()) {
    size_t comma = cfgs.find(',', pos);
    std::string kv = cfgs.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t eq = kv.find('=');
    if (eq == std::string::npos) die("bad --config entry: " + kv);
    rd_kafka_NewTopic_set_config(nt, kv.substr(0, eq).c_str(), kv.substr(eq + 1).c_str());
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_AdminOptions_t* ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(ao, 30000, err, sizeof err);
  rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 60000);
  if (!ev) die("CreateTopics: no answer");
  if (rd_kafka_event_error(ev)) die(std::string("CreateTopics: ") + rd_kafka_event_error_string(ev));
  size_t n = 0;
  const rd_kafka_topic_result_t** res =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
  for (size_t i = 0; i < n; ++i) {
    rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
      die(std::string("CreateTopics ") + topic + ": " + rd_kafka_err2str(e));
  }
  rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(ao);
  rd_kafka_NewTopic_destroy(nt);
  rd_kafka_queue_destroy(q);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  int parts = partition_count(rk, rkt, 60000);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  std::printf("created %s with %d partitions\nRESULT mode=create partitions=%d\n", topic.c_str(),
              parts, parts);
  return 0;
}

// --------------------------------------------------------------------------------- produce

struct produce_state {
  int64_t start_ns = 0;
  std::vector<uint32_t> latencies_us;
  int64_t delivered = 0;
  int64_t failed = 0;
  rd_kafka_resp_err_t first_error = RD_KAFKA_RESP_ERR_NO_ERROR;
};

// The message opaque carries the send time (ns since start_ns) so the report needs no
// per-message allocation.
void produce_dr(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* st = static_cast<produce_state*>(opaque);
  if (m->err) {
    if (st->failed++ == 0) st->first_error = m->err;
    return;
  }
  int64_t sent = reinterpret_cast<intptr_t>(m->_private);
  int64_t lat = now_ns() - st->start_ns - sent;
  st->latencies_us.push_back(static_cast<uint32_t>(std::max<int64_t>(lat / 1000, 0)));
  ++st->delivered;
}

int run_produce(const options& o) {
  const std::string topic = o.str("topic", "bench");
  const int64_t records = o.num("records", 100000);
  const int64_t size = o.num("record-size", 1024);
  const int64_t throughput = o.num("throughput", -1);  // records/s; -1: unlimited

  produce_state st;
  st.latencies_us.reserve(static_cast<size_t>(records));
  rd_kafka_conf_t* conf = base_conf(o);
  set(conf, "acks", o.str("acks", "1"));
  set(conf, "linger.ms", o.str("linger-ms", "5"));
  set(conf, "batch.size", o.str("batch-size", "1000000"));
  set(conf, "max.in.flight.requests.per.connection", o.str("inflight", "5"));
  set(conf, "compression.codec", "none");
  set(conf, "enable.idempotence", "false");
  set(conf, "queue.buffering.max.messages", "1000000");
  set(conf, "queue.buffering.max.kbytes", "1048576");
  set(conf, "message.timeout.ms", "120000");
  apply_overrides(conf, o);
  rd_kafka_conf_set_opaque(conf, &st);
  rd_kafka_conf_set_dr_msg_cb(conf, produce_dr);
  rd_kafka_t* rk = make_client(RD_KAFKA_PRODUCER, conf);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  partition_count(rk, rkt, 60000);  // connect and learn leaders before the clock starts

  // Incompressible payload, shared by every record (librdkafka does not copy it).
  std::vector<char> payload(static_cast<size_t>(size));
  std::mt19937_64 rng(42);
  for (auto& c : payload) c = static_cast<char>(rng());

  st.start_ns = now_ns();
  const double interval_ns = throughput > 0 ? 1e9 / static_cast<double>(throughput) : 0;
  for (int64_t i = 0; i < records; ++i) {
    if (interval_ns > 0) {
      int64_t due = st.start_ns + static_cast<int64_t>(static_cast<double>(i) * interval_ns);
      while (now_ns() < due) {
        rd_kafka_poll(rk, 0);
        int64_t wait = due - now_ns();
        if (wait > 200000) std::this_thread::sleep_for(std::chrono::nanoseconds(wait - 100000));
      }
    }
    void* sent = reinterpret_cast<void*>(static_cast<intptr_t>(now_ns() - st.start_ns));
    while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, 0, payload.data(),
                            static_cast<size_t>(size), nullptr, 0, sent) == -1) {
      if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
        die(std::string("produce: ") + rd_kafka_err2str(rd_kafka_last_error()));
      rd_kafka_poll(rk, 1);
    }
    if ((i & 1023) == 0) rd_kafka_poll(rk, 0);
  }
  while (rd_kafka_outq_len(rk) > 0 && st.delivered + st.failed < records) rd_kafka_poll(rk, 50);
  const double secs = static_cast<double>(now_ns() - st.start_ns) / 1e9;
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);

  latency_summary s = summarize(st.latencies_us);
  const double rps = static_cast<double>(st.delivered) / secs;
  const double mbps = rps * static_cast<double>(size) / (1024.0 * 1024.0);
  std::printf(
      "%" PRId64 " records sent, %.1f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms "
      "max latency, %.2f ms 50th, %.2f ms 95th, %.2f ms 99th, %.2f ms 99.9th.\n",
      st.delivered, rps, mbps, s.avg_ms, s.max_ms, s.p50_ms, s.p95_ms, s.p99_ms, s.p999_ms);
  std::printf("RESULT mode=produce records=%" PRId64 " failed=%" PRId64
              " seconds=%.3f records_per_s=%.1f mb_per_s=%.2f %s\n",
              st.delivered, st.failed, secs, rps, mbps, latency_fields(s).c_str());
  if (st.failed) {
    std::fprintf(stderr, "loadgen: %" PRId64 " deliveries failed, first: %s\n", st.failed,
                 rd_kafka_err2str(st.first_error));
    return 1;
  }
  return 0;
}

// --------------------------------------------------------------------------------- consume

struct partition_consumer {
  rd_kafka_t* rk = nullptr;
  rd_kafka_topic_t* rkt = nullptr;
  rd_kafka_queue_t* queue = nullptr;
  int partitions = 0;
};

// A plain (group-less) consumer of every partition of the topic, fed into one queue.
// start(p) gives the first offset of partition p.
template <typename Start>
partition_consumer open_consumer(const options& o, const std::string& topic, Start start) {
  partition_consumer pc;
  rd_kafka_conf_t* conf = base_conf(o);
  set(conf, "enable.partition.eof", "false");
  set(conf, "queued.max.messages.kbytes", "262144");
  set(conf, "fetch.wait.max.ms", o.str("fetch-wait-ms", "500"));
  apply_overrides(conf, o);
  pc.rk = make_client(RD_KAFKA_CONSUMER, conf);
  rd_kafka_topic_conf_t* tconf = rd_kafka_topic_conf_new();
  rd_kafka_topic_conf_set(tconf, "auto.offset.reset", "earliest", nullptr, 0);
  pc.rkt = rd_kafka_topic_new(pc.rk, topic.c_str(), tconf);
  pc.partitions = partition_count(pc.rk, pc.rkt, 60000);
  pc.queue = rd_kafka_queue_new(pc.rk);
  for (int p = 0; p < pc.partitions; ++p)
    if (rd_kafka_consume_start_queue(pc.rkt, p, start(pc.rk, p), pc.queue) == -1)
      die(std::string("consume_start: ") + rd_kafka_err2str(rd_kafka_last_error()));
  return pc;
}

void close_consumer(partition_consumer& pc) {
  for (int p = 0; p < pc.partitions; ++p) rd_kafka_consume_stop(pc.rkt, p);
  rd_kafka_queue_destroy(pc.queue);
  rd_kafka_topic_destroy(pc.rkt);
  rd_kafka_destroy(pc.rk);
}

int run_consume(const options& o) {
  const std::string topic = o.str("topic", "bench");
  const int64_t records = o.num("records", 100000);
  const int64_t idle_ms = o.num("idle-timeout-ms", 15000);
  int64_t start = now_ns();
  partition_consumer pc = open_consumer(
      o, topic, [](rd_kafka_t*, int) -> int64_t { return RD_KAFKA_OFFSET_BEGINNING; });
  std::vector<rd_kafka_message_t*> batch(10000);
  int64_t got = 0, bytes = 0, last = now_ns(), errors = 0;
  while (got < records) {
    // A batch call returns only when it is full or the timeout passes: never ask for more
    // than what is still due, so the last batch does not wait out the timeout.
    const size_t want = static_cast<size_t>(std::min<int64_t>(records - got, batch.size()));
    ssize_t n = rd_kafka_consume_batch_queue(pc.queue, 1000, batch.data(), want);
    if (n < 0) die("consume_batch_queue failed");
    for (ssize_t i = 0; i < n; ++i) {
      if (batch[i]->err) {
        ++errors;
      } else {
        ++got;
        bytes += static_cast<int64_t>(batch[i]->len);
      }
      rd_kafka_message_destroy(batch[i]);
    }
    if (n > 0) last = now_ns();
    else if (now_ns() - last > idle_ms * 1000000) break;
  }
  const double secs = static_cast<double>(last - start) / 1e9;
  close_consumer(pc);
  const double rps = static_cast<double>(got) / secs;
  const double mbps = static_cast<double>(bytes) / secs / (1024.0 * 1024.0);
  std::printf("%" PRId64 " records consumed (%.1f MB) in %.2f s, %.1f records/sec (%.2f MB/sec)\n",
              got, static_cast<double>(bytes) / 1048576.0, secs, rps, mbps);
  std::printf("RESULT mode=consume records=%" PRId64 " errors=%" PRId64
              " seconds=%.3f records_per_s=%.1f mb_per_s=%.2f\n",
              got, errors, secs, rps, mbps);
  return got >= records ? 0 : 1;
}

// ------------------------------------------------------------------------------------- e2e

constexpr uint64_t kE2eMagic = 0x7661727665653265ULL;  // "varvee2e"

int run_e2e(const options& o) {
  const std::string topic = o.str("topic", "bench-e2e");
  const int64_t rate = o.num("rate", 1000);
  const int64_t seconds = o.num("seconds", 20);
  const int64_t warmup_s = o.num("warmup-seconds", 2);
  const int64_t size = std::max<int64_t>(o.num("record-size", 1024), 24);
  const int64_t records = rate * seconds;
  const uint64_t run_id = static_cast<uint64_t>(wall_ns());

  // Consumer first, positioned at the current end of every partition.
  partition_consumer pc = open_consumer(o, topic, [&topic](rd_kafka_t* rk, int p) -> int64_t {
    // Right after CreateTopics a broker may not answer ListOffsets for a while yet.
    int64_t lo = 0, hi = 0;
    for (int attempt = 0;; ++attempt) {
      rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &lo, &hi, 5000);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return hi;
      if (attempt == 100) die(std::string("query_watermark_offsets: ") + rd_kafka_err2str(e));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });

  std::atomic<bool> done{false};
  std::atomic<int64_t> received{0};
  std::vector<uint32_t> e2e_us;
  e2e_us.reserve(static_cast<size_t>(records));
  std::thread consumer([&] {
    // One message per call: a batch call would hold messages until the batch is full.
    while (!done.load()) {
      rd_kafka_message_t* m = rd_kafka_consume_queue(pc.queue, 100);
      if (!m) continue;
      int64_t t = now_ns();
      {
        uint64_t hdr[3];
        if (!m->err && m->len >= sizeof hdr) {
          std::memcpy(hdr, m->payload, sizeof hdr);
          if (hdr[0] == kE2eMagic && hdr[1] == run_id) {
            int64_t sent = static_cast<int64_t>(hdr[2]);
            if (sent >= 0) e2e_us.push_back(static_cast<uint32_t>((t - sent) / 1000));
            received.fetch_add(1);
          }
        }
        rd_kafka_message_destroy(m);
      }
    }
  });

  produce_state st;
  rd_kafka_conf_t* conf = base_conf(o);
  set(conf, "acks", o.str("acks", "all"));
  set(conf, "linger.ms", o.str("linger-ms", "0"));
  set(conf, "compression.codec", "none");
  set(conf, "enable.idempotence", "false");
  apply_overrides(conf, o);
  rd_kafka_conf_set_opaque(conf, &st);
  rd_kafka_conf_set_dr_msg_cb(conf, produce_dr);
  rd_kafka_t* rk = make_client(RD_KAFKA_PRODUCER, conf);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  partition_count(rk, rkt, 60000);

  std::vector<char> payload(static_cast<size_t>(size));
  std::mt19937_64 rng(7);
  for (auto& c : payload) c = static_cast<char>(rng());
  const int64_t warmup = rate * warmup_s;
  st.start_ns = now_ns();
  const double interval_ns = 1e9 / static_cast<double>(rate);
  for (int64_t i = 0; i < warmup + records; ++i) {
    int64_t due = st.start_ns + static_cast<int64_t>(static_cast<double>(i) * interval_ns);
    for (int64_t w; (w = due - now_ns()) > 0;) {
      rd_kafka_poll(rk, 0);
      if (w > 200000) std::this_thread::sleep_for(std::chrono::nanoseconds(w - 100000));
    }
    int64_t t = now_ns();
    // Warm-up records carry -1 and are not counted by the consumer's histogram.
    uint64_t hdr[3] = {kE2eMagic, run_id, i < warmup ? ~uint64_t{0} : static_cast<uint64_t>(t)};
    std::memcpy(payload.data(), hdr, sizeof hdr);
    if (i == warmup) st.latencies_us.clear();
    void* sent = reinterpret_cast<void*>(static_cast<intptr_t>(t - st.start_ns));
    while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, payload.data(),
                            static_cast<size_t>(size), nullptr, 0, sent) == -1)
      rd_kafka_poll(rk, 1);
    rd_kafka_poll(rk, 0);
  }
  rd_kafka_flush(rk, 30000);
  const double secs = static_cast<double>(now_ns() - st.start_ns) / 1e9;
  int64_t deadline = now_ns() + 30'000'000'000LL;
  while (received.load() < warmup + records && now_ns() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  done = true;
  consumer.join();
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  close_consumer(pc);

  const int64_t got = static_cast<int64_t>(e2e_us.size());
  latency_summary e = summarize(e2e_us);
  latency_summary a = summarize(st.latencies_us);
  std::printf("%" PRId64 " records at %" PRId64
              " records/sec: end-to-end %.2f ms avg, %.2f ms 50th, %.2f ms 99th, %.2f ms 99.9th, "
              "%.2f ms max; produce ack %.2f ms 50th, %.2f ms 99th\n",
              got, rate, e.avg_ms, e.p50_ms, e.p99_ms, e.p999_ms, e.max_ms, a.p50_ms, a.p99_ms);
  std::printf("RESULT mode=e2e records=%" PRId64 " failed=%" PRId64
              " seconds=%.3f rate=%" PRId64 " %s ack_p50_ms=%.3f ack_p99_ms=%.3f\n",
              got, st.failed, secs, rate, latency_fields(e).c_str(), a.p50_ms, a.p99_ms);
  return (got >= records && st.failed == 0) ? 0 : 1;
}

// ----------------------------------------------------------------------------------- probe

bool port_open(const std::string& brokers) {
  std::string hp = brokers.substr(0, brokers.find(','));
  size_t colon = hp.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(hp.substr(colon + 1))));
  std::string host = hp.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) die("probe needs an IPv4 address");
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

int run_probe(const options& o) {
  const int64_t since = o.num("since-wall-ns", wall_ns());
  const int64_t deadline = now_ns() + o.num("timeout-s", 120) * 1000000000LL;
  const std::string brokers = o.str("brokers", "127.0.0.1:9092");
  while (!port_open(brokers)) {
    if (now_ns() > deadline) die("probe: broker never listened");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  const int64_t listening = wall_ns();
  produce_state st;
  rd_kafka_conf_t* conf = base_conf(o);
  set(conf, "acks", "all");
  set(conf, "linger.ms", "0");
  set(conf, "message.timeout.ms", "120000");
  set(conf, "reconnect.backoff.ms", "5");
  set(conf, "reconnect.backoff.max.ms", "20");
  set(conf, "retry.backoff.ms", "5");
  set(conf, "topic.metadata.refresh.fast.interval.ms", "5");
  apply_overrides(conf, o);
  rd_kafka_conf_set_opaque(conf, &st);
  rd_kafka_conf_set_dr_msg_cb(conf, produce_dr);
  rd_kafka_t* rk = make_client(RD_KAFKA_PRODUCER, conf);
  std::string topic = o.str("topic", "bench-probe");
  st.start_ns = now_ns();
  char msg[] = "probe";
  if (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_VALUE(msg, sizeof msg),
                        RD_KAFKA_V_END) != RD_KAFKA_RESP_ERR_NO_ERROR)
    die("producev failed");
  while (st.delivered + st.failed == 0 && now_ns() < deadline) rd_kafka_poll(rk, 1);
  const int64_t acked = wall_ns();
  rd_kafka_destroy(rk);
  if (st.delivered != 1) die("probe: produce not acknowledged");
  std::printf("first acknowledged produce %.1f ms after start (listening after %.1f ms)\n",
              static_cast<double>(acked - since) / 1e6, static_cast<double>(listening - since) / 1e6);
  std::printf("RESULT mode=probe first_ack_ms=%.1f listening_ms=%.1f\n",
              static_cast<double>(acked - since) / 1e6, static_cast<double>(listening - since) / 1e6);
  return 0;
}

// -------------------------------------------------------------------------------- loopback

int run_loopback(const options& o) {
  const int64_t seconds = o.num("seconds", 3);
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) || listen(lfd, 1) ||
      getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len))
    die("loopback: bind/listen failed");
  std::atomic<int64_t> received{0};
  std::thread reader([&] {
    int fd = accept(lfd, nullptr, nullptr);
    std::vector<char> buf(1 << 20);
    for (ssize_t n; (n = read(fd, buf.data(), buf.size())) > 0;) received.fetch_add(n);
    close(fd);
  });
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a)) die("loopback: connect failed");
  std::vector<char> buf(1 << 20, 'x');
  int64_t start = now_ns(), end = start + seconds * 1000000000LL;
  while (now_ns() < end)
    if (write(fd, buf.data(), buf.size()) < 0) die("loopback: write failed");
  int64_t at_end = received.load();
  double secs = static_cast<double>(now_ns() - start) / 1e9;
  close(fd);
  reader.join();
  close(lfd);
  double mbps = static_cast<double>(at_end) / secs / (1024.0 * 1024.0);
  std::printf("loopback TCP: %.1f MB/sec (1 MiB writes, one connection)\n", mbps);
  std::printf("RESULT mode=loopback mb_per_s=%.1f\n", mbps);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: varve-loadgen create|produce|consume|e2e|probe|loopback [--opt value]...\n"
                 "  common:  --brokers host:port  --topic T  (--some.rdkafka.prop value)\n"
                 "  create:  --partitions P --replication-factor R --config k=v,k=v\n"
                 "  produce: --records N --record-size S --acks A --linger-ms L --batch-size B\n"
                 "           --inflight M --throughput R (-1: unlimited)\n"
                 "  consume: --records N --idle-timeout-ms T\n"
                 "  e2e:     --rate R --seconds S --warmup-seconds W --record-size S --acks A\n"
                 "  probe:   --since-wall-ns T --timeout-s S\n"
                 "  loopback: --seconds S\n");
    return 2;
  }
  std::string mode = argv[1];
  options o(argc, argv);
  if (mode == "create") return run_create(o);
  if (mode == "produce") return run_produce(o);
  if (mode == "consume") return run_consume(o);
  if (mode == "e2e") return run_e2e(o);
  if (mode == "probe") return run_probe(o);
  if (mode == "loopback") return run_loopback(o);
  die("unknown mode " + mode);
}
