// varve produce / varve consume (librdkafka).
#include <cstring>
#include <iostream>
#include <map>
#include <thread>

#include <unistd.h>

#include "cli/rdkafka_util.h"

namespace varve::cli {
namespace {

struct produce_state {
  int64_t delivered = 0;
  int64_t failed = 0;
  std::string first_error;
  std::map<int32_t, int64_t> last_offset;  // partition -> offset of the last delivered record
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* s = static_cast<produce_state*>(opaque);
  if (m->err) {
    ++s->failed;
    if (s->first_error.empty())
      s->first_error = std::string(rd_kafka_err2name(m->err)) + ": " + rd_kafka_err2str(m->err);
  } else {
    ++s->delivered;
    s->last_offset[m->partition] = m->offset;
  }
}

std::string rd_error_text(rd_kafka_error_t* e) {
  std::string s = std::string(rd_kafka_error_name(e)) + ": " + rd_kafka_error_string(e);
  rd_kafka_error_destroy(e);
  return s;
}

// Expands a --format template for one message (see docs/cli.md).
std::string format_message(const std::string& fmt, const rd_kafka_message_t* m) {
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '\\' && i + 1 < fmt.size()) {
      char n = fmt[++i];
      out += n == 'n' ? '\n' : n == 't' ? '\t' : n == 'r' ? '\r' : n;
      continue;
    }
    if (c != '%' || i + 1 >= fmt.size()) {
      out += c;
      continue;
    }
    switch (fmt[++i]) {
      case 't': out += rd_kafka_topic_name(m->rkt); break;
      case 'p': out += std::to_string(m->partition); break;
      case 'o': out += std::to_string(m->offset); break;
      case 'k': if (m->key) out.append(static_cast<const char*>(m->key), m->key_len); break;
      case 'K': out += m->key ? std::to_string(m->key_len) : "-1"; break;
      case 'v':
      case 's': if (m->payload) out.append(static_cast<const char*>(m->payload), m->len); break;
      case 'S': out += m->payload ? std::to_string(m->len) : "-1"; break;
      case 'T': {
        rd_kafka_timestamp_type_t type;
        out += std::to_string(rd_kafka_message_timestamp(m, &type));
        break;
      }
      case 'h': {
        rd_kafka_headers_t* hdrs = nullptr;
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          const char* name;
          const void* value;
          size_t size;
          for (size_t h = 0; rd_kafka_header_get_all(hdrs, h, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++h) {
            if (h) out += ',';
            out += name;
            out += '=';
            if (value) out.append(static_cast<const char*>(value), size);
          }
        }
        break;
      }
      case '%': out += '%'; break;
      default: out += '%'; out += fmt[i];
    }
  }
  return out;
}

nlohmann::json message_json(const rd_kafka_message_t* m) {
  rd_kafka_timestamp_type_t type;
  nlohmann::json headers = nlohmann::json::object();
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name;
    const void* value;
    size_t size;
    for (size_t h = 0; rd_kafka_header_get_all(hdrs, h, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++h)
      headers[name] = value ? nlohmann::json(std::string(static_cast<const char*>(value), size)) : nlohmann::json(nullptr);
  }
  auto str = [](const void* p, size_t n) {
    return p ? nlohmann::json(std::string(static_cast<const char*>(p), n)) : nlohmann::json(nullptr);
  };
  return {{"topic", rd_kafka_topic_name(m->rkt)},
          {"partition", m->partition},
          {"offset", m->offset},
          {"timestamp", rd_kafka_message_timestamp(m, &type)},
          {"key", str(m->key, m->key_len)},
          {"value", str(m->payload, m->len)},
          {"headers", headers}};
}

}  // namespace

