package varve.interop;

import static varve.interop.Support.await;
import static varve.interop.Support.require;
import static varve.interop.Support.requireEqual;

import java.nio.charset.StandardCharsets;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConfigEntry.ConfigSource;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;

/**
 * Exercises the Admin API end to end: CreateTopics (validateOnly, duplicate), DescribeConfigs
 * (defaults and their source), IncrementalAlterConfigs (set, read back, delete), CreatePartitions
 * (3 → 5), ListOffsets (earliest, latest, maxTimestamp, forTimestamp), DeleteRecords (moves the
 * log start offset), DescribeCluster, DeleteTopics (then absent from ListTopics).
 */
final class AdminScenario {
  private static final long DEFAULT_RETENTION_MS = 604_800_000L; // 7 days, Kafka's default
  private static final int RECORDS = 100;
  private int checks_;

  void run() throws Exception {
    String suffix = Long.toString(System.currentTimeMillis() % 1_000_000, 36);
    String topic = "java-admin-" + suffix;
    try (Admin admin = Support.admin()) {
      cluster(admin);
      validateOnly(admin, "java-admin-validate-" + suffix);
      Support.createTopic(admin, topic, 3, null);
      ok("createTopics " + topic + " (3 partitions, RF 1) + describeTopics");
      duplicateCreate(admin, topic);
      defaultConfigs(admin, topic);
      alterConfigs(admin, topic);
      topicCreatedWithConfig(admin, "java-admin-compact-" + suffix);
      createPartitions(admin, topic);
      offsets(admin, topic);
      deleteTopic(admin, topic);
      deleteTopic(admin, "java-admin-compact-" + suffix);
    }
    System.out.printf("admin: checks=%d mismatches=0%n", checks_);
  }

  private void ok(String what) {
    checks_++;
    System.out.println("ok: " + what);
  }

  private void cluster(Admin admin) throws Exception {
    DescribeClusterResult r = admin.describeCluster();
    Collection<Node> nodes = await(r.nodes(), "describeCluster nodes");
    Node controller = await(r.controller(), "describeCluster controller");
    String clusterId = await(r.clusterId(), "describeCluster clusterId");
    requireEqual(1, nodes.size(), "describeCluster node count (" + nodes + ")");
    require(controller != null && !controller.isEmpty() && controller.id() >= 0,
        "describeCluster: no controller (" + controller + ")");
    require(nodes.stream().anyMatch(n -> n.id() == controller.id()),
        "describeCluster: controller " + controller + " is not among the nodes " + nodes);
    require(clusterId != null && !clusterId.isEmpty(), "describeCluster: no cluster id");
    Node n = nodes.iterator().next();
    require(n.port() > 0 && n.host() != null && !n.host().isEmpty(), "node without address: " + n);
    ok("describeCluster: node " + n + ", controller " + controller.id() + ", cluster id " + clusterId);
  }

