// varve-loadgen: the benchmark's load generator, on librdkafka's C API so that the client
// costs little CPU next to the broker it measures. One binary, one mode per run:
//
//   create    CreateTopics (partitions, RF, topic configs), then waits for every leader.
//   produce   N records of S bytes as fast as the broker takes them (or at --throughput);
//             reports records/s, MB/s and send→ack latency percentiles, like Kafka's
//             kafka-producer-perf-test. --producers N splits the records over N clients
//             (own rd_kafka_t each) that start together; the figures are their sum.
//   consume   reads N records from the beginning of every partition (no consumer group);
//             reports records/s and MB/s.
//   e2e       produces at a fixed rate and consumes in the same process; reports
//             produce→consume latency percentiles.
//   probe     W6: retries until one produce is acknowledged; reports the time since a
//             given wall-clock instant (the broker's start).
//   loopback  the machine's loopback TCP bandwidth (no broker involved).
//   scale     W7: holds N client connections (a few librdkafka producers, the rest raw
//             Kafka connections that handshake and refresh metadata), samples the broker's
//             memory, then produces at full speed over every partition for a fixed time.
//
// Every mode prints one human-readable line and one machine-readable line
// "RESULT mode=<mode> key=value ..." that bench/run.sh parses. Exit status is non-zero when
// the workload did not complete (a delivery error, a timeout, fewer records than asked).
//
// Thread-safety: consume/probe are single-threaded; produce runs each client on its own
// thread with its own state (merged after they are joined); e2e runs the consumer on a
// second thread that shares only atomics and its own latency vector (joined before use);
// scale refreshes metadata on its raw connections from a second thread that touches only
// those connections and atomics (joined before the connections are used again).

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
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
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
  // Connect before the clock starts: the timed part is CreateTopics until every leader shows.
  // With --wait-brokers N, also wait (untimed, up to 120 s) until the cluster's metadata lists
  // N brokers: a broker of a cluster that has just started may listen before it has
  // registered, and a topic of replication factor N cannot be placed until all have.
  const int wait_brokers = static_cast<int>(o.num("wait-brokers", 0));
  int brokers_seen = 0;
  for (int64_t deadline = now_ns() + 120'000'000'000LL;;) {
    const rd_kafka_metadata_t* md0 = nullptr;
    if (rd_kafka_metadata(rk, 0, nullptr, &md0, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      brokers_seen = md0->broker_cnt;
      rd_kafka_metadata_destroy(md0);
    }
    if (brokers_seen >= wait_brokers) break;
    if (now_ns() > deadline)
      die("metadata lists " + std::to_string(brokers_seen) + " brokers after 120 s, want " +
          std::to_string(wait_brokers));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const int64_t t0 = now_ns();
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
  int parts = partition_count(rk, rkt, 120000);
  const double secs = static_cast<double>(now_ns() - t0) / 1e9;
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  std::printf("created %s with %d partitions in %.3f s (CreateTopics until every leader shows)\n"
              "RESULT mode=create partitions=%d seconds=%.3f\n",
              topic.c_str(), parts, secs, parts, secs);
  return 0;
}

// --------------------------------------------------------------------------------- produce

struct produce_state {
  int64_t start_ns = 0;
  int64_t end_ns = 0;  // last acknowledgement (or failure) seen
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

// One producer instance (its own rd_kafka_t: its own connections and threads) sending
// `records` records from `st->start_ns` on, at `throughput` records/s (-1: unlimited).
void produce_with_one_client(const options& o, const std::string& topic, int64_t records,
                             int64_t size, int64_t throughput, produce_state* st) {
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
  rd_kafka_conf_set_opaque(conf, st);
  rd_kafka_conf_set_dr_msg_cb(conf, produce_dr);
  rd_kafka_t* rk = make_client(RD_KAFKA_PRODUCER, conf);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  partition_count(rk, rkt, 60000);  // connect and learn leaders before the clock starts

  // Incompressible payload, shared by every record (librdkafka does not copy it).
  std::vector<char> payload(static_cast<size_t>(size));
  std::mt19937_64 rng(42);
  for (auto& c : payload) c = static_cast<char>(rng());

  if (st->start_ns == 0) {
    st->start_ns = now_ns();  // a single client: the clock starts once it is connected
  } else {
    const int64_t wait = st->start_ns - now_ns();  // clients start together
    if (wait > 0) std::this_thread::sleep_for(std::chrono::nanoseconds(wait));
  }
  const double interval_ns = throughput > 0 ? 1e9 / static_cast<double>(throughput) : 0;
  for (int64_t i = 0; i < records; ++i) {
    if (interval_ns > 0) {
      int64_t due = st->start_ns + static_cast<int64_t>(static_cast<double>(i) * interval_ns);
      while (now_ns() < due) {
        rd_kafka_poll(rk, 0);
        int64_t wait = due - now_ns();
        if (wait > 200000) std::this_thread::sleep_for(std::chrono::nanoseconds(wait - 100000));
      }
    }
    void* sent = reinterpret_cast<void*>(static_cast<intptr_t>(now_ns() - st->start_ns));
    while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, 0, payload.data(),
                            static_cast<size_t>(size), nullptr, 0, sent) == -1) {
      if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
        die(std::string("produce: ") + rd_kafka_err2str(rd_kafka_last_error()));
      rd_kafka_poll(rk, 1);
    }
    if ((i & 1023) == 0) rd_kafka_poll(rk, 0);
  }
  while (rd_kafka_outq_len(rk) > 0 && st->delivered + st->failed < records) rd_kafka_poll(rk, 50);
  st->end_ns = now_ns();
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
}

