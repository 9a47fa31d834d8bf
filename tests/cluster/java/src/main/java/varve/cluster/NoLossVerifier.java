package varve.cluster;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java side of the no-loss fault test. Produces {@code --records} records with the
 * idempotent producer (acks=all) and remembers what was acknowledged, then reads every
 * partition from the beginning and checks that every acknowledged record is there exactly
 * once, at the acknowledged offset, in per-partition order.
 *
 * <p>Record {@code i} goes to partition {@code i % P} with key {@code i / P} (its sequence in
 * that partition) and value {@code i} (decimal ASCII), so every value is unique and the order
 * of values within a partition is the order of sending.
 *
 * <p>Driven over stdin/stdout by the test harness (tests/cluster/fault_no_loss_test.py):
 *
 * <pre>
 *   stdin:  "permit K"   records 0..K-1 may be sent (K only grows)
 *           "verify"     production is over and the cluster is healthy: read back and check
 *           EOF: abort at once (exit 3)
 *   stdout: "progress sent=S acked=A failed=F" once a second while producing
 *           "produced records=N acknowledged=A failed=F"
 *           "acknowledged=N lost=L duplicated=D misplaced=M reordered=R failed=F ..." (result)
 * </pre>
 *
 * Sending is paced at {@code --rate} records per second so that production overlaps the
 * faults the harness injects. Exit status: 0 when nothing was lost, duplicated, misplaced,
 * reordered or left unacknowledged; 1 otherwise; 2 on bad usage; 3 when aborted.
 */
public final class NoLossVerifier {
  private final String bootstrap;
  private final String topic;
  private final int partitions;
  private final int records;
  private final double rate;
  private final long consumeTimeoutMs;

  /** Offset each record was acknowledged at; -1 = not (yet) acknowledged. */
  private final AtomicLongArray ackedOffset;
  private final AtomicLong sent = new AtomicLong();
  private final AtomicLong acked = new AtomicLong();
  private final AtomicLong failed = new AtomicLong();
  private final AtomicLong misrouted = new AtomicLong();
  private final AtomicReference<String> firstFailure = new AtomicReference<>();

  // Written by the stdin thread, read by the main thread.
  private final Object control = new Object();
  private long permitted = 0; // guarded by control
  private boolean verifyRequested = false; // guarded by control

  static final class Aborted extends RuntimeException {
    Aborted(String message) {
      super(message);
    }
  }

  NoLossVerifier(Map<String, String> a) {
    bootstrap = required(a, "bootstrap");
    topic = required(a, "topic");
    partitions = Integer.parseInt(a.getOrDefault("partitions", "6"));
    records = Integer.parseInt(a.getOrDefault("records", "100000"));
    rate = Double.parseDouble(a.getOrDefault("rate", "0"));
    consumeTimeoutMs = Long.parseLong(a.getOrDefault("consume-timeout-s", "180")) * 1000;
    ackedOffset = new AtomicLongArray(records);
    for (int i = 0; i < records; i++) {
      ackedOffset.set(i, -1);
    }
  }

  private static String required(Map<String, String> a, String key) {
    String v = a.get(key);
    if (v == null) {
      throw new IllegalArgumentException("missing --" + key);
    }
    return v;
  }