int produce_command(context& ctx) {
  if (ctx.args.positional.size() != 1) return usage_error("produce needs exactly one topic");
  const std::string topic = ctx.args.positional[0];
  std::vector<std::pair<std::string, std::string>> settings;
  const std::string acks = ctx.args.get_or("--acks", "all");
  if (acks != "all" && acks != "-1" && acks != "1" && acks != "0") return usage_error("--acks must be all, 1 or 0");
  settings.emplace_back("acks", acks == "-1" ? "all" : acks);
  if (ctx.args.has("--idempotent")) settings.emplace_back("enable.idempotence", "true");
  if (auto c = ctx.args.get("--compression")) settings.emplace_back("compression.codec", *c);
  auto txn = ctx.args.get("--transactional-id");
  if (txn) settings.emplace_back("transactional.id", *txn);
  int32_t partition = RD_KAFKA_PARTITION_UA;
  if (auto p = ctx.args.get("--partition"); p && (!parse_int32(*p, &partition) || partition < 0))
    return usage_error("--partition must be a non-negative integer");
  std::vector<std::pair<std::string, std::string>> headers;
  for (const auto& h : ctx.args.all("--header")) {
    std::string k, v;
    if (!split_key_value(h, &k, &v)) return usage_error("--header expects key=value, got '" + h + "'");
    headers.emplace_back(k, v);
  }
  const auto separator = ctx.args.get("--key-separator");
  if (separator && separator->empty()) return usage_error("--key-separator must not be empty");

  rd_kafka_conf_t* conf = make_conf(ctx, settings);
  if (!conf) return 1;
  produce_state state;
  rd_kafka_conf_set_opaque(conf, &state);
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  char err[512];
  rd_kafka_ptr rk(rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err));
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return fail(std::string("cannot create producer: ") + err);
  }
  install_stop_handlers();
  if (txn) {
    if (auto* e = rd_kafka_init_transactions(rk.get(), ctx.timeout_ms))
      return fail("transactional id '" + *txn + "': InitProducerId failed: " + rd_error_text(e));
    if (auto* e = rd_kafka_begin_transaction(rk.get())) return fail("begin transaction: " + rd_error_text(e));
  }
  int64_t sent = 0;
  std::string line;
  while (!g_stop.load() && std::getline(std::cin, line)) {
    const char* key = nullptr;
    size_t key_len = 0;
    std::string_view value = line;
    if (separator) {
      if (auto pos = line.find(*separator); pos != std::string::npos) {
        key = line.data();
        key_len = pos;
        value = std::string_view(line).substr(pos + separator->size());
      }
    }
    for (;;) {
      rd_kafka_headers_t* hdrs = nullptr;
      if (!headers.empty()) {
        hdrs = rd_kafka_headers_new(headers.size());
        for (const auto& [k, v] : headers) rd_kafka_header_add(hdrs, k.data(), k.size(), v.data(), v.size());
      }
      rd_kafka_resp_err_t e = rd_kafka_producev(
          rk.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (hdrs) rd_kafka_headers_destroy(hdrs);
      if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return fail("produce to " + topic + ": " + rd_kafka_err2name(e) + " (" + rd_kafka_err2str(e) + ")");
      rd_kafka_poll(rk.get(), 100);
    }
    ++sent;
    rd_kafka_poll(rk.get(), 0);
  }
  if (txn) {
    if (auto* e = rd_kafka_commit_transaction(rk.get(), ctx.timeout_ms))
      return fail("commit transaction: " + rd_error_text(e));
  }
  rd_kafka_resp_err_t fe = rd_kafka_flush(rk.get(), ctx.timeout_ms);
  if (fe != RD_KAFKA_RESP_ERR_NO_ERROR && state.first_error.empty())
    state.first_error = std::string("flush: ") + rd_kafka_err2name(fe);
  const int64_t undelivered = sent - state.delivered - state.failed;
  if (ctx.json) {
    nlohmann::json offs = nlohmann::json::object();
    for (const auto& [p, o] : state.last_offset) offs[std::to_string(p)] = o;
    print_json({{"topic", topic},
                {"sent", sent},
                {"delivered", state.delivered},
                {"failed", state.failed + undelivered},
                {"last_offsets", offs},
                {"error", state.first_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(state.first_error)}});
  } else {
    std::cerr << "Produced " << state.delivered << " of " << sent << " records to " << topic << ".\n";
  }
  if (state.failed + undelivered > 0)
    return fail(std::to_string(state.failed + undelivered) + " records not delivered" +
                (state.first_error.empty() ? "" : ": " + state.first_error));
  return 0;
}