// --producers N runs N producer instances in parallel threads (records and rate split evenly),
// so one client's threads do not bound a broker's maximum throughput; the figures are the
// sum of their deliveries over the time from the common start to the last acknowledgement.
int run_produce(const options& o) {
  const std::string topic = o.str("topic", "bench");
  const int64_t records = o.num("records", 100000);
  const int64_t size = o.num("record-size", 1024);
  const int64_t throughput = o.num("throughput", -1);  // records/s; -1: unlimited
  const int64_t producers = std::clamp<int64_t>(o.num("producers", 1), 1, 64);

  std::vector<produce_state> states(static_cast<size_t>(producers));
  // Several clients connect first (partition_count waits for metadata) and start together 2 s
  // later; a single one starts as soon as it is connected.
  const int64_t start_ns = producers > 1 ? now_ns() + 2000000000LL : 0;
  std::vector<std::thread> threads;
  for (int64_t k = 0; k < producers; ++k) {
    produce_state* st = &states[static_cast<size_t>(k)];
    const int64_t n = records / producers + (k < records % producers ? 1 : 0);
    st->latencies_us.reserve(static_cast<size_t>(n));
    st->start_ns = start_ns;
    const int64_t rate = throughput > 0 ? std::max<int64_t>(1, throughput / producers) : -1;
    threads.emplace_back([&o, &topic, n, size, rate, st] {
      produce_with_one_client(o, topic, n, size, rate, st);
    });
  }
  for (auto& t : threads) t.join();
  produce_state st;
  st.start_ns = states.front().start_ns;
  for (auto& one : states) {
    st.latencies_us.insert(st.latencies_us.end(), one.latencies_us.begin(),
                           one.latencies_us.end());
    st.delivered += one.delivered;
    if (one.failed && !st.failed) st.first_error = one.first_error;
    st.failed += one.failed;
    st.end_ns = std::max(st.end_ns, one.end_ns);
  }
  const double secs = static_cast<double>(st.end_ns - st.start_ns) / 1e9;
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

// ----------------------------------------------------------------------------------- scale

// W7. One Kafka client connection without librdkafka: a blocking TCP socket that completes
// the handshake every client does (ApiVersions v0, then Metadata v7 for one topic) and later
// repeats Metadata as a periodic refresh. Costs the load generator one fd and no thread, so
// a thousand of them fit on a 2-core machine beside the broker.
class raw_kafka_conn {
 public:
  raw_kafka_conn() = default;
  raw_kafka_conn(const raw_kafka_conn&) = delete;
  raw_kafka_conn& operator=(const raw_kafka_conn&) = delete;
  ~raw_kafka_conn() {
    if (fd_ >= 0) close(fd_);
  }

  // Connects to host:port (IPv4). False on failure.
  bool open(const sockaddr_in& addr) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return false;
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{30, 0};  // a broker that stops answering fails the run instead of hanging it
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  }

  // One request, one response with the same correlation id. False if the connection broke.
  bool api_versions() { return roundtrip(18, 0, {}); }
  bool metadata(const std::string& topic) {
    std::string body;
    put32(body, 1);  // one topic
    put16(body, static_cast<int16_t>(topic.size()));
    body += topic;
    body.push_back(0);  // allow_auto_topic_creation = false
    return roundtrip(3, 7, body);
  }
  int64_t response_bytes() const { return response_bytes_; }

 private:
  static void put16(std::string& s, int16_t v) {
    uint16_t n = htons(static_cast<uint16_t>(v));
    s.append(reinterpret_cast<const char*>(&n), 2);
  }
  static void put32(std::string& s, int32_t v) {
    uint32_t n = htonl(static_cast<uint32_t>(v));
    s.append(reinterpret_cast<const char*>(&n), 4);
  }
  bool read_all(char* p, size_t n) {
    while (n > 0) {
      ssize_t r = read(fd_, p, n);
      if (r <= 0) return false;
      p += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }
  // Request header v1 (non-flexible): api_key, api_version, correlation_id, client_id.
  bool roundtrip(int16_t api_key, int16_t version, const std::string& body) {
    static const std::string kClientId = "varve-loadgen-conn";
    std::string req;
    put16(req, api_key);
    put16(req, version);
    const int32_t corr = ++correlation_id_;
    put32(req, corr);
    put16(req, static_cast<int16_t>(kClientId.size()));
    req += kClientId;
    req += body;
    std::string frame;
    put32(frame, static_cast<int32_t>(req.size()));
    frame += req;
    if (write(fd_, frame.data(), frame.size()) != static_cast<ssize_t>(frame.size())) return false;
    uint32_t size = 0, got_corr = 0;
    if (!read_all(reinterpret_cast<char*>(&size), 4)) return false;
    size = ntohl(size);
    if (size < 4 || size > (64u << 20)) return false;
    buf_.resize(size);
    if (!read_all(buf_.data(), size)) return false;
    std::memcpy(&got_corr, buf_.data(), 4);
    response_bytes_ += size + 4;
    return static_cast<int32_t>(ntohl(got_corr)) == corr;
  }

  int fd_ = -1;
  int32_t correlation_id_ = 0;
  int64_t response_bytes_ = 0;
  std::vector<char> buf_;
};

sockaddr_in ipv4_address(const std::string& brokers) {
  std::string hp = brokers.substr(0, brokers.find(','));
  size_t colon = hp.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(hp.substr(colon + 1))));
  std::string host = hp.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) die("needs an IPv4 broker address");
  return a;
}

