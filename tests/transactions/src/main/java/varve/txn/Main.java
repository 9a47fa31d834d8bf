package varve.txn;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.DescribeProducersResult.PartitionProducerState;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Transaction scenarios against one broker at $VARVE_BOOTSTRAP (tests/lib/with_broker.sh):
 * {@code Main ctp|abort|fencing|timeout}. Exits 0 when every check held, 1 on the first failed
 * check or unexpected exception (reason on stderr), 2 on bad usage.
 */
public final class Main {
  private Main() {}

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
    require(b != null && !b.isEmpty(), "VARVE_BOOTSTRAP is not set (run under with_broker.sh)");
    return b;
  }

  public static void main(String[] args) {
    if (args.length != 1) {
      System.err.println("usage: Main ctp|abort|fencing|timeout|copier");
      System.exit(2);
    }
    long start = System.nanoTime();
    try {
      switch (args[0]) {
        case "ctp" -> consumeTransformProduce();
        case "abort" -> abortedRecordsOnlyForReadUncommitted();
        case "fencing" -> zombieFencing();
        case "timeout" -> timedOutTransactionIsAborted();
        case "copier" -> copier();
        default -> {
          System.err.println("unknown scenario " + args[0]);
          System.exit(2);
        }
      }
    } catch (CheckFailed e) {
      System.out.flush();
      System.err.println("FAIL [" + args[0] + "]: " + e.getMessage());
      System.exit(1);
    } catch (Throwable t) {
      System.out.flush();
      System.err.println("FAIL [" + args[0] + "]: unexpected exception");
      t.printStackTrace();
      System.exit(1);
    }
    System.out.printf("PASS [%s] in %.1fs%n", args[0], (System.nanoTime() - start) / 1e9);
    System.exit(0);
  }

  // ------------------------------------------------------------------ clients

  static Admin admin() {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60_000);
    return Admin.create(p);
  }

  /** Replication factor of the test topics: $VARVE_TXN_RF (a cluster run), else 1. */
  static short replicationFactor() {
    return Short.parseShort(System.getenv().getOrDefault("VARVE_TXN_RF", "1"));
  }

  static void createTopics(int partitions, String... names) throws Exception {
    try (Admin admin = admin()) {
      List<NewTopic> topics = new ArrayList<>();
      for (String n : names) {
        topics.add(new NewTopic(n, partitions, replicationFactor()));
      }
      admin.createTopics(topics).all().get(60, TimeUnit.SECONDS);
    }
  }

  static KafkaProducer<String, String> producer(String transactionalId, int timeoutMs) {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
    p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 60_000);
    p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60_000);
    p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 30_000);
    if (transactionalId != null) {
      p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
      p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, timeoutMs);
    }
    return new KafkaProducer<>(p);
  }

  static KafkaConsumer<String, String> consumer(String group, boolean readCommitted) {
    return consumer(group, readCommitted, new Properties());
  }

  static KafkaConsumer<String, String> consumer(String group, boolean readCommitted,
      Properties extra) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap());
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, readCommitted ? "read_committed" : "read_uncommitted");
    p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60_000);
    if (group != null) {
      p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    }
    p.putAll(extra);
    return new KafkaConsumer<>(p);
  }

  /**
   * Reads every record of `topic` (all partitions, assigned without a group) until `expected`
   * records arrived or `quietMs` passed without new records (at least `minMs` in total). Returns
   * the values in arrival order.
   */
  static List<String> readAll(String topic, boolean readCommitted, int expected, long minMs,
      long quietMs) {
    List<String> out = new ArrayList<>();
    try (KafkaConsumer<String, String> c = consumer(null, readCommitted)) {
      List<TopicPartition> tps = new ArrayList<>();
      c.partitionsFor(topic).forEach(pi -> tps.add(new TopicPartition(topic, pi.partition())));
      c.assign(tps);
      c.seekToBeginning(tps);
      long start = System.currentTimeMillis();
      long last = start;
      while (true) {
        ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(200));
        for (ConsumerRecord<String, String> r : recs) {
          out.add(r.value());
        }
        long now = System.currentTimeMillis();
        if (!recs.isEmpty()) {
          last = now;
        }
        if (out.size() >= expected && now - start >= minMs) {
          return out;
        }
        if (now - last >= quietMs && now - start >= minMs) {
          return out;
        }
      }
    }
  }

  static void producePlain(String topic, List<String> values) throws Exception {
    try (KafkaProducer<String, String> p = producer(null, 0)) {
      List<Future<?>> acks = new ArrayList<>();
      for (String v : values) {
        acks.add(p.send(new ProducerRecord<>(topic, v, v)));
      }
      for (Future<?> f : acks) {
        f.get(60, TimeUnit.SECONDS);
      }
    }
  }

  static String suffix() {
    return UUID.randomUUID().toString().substring(0, 8);
  }

  // ------------------------------------------------------------------ scenarios

  /**
   * The seed's loop: a read_committed consumer in a group feeds a transactional producer that
   * writes the transformed records and commits the consumed offsets in the same transaction
   * (sendOffsetsToTransaction with the consumer's group metadata). One transaction in the
   * middle is aborted and its input re-processed from the committed offsets. The output must
   * hold every input exactly once for read_committed; the group's committed offsets must
   * cover the whole input.
   */
  static void consumeTransformProduce() throws Exception {
    final String in = "txn-in-" + suffix();
    final String out = "txn-out-" + suffix();
    final String group = "txn-copier-" + suffix();
    final int n = 2000;
    createTopics(3, in, out);
    List<String> inputs = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      inputs.add("r" + i);
    }
    producePlain(in, inputs);

    int transactions = 0;
    boolean abortedOne = false;
    try (KafkaConsumer<String, String> consumer = consumer(group, true);
        KafkaProducer<String, String> producer = producer("copier-" + group, 60_000)) {
      producer.initTransactions();
      consumer.subscribe(List.of(in));
      int copied = 0;
      long deadline = System.currentTimeMillis() + 120_000;
      while (copied < n) {
        require(System.currentTimeMillis() < deadline,
            "copier did not finish within 120s (" + copied + " of " + n + " copied)");
        ConsumerRecords<String, String> recs = consumer.poll(Duration.ofMillis(500));
        if (recs.isEmpty()) {
          continue;
        }
        producer.beginTransaction();
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        for (ConsumerRecord<String, String> r : recs) {
          producer.send(new ProducerRecord<>(out, r.key(), "copy-" + r.value()));
          offsets.put(new TopicPartition(r.topic(), r.partition()),
              new OffsetAndMetadata(r.offset() + 1));
        }
        producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
        if (!abortedOne && copied > 0) {
          // Abort one transaction: its output must stay invisible and its input be re-read.
          // (flush first: an abort drops batches not sent yet, and the aborted records must
          // be in the log for the read_uncommitted check.)
          producer.flush();
          producer.abortTransaction();
          abortedOne = true;
          for (TopicPartition tp : recs.partitions()) {
            OffsetAndMetadata committed = consumer.committed(Set.of(tp)).get(tp);
            consumer.seek(tp, committed == null ? 0 : committed.offset());
          }
          continue;
        }
        producer.commitTransaction();
        copied += recs.count();
        transactions++;
      }
    }
    require(abortedOne, "the copier never aborted a transaction (input too small?)");
    System.out.println("copied " + n + " records in " + transactions + " transactions");

    List<String> committedView = readAll(out, true, n, 0, 5_000);
    require(committedView.size() == n,
        "read_committed sees " + committedView.size() + " output records, expected " + n);
    Set<String> distinct = new HashSet<>(committedView);
    require(distinct.size() == n, "read_committed output has duplicates ("
        + distinct.size() + " distinct of " + committedView.size() + ")");
    for (String v : inputs) {
      require(distinct.contains("copy-" + v), "output is missing copy-" + v);
    }
    List<String> uncommittedView = readAll(out, false, n + 1, 0, 3_000);
    require(uncommittedView.size() > n, "read_uncommitted sees " + uncommittedView.size()
        + " records; the aborted transaction's output should be there too");

    try (Admin admin = admin()) {
      Map<TopicPartition, OffsetAndMetadata> committed =
          admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(60, TimeUnit.SECONDS);
      long total = 0;
      for (OffsetAndMetadata om : committed.values()) {
        total += om.offset();
      }
      require(total == n, "group " + group + " committed offsets sum to " + total + ", expected " + n);
    }
  }

  /**
   * A long-running copier for fault tests (cluster_ctp_faults_test.py): copies
   * $VARVE_TXN_IN to $VARVE_TXN_OUT in transactions of whatever one poll returns, committing the
   * consumed offsets of group $VARVE_TXN_GROUP in the same transaction, with transactional id
   * $VARVE_TXN_ID. Exits 0 once the group's committed offsets add up to $VARVE_TXN_TOTAL.
   * Abortable errors abort the transaction and rewind to the committed offsets; a fenced
   * producer exits 3 (another copier took over). May be SIGKILLed and restarted at any time.
   */
  static void copier() throws Exception {
    final String in = System.getenv("VARVE_TXN_IN");
    final String out = System.getenv("VARVE_TXN_OUT");
    final String group = System.getenv("VARVE_TXN_GROUP");
    final String id = System.getenv("VARVE_TXN_ID");
    final long total = Long.parseLong(System.getenv("VARVE_TXN_TOTAL"));
    Properties cp = new Properties();
    cp.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 6_000);
    cp.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1_000);
    cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 500);
    long transactions = 0;
    long aborts = 0;
    try (KafkaConsumer<String, String> consumer = consumer(group, true, cp);
        KafkaProducer<String, String> producer = producer(id, 30_000)) {
      producer.initTransactions();
      consumer.subscribe(List.of(in));
      long nextDoneCheck = 0;
      while (true) {
        ConsumerRecords<String, String> recs = consumer.poll(Duration.ofMillis(500));
        if (recs.isEmpty()) {
          long now = System.currentTimeMillis();
          if (now >= nextDoneCheck && !consumer.assignment().isEmpty()) {
            nextDoneCheck = now + 2_000;
            long sum = 0;
            for (OffsetAndMetadata om : consumer.committed(consumer.assignment()).values()) {
              sum += om == null ? 0 : om.offset();
            }
            if (consumer.assignment().size() == consumer.partitionsFor(in).size() && sum >= total) {
              System.out.println("copier done: " + transactions + " transactions, " + aborts + " aborted");
              return;
            }
          }
          continue;
        }
        try {
          producer.beginTransaction();
          Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
          for (ConsumerRecord<String, String> r : recs) {
            producer.send(new ProducerRecord<>(out, r.key(), r.value()));
            offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
          }
          producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
          producer.commitTransaction();
          transactions++;
        } catch (ProducerFencedException | org.apache.kafka.common.errors.InvalidProducerEpochException
            | org.apache.kafka.common.errors.FencedInstanceIdException e) {
          System.out.println("copier fenced: " + e);
          System.exit(3);
        } catch (KafkaException e) {
          System.out.println("copier: aborting after " + e);
          aborts++;
          producer.abortTransaction();
          for (TopicPartition tp : consumer.assignment()) {
            OffsetAndMetadata om = consumer.committed(Set.of(tp)).get(tp);
            consumer.seek(tp, om == null ? 0 : om.offset());
          }
        }
      }
    }
  }

  /**
   * Committed and aborted transactions interleaved with plain records: read_committed sees the
   * plain and committed records only, read_uncommitted sees everything.
   */
  static void abortedRecordsOnlyForReadUncommitted() throws Exception {
    final String topic = "txn-abort-" + suffix();
    final String id = "abort-" + suffix();
    createTopics(1, topic);
    try (KafkaProducer<String, String> p = producer(id, 60_000)) {
      p.initTransactions();
      p.beginTransaction();
      for (int i = 0; i < 10; i++) {
        p.send(new ProducerRecord<>(topic, "c1-" + i));
      }
      p.commitTransaction();
      p.beginTransaction();
      for (int i = 0; i < 10; i++) {
        p.send(new ProducerRecord<>(topic, "a-" + i));
      }
      p.flush();
      p.abortTransaction();
      p.beginTransaction();
      for (int i = 0; i < 10; i++) {
        p.send(new ProducerRecord<>(topic, "c2-" + i));
      }
      p.commitTransaction();
    }
    List<String> committed = readAll(topic, true, 20, 0, 5_000);
    require(committed.size() == 20, "read_committed sees " + committed.size() + " records, expected 20: " + committed);
    for (String v : committed) {
      require(!v.startsWith("a-"), "read_committed returned aborted record " + v);
    }
    List<String> all = readAll(topic, false, 30, 0, 5_000);
    require(all.size() == 30, "read_uncommitted sees " + all.size() + " records, expected 30");
    long aborted = all.stream().filter(v -> v.startsWith("a-")).count();
    require(aborted == 10, "read_uncommitted sees " + aborted + " aborted records, expected 10");

    // The admin view: the id's last transaction committed, nothing open on the partition.
    try (Admin admin = admin()) {
      TransactionDescription d =
          admin.describeTransactions(List.of(id)).description(id).get(60, TimeUnit.SECONDS);
      require(d.state() == TransactionState.COMPLETE_COMMIT,
          "DescribeTransactions state " + d.state() + ", expected COMPLETE_COMMIT");
      require(d.topicPartitions().isEmpty(), "a completed transaction lists partitions: " + d);
      boolean listed = false;
      for (TransactionListing l : admin.listTransactions().all().get(60, TimeUnit.SECONDS)) {
        listed |= l.transactionalId().equals(id) && l.producerId() == d.producerId();
      }
      require(listed, "ListTransactions does not list " + id);
      TopicPartition tp = new TopicPartition(topic, 0);
      PartitionProducerState ps =
          admin.describeProducers(List.of(tp)).partitionResult(tp).get(60, TimeUnit.SECONDS);
      require(ps.activeProducers().size() == 1, "DescribeProducers: " + ps.activeProducers());
      ProducerState st = ps.activeProducers().get(0);
      require(st.producerId() == d.producerId(), "DescribeProducers producer " + st.producerId()
          + ", DescribeTransactions says " + d.producerId());
      require(st.currentTransactionStartOffset().isEmpty(),
          "DescribeProducers shows an open transaction: " + st);
    }
  }

  /**
   * A second producer with the same transactional.id fences the first: the first one's commit
   * fails with ProducerFencedException, and its open transaction is aborted (invisible to
   * read_committed) while the second one's transaction commits.
   */
  static void zombieFencing() throws Exception {
    final String topic = "txn-fence-" + suffix();
    final String id = "fence-" + suffix();
    createTopics(1, topic);
    KafkaProducer<String, String> zombie = producer(id, 60_000);
    zombie.initTransactions();
    zombie.beginTransaction();
    zombie.send(new ProducerRecord<>(topic, "zombie-1")).get(30, TimeUnit.SECONDS);

    try (KafkaProducer<String, String> fresh = producer(id, 60_000)) {
      fresh.initTransactions();  // fences the zombie and aborts its transaction
      boolean fenced = false;
      try {
        zombie.send(new ProducerRecord<>(topic, "zombie-2"));
        zombie.commitTransaction();
      } catch (ProducerFencedException e) {
        fenced = true;
      } catch (KafkaException e) {
        fenced = e.getCause() instanceof ProducerFencedException
            || e instanceof org.apache.kafka.common.errors.InvalidProducerEpochException;
        if (!fenced) {
          throw e;
        }
      }
      require(fenced, "the first producer committed after being fenced");
      fresh.beginTransaction();
      fresh.send(new ProducerRecord<>(topic, "fresh-1"));
      fresh.commitTransaction();
    } finally {
      zombie.close(Duration.ofSeconds(5));
    }
    List<String> committed = readAll(topic, true, 1, 2_000, 3_000);
    require(committed.equals(List.of("fresh-1")),
        "read_committed should see only the new producer's record, saw " + committed);
  }

  /**
   * A transaction left open past transaction.timeout.ms is aborted by the coordinator: the
   * LSO moves past it, so a read_committed consumer gets the records written after it, never
   * the abandoned transaction's records. (Run with a short
   * transaction.abort.timed.out.transaction.cleanup.interval.ms.)
   */
  static void timedOutTransactionIsAborted() throws Exception {
    final String topic = "txn-timeout-" + suffix();
    createTopics(1, topic);
    KafkaProducer<String, String> abandoned = producer("timeout-" + suffix(), 3_000);
    abandoned.initTransactions();
    abandoned.beginTransaction();
    abandoned.send(new ProducerRecord<>(topic, "abandoned")).get(30, TimeUnit.SECONDS);
    producePlain(topic, List.of("after-1", "after-2"));

    // While the transaction is open the LSO stays before it: nothing is readable.
    List<String> early = readAll(topic, true, 1, 0, 1_000);
    require(early.isEmpty(), "read_committed read past an open transaction: " + early);

    long start = System.currentTimeMillis();
    List<String> later = readAll(topic, true, 2, 0, 20_000);
    long took = System.currentTimeMillis() - start;
    require(later.equals(List.of("after-1", "after-2")),
        "after the timeout read_committed should see the later records only, saw " + later);
    System.out.println("LSO moved after " + took + " ms");
    try (Admin admin = admin()) {
      Set<String> ongoing = new HashSet<>();
      for (TransactionListing l : admin.listTransactions().all().get(60, TimeUnit.SECONDS)) {
        if (l.state().toString().toLowerCase().contains("ongoing")) {
          ongoing.add(l.transactionalId());
        }
      }
      require(ongoing.isEmpty(), "transactions still ongoing after the timeout: " + ongoing);
    }
    abandoned.close(Duration.ZERO);
  }
}
