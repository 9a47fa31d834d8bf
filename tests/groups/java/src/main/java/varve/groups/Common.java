package varve.groups;

import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Helpers shared by the group scenarios: configuration, topic creation, keyed production,
 * bounded admin calls and an append-only event file that survives SIGKILL of the writer
 * (every line is written with one write(2) before the caller goes on).
 */
final class Common {
  private Common() {}

  /** A check that did not hold: the scenario stops and the process exits 1. */
  static final class CheckFailed extends RuntimeException {
    CheckFailed(String message) {
      super(message);
    }
  }

  static void require(boolean condition, String message) {
    if (!condition) {
      throw new CheckFailed(message);
    }
  }

  static String bootstrap() {
    String b = System.getenv("VARVE_BOOTSTRAP");
    if (b == null || b.isEmpty()) {
      throw new CheckFailed("VARVE_BOOTSTRAP is not set (run under tests/lib/with_broker.sh)");
    }
    return b;
  }

  static <T> T await(org.apache.kafka.common.KafkaFuture<T> f, String what) throws Exception {
    try {
      return f.get(60, TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      throw new CheckFailed(what + " failed: " + (e.getCause() == null ? e : e.getCause()));
    } catch (java.util.concurrent.TimeoutException e) {
      throw new CheckFailed(what + " did not complete within 60s");
    }
  }

  static Admin admin() {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 30_000);
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60_000);
    p.put(CommonClientConfigs.CLIENT_ID_CONFIG, "varve-groups-admin");
    return Admin.create(p);
  }

  /** Consumer settings for a subscribing group member with manual commits. */
  static Properties consumerProps(String group, String clientId) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
    p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 6000);
    p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1000);
    p.put(ConsumerConfig.MAX_POLL_INTERVAL_MS_CONFIG, 30_000);
    p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30_000);
    p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
    p.put(CommonClientConfigs.CLIENT_ID_CONFIG, clientId);
    return p;
  }

  static void createTopic(Admin admin, String topic, int partitions) throws Exception {
    await(admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all(),
        "createTopics(" + topic + ")");
  }

  /**
   * Produces {@code count} records keyed "k-&lt;i&gt;" (value "v-&lt;i&gt;") with acks=all, partition
   * chosen by key; returns the number acknowledged per partition. Fails if any send fails.
   */
  static Map<Integer, Long> produceKeyed(String topic, int count) throws Exception {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
    p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60_000);
    p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30_000);
    p.put(CommonClientConfigs.CLIENT_ID_CONFIG, "varve-groups-producer");
    Map<Integer, Long> perPartition = new HashMap<>();
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
      List<Future<RecordMetadata>> acks = new ArrayList<>();
      for (int i = 0; i < count; i++) {
        acks.add(producer.send(new ProducerRecord<>(topic, "k-" + i, "v-" + i)));
      }
      producer.flush();
      for (Future<RecordMetadata> f : acks) {
        RecordMetadata m;
        try {
          m = f.get(60, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
          throw new CheckFailed("produce to " + topic + " failed: " + e.getCause());
        }
        perPartition.merge(m.partition(), 1L, Long::sum);
      }
    }
    return perPartition;
  }

  static Map<TopicPartition, Long> endOffsets(Admin admin, String topic, int partitions)
      throws Exception {
    Map<TopicPartition, OffsetSpec> req = new HashMap<>();
    for (int i = 0; i < partitions; i++) {
      req.put(new TopicPartition(topic, i), OffsetSpec.latest());
    }
    Map<TopicPartition, Long> out = new HashMap<>();
    await(admin.listOffsets(req).all(), "listOffsets(" + topic + ")")
        .forEach((tp, info) -> out.put(tp, info.offset()));
    return out;
  }

  /** Committed offsets of {@code group} (OffsetFetch through the Admin client). */
  static Map<TopicPartition, OffsetAndMetadata> committed(Admin admin, String group)
      throws Exception {
    return await(admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata(),
        "listConsumerGroupOffsets(" + group + ")");
  }

  /** Append-only line file; each line is one write(2), so it survives SIGKILL of the JVM. */
  static final class EventFile implements AutoCloseable {
    private final OutputStream out;

    EventFile(String path) throws IOException {
      out = new FileOutputStream(path, true);
    }

    synchronized void line(String s) {
      try {
        out.write((s + "\n").getBytes(StandardCharsets.UTF_8));
      } catch (IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
    }

    @Override
    public synchronized void close() throws IOException {
      out.close();
    }
  }

  static String partitionsString(java.util.Collection<TopicPartition> tps) {
    List<Integer> ps = new ArrayList<>();
    for (TopicPartition tp : tps) {
      ps.add(tp.partition());
    }
    java.util.Collections.sort(ps);
    StringBuilder sb = new StringBuilder();
    for (int p : ps) {
      if (sb.length() > 0) {
        sb.append(',');
      }
      sb.append(p);
    }
    return sb.toString();
  }
}