// A field of /proc/PID/status ("VmRSS", "VmHWM") in MiB; -1 if unreadable.
double proc_status_mib(int64_t pid, const std::string& field) {
  if (pid <= 0) return -1;
  FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "r");
  if (!f) return -1;
  char line[256];
  double mib = -1;
  const std::string prefix = field + ":";
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, prefix.c_str(), prefix.size()) == 0)
      mib = std::strtod(line + prefix.size(), nullptr) / 1024.0;  // the kernel writes kB
  std::fclose(f);
  return mib;
}

// User + system CPU seconds the process has used; -1 if unreadable.
double proc_cpu_seconds(int64_t pid) {
  if (pid <= 0) return -1;
  FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!f) return -1;
  char line[4096];
  const bool ok = std::fgets(line, sizeof line, f) != nullptr;
  std::fclose(f);
  const char* p = ok ? std::strrchr(line, ')') : nullptr;  // the command name may hold spaces
  if (!p) return -1;
  // After ") ": state is field 3; utime and stime are fields 14 and 15.
  unsigned long long utime = 0, stime = 0;
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                  &stime) != 2)
    return -1;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Sockets the process holds (listeners included); -1 if /proc/PID/fd is unreadable.
int proc_socket_count(int64_t pid) {
  if (pid <= 0) return -1;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd/";
  int n = 0;
  for (int fd = 0, misses = 0; misses < 4096; ++fd) {
    char target[64];
    ssize_t len = readlink((dir + std::to_string(fd)).c_str(), target, sizeof target - 1);
    if (len < 0) {
      ++misses;
      continue;
    }
    misses = 0;
    target[len] = 0;
    if (std::strncmp(target, "socket:", 7) == 0) ++n;
  }
  return n;
}