  private void validateOnly(Admin admin, String topic) throws Exception {
    var r = admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1)),
        new CreateTopicsOptions().validateOnly(true));
    await(r.all(), "createTopics(" + topic + ", validateOnly)");
    requireEqual(3, await(r.numPartitions(topic), "numPartitions"), "validateOnly numPartitions");
    Set<String> names = await(admin.listTopics().names(), "listTopics");
    require(!names.contains(topic), "validateOnly createTopics created " + topic);
    ok("createTopics validateOnly succeeded and did not create " + topic);
  }

  private void duplicateCreate(Admin admin, String topic) throws Exception {
    try {
      admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get(60, TimeUnit.SECONDS);
      throw new Support.CheckFailed("creating existing topic " + topic + " succeeded");
    } catch (ExecutionException e) {
      require(e.getCause() instanceof TopicExistsException,
          "creating existing topic: expected TopicExistsException, got " + e.getCause());
    }
    ok("createTopics of an existing topic fails with TopicExistsException");
  }

  private static ConfigResource topicResource(String topic) {
    return new ConfigResource(ConfigResource.Type.TOPIC, topic);
  }

  private static Config describe(Admin admin, String topic) throws Exception {
    Map<ConfigResource, Config> m = await(
        admin.describeConfigs(List.of(topicResource(topic))).all(), "describeConfigs(" + topic + ")");
    Config c = m.get(topicResource(topic));
    require(c != null, "describeConfigs returned nothing for " + topic);
    return c;
  }

  private static ConfigEntry entry(Config c, String name) {
    ConfigEntry e = c.get(name);
    require(e != null, "describeConfigs lacks " + name + " (has " + c.entries().size() + " entries)");
    return e;
  }

  private void defaultConfigs(Admin admin, String topic) throws Exception {
    Config c = describe(admin, topic);
    ConfigEntry retention = entry(c, "retention.ms");
    ConfigEntry cleanup = entry(c, "cleanup.policy");
    // Not set on the topic: the value comes from the broker's defaults (Kafka reports
    // DEFAULT_CONFIG, or STATIC_BROKER_CONFIG when server.properties sets log.retention.*).
    Set<ConfigSource> inherited = Set.of(ConfigSource.DEFAULT_CONFIG, ConfigSource.STATIC_BROKER_CONFIG);
    requireEqual(String.valueOf(DEFAULT_RETENTION_MS), retention.value(), "default retention.ms");
    require(inherited.contains(retention.source()), "retention.ms source " + retention.source());
    require(!retention.isReadOnly() && !retention.isSensitive(), "retention.ms flags " + retention);
    requireEqual("delete", cleanup.value(), "default cleanup.policy");
    require(inherited.contains(cleanup.source()), "cleanup.policy source " + cleanup.source());
    ok("describeConfigs: retention.ms=" + retention.value() + " (" + retention.source()
        + "), cleanup.policy=" + cleanup.value() + " (" + cleanup.source() + "), "
        + c.entries().size() + " entries");
  }

  private void alterConfigs(Admin admin, String topic) throws Exception {
    var res = topicResource(topic);
    await(admin.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(
        new ConfigEntry("retention.ms", "3600000"), AlterConfigOp.OpType.SET)))).all(),
        "incrementalAlterConfigs SET retention.ms");
    ConfigEntry e = waitForConfig(admin, topic, "retention.ms", "3600000");
    requireEqual(ConfigSource.DYNAMIC_TOPIC_CONFIG, e.source(), "retention.ms source after SET");
    ok("incrementalAlterConfigs SET retention.ms=3600000 read back (" + e.source() + ")");

    // An invalid value must be rejected and leave the config unchanged.
    try {
      admin.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(
          new ConfigEntry("retention.ms", "not-a-number"), AlterConfigOp.OpType.SET))))
          .all().get(60, TimeUnit.SECONDS);
      throw new Support.CheckFailed("incrementalAlterConfigs accepted retention.ms=not-a-number");
    } catch (ExecutionException ex) {
      require(ex.getCause() instanceof org.apache.kafka.common.errors.InvalidConfigurationException
          || ex.getCause() instanceof org.apache.kafka.common.errors.InvalidRequestException,
          "invalid retention.ms: expected InvalidConfigurationException, got " + ex.getCause());
    }
    requireEqual("3600000", entry(describe(admin, topic), "retention.ms").value(),
        "retention.ms after rejected change");
    ok("incrementalAlterConfigs rejects retention.ms=not-a-number and keeps the old value");

    await(admin.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(
        new ConfigEntry("retention.ms", ""), AlterConfigOp.OpType.DELETE)))).all(),
        "incrementalAlterConfigs DELETE retention.ms");
    e = waitForConfig(admin, topic, "retention.ms", String.valueOf(DEFAULT_RETENTION_MS));
    require(e.source() != ConfigSource.DYNAMIC_TOPIC_CONFIG, "retention.ms still a topic config after DELETE");
    ok("incrementalAlterConfigs DELETE retention.ms restores the default (" + e.source() + ")");
  }

  /** Config changes may take a moment to show; poll describeConfigs for up to 10s. */
  private static ConfigEntry waitForConfig(Admin admin, String topic, String name, String value)
      throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (true) {
      ConfigEntry e = entry(describe(admin, topic), name);
      if (value.equals(e.value())) {
        return e;
      }
      if (System.nanoTime() > deadline) {
        throw new Support.CheckFailed(topic + " " + name + " = " + e.value() + " (" + e.source()
            + ") 10s after the change, expected " + value);
      }
      Thread.sleep(200);
    }
  }

  private void topicCreatedWithConfig(Admin admin, String topic) throws Exception {
    Support.createTopic(admin, topic, 1, Map.of("cleanup.policy", "compact", "retention.ms", "86400000"));
    Config c = describe(admin, topic);
    ConfigEntry cleanup = entry(c, "cleanup.policy");
    ConfigEntry retention = entry(c, "retention.ms");
    requireEqual("compact", cleanup.value(), "cleanup.policy of topic created with it");
    requireEqual(ConfigSource.DYNAMIC_TOPIC_CONFIG, cleanup.source(), "cleanup.policy source");
    requireEqual("86400000", retention.value(), "retention.ms of topic created with it");
    requireEqual(ConfigSource.DYNAMIC_TOPIC_CONFIG, retention.source(), "retention.ms source");
    ok("createTopics with configs: describeConfigs shows cleanup.policy=compact, retention.ms=86400000 as topic configs");
  }

  private void createPartitions(Admin admin, String topic) throws Exception {
    await(admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all(),
        "createPartitions(" + topic + " → 5)");
    TopicDescription d = Support.describeUntilReady(admin, topic, 5);
    requireEqual(5, d.partitions().size(), "partitions after createPartitions");
    ok("createPartitions 3 → 5: describeTopics shows 5 led partitions");

    try {
      admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(4))).all().get(60, TimeUnit.SECONDS);
      throw new Support.CheckFailed("createPartitions 5 → 4 succeeded");
    } catch (ExecutionException ex) {
      require(ex.getCause() instanceof org.apache.kafka.common.errors.InvalidPartitionsException,
          "createPartitions 5 → 4: expected InvalidPartitionsException, got " + ex.getCause());
    }
    ok("createPartitions 5 → 4 fails with InvalidPartitionsException");
  }

  private static Map<TopicPartition, ListOffsetsResultInfo> list(Admin admin, TopicPartition tp,
      OffsetSpec spec, String what) throws Exception {
    return await(admin.listOffsets(Map.of(tp, spec)).all(), "listOffsets " + what);
  }

  private void offsets(Admin admin, String topic) throws Exception {
    TopicPartition tp = new TopicPartition(topic, 4); // one of the new partitions
    long base = System.currentTimeMillis() - 3_600_000;
    // One batch per record (synchronous sends), timestamps base + 10*i, except record 70
    // which carries the largest timestamp of all: base + 5000.
    var props = Support.producerProps("all", "none");
    try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(props)) {
      for (int i = 0; i < RECORDS; i++) {
        long ts = i == 70 ? base + 5_000 : base + 10L * i;
        RecordMetadata md = p.send(new ProducerRecord<>(topic, 4, ts,
            ("k" + i).getBytes(StandardCharsets.UTF_8), ("v" + i).getBytes(StandardCharsets.UTF_8)))
            .get(60, TimeUnit.SECONDS);
        requireEqual((long) i, md.offset(), "offset of record " + i + " on " + tp);
      }
    }
    requireEqual(0L, list(admin, tp, OffsetSpec.earliest(), "earliest").get(tp).offset(), "earliest offset");
    requireEqual((long) RECORDS, list(admin, tp, OffsetSpec.latest(), "latest").get(tp).offset(), "latest offset");
    ListOffsetsResultInfo max = list(admin, tp, OffsetSpec.maxTimestamp(), "maxTimestamp").get(tp);
    requireEqual(70L, max.offset(), "maxTimestamp offset");
    requireEqual(base + 5_000, max.timestamp(), "maxTimestamp timestamp");
    ListOffsetsResultInfo at = list(admin, tp, OffsetSpec.forTimestamp(base + 505), "forTimestamp").get(tp);
    requireEqual(51L, at.offset(), "forTimestamp(base+505) offset");
    requireEqual(base + 510, at.timestamp(), "forTimestamp(base+505) timestamp");
    at = list(admin, tp, OffsetSpec.forTimestamp(base + 2_000), "forTimestamp").get(tp);
    requireEqual(70L, at.offset(), "forTimestamp(base+2000) offset");
    at = list(admin, tp, OffsetSpec.forTimestamp(base + 100_000), "forTimestamp").get(tp);
    requireEqual(-1L, at.offset(), "forTimestamp past every record: offset");
    TopicPartition empty = new TopicPartition(topic, 0);
    requireEqual(0L, list(admin, empty, OffsetSpec.latest(), "latest (empty)").get(empty).offset(),
        "latest offset of an empty partition");
    ok("listOffsets earliest=0 latest=100 maxTimestamp=70@" + max.timestamp()
        + " forTimestamp → 51 / 70 / -1");

    var deleteResult = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(40)));
    long low = await(deleteResult.lowWatermarks().get(tp), "deleteRecords before 40").lowWatermark();
    requireEqual(40L, low, "deleteRecords low watermark");
    requireEqual(40L, list(admin, tp, OffsetSpec.earliest(), "earliest after deleteRecords").get(tp).offset(),
        "earliest offset after deleteRecords");
    requireEqual((long) RECORDS, list(admin, tp, OffsetSpec.latest(), "latest after deleteRecords").get(tp).offset(),
        "latest offset after deleteRecords");
    var records = Support.readAll(topic, 5, 0, java.time.Duration.ofSeconds(30)).get(4);
    requireEqual(RECORDS - 40, records.size(), "records readable after deleteRecords");
    requireEqual(40L, records.get(0).offset(), "first readable offset after deleteRecords");
    ok("deleteRecords before 40: low watermark 40, earliest 40, consumer starts at 40 ("
        + records.size() + " records)");
  }

  private void deleteTopic(Admin admin, String topic) throws Exception {
    await(admin.deleteTopics(List.of(topic)).all(), "deleteTopics(" + topic + ")");
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15);
    while (await(admin.listTopics().names(), "listTopics").contains(topic)) {
      require(System.nanoTime() < deadline, "listTopics still shows " + topic + " 15s after deleteTopics");
      Thread.sleep(200);
    }
    try {
      admin.describeTopics(List.of(topic)).allTopicNames().get(60, TimeUnit.SECONDS);
      throw new Support.CheckFailed("describeTopics still describes deleted " + topic);
    } catch (ExecutionException ex) {
      require(ex.getCause() instanceof UnknownTopicOrPartitionException,
          "describeTopics of deleted topic: expected UnknownTopicOrPartitionException, got " + ex.getCause());
    }
    ok("deleteTopics " + topic + ": gone from listTopics and describeTopics");
  }
}