int consume_command(context& ctx) {
  if (ctx.args.positional.size() != 1) return usage_error("consume needs exactly one topic");
  const std::string topic = ctx.args.positional[0];
  int64_t max_messages = -1, idle_timeout_ms = -1, offset = -1;
  int32_t partition = -1;
  if (auto v = ctx.args.get("--max-messages"); v && (!parse_int64(*v, &max_messages) || max_messages <= 0))
    return usage_error("--max-messages must be a positive integer");
  if (auto v = ctx.args.get("--idle-timeout-ms"); v && (!parse_int64(*v, &idle_timeout_ms) || idle_timeout_ms <= 0))
    return usage_error("--idle-timeout-ms must be a positive integer");
  if (auto v = ctx.args.get("--offset"); v && (!parse_int64(*v, &offset) || offset < 0))
    return usage_error("--offset must be a non-negative integer");
  if (auto v = ctx.args.get("--partition"); v && (!parse_int32(*v, &partition) || partition < 0))
    return usage_error("--partition must be a non-negative integer");
  if (ctx.args.has("--offset") && ctx.args.has("--from-beginning"))
    return usage_error("--offset and --from-beginning exclude each other");
  const std::string isolation = ctx.args.get_or("--isolation-level", "read_uncommitted");
  if (isolation != "read_committed" && isolation != "read_uncommitted")
    return usage_error("--isolation-level must be read_committed or read_uncommitted");
  std::string fmt = ctx.args.get_or("--format", "%v\\n");
  if (fmt.find("\\n") == std::string::npos && fmt.find('\n') == std::string::npos) fmt += "\\n";

  auto group = ctx.args.get("--group");
  const bool commit = group.has_value() && !ctx.args.has("--no-commit");
  std::vector<std::pair<std::string, std::string>> settings = {
      {"group.id", group ? *group : "varve-cli-console-" + std::to_string(::getpid())},
      {"enable.auto.commit", commit ? "true" : "false"},
      {"auto.offset.reset", ctx.args.has("--from-beginning") ? "earliest" : "latest"},
      {"isolation.level", isolation},
  };
  rd_kafka_conf_t* conf = make_conf(ctx, settings);
  if (!conf) return 1;
  char err[512];
  rd_kafka_ptr rk(rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err));
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return fail(std::string("cannot create consumer: ") + err);
  }
  rd_kafka_poll_set_consumer(rk.get());
  install_stop_handlers();

  // Subscribe (group management) when only a group is given; otherwise assign partitions.
  const bool assign = partition >= 0 || offset >= 0 || !group;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  if (assign) {
    std::vector<int32_t> parts;
    if (partition >= 0) {
      parts.push_back(partition);
    } else {
      std::string error;
      int32_t n = partition_count(rk.get(), topic, ctx.timeout_ms, &error);
      if (n < 0) {
        rd_kafka_topic_partition_list_destroy(list);
        return fail(error);
      }
      for (int32_t p = 0; p < n; ++p) parts.push_back(p);
    }
    int64_t start = offset >= 0                           ? offset
                    : ctx.args.has("--from-beginning")    ? RD_KAFKA_OFFSET_BEGINNING
                    : group                               ? RD_KAFKA_OFFSET_STORED
                                                          : RD_KAFKA_OFFSET_END;
    for (int32_t p : parts) rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = start;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk.get(), list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) return fail(std::string("assign: ") + rd_kafka_err2str(e));
  } else {
    rd_kafka_topic_partition_list_add(list, topic.c_str(), RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk.get(), list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) return fail(std::string("subscribe: ") + rd_kafka_err2str(e));
  }

  int64_t received = 0;
  int64_t last_activity = now_ms();
  int rc = 0;
  while (!g_stop.load() && (max_messages < 0 || received < max_messages)) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 100);
    if (!m) {
      if (idle_timeout_ms > 0 && now_ms() - last_activity >= idle_timeout_ms) break;
      continue;
    }
    if (m->err) {
      const bool eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
      if (!eof) {
        std::cerr << "varve: consume error: " << rd_kafka_err2name(m->err) << ": " << rd_kafka_message_errstr(m) << "\n";
        if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
            m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED || m->err == RD_KAFKA_RESP_ERR__FATAL) {
          rc = 1;
          rd_kafka_message_destroy(m);
          break;
        }
      }
      rd_kafka_message_destroy(m);
      continue;
    }
    last_activity = now_ms();
    ++received;
    if (ctx.json) std::cout << message_json(m).dump() << "\n";
    else std::cout << format_message(fmt, m);
    std::cout.flush();
    rd_kafka_message_destroy(m);
  }
  if (commit && received > 0) {
    rd_kafka_resp_err_t e = rd_kafka_commit(rk.get(), nullptr, 0);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET) {
      std::cerr << "varve: commit failed: " << rd_kafka_err2name(e) << ": " << rd_kafka_err2str(e) << "\n";
      rc = 1;
    }
  }
  rd_kafka_consumer_close(rk.get());
  if (!ctx.json) std::cerr << "Processed a total of " << received << " messages\n";
  return rc;
}

}  // namespace varve::cli