  public static void main(String[] args) {
    Map<String, String> a = new HashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (!args[i].startsWith("--")) {
        usage("unexpected argument " + args[i]);
      }
      a.put(args[i].substring(2), args[i + 1]);
    }
    if (args.length % 2 != 0) {
      usage("odd number of arguments");
    }
    int rc;
    try {
      rc = new NoLossVerifier(a).run();
    } catch (IllegalArgumentException e) {
      usage(e.getMessage());
      return;
    } catch (Aborted e) {
      System.out.flush();
      System.err.println("ABORT: " + e.getMessage());
      rc = 3;
    } catch (Throwable t) {
      System.out.flush();
      System.err.println("FAIL: unexpected exception");
      t.printStackTrace();
      rc = 1;
    }
    System.out.flush();
    System.exit(rc);
  }

  private static void usage(String why) {
    System.err.println("NoLossVerifier: " + why);
    System.err.println("usage: NoLossVerifier --bootstrap B --topic T [--partitions 6]"
        + " [--records 100000] [--rate R] [--consume-timeout-s 180]");
    System.exit(2);
  }

  int run() throws Exception {
    Thread reader = new Thread(this::readControl, "stdin-control");
    reader.setDaemon(true);
    reader.start();
    produce();
    System.out.printf("produced records=%d acknowledged=%d failed=%d%n", records, acked.get(),
        failed.get());
    System.out.flush();
    synchronized (control) {
      while (!verifyRequested) {
        control.wait();
      }
    }
    return verify();
  }

  private void readControl() {
    try (BufferedReader in =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
      String line;
      while ((line = in.readLine()) != null) {
        line = line.trim();
        synchronized (control) {
          if (line.startsWith("permit ")) {
            permitted = Math.max(permitted, Long.parseLong(line.substring(7).trim()));
          } else if (line.equals("verify")) {
            verifyRequested = true;
          } else if (!line.isEmpty()) {
            System.err.println("NoLossVerifier: ignoring control line '" + line + "'");
          }
          control.notifyAll();
        }
      }
    } catch (Exception e) {
      System.err.println("NoLossVerifier: reading stdin: " + e);
    }
    // The harness closed stdin: it is gone or gave up on this run. Exit at once, wherever
    // production or verification stands, rather than wait out the delivery timeout.
    System.out.flush();
    System.err.println("ABORT: stdin closed");
    Runtime.getRuntime().halt(3);
  }

  private void awaitPermit(long i) throws InterruptedException {
    synchronized (control) {
      while (permitted <= i) {
        control.wait();
      }
    }
  }

  private Properties producerConfig() {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ProducerConfig.CLIENT_ID_CONFIG, "varve-fault-java-producer");
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
    p.put(ProducerConfig.RETRIES_CONFIG, Integer.MAX_VALUE);
    p.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 5);
    // Long enough to ride over every failover of the run: a record is only given up on when
    // the cluster stays unavailable for ten minutes.
    p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 600_000);
    p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
    p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 600_000);
    p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
    p.put(ProducerConfig.RETRY_BACKOFF_MS_CONFIG, 100);
    p.put(ProducerConfig.METADATA_MAX_AGE_CONFIG, 5_000);
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    return p;
  }

  private void produce() throws Exception {
    Thread progress = new Thread(() -> {
      try {
        while (true) {
          Thread.sleep(1000);
          System.out.printf("progress sent=%d acked=%d failed=%d%n", sent.get(), acked.get(),
              failed.get());
          System.out.flush();
        }
      } catch (InterruptedException e) {
        // production finished
      }
    }, "progress");
    progress.setDaemon(true);
    progress.start();
    long intervalNs = rate > 0 ? (long) (1e9 / rate) : 0;
    long next = System.nanoTime();
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(producerConfig())) {
      for (int i = 0; i < records; i++) {
        awaitPermit(i);
        if (intervalNs > 0) {
          long now = System.nanoTime();
          next = Math.max(next, now - 50_000_000L); // no bursts to catch up after a long wait
          if (next > now) {
            Thread.sleep((next - now) / 1_000_000, (int) ((next - now) % 1_000_000));
          }
          next += intervalNs;
        }
        final int id = i;
        final int partition = i % partitions;
        byte[] key = Integer.toString(i / partitions).getBytes(StandardCharsets.US_ASCII);
        byte[] value = Integer.toString(i).getBytes(StandardCharsets.US_ASCII);
        producer.send(new ProducerRecord<>(topic, partition, key, value), (md, err) -> {
          if (err != null) {
            failed.incrementAndGet();
            firstFailure.compareAndSet(null, "record " + id + ": " + err);
          } else {
            if (md.partition() != partition) {
              misrouted.incrementAndGet();
            }
            ackedOffset.set(id, md.offset());
            acked.incrementAndGet();
          }
        });
        sent.incrementAndGet();
      }
      producer.flush();
    } finally {
      progress.interrupt();
    }
    if (firstFailure.get() != null) {
      System.out.println("first failed send: " + firstFailure.get());
    }
  }

  private int verify() {
    int[] count = new int[records];
    long[] foundOffset = new long[records];
    long[] lastAckedInPartition = new long[partitions];
    java.util.Arrays.fill(lastAckedInPartition, -1);
    long consumed = 0;
    long foreign = 0;
    long corrupted = 0;
    long reordered = 0;
    List<String> examples = new ArrayList<>();

    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ConsumerConfig.CLIENT_ID_CONFIG, "varve-fault-java-verifier");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_uncommitted");
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 5000);
    p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60_000);
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    List<TopicPartition> tps = new ArrayList<>();
    for (int i = 0; i < partitions; i++) {
      tps.add(new TopicPartition(topic, i));
    }
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
      consumer.assign(tps);
      consumer.seekToBeginning(tps);
      Map<TopicPartition, Long> end = consumer.endOffsets(tps, Duration.ofSeconds(60));
      System.out.println("end offsets " + end);
      long deadline = System.currentTimeMillis() + consumeTimeoutMs;
      while (true) {
        boolean done = true;
        for (TopicPartition tp : tps) {
          if (consumer.position(tp, Duration.ofSeconds(30)) < end.get(tp)) {
            done = false;
          }
        }
        if (done) {
          break;
        }
        if (System.currentTimeMillis() > deadline) {
          Map<TopicPartition, Long> pos = new HashMap<>();
          for (TopicPartition tp : tps) {
            pos.put(tp, consumer.position(tp));
          }
          throw new Aborted("reading back did not reach the end offsets within "
              + consumeTimeoutMs / 1000 + "s: positions " + pos + ", end " + end);
        }
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
          consumed++;
          int id;
          try {
            id = Integer.parseInt(new String(r.value(), StandardCharsets.US_ASCII));
          } catch (RuntimeException e) {
            id = -1;
          }
          if (id < 0 || id >= records) {
            foreign++;
            continue;
          }
          String wantKey = Integer.toString(id / partitions);
          String key = r.key() == null ? null : new String(r.key(), StandardCharsets.US_ASCII);
          if (r.partition() != id % partitions || !wantKey.equals(key)) {
            corrupted++;
            if (examples.size() < 10) {
              examples.add("value " + id + " at " + r.partition() + "@" + r.offset()
                  + " with key " + key);
            }
          }
          if (++count[id] == 1) {
            foundOffset[id] = r.offset();
            if (ackedOffset.get(id) >= 0 && r.partition() == id % partitions) {
              if (id <= lastAckedInPartition[r.partition()]) {
                reordered++;
                if (examples.size() < 10) {
                  examples.add("value " + id + " at " + r.partition() + "@" + r.offset()
                      + " after value " + lastAckedInPartition[r.partition()]);
                }
              }
              lastAckedInPartition[r.partition()] = id;
            }
          }
        }
      }
    }

    long acknowledged = 0;
    long lost = 0;
    long duplicated = 0;
    long misplaced = 0;
    long unacknowledgedPresent = 0;
    for (int i = 0; i < records; i++) {
      long off = ackedOffset.get(i);
      if (count[i] > 1) {
        duplicated += count[i] - 1;
        if (examples.size() < 10) {
          examples.add("value " + i + " read " + count[i] + " times");
        }
      }
      if (off < 0) {
        if (count[i] > 0) {
          unacknowledgedPresent++;
        }
        continue;
      }
      acknowledged++;
      if (count[i] == 0) {
        lost++;
        if (examples.size() < 10) {
          examples.add("lost value " + i + " acknowledged at " + (i % partitions) + "@" + off);
        }
      } else if (foundOffset[i] != off) {
        misplaced++;
        if (examples.size() < 10) {
          examples.add("value " + i + " acknowledged at offset " + off + ", read at "
              + foundOffset[i]);
        }
      }
    }
    for (String e : examples) {
      System.out.println("  " + e);
    }
    System.out.printf("acknowledged=%d lost=%d duplicated=%d misplaced=%d reordered=%d "
            + "failed=%d misrouted=%d corrupted=%d foreign=%d unacknowledged_present=%d "
            + "consumed=%d%n",
        acknowledged, lost, duplicated, misplaced, reordered, failed.get(), misrouted.get(),
        corrupted, foreign, unacknowledgedPresent, consumed);
    boolean ok = lost == 0 && duplicated == 0 && misplaced == 0 && reordered == 0
        && failed.get() == 0 && misrouted.get() == 0 && corrupted == 0 && foreign == 0
        && acknowledged == records;
    System.out.println(ok ? "RESULT PASS" : "RESULT FAIL");
    return ok ? 0 : 1;
  }
}