// Holds --connections client connections to the broker: --producers librdkafka producers
// and the rest raw connections (handshake, then one Metadata refresh per connection every
// --refresh-s, spread evenly, on a background thread). With all of them open it samples the
// broker's memory (--broker-pid), then the producers send --record-size records at full
// speed for --seconds, spread evenly over every partition of the topic (record i goes to
// partition i mod P, through producer (partition mod producers)). Reports throughput,
// send→ack latency, the broker's VmRSS before/after and VmHWM, and fails if a connection
// broke or a delivery failed.
int run_scale(const options& o) {
  const std::string topic = o.str("topic", "w7");
  const std::string brokers = o.str("brokers", "127.0.0.1:9092");
  const int64_t connections = o.num("connections", 1000);
  const int64_t producers = std::max<int64_t>(1, o.num("producers", 4));
  const int64_t seconds = o.num("seconds", 20);
  const int64_t size = o.num("record-size", 1024);
  const int64_t refresh_s = std::max<int64_t>(1, o.num("refresh-s", 10));
  const int64_t broker_pid = o.num("broker-pid", 0);
  if (connections < producers) die("--connections must be at least --producers");

  // 1. The raw connections.
  const sockaddr_in addr = ipv4_address(brokers);
  const int64_t t_conn = now_ns();
  std::vector<std::unique_ptr<raw_kafka_conn>> raw;
  for (int64_t i = 0; i < connections - producers; ++i) {
    auto c = std::make_unique<raw_kafka_conn>();
    if (!c->open(addr)) die("scale: connection " + std::to_string(i) + " failed: " + strerror(errno));
    if (!c->api_versions() || !c->metadata(topic))
      die("scale: handshake on connection " + std::to_string(i) + " failed");
    raw.push_back(std::move(c));
  }
  const double connect_s = static_cast<double>(now_ns() - t_conn) / 1e9;

  // 2. The producers (W1's settings), each connected and knowing the leaders.
  std::vector<produce_state> st(static_cast<size_t>(producers));
  std::vector<rd_kafka_t*> rks;
  std::vector<rd_kafka_topic_t*> rkts;
  int parts = 0;
  for (int64_t p = 0; p < producers; ++p) {
    rd_kafka_conf_t* conf = base_conf(o);
    set(conf, "acks", o.str("acks", "1"));
    set(conf, "linger.ms", o.str("linger-ms", "5"));
    set(conf, "batch.size", o.str("batch-size", "1000000"));
    set(conf, "max.in.flight.requests.per.connection", o.str("inflight", "5"));
    set(conf, "compression.codec", "none");
    set(conf, "enable.idempotence", "false");
    // A bounded queue: the run is timed, so what is queued at the end must drain quickly.
    set(conf, "queue.buffering.max.messages", "50000");
    set(conf, "message.timeout.ms", "120000");
    apply_overrides(conf, o);
    rd_kafka_conf_set_opaque(conf, &st[static_cast<size_t>(p)]);
    rd_kafka_conf_set_dr_msg_cb(conf, produce_dr);
    rks.push_back(make_client(RD_KAFKA_PRODUCER, conf));
    rkts.push_back(rd_kafka_topic_new(rks.back(), topic.c_str(), nullptr));
    parts = partition_count(rks.back(), rkts.back(), 60000);
  }

  // 3. Background refreshes on the raw connections while the rest runs.
  std::atomic<bool> stop{false};
  std::atomic<int64_t> refreshes{0}, broken{0};
  std::thread refresher([&] {
    if (raw.empty()) return;
    const int64_t gap_ns = refresh_s * 1000000000LL / static_cast<int64_t>(raw.size());
    int64_t due = now_ns() + gap_ns;
    for (size_t i = 0; !stop.load(); i = (i + 1) % raw.size(), due += gap_ns) {
      while (!stop.load() && now_ns() < due)
        std::this_thread::sleep_for(std::chrono::nanoseconds(std::min<int64_t>(due - now_ns(), 50000000)));
      if (stop.load()) break;
      if (raw[i]->metadata(topic)) refreshes.fetch_add(1);
      else broken.fetch_add(1);
    }
  });

  std::this_thread::sleep_for(std::chrono::seconds(1));  // let the broker settle
  const double rss_open = proc_status_mib(broker_pid, "VmRSS");
  const int sockets_open = proc_socket_count(broker_pid);

  // 4. Produce for a fixed time.
  std::vector<char> payload(static_cast<size_t>(size));
  std::mt19937_64 rng(42);
  for (auto& c : payload) c = static_cast<char>(rng());
  const double cpu0 = proc_cpu_seconds(broker_pid);
  const int64_t start = now_ns();
  for (auto& s : st) s.start_ns = start;
  const int64_t end = start + seconds * 1000000000LL;
  int64_t sent = 0;
  for (int64_t i = 0;; ++i) {
    if ((i & 1023) == 0) {
      for (auto* rk : rks) rd_kafka_poll(rk, 0);
      if (now_ns() >= end) break;
    }
    const int partition = static_cast<int>(i % parts);
    const size_t p = static_cast<size_t>(partition % producers);
    void* opaque = reinterpret_cast<void*>(static_cast<intptr_t>(now_ns() - start));
    while (rd_kafka_produce(rkts[p], partition, 0, payload.data(), static_cast<size_t>(size),
                            nullptr, 0, opaque) == -1) {
      if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
        die(std::string("produce: ") + rd_kafka_err2str(rd_kafka_last_error()));
      rd_kafka_poll(rks[p], 1);
    }
    ++sent;
  }
  for (auto* rk : rks) rd_kafka_flush(rk, 120000);
  const double secs = static_cast<double>(now_ns() - start) / 1e9;
  const double cpu1 = proc_cpu_seconds(broker_pid);
  const double rss_end = proc_status_mib(broker_pid, "VmRSS");
  const double hwm = proc_status_mib(broker_pid, "VmHWM");
  const int sockets_end = proc_socket_count(broker_pid);
  stop = true;
  refresher.join();
  // Every raw connection must still answer after the run.
  for (auto& c : raw)
    if (!c->api_versions()) broken.fetch_add(1);

  int64_t delivered = 0, failed = 0;
  std::vector<uint32_t> lat;
  rd_kafka_resp_err_t first_error = RD_KAFKA_RESP_ERR_NO_ERROR;
  for (auto& s : st) {
    delivered += s.delivered;
    failed += s.failed;
    if (s.failed && first_error == RD_KAFKA_RESP_ERR_NO_ERROR) first_error = s.first_error;
    lat.insert(lat.end(), s.latencies_us.begin(), s.latencies_us.end());
  }
  for (size_t p = 0; p < rks.size(); ++p) {
    rd_kafka_topic_destroy(rkts[p]);
    rd_kafka_destroy(rks[p]);
  }
  latency_summary s = summarize(lat);
  const double rps = static_cast<double>(delivered) / secs;
  const double mbps = rps * static_cast<double>(size) / (1024.0 * 1024.0);
  // Broker CPU over the produce phase (refreshes included), per GiB of record payload.
  const double gib = static_cast<double>(delivered) * static_cast<double>(size) / 1073741824.0;
  const double cpu_per_gib = cpu0 >= 0 && cpu1 >= 0 && gib > 0 ? (cpu1 - cpu0) / gib : -1;
  std::printf("%" PRId64 " connections (%" PRId64 " raw, %" PRId64
              " producers) opened in %.2f s; %" PRId64 " records over %d partitions in %.2f s: "
              "%.1f records/sec (%.2f MB/sec), %.2f ms 99th; broker RSS %.1f MiB open, %.1f "
              "MiB after, peak %.1f MiB; broker %.2f CPU s/GiB; %" PRId64 " metadata refreshes, %" PRId64
              " broken\n",
              connections, connections - producers, producers, connect_s, delivered, parts, secs,
              rps, mbps, s.p99_ms, rss_open, rss_end, hwm, cpu_per_gib, refreshes.load(), broken.load());
  std::printf("RESULT mode=scale connections=%" PRId64 " producers=%" PRId64
              " partitions=%d connect_s=%.3f records=%" PRId64 " failed=%" PRId64
              " seconds=%.3f records_per_s=%.1f mb_per_s=%.2f %s rss_open_mib=%.1f"
              " rss_end_mib=%.1f hwm_mib=%.1f broker_cpu_s_per_gib=%.2f broker_sockets_open=%d"
              " broker_sockets_end=%d"
              " refreshes=%" PRId64 " broken=%" PRId64 "\n",
              connections, producers, parts, connect_s, delivered, failed, secs, rps, mbps,
              latency_fields(s).c_str(), rss_open, rss_end, hwm, cpu_per_gib, sockets_open, sockets_end,
              refreshes.load(), broken.load());
  if (failed) {
    std::fprintf(stderr, "loadgen: %" PRId64 " deliveries failed, first: %s\n", failed,
                 rd_kafka_err2str(first_error));
    return 1;
  }
  if (broken.load()) {
    std::fprintf(stderr, "loadgen: %" PRId64 " raw connections broke\n", broken.load());
    return 1;
  }
  return sent == delivered ? 0 : 1;
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
                 "usage: varve-loadgen create|produce|consume|e2e|probe|loopback|scale [--opt value]...\n"
                 "  common:  --brokers host:port  --topic T  (--some.rdkafka.prop value)\n"
                 "  create:  --partitions P --replication-factor R --config k=v,k=v --wait-brokers N\n"
                 "  produce: --records N --record-size S --acks A --linger-ms L --batch-size B\n"
                 "           --inflight M --throughput R (-1: unlimited)\n"
                 "  consume: --records N --idle-timeout-ms T\n"
                 "  e2e:     --rate R --seconds S --warmup-seconds W --record-size S --acks A\n"
                 "  probe:   --since-wall-ns T --timeout-s S\n"
                 "  loopback: --seconds S\n"
                 "  scale:   --connections N --producers P --seconds S --record-size S\n"
                 "           --refresh-s R --broker-pid PID (W7)\n");
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
  if (mode == "scale") return run_scale(o);
  die("unknown mode " + mode);
}
