package varve.interop;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Helpers shared by the scenarios: client configuration, topic creation with verification,
 * bounded reads of whole partitions, and the failure type every check throws.
 * Not thread-safe unless stated; each scenario runs on one thread plus the clients' own.
 */
final class Support {
  private Support() {}

  /** A check that did not hold: the scenario stops and the process exits non-zero. */
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

  static void requireEqual(Object expected, Object actual, String what) {
    if (expected == null ? actual != null : !expected.equals(actual)) {
      throw new CheckFailed(what + ": expected " + expected + ", got " + actual);
    }
  }

  static String bootstrap() {
    String b = System.getenv("VARVE_BOOTSTRAP");
    if (b == null || b.isEmpty()) {
      throw new CheckFailed("VARVE_BOOTSTRAP is not set (run under tests/lib/with_broker.sh)");
    }
    return b;
  }

  /** Runs a future-returning admin call and unwraps its ExecutionException. */
  static <T> T await(org.apache.kafka.common.KafkaFuture<T> f, String what) throws Exception {
    try {
      return f.get(60, TimeUnit.SECONDS);
    } catch (ExecutionException e) {
      Throwable cause = e.getCause() == null ? e : e.getCause();
      throw new CheckFailed(what + " failed: " + cause);
    } catch (java.util.concurrent.TimeoutException e) {
      throw new CheckFailed(what + " did not complete within 60s");
    }
  }

  static Admin admin() {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 30_000);
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60_000);
    p.put(CommonClientConfigs.CLIENT_ID_CONFIG, "varve-interop-java-admin");
    return Admin.create(p);
  }

  static Properties producerProps(String acks, String compression) {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.ACKS_CONFIG, acks);
    p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
    p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
    p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30_000);
    p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30_000);
    p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60_000);
    p.put(CommonClientConfigs.CLIENT_ID_CONFIG, "varve-interop-java-producer");
    return p;
  }

  static KafkaConsumer<byte[], byte[]> consumer() {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.CHECK_CRCS_CONFIG, true);
    p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30_000);
    p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60_000);
    p.put(CommonClientConfigs.CLIENT_ID_CONFIG, "varve-interop-java-consumer");
    return new KafkaConsumer<>(p);
  }

  /**
   * Creates {@code topic} with {@code partitions} partitions and replication factor 1, then
   * checks DescribeTopics reports it as created: right partition count, each partition with a
   * leader, one replica, that replica in the ISR, and a non-zero topic id.
   */
  static TopicDescription createTopic(Admin admin, String topic, int partitions,
      Map<String, String> configs) throws Exception {
    NewTopic nt = new NewTopic(topic, partitions, (short) 1);
    if (configs != null) {
      nt.configs(configs);
    }
    var result = admin.createTopics(List.of(nt));
    await(result.all(), "createTopics(" + topic + ")");
    requireEqual(partitions, await(result.numPartitions(topic), "numPartitions"),
        "CreateTopics numPartitions of " + topic);
    requireEqual(1, await(result.replicationFactor(topic), "replicationFactor"),
        "CreateTopics replicationFactor of " + topic);
    return describeUntilReady(admin, topic, partitions);
  }

  /** DescribeTopics until every partition has a leader (bounded by 30s), then checks it. */
  static TopicDescription describeUntilReady(Admin admin, String topic, int partitions)
      throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    String last = "";
    while (true) {
      try {
        TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames()
            .get(30, TimeUnit.SECONDS).get(topic);
        boolean ready = d.partitions().size() == partitions
            && d.partitions().stream().allMatch(p -> p.leader() != null && !p.leader().isEmpty());
        if (ready) {
          checkDescription(d, topic, partitions);
          return d;
        }
        last = d.toString();
      } catch (ExecutionException e) {
        last = String.valueOf(e.getCause());
      }
      if (System.nanoTime() > deadline) {
        throw new CheckFailed("topic " + topic + " not ready with " + partitions
            + " led partitions within 30s; last describeTopics: " + last);
      }
      Thread.sleep(200);
    }
  }

  private static void checkDescription(TopicDescription d, String topic, int partitions) {
    requireEqual(topic, d.name(), "described topic name");
    require(!d.isInternal(), topic + " described as internal");
    require(d.topicId() != null && !Uuid.ZERO_UUID.equals(d.topicId()),
        topic + " has no topic id: " + d.topicId());
    for (int i = 0; i < partitions; i++) {
      TopicPartitionInfo p = d.partitions().get(i);
      requireEqual(i, p.partition(), topic + " partition list order");
      requireEqual(1, p.replicas().size(), topic + "-" + i + " replica count");
      requireEqual(p.leader().id(), p.replicas().get(0).id(), topic + "-" + i + " leader is the replica");
      requireEqual(1, p.isr().size(), topic + "-" + i + " ISR size");
      requireEqual(p.leader().id(), p.isr().get(0).id(), topic + "-" + i + " ISR member");
    }
  }

  /**
   * Reads every partition of {@code topic} from its beginning up to the end offsets current at
   * the call (assign + seekToBeginning, no group). If {@code minTotal} > 0, first waits (up to
   * 30s) until the end offsets add up to at least that many records. Fails if the end is not
   * reached within {@code timeout}. Records are returned in per-partition order.
   */
  static Map<Integer, List<ConsumerRecord<byte[], byte[]>>> readAll(String topic, int partitions,
      long minTotal, Duration timeout) throws Exception {
    try (KafkaConsumer<byte[], byte[]> c = consumer()) {
      List<TopicPartition> tps = new ArrayList<>();
      for (int i = 0; i < partitions; i++) {
        tps.add(new TopicPartition(topic, i));
      }
      c.assign(tps);
      c.seekToBeginning(tps);
      Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
      long waitUntil = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (minTotal > 0 && sum(end) < minTotal) {
        if (System.nanoTime() > waitUntil) {
          throw new CheckFailed(topic + ": end offsets add up to " + sum(end) + " after 30s, "
              + "expected at least " + minTotal + " (" + end + ")");
        }
        Thread.sleep(200);
        end = c.endOffsets(tps, Duration.ofSeconds(30));
      }
      Map<Integer, List<ConsumerRecord<byte[], byte[]>>> out = new HashMap<>();
      for (int i = 0; i < partitions; i++) {
        out.put(i, new ArrayList<>());
      }
      long deadline = System.nanoTime() + timeout.toNanos();
      while (true) {
        boolean done = true;
        for (TopicPartition tp : tps) {
          if (c.position(tp, Duration.ofSeconds(30)) < end.get(tp)) {
            done = false;
          }
        }
        if (done) {
          break;
        }
        if (System.nanoTime() > deadline) {
          Map<TopicPartition, Long> pos = new HashMap<>();
          for (TopicPartition tp : tps) {
            pos.put(tp, c.position(tp));
          }
          throw new CheckFailed(topic + ": consumer did not reach end offsets " + end
              + " within " + timeout.toSeconds() + "s; positions " + pos);
        }
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
          out.get(r.partition()).add(r);
        }
      }
      return out;
    }
  }

  static long sum(Map<TopicPartition, Long> m) {
    long s = 0;
    for (long v : m.values()) {
      s += v;
    }
    return s;
  }
}
