#include "config/config_def.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <map>

namespace varve::config {
namespace {

constexpr std::string_view kLongMax = "9223372036854775807";
constexpr std::string_view kIntMax = "2147483647";
constexpr std::string_view kDoubleMax = "1.7976931348623157E308";
const std::optional<std::string_view> kNull = std::nullopt;

using T = config_type;
using I = importance;

// A small builder so each table row reads as one line of facts.
struct row {
  config_def d;
  row& valid(validator v) {
    d.valid = std::move(v);
    return *this;
  }
  row& cluster() {
    d.cluster_only = true;
    return *this;
  }
  row& sensitive() {
    d.sensitive = true;
    return *this;
  }
  row& accepted() {
    d.accepted_only = true;
    return *this;
  }
  row& ours() {
    d.varve_only = true;
    return *this;
  }
  row& server(std::string_view broker_key) {
    d.server_default = broker_key;
    return *this;
  }
};

row broker(std::string_view name, T type, std::optional<std::string_view> dflt, I imp,
           std::string_view doc) {
  row r;
  r.d.name = name;
  r.d.type = type;
  r.d.default_value = dflt;
  r.d.imp = imp;
  r.d.scope = config_scope::broker;
  r.d.doc = doc;
  return r;
}

row topic(std::string_view name, T type, std::optional<std::string_view> dflt, I imp,
          std::string_view doc) {
  row r = broker(name, type, dflt, imp, doc);
  r.d.scope = config_scope::topic;
  return r;
}

const std::vector<std::string_view> kCompressionTypes = {"uncompressed", "zstd", "lz4",
                                                         "snappy",       "gzip", "producer"};

std::vector<config_def> build_broker_defs() {
  std::vector<row> r = {
      // ---- Identity and process
      broker("node.id", T::int32, "-1", I::high,
             "Id of this broker; synonym of broker.id. -1 (unset) means 0 on a single node."),
      broker("broker.id", T::int32, "-1", I::high,
             "Id of this broker; synonym of node.id. Must match node.id if both are set."),
      broker("broker.rack", T::string, kNull, I::medium,
             "Rack of this broker, reported in Metadata responses."),
      broker("cluster.id", T::string, kNull, I::low,
             "Cluster id stored in the metadata store on first start; generated when unset.")
          .ours(),
      broker("log.level", T::string, "info", I::low, "Lowest log level written.")
          .valid(one_of({"trace", "debug", "info", "warn", "error"}))
          .ours(),
      broker("broker.id.generation.enable", T::boolean, "true", I::medium,
             "Let ZooKeeper assign broker ids when none is configured.")
          .cluster()
          .accepted(),
      broker("reserved.broker.max.id", T::int32, "1000", I::medium,
             "Highest id that may be configured by hand; generated ids start above it.")
          .valid(at_least(0))
          .cluster()
          .accepted(),
      broker("background.threads", T::int32, "10", I::high,
             "Threads for background work. Varve runs it on its event loops.")
          .valid(at_least(1))
          .accepted(),

      // ---- Network
      broker("listeners", T::string, "PLAINTEXT://127.0.0.1:9092", I::high,
             "Comma-separated NAME://host:port addresses to accept Kafka clients on. An empty "
             "host binds all interfaces."),
      broker("advertised.listeners", T::string, kNull, I::high,
             "Addresses given to clients in Metadata; defaults to listeners."),
      broker("listener.security.protocol.map", T::string,
             "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL", I::low,
             "Maps listener names to security protocols."),
      broker("inter.broker.listener.name", T::string, kNull, I::medium,
             "Listener brokers use to talk to each other.")
          .cluster(),
      broker("security.inter.broker.protocol", T::string, "PLAINTEXT", I::medium,
             "Security protocol between brokers (when inter.broker.listener.name is unset).")
          .valid(one_of({"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"}))
          .cluster(),
      broker("admin.listeners", T::string, "http://127.0.0.1:9644", I::medium,
             "HTTP admin endpoint(s): /metrics, /v1/status/ready, /v1/status/live. Empty "
             "disables it.")
          .ours(),
      broker("socket.request.max.bytes", T::int32, "104857600", I::high,
             "Largest request frame accepted; a larger one closes the connection.")
          .valid(at_least(1)),
      broker("socket.send.buffer.bytes", T::int32, "102400", I::high,
             "SO_SNDBUF of client sockets; -1 keeps the OS default."),
      broker("socket.receive.buffer.bytes", T::int32, "102400", I::high,
             "SO_RCVBUF of client sockets; -1 keeps the OS default."),
      broker("socket.listen.backlog.size", T::int32, "50", I::medium,
             "Listen backlog of server sockets.")
          .valid(at_least(1)),
      broker("num.network.threads", T::int32, "3", I::high,
             "Accepted for compatibility: Varve runs one event loop per core instead.")
          .valid(at_least(1))
          .accepted(),
      broker("num.io.threads", T::int32, "8", I::high,
             "Accepted for compatibility: Varve runs one event loop per core instead.")
          .valid(at_least(1))
          .accepted(),
      broker("queued.max.requests", T::int32, "500", I::high,
             "Requests in flight per broker before reading from sockets pauses.")
          .valid(at_least(1)),
      broker("queued.max.request.bytes", T::int64, "-1", I::medium,
             "Bytes of requests in flight per broker before reading pauses; -1 = no limit."),
      broker("max.connections", T::int32, kIntMax, I::medium,
             "Most client connections the broker accepts.")
          .valid(at_least(0)),
      broker("max.connections.per.ip", T::int32, kIntMax, I::medium,
             "Most client connections accepted from one IP address.")
          .valid(at_least(0)),
      broker("max.connections.per.ip.overrides", T::string, "", I::medium,
             "Per-IP or hostname exceptions to max.connections.per.ip (host:count,...)."),
      broker("connections.max.idle.ms", T::int64, "600000", I::medium,
             "Idle connections are closed after this long."),
      broker("request.timeout.ms", T::int32, "30000", I::medium,
             "Upper bound for broker-side waits such as acks=all, when the request has none.")
          .valid(at_least(0)),
      broker("fetch.max.bytes", T::int32, "57671680", I::medium,
             "Largest Fetch response the broker builds.")
          .valid(at_least(1024)),
      broker("fetch.purgatory.purge.interval.requests", T::int32, "1000", I::medium,
             "Accepted for compatibility; Varve's delayed fetches need no purging.")
          .accepted(),
      broker("producer.purgatory.purge.interval.requests", T::int32, "1000", I::medium,
             "Accepted for compatibility; Varve's delayed produces need no purging.")
          .accepted(),

      // ---- Log (storage) defaults
      broker("log.dirs", T::list, kNull, I::high,
             "Directories holding partition logs; log.dir is used when unset."),
      broker("log.dir", T::string, "/tmp/kafka-logs", I::high,
             "Single log directory used when log.dirs is unset."),
      broker("num.partitions", T::int32, "1", I::medium,
             "Partitions of an auto-created topic or of a CreateTopics without a count.")
          .valid(at_least(1)),
      broker("default.replication.factor", T::int32, "1", I::medium,
             "Replication factor of auto-created topics and CreateTopics without one.")
          .valid(at_least(1)),
      broker("auto.create.topics.enable", T::boolean, "true", I::high,
             "Create a topic when a client asks for metadata of an unknown one."),
      broker("delete.topic.enable", T::boolean, "true", I::high,
             "Allow DeleteTopics; when false it fails with TOPIC_DELETION_DISABLED."),
      broker("message.max.bytes", T::int32, "1048588", I::high,
             "Largest record batch accepted (topic: max.message.bytes).")
          .valid(at_least(0)),
      broker("log.segment.bytes", T::int32, "1073741824", I::high,
             "Size at which a segment rolls (topic: segment.bytes).")
          .valid(at_least(14)),
      broker("log.roll.ms", T::int64, kNull, I::high,
             "Age at which a segment rolls; overrides log.roll.hours (topic: segment.ms)."),
      broker("log.roll.hours", T::int32, "168", I::high, "Age in hours at which a segment rolls.")
          .valid(at_least(1)),
      broker("log.roll.jitter.ms", T::int64, kNull, I::high,
             "Random jitter subtracted from the roll age; overrides log.roll.jitter.hours."),
      broker("log.roll.jitter.hours", T::int32, "0", I::high,
             "Random jitter in hours subtracted from the roll age.")
          .valid(at_least(0)),
      broker("log.retention.ms", T::int64, kNull, I::high,
             "Age after which segments are deleted; -1 = forever. Beats minutes and hours."),
      broker("log.retention.minutes", T::int32, kNull, I::high,
             "Retention in minutes; beats log.retention.hours."),
      broker("log.retention.hours", T::int32, "168", I::high, "Retention in hours."),
      broker("log.retention.bytes", T::int64, "-1", I::high,
             "Partition size above which old segments are deleted; -1 = no limit."),
      broker("log.retention.check.interval.ms", T::int64, "300000", I::medium,
             "How often retention is enforced.")
          .valid(at_least(1)),
      broker("log.flush.interval.messages", T::int64, kLongMax, I::high,
             "fsync a partition after this many appended messages (default: never; rely on "
             "replication and the OS).")
          .valid(at_least(1)),
      broker("log.flush.interval.ms", T::int64, kNull, I::high,
             "fsync a partition when its oldest unflushed message is this old; null falls "
             "back to log.flush.scheduler.interval.ms."),
      broker("log.flush.scheduler.interval.ms", T::int64, kLongMax, I::high,
             "How often the flush policy is checked; also the flush interval when "
             "log.flush.interval.ms is unset."),
      broker("log.flush.offset.checkpoint.interval.ms", T::int32, "60000", I::high,
             "How often the recovery-point checkpoint is written.")
          .valid(at_least(0)),
      broker("log.flush.start.offset.checkpoint.interval.ms", T::int32, "60000", I::high,
             "How often the log-start-offset checkpoint is written.")
          .valid(at_least(0)),
      broker("log.index.interval.bytes", T::int32, "4096", I::medium,
             "Bytes between offset index entries (topic: index.interval.bytes).")
          .valid(at_least(0)),
      broker("log.index.size.max.bytes", T::int32, "10485760", I::medium,
             "Largest offset index file; a full index rolls the segment.")
          .valid(at_least(4)),
      broker("log.cleanup.policy", T::list, "delete", I::medium,
             "delete, compact or both (topic: cleanup.policy).")
          .valid(list_one_of({"compact", "delete"})),
      broker("log.cleaner.enable", T::boolean, "true", I::medium,
             "Run the log cleaner (needed by compacted topics such as __consumer_offsets)."),
      broker("log.cleaner.threads", T::int32, "1", I::medium, "Log cleaner threads.")
          .valid(at_least(0)),
      broker("log.cleaner.io.max.bytes.per.second", T::float64, kDoubleMax, I::medium,
             "Read+write rate limit of the cleaner."),
      broker("log.cleaner.dedupe.buffer.size", T::int64, "134217728", I::medium,
             "Memory for the cleaner's key map, over all cleaner threads."),
      broker("log.cleaner.io.buffer.size", T::int32, "524288", I::medium,
             "I/O buffer memory of the cleaner.")
          .valid(at_least(0)),
      broker("log.cleaner.io.buffer.load.factor", T::float64, "0.9", I::medium,
             "Load factor of the cleaner's key map."),
      broker("log.cleaner.backoff.ms", T::int64, "15000", I::medium,
             "Sleep when no log needs cleaning.")
          .valid(at_least(0)),
      broker("log.cleaner.min.cleanable.ratio", T::float64, "0.5", I::medium,
             "Dirty/total ratio that makes a log eligible for cleaning (topic: "
             "min.cleanable.dirty.ratio).")
          .valid(between_double(0, 1)),
      broker("log.cleaner.delete.retention.ms", T::int64, "86400000", I::medium,
             "How long tombstones survive compaction (topic: delete.retention.ms).")
          .valid(at_least(0)),
      broker("log.cleaner.min.compaction.lag.ms", T::int64, "0", I::medium,
             "Minimum age before a message may be compacted.")
          .valid(at_least(0)),
      broker("log.cleaner.max.compaction.lag.ms", T::int64, kLongMax, I::medium,
             "Maximum age a message stays ineligible for compaction.")
          .valid(at_least(1)),
      broker("log.message.timestamp.type", T::string, "CreateTime", I::medium,
             "CreateTime keeps producer timestamps; LogAppendTime stamps broker time.")
          .valid(one_of({"CreateTime", "LogAppendTime"})),
      broker("log.message.timestamp.before.max.ms", T::int64, kLongMax, I::medium,
             "Reject CreateTime batches older than now minus this.")
          .valid(at_least(0)),
      broker("log.message.timestamp.after.max.ms", T::int64, "3600000", I::medium,
             "Reject CreateTime batches newer than now plus this (Kafka 4.0 default: 1 hour).")
          .valid(at_least(0)),
      broker("log.message.downconversion.enable", T::boolean, "true", I::low,
             "Accepted for compatibility; Varve never down-converts (v2 batches only).")
          .accepted(),
      broker("log.segment.delete.delay.ms", T::int64, "60000", I::high,
             "Delay between unlinking a segment from the log and deleting its files.")
          .valid(at_least(0)),
      broker("log.preallocate", T::boolean, "false", I::medium,
             "Preallocate segment files at their full size."),
      broker("log.local.retention.ms", T::int64, "-2", I::medium,
             "Tiered storage (unsupported): accepted; -2 means use log.retention.ms.")
          .valid(at_least(-2))
          .accepted(),
      broker("log.local.retention.bytes", T::int64, "-2", I::medium,
             "Tiered storage (unsupported): accepted; -2 means use log.retention.bytes.")
          .valid(at_least(-2))
          .accepted(),
      broker("remote.log.storage.system.enable", T::boolean, "false", I::medium,
             "Tiered storage is not supported; only false is accepted.")
          .valid(one_of({"false"})),
      broker("num.recovery.threads.per.data.dir", T::int32, "2", I::high,
             "Threads per log directory for log recovery at startup and flush at shutdown.")
          .valid(at_least(1)),
      broker("compression.type", T::string, "producer", I::high,
             "Final compression of stored batches; producer keeps the producer's codec.")
          .valid(one_of(kCompressionTypes)),
      broker("compression.gzip.level", T::int32, "-1", I::medium,
             "gzip level when compression.type=gzip.")
          .valid(between_or(1, 9, {-1})),
      broker("compression.lz4.level", T::int32, "9", I::medium,
             "lz4 level when compression.type=lz4.")
          .valid(between(1, 17)),
      broker("compression.zstd.level", T::int32, "3", I::medium,
             "zstd level when compression.type=zstd.")
          .valid(between(-131072, 22)),
      broker("min.insync.replicas", T::int32, "1", I::high,
             "With acks=all, the fewest in-sync replicas that must hold a write; fewer fail "
             "it with NOT_ENOUGH_REPLICAS.")
          .valid(at_least(1)),
      broker("unclean.leader.election.enable", T::boolean, "false", I::high,
             "Allow a replica outside the ISR to become leader, losing acknowledged data."),

      // ---- Replication (cluster)
      broker("replica.lag.time.max.ms", T::int64, "30000", I::high,
             "A follower that has not caught up for this long leaves the ISR.")
          .cluster(),
      broker("replica.fetch.max.bytes", T::int32, "1048576", I::medium,
             "Bytes per partition a follower asks for.")
          .valid(at_least(0))
          .cluster(),
      broker("replica.fetch.min.bytes", T::int32, "1", I::high, "Bytes a follower fetch waits for.")
          .cluster(),
      broker("replica.fetch.wait.max.ms", T::int32, "500", I::high,
             "Longest wait of a follower fetch; keep below replica.lag.time.max.ms.")
          .cluster(),
      broker("replica.fetch.backoff.ms", T::int32, "1000", I::medium,
             "Sleep after a failed follower fetch.")
          .valid(at_least(0))
          .cluster(),
      broker("replica.fetch.response.max.bytes", T::int32, "10485760", I::medium,
             "Largest follower fetch response.")
          .valid(at_least(0))
          .cluster(),
      broker("replica.socket.timeout.ms", T::int32, "30000", I::high,
             "Socket timeout of follower fetches.")
          .cluster(),
      broker("replica.socket.receive.buffer.bytes", T::int32, "65536", I::high,
             "SO_RCVBUF of follower fetch sockets.")
          .cluster(),
      broker("replica.high.watermark.checkpoint.interval.ms", T::int64, "5000", I::high,
             "How often high watermarks are checkpointed to disk."),
      broker("replica.selector.class", T::class_name, kNull, I::medium,
             "Accepted for compatibility; fetch-from-follower rack selection is not "
             "pluggable in Varve.")
          .cluster()
          .accepted(),
      broker("num.replica.fetchers", T::int32, "1", I::high,
             "Fetcher connections per source broker.")
          .cluster(),
      broker("controlled.shutdown.enable", T::boolean, "true", I::medium,
             "Move leadership away before the broker stops.")
          .cluster(),
      broker("controlled.shutdown.max.retries", T::int32, "3", I::medium,
             "Attempts at a controlled shutdown before stopping anyway.")
          .cluster(),
      broker("controlled.shutdown.retry.backoff.ms", T::int64, "5000", I::medium,
             "Sleep between controlled shutdown attempts.")
          .cluster(),
      broker("auto.leader.rebalance.enable", T::boolean, "true", I::high,
             "Move leadership back to preferred replicas periodically.")
          .cluster(),
      broker("leader.imbalance.check.interval.seconds", T::int64, "300", I::high,
             "How often the controller checks leader balance.")
          .valid(at_least(1))
          .cluster(),
      broker("leader.imbalance.per.broker.percentage", T::int32, "10", I::high,
             "Imbalance per broker that triggers a preferred leader election.")
          .cluster(),
      broker("controller.socket.timeout.ms", T::int32, "30000", I::medium,
             "Socket timeout of controller-to-broker requests.")
          .cluster(),

      // ---- ZooKeeper
      broker("zookeeper.connect", T::string, kNull, I::high,
             "host:port[,host:port...][/chroot] of ZooKeeper. Unset = single-node mode with a "
             "local metadata store."),
      broker("zookeeper.session.timeout.ms", T::int32, "18000", I::high,
             "ZooKeeper session timeout.")
          .cluster(),
      broker("zookeeper.connection.timeout.ms", T::int32, kNull, I::high,
             "Time to establish a ZooKeeper connection; null = the session timeout.")
          .cluster(),
      broker("zookeeper.max.in.flight.requests", T::int32, "10", I::high,
             "Unacknowledged ZooKeeper requests before the client blocks.")
          .valid(at_least(1))
          .cluster(),
      broker("zookeeper.set.acl", T::boolean, "false", I::high,
             "Create ZooKeeper nodes with secure ACLs.")
          .cluster()
          .accepted(),

      // ---- KRaft (not a supported mode)
      broker("process.roles", T::list, "", I::high,
             "KRaft roles. Varve has no KRaft mode: accepted, warned about, ignored.")
          .valid(list_one_of({"broker", "controller"}))
          .cluster()
          .accepted(),
      broker("controller.quorum.voters", T::list, "", I::high,
             "KRaft voters. Accepted, warned about, ignored.")
          .cluster()
          .accepted(),
      broker("controller.quorum.bootstrap.servers", T::list, "", I::high,
             "KRaft bootstrap servers. Accepted, warned about, ignored.")
          .cluster()
          .accepted(),
      broker("controller.listener.names", T::string, kNull, I::high,
             "KRaft controller listeners. Accepted, warned about, ignored.")
          .cluster()
          .accepted(),
      broker("metadata.log.dir", T::string, kNull, I::high,
             "KRaft metadata log directory. Accepted, ignored.")
          .cluster()
          .accepted(),

      // ---- Group coordinator
      broker("offsets.topic.num.partitions", T::int32, "50", I::high,
             "Partitions of __consumer_offsets (fixed once created).")
          .valid(at_least(1)),
      broker("offsets.topic.replication.factor", T::int16, "3", I::high,
             "Replication factor of __consumer_offsets; set 1 on a single node.")
          .valid(at_least(1)),
      broker("offsets.topic.segment.bytes", T::int32, "104857600", I::high,
             "Segment size of __consumer_offsets.")
          .valid(at_least(1)),
      broker("offsets.topic.compression.codec", T::int32, "0", I::high,
             "Codec id for offset commits written to __consumer_offsets (0 = none)."),
      broker("offsets.load.buffer.size", T::int32, "5242880", I::high,
             "Read size when loading offsets into the coordinator cache.")
          .valid(at_least(1)),
      broker("offsets.retention.minutes", T::int32, "10080", I::high,
             "Committed offsets of an empty group expire after this long.")
          .valid(at_least(1)),
      broker("offsets.retention.check.interval.ms", T::int64, "600000", I::high,
             "How often stale offsets are expired.")
          .valid(at_least(1)),
      broker("offsets.commit.timeout.ms", T::int32, "5000", I::high,
             "Wait for an offset commit to be replicated before failing it.")
          .valid(at_least(1)),
      broker("offset.metadata.max.bytes", T::int32, "4096", I::high,
             "Largest metadata string kept with a committed offset."),
      broker("group.initial.rebalance.delay.ms", T::int32, "3000", I::medium,
             "Wait for more members before the first rebalance of a new group."),
      broker("group.min.session.timeout.ms", T::int32, "6000", I::medium,
             "Smallest session timeout a member may ask for."),
      broker("group.max.session.timeout.ms", T::int32, "1800000", I::medium,
             "Largest session timeout a member may ask for."),
      broker("group.max.size", T::int32, kIntMax, I::medium, "Most members in one group.")
          .valid(at_least(1)),

      // ---- Transactions and idempotence
      broker("transaction.state.log.num.partitions", T::int32, "50", I::high,
             "Partitions of __transaction_state (fixed once created).")
          .valid(at_least(1)),
      broker("transaction.state.log.replication.factor", T::int16, "3", I::high,
             "Replication factor of __transaction_state; set 1 on a single node.")
          .valid(at_least(1)),
      broker("transaction.state.log.min.isr", T::int32, "2", I::high,
             "min.insync.replicas of __transaction_state; set 1 on a single node.")
          .valid(at_least(1)),
      broker("transaction.state.log.segment.bytes", T::int32, "104857600", I::high,
             "Segment size of __transaction_state.")
          .valid(at_least(1)),
      broker("transaction.state.log.load.buffer.size", T::int32, "5242880", I::high,
             "Read size when loading transaction state.")
          .valid(at_least(1)),
      broker("transaction.max.timeout.ms", T::int32, "900000", I::high,
             "Largest transaction timeout a producer may ask for.")
          .valid(at_least(1)),
      broker("transactional.id.expiration.ms", T::int32, "604800000", I::high,
             "A transactional id with no activity for this long is forgotten.")
          .valid(at_least(1)),
      broker("transaction.abort.timed.out.transaction.cleanup.interval.ms", T::int32, "10000",
             I::low, "How often timed-out transactions are aborted.")
          .valid(at_least(1)),
      broker("transaction.remove.expired.transaction.cleanup.interval.ms", T::int32, "3600000",
             I::low, "How often expired transactional ids are removed.")
          .valid(at_least(1)),
      broker("transaction.partition.verification.enable", T::boolean, "true", I::low,
             "Verify a partition is in the transaction before a transactional write (KIP-890)."),
      broker("producer.id.expiration.ms", T::int32, "86400000", I::low,
             "Producer state of an idle producer id is dropped after this long.")
          .valid(at_least(1)),
      broker("producer.id.expiration.check.interval.ms", T::int32, "600000", I::low,
             "How often idle producer ids are expired.")
          .valid(at_least(1)),

      // ---- Security (TLS/SASL not implemented yet: accepted so files load)
      broker("ssl.keystore.location", T::string, kNull, I::high,
             "TLS key store path. TLS listeners are not supported yet.")
          .accepted(),
      broker("ssl.keystore.password", T::password, kNull, I::high, "TLS key store password.")
          .accepted(),
      broker("ssl.key.password", T::password, kNull, I::high, "TLS private key password.")
          .accepted(),
      broker("ssl.truststore.location", T::string, kNull, I::high, "TLS trust store path.")
          .accepted(),
      broker("ssl.truststore.password", T::password, kNull, I::high, "TLS trust store password.")
          .accepted(),
      broker("sasl.jaas.config", T::password, kNull, I::medium,
             "JAAS login configuration. SASL is not supported yet.")
          .accepted(),
      broker("sasl.enabled.mechanisms", T::list, "GSSAPI", I::medium,
             "SASL mechanisms offered. SASL is not supported yet.")
          .accepted(),
      broker("authorizer.class.name", T::string, "", I::low,
             "ACL authorizer. Authorization is not supported yet: all requests are allowed.")
          .accepted(),
      broker("super.users", T::string, kNull, I::medium,
             "Principals that bypass ACLs. Accepted, unused.")
          .accepted(),
  };
  std::vector<config_def> out;
  out.reserve(r.size());
  for (auto& x : r) out.push_back(std::move(x.d));
  return out;
}

std::vector<config_def> build_topic_defs() {
  std::vector<row> r = {
      topic("cleanup.policy", T::list, "delete", I::medium,
            "delete: drop old segments by retention; compact: keep the newest record per key.")
          .valid(list_one_of({"compact", "delete"}))
          .server("log.cleanup.policy"),
      topic("compression.type", T::string, "producer", I::medium,
            "Final compression of stored batches; producer keeps the producer's codec.")
          .valid(one_of(kCompressionTypes))
          .server("compression.type"),
      topic("compression.gzip.level", T::int32, "-1", I::medium, "gzip level.")
          .valid(between_or(1, 9, {-1}))
          .server("compression.gzip.level"),
      topic("compression.lz4.level", T::int32, "9", I::medium, "lz4 level.")
          .valid(between(1, 17))
          .server("compression.lz4.level"),
      topic("compression.zstd.level", T::int32, "3", I::medium, "zstd level.")
          .valid(between(-131072, 22))
          .server("compression.zstd.level"),
      topic("delete.retention.ms", T::int64, "86400000", I::medium,
            "How long tombstones survive compaction.")
          .valid(at_least(0))
          .server("log.cleaner.delete.retention.ms"),
      topic("file.delete.delay.ms", T::int64, "60000", I::medium,
            "Delay before a deleted segment's files are removed.")
          .valid(at_least(0))
          .server("log.segment.delete.delay.ms"),
      topic("flush.messages", T::int64, kLongMax, I::medium, "fsync after this many messages.")
          .valid(at_least(1))
          .server("log.flush.interval.messages"),
      topic("flush.ms", T::int64, kLongMax, I::medium,
            "fsync when the oldest unflushed message is this old.")
          .valid(at_least(0))
          .server("log.flush.interval.ms"),
      topic("follower.replication.throttled.replicas", T::list, "", I::medium,
            "Replicas throttled on the follower side. Accepted, unused.")
          .accepted(),
      topic("leader.replication.throttled.replicas", T::list, "", I::medium,
            "Replicas throttled on the leader side. Accepted, unused.")
          .accepted(),
      topic("index.interval.bytes", T::int32, "4096", I::medium,
            "Bytes between offset index entries.")
          .valid(at_least(0))
          .server("log.index.interval.bytes"),
      topic("local.retention.bytes", T::int64, "-2", I::medium,
            "Tiered storage (unsupported). Accepted.")
          .valid(at_least(-2))
          .accepted()
          .server("log.local.retention.bytes"),
      topic("local.retention.ms", T::int64, "-2", I::medium,
            "Tiered storage (unsupported). Accepted.")
          .valid(at_least(-2))
          .accepted()
          .server("log.local.retention.ms"),
      topic("max.compaction.lag.ms", T::int64, kLongMax, I::medium,
            "Longest a message stays ineligible for compaction.")
          .valid(at_least(1))
          .server("log.cleaner.max.compaction.lag.ms"),
      topic("max.message.bytes", T::int32, "1048588", I::medium, "Largest record batch accepted.")
          .valid(at_least(0))
          .server("message.max.bytes"),
      topic("message.downconversion.enable", T::boolean, "true", I::low,
            "Accepted for compatibility; Varve never down-converts.")
          .accepted()
          .server("log.message.downconversion.enable"),
      topic("message.timestamp.after.max.ms", T::int64, "3600000", I::medium,
            "Reject CreateTime batches newer than now plus this.")
          .valid(at_least(0))
          .server("log.message.timestamp.after.max.ms"),
      topic("message.timestamp.before.max.ms", T::int64, kLongMax, I::medium,
            "Reject CreateTime batches older than now minus this.")
          .valid(at_least(0))
          .server("log.message.timestamp.before.max.ms"),
      topic("message.timestamp.type", T::string, "CreateTime", I::medium,
            "CreateTime or LogAppendTime.")
          .valid(one_of({"CreateTime", "LogAppendTime"}))
          .server("log.message.timestamp.type"),
      topic("min.cleanable.dirty.ratio", T::float64, "0.5", I::medium,
            "Dirty ratio that makes the log eligible for compaction.")
          .valid(between_double(0, 1))
          .server("log.cleaner.min.cleanable.ratio"),
      topic("min.compaction.lag.ms", T::int64, "0", I::medium,
            "Shortest a message stays uncompacted.")
          .valid(at_least(0))
          .server("log.cleaner.min.compaction.lag.ms"),
      topic("min.insync.replicas", T::int32, "1", I::medium,
            "With acks=all, the fewest in-sync replicas that must hold a write.")
          .valid(at_least(1))
          .server("min.insync.replicas"),
      topic("preallocate", T::boolean, "false", I::medium, "Preallocate segment files.")
          .server("log.preallocate"),
      topic("remote.storage.enable", T::boolean, "false", I::medium,
            "Tiered storage is not supported; only false is accepted.")
          .valid(one_of({"false"})),
      topic("remote.log.copy.disable", T::boolean, "false", I::medium,
            "Tiered storage (unsupported). Accepted.")
          .accepted(),
      topic("remote.log.delete.on.disable", T::boolean, "false", I::medium,
            "Tiered storage (unsupported). Accepted.")
          .accepted(),
      topic("retention.bytes", T::int64, "-1", I::medium,
            "Partition size above which old segments are deleted; -1 = no limit.")
          .server("log.retention.bytes"),
      topic("retention.ms", T::int64, "604800000", I::medium,
            "Age after which segments are deleted; -1 = forever.")
          .valid(at_least(-1))
          .server("log.retention.ms"),
      topic("segment.bytes", T::int32, "1073741824", I::medium,
            "Segment size at which the log rolls.")
          .valid(at_least(14))
          .server("log.segment.bytes"),
      topic("segment.index.bytes", T::int32, "10485760", I::medium, "Largest offset index file.")
          .valid(at_least(4))
          .server("log.index.size.max.bytes"),
      topic("segment.jitter.ms", T::int64, "0", I::medium,
            "Random jitter subtracted from segment.ms.")
          .valid(at_least(0))
          .server("log.roll.jitter.ms"),
      topic("segment.ms", T::int64, "604800000", I::medium, "Segment age at which the log rolls.")
          .valid(at_least(1))
          .server("log.roll.ms"),
      topic("unclean.leader.election.enable", T::boolean, "false", I::medium,
            "Allow a replica outside the ISR to become leader, losing acknowledged data.")
          .server("unclean.leader.election.enable"),
  };
  std::vector<config_def> out;
  out.reserve(r.size());
  for (auto& x : r) out.push_back(std::move(x.d));
  return out;
}

const config_def* find_in(const std::vector<config_def>& defs, std::string_view name) {
  static_assert(sizeof(size_t) >= 4);
  for (const auto& d : defs)
    if (d.name == name) return &d;
  return nullptr;
}

std::string_view trim(std::string_view s) {
  auto blank = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

bool parse_int64(std::string_view s, int64_t* out) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_double(std::string_view s, double* out) {
  if (s.empty()) return false;
  std::string copy(s);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size() || errno == ERANGE) return false;
  if (std::isnan(v) && copy.find_first_of("nN") == std::string::npos) return false;
  *out = v;
  return true;
}

std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  size_t start = 0;
  while (true) {
    size_t comma = s.find(',', start);
    std::string_view item =
        trim(s.substr(start, comma == std::string_view::npos ? s.npos : comma - start));
    out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string join(const std::vector<std::string_view>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ", ";
    out += v[i];
  }
  return out;
}

std::string format_double(double d) {
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, d);
  std::string s(buf, p);
  // Match Java's Double.toString for whole numbers ("1.0", not "1").
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string invalid(const config_def& def, std::string_view raw, std::string_view why) {
  std::string m = "Invalid value ";
  m += raw;
  m += " for configuration ";
  m += def.name;
  m += ": ";
  m += why;
  return m;
}

bool check(const config_def& def, std::string_view shown, const config_value& v,
           std::string* error) {
  const validator& val = def.valid;
  auto fail = [&](const std::string& why) {
    if (error) *error = invalid(def, shown, why);
    return false;
  };
  switch (val.k) {
    case validator::kind::none:
      return true;
    case validator::kind::range: {
      if (!std::holds_alternative<int64_t>(v)) return true;
      int64_t x = std::get<int64_t>(v);
      if (std::find(val.also_allowed.begin(), val.also_allowed.end(), x) != val.also_allowed.end())
        return true;
      if (x < val.min_int) {
        if (!val.also_allowed.empty()) return fail("Value must be " + val.describe());
        return fail("Value must be at least " + std::to_string(val.min_int));
      }
      if (x > val.max_int) {
        if (!val.also_allowed.empty()) return fail("Value must be " + val.describe());
        return fail("Value must be no more than " + std::to_string(val.max_int));
      }
      return true;
    }
    case validator::kind::range_double: {
      if (!std::holds_alternative<double>(v)) return true;
      double x = std::get<double>(v);
      if (!(x >= val.min_double))
        return fail("Value must be at least " + format_double(val.min_double));
      if (!(x <= val.max_double))
        return fail("Value must be no more than " + format_double(val.max_double));
      return true;
    }
    case validator::kind::one_of: {
      if (std::holds_alternative<std::monostate>(v)) return true;
      auto text = format_config_value(v);
      for (auto a : val.allowed)
        if (text && *text == a) return true;
      return fail("String must be one of: " + join(val.allowed));
    }
    case validator::kind::list_one_of: {
      if (!std::holds_alternative<std::vector<std::string>>(v)) return true;
      for (const auto& item : std::get<std::vector<std::string>>(v)) {
        if (std::find(val.allowed.begin(), val.allowed.end(), item) == val.allowed.end())
          return fail("Unknown value '" + item + "'; valid values are: " + join(val.allowed));
      }
      return true;
    }
    case validator::kind::non_empty_list: {
      if (std::holds_alternative<std::vector<std::string>>(v) &&
          std::get<std::vector<std::string>>(v).empty())
        return fail("Empty list is not allowed");
      return true;
    }
    case validator::kind::non_empty_string: {
      if (std::holds_alternative<std::string>(v) && std::get<std::string>(v).empty())
        return fail("String must be non-empty");
      return true;
    }
  }
  return true;
}

}  // namespace

std::string_view type_name(config_type t) {
  switch (t) {
    case config_type::boolean:
      return "BOOLEAN";
    case config_type::string:
      return "STRING";
    case config_type::int32:
      return "INT";
    case config_type::int16:
      return "SHORT";
    case config_type::int64:
      return "LONG";
    case config_type::float64:
      return "DOUBLE";
    case config_type::list:
      return "LIST";
    case config_type::class_name:
      return "CLASS";
    case config_type::password:
      return "PASSWORD";
    case config_type::unknown:
      break;
  }
  return "UNKNOWN";
}

std::string_view importance_name(importance i) {
  switch (i) {
    case importance::high:
      return "high";
    case importance::medium:
      return "medium";
    case importance::low:
      return "low";
  }
  return "";
}

std::string validator::describe() const {
  switch (k) {
    case kind::none:
      return "";
    case kind::range: {
      std::string s = "[";
      s += min_int == INT64_MIN ? "..." : std::to_string(min_int);
      s += ",...";
      if (max_int != INT64_MAX) s += "," + std::to_string(max_int);
      s += "]";
      for (auto a : also_allowed) s += " or " + std::to_string(a);
      return s;
    }
    case kind::range_double:
      return "[" + format_double(min_double) + ",...," + format_double(max_double) + "]";
    case kind::one_of:
    case kind::list_one_of:
      return "[" + join(allowed) + "]";
    case kind::non_empty_list:
      return "non-empty list";
    case kind::non_empty_string:
      return "non-empty string";
  }
  return "";
}

validator at_least(int64_t min) {
  validator v;
  v.k = validator::kind::range;
  v.min_int = min;
  return v;
}

validator between(int64_t min, int64_t max) {
  validator v = at_least(min);
  v.max_int = max;
  return v;
}

validator between_or(int64_t min, int64_t max, std::vector<int64_t> also_allowed) {
  validator v = between(min, max);
  v.also_allowed = std::move(also_allowed);
  return v;
}

validator between_double(double min, double max) {
  validator v;
  v.k = validator::kind::range_double;
  v.min_double = min;
  v.max_double = max;
  return v;
}

validator one_of(std::vector<std::string_view> allowed) {
  validator v;
  v.k = validator::kind::one_of;
  v.allowed = std::move(allowed);
  return v;
}

validator list_one_of(std::vector<std::string_view> allowed) {
  validator v;
  v.k = validator::kind::list_one_of;
  v.allowed = std::move(allowed);
  return v;
}

validator non_empty_list() {
  validator v;
  v.k = validator::kind::non_empty_list;
  return v;
}

validator non_empty_string() {
  validator v;
  v.k = validator::kind::non_empty_string;
  return v;
}

const std::vector<config_def>& broker_config_defs() {
  static const std::vector<config_def> defs = build_broker_defs();
  return defs;
}

const std::vector<config_def>& topic_config_defs() {
  static const std::vector<config_def> defs = build_topic_defs();
  return defs;
}

const config_def* find_broker_def(std::string_view name) {
  static const auto index = [] {
    std::map<std::string_view, const config_def*, std::less<>> m;
    for (const auto& d : broker_config_defs()) m.emplace(d.name, &d);
    return m;
  }();
  auto it = index.find(name);
  return it == index.end() ? nullptr : it->second;
}

const config_def* find_topic_def(std::string_view name) {
  return find_in(topic_config_defs(), name);
}

bool parse_config_value(const config_def& def, std::string_view raw, config_value* out,
                        std::string* error) {
  std::string_view t = def.type == config_type::password ? raw : trim(raw);
  std::string_view shown = is_sensitive(def) ? std::string_view("[hidden]") : raw;
  auto fail = [&](std::string_view why) {
    if (error) *error = invalid(def, shown, why);
    return false;
  };
  config_value v;
  switch (def.type) {
    case config_type::boolean:
      if (iequals(t, "true"))
        v = true;
      else if (iequals(t, "false"))
        v = false;
      else
        return fail("Expected value to be either true or false");
      break;
    case config_type::int16:
    case config_type::int32:
    case config_type::int64: {
      int64_t x = 0;
      bool ok = parse_int64(t, &x);
      if (ok && def.type == config_type::int32) ok = x >= INT32_MIN && x <= INT32_MAX;
      if (ok && def.type == config_type::int16) ok = x >= INT16_MIN && x <= INT16_MAX;
      if (!ok) return fail("Not a number of type " + std::string(type_name(def.type)));
      v = x;
      break;
    }
    case config_type::float64: {
      double d = 0;
      if (!parse_double(t, &d)) return fail("Not a number of type DOUBLE");
      v = d;
      break;
    }
    case config_type::list:
      v = split_list(t);
      break;
    case config_type::string:
    case config_type::class_name:
    case config_type::password:
    case config_type::unknown:
      v = std::string(t);
      break;
  }
  if (!check(def, shown, v, error)) return false;
  if (out) *out = std::move(v);
  return true;
}

config_value default_value_of(const config_def& def) {
  if (!def.default_value) return std::monostate{};
  config_value v;
  if (!parse_config_value(def, *def.default_value, &v, nullptr)) return std::monostate{};
  return v;
}

std::optional<std::string> format_config_value(const config_value& v) {
  struct visitor {
    std::optional<std::string> operator()(std::monostate) const { return std::nullopt; }
    std::optional<std::string> operator()(bool b) const { return b ? "true" : "false"; }
    std::optional<std::string> operator()(int64_t x) const { return std::to_string(x); }
    std::optional<std::string> operator()(double d) const { return format_double(d); }
    std::optional<std::string> operator()(const std::string& s) const { return s; }
    std::optional<std::string> operator()(const std::vector<std::string>& l) const {
      std::string out;
      for (size_t i = 0; i < l.size(); ++i) {
        if (i) out += ",";
        out += l[i];
      }
      return out;
    }
  };
  return std::visit(visitor{}, v);
}

}  // namespace varve::config
