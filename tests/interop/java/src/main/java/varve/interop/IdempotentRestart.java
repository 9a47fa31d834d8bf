package varve.interop;

import static varve.interop.Support.require;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;

/**
 * An idempotent producer (acks=all, max.in.flight=5) sends 20,000 key-unique records at a
 * steady pace while the broker is SIGKILLed and restarted once ({@code $VARVE_RESTART kill})
 * in the middle. The broker must run with log.flush.interval.messages=1, so every
 * acknowledged record is on disk before its acknowledgement: none may be lost. Idempotence
 * means the retries after the restart must not duplicate anything, and per-partition order
 * must hold. Records whose send failed are "not acknowledged": they may or may not be present.
 */
final class IdempotentRestart {
  private static final int N = 20_000;
  private static final int PARTITIONS = 3;
  private static final int RESTART_AFTER_ACKS = 6_000;

  void run() throws Exception {
    String restart = System.getenv("VARVE_RESTART");
    require(restart != null && !restart.isEmpty(), "VARVE_RESTART is not set (run under with_broker.sh)");
    String topic = "java-idem-" + Long.toString(System.currentTimeMillis() % 1_000_000, 36);
    try (Admin admin = Support.admin()) {
      Support.createTopic(admin, topic, PARTITIONS, null);
    }

    var props = Support.producerProps("all", "none");
    props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
    props.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 5);
    props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 120_000);
    props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
    props.put(ProducerConfig.RETRY_BACKOFF_MS_CONFIG, 100);
    props.put(ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 1_000);
    props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 90_000);

    RecordMetadata[] acked = new RecordMetadata[N];
    Exception[] failed = new Exception[N];
    AtomicInteger ackCount = new AtomicInteger();
    AtomicInteger failCount = new AtomicInteger();
    AtomicInteger sentCount = new AtomicInteger();
    CountDownLatch done = new CountDownLatch(N);
    CountDownLatch restartPoint = new CountDownLatch(1);

    long start = System.nanoTime();
    int sentBeforeRestart;
    int ackedBeforeRestart;
    long retries;
    KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props);
    try {
      Thread sender = new Thread(() -> {
        for (int i = 0; i < N; i++) {
          final int idx = i;
          byte[] key = ("idem-key-" + i).getBytes(StandardCharsets.UTF_8);
          byte[] value = ("idem-value-" + i).getBytes(StandardCharsets.UTF_8);
          try {
            producer.send(new ProducerRecord<>(topic, key, value), (md, ex) -> {
              if (ex != null) {
                failed[idx] = ex;
                failCount.incrementAndGet();
              } else {
                acked[idx] = md;
                if (ackCount.incrementAndGet() >= RESTART_AFTER_ACKS) {
                  restartPoint.countDown();
                }
              }
              done.countDown();
            });
          } catch (Exception e) {
            failed[idx] = e;
            failCount.incrementAndGet();
            done.countDown();
          }
          sentCount.incrementAndGet();
          // Paced (a few thousand records/s) up to the restart point, then as fast as the
          // producer goes, so that produce requests are in flight when the broker dies.
          if (i % 10 == 9 && restartPoint.getCount() > 0) {
            try {
              Thread.sleep(1);
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
              return;
            }
          }
        }
      }, "idempotent-sender");
      sender.start();

      require(restartPoint.await(60, TimeUnit.SECONDS),
          "only " + ackCount.get() + " records acknowledged within 60s (" + failCount.get()
              + " failed" + firstFailure(failed) + "); restart point not reached");
      ackedBeforeRestart = ackCount.get();
      sentBeforeRestart = sentCount.get();
      System.out.printf("restarting broker (SIGKILL): %d sent, %d acknowledged, %d pending%n",
          sentBeforeRestart, ackedBeforeRestart, sentBeforeRestart - (N - done.getCount()));
      restartBroker(restart);
      System.out.printf("broker restarted after %.1fs from start%n",
          (System.nanoTime() - start) / 1e9);

      sender.join(TimeUnit.SECONDS.toMillis(150));
      require(!sender.isAlive(), "sender thread still blocked after 150s");
      producer.flush();
      require(done.await(150, TimeUnit.SECONDS), (N - done.getCount()) + " of " + N
          + " sends completed within 150s");
      retries = retriedRecords(producer);
    } finally {
      // Bounded: on a failed check, pending sends are abandoned rather than awaited.
      producer.close(Duration.ofSeconds(10));
    }
    System.out.printf("producer done in %.1fs: acked=%d failed=%d retried_records=%d%s%n",
        (System.nanoTime() - start) / 1e9, ackCount.get(), failCount.get(), retries,
        firstFailure(failed));
    if (retries == 0) {
      System.out.println("note: no record was retried, so nothing was in flight at the kill");
    }

    var byPartition = Support.readAll(topic, PARTITIONS, 0, Duration.ofSeconds(90));
    int[] copies = new int[N];
    long consumed = 0;
    long foreign = 0;
    long misplaced = 0;
    long orderBreaks = 0;
    for (var e : byPartition.entrySet()) {
      int last = -1;
      for (ConsumerRecord<byte[], byte[]> r : e.getValue()) {
        consumed++;
        int i = parseIndex(r);
        if (i < 0) {
          foreign++;
          System.out.println("UNEXPECTED record at " + r.partition() + "@" + r.offset());
          continue;
        }
        copies[i]++;
        if (copies[i] == 1 && acked[i] != null
            && (acked[i].partition() != r.partition() || acked[i].offset() != r.offset())) {
          misplaced++;
          if (misplaced <= 10) {
            System.out.printf("MISPLACED record %d acknowledged at %d@%d, read at %d@%d%n", i,
                acked[i].partition(), acked[i].offset(), r.partition(), r.offset());
          }
        }
        if (i < last) {
          orderBreaks++;
          if (orderBreaks <= 10) {
            System.out.printf("ORDER partition %d: record %d at offset %d after record %d%n",
                r.partition(), i, r.offset(), last);
          }
        }
        last = Math.max(last, i);
      }
    }
    long lost = 0;
    long duplicated = 0;
    long unackedPresent = 0;
    for (int i = 0; i < N; i++) {
      if (acked[i] != null && copies[i] == 0) {
        lost++;
        if (lost <= 10) {
          System.out.printf("LOST record %d acknowledged at %d@%d%n", i, acked[i].partition(),
              acked[i].offset());
        }
      }
      if (copies[i] > 1) {
        duplicated += copies[i] - 1;
        if (duplicated <= 10) {
          System.out.printf("DUPLICATE record %d present %d times%n", i, copies[i]);
        }
      }
      if (acked[i] == null && copies[i] > 0) {
        unackedPresent++;
      }
    }
    System.out.printf("idempotent restart: produced=%d acked=%d failed=%d consumed=%d lost=%d "
            + "duplicated=%d misplaced=%d order_breaks=%d unacked_present=%d foreign=%d%n",
        N, ackCount.get(), failCount.get(), consumed, lost, duplicated, misplaced, orderBreaks,
        unackedPresent, foreign);
    require(lost == 0 && duplicated == 0 && misplaced == 0 && orderBreaks == 0 && foreign == 0,
        "idempotent restart: lost=" + lost + " duplicated=" + duplicated + " misplaced="
            + misplaced + " order_breaks=" + orderBreaks + " foreign=" + foreign);
    require(ackCount.get() > ackedBeforeRestart,
        "no record was acknowledged after the restart (acked=" + ackCount.get() + ")");
  }

  /** The producer's own count of record retries (metric record-retry-total). */
  private static long retriedRecords(KafkaProducer<?, ?> producer) {
    for (var e : producer.metrics().entrySet()) {
      if (e.getKey().name().equals("record-retry-total")
          && e.getKey().group().equals("producer-metrics")) {
        return Math.round((Double) e.getValue().metricValue());
      }
    }
    throw new Support.CheckFailed("producer metric record-retry-total not found");
  }

  private static int parseIndex(ConsumerRecord<byte[], byte[]> r) {
    if (r.key() == null || r.value() == null) {
      return -1;
    }
    String k = new String(r.key(), StandardCharsets.UTF_8);
    String v = new String(r.value(), StandardCharsets.UTF_8);
    if (!k.startsWith("idem-key-")) {
      return -1;
    }
    try {
      int i = Integer.parseInt(k.substring("idem-key-".length()));
      return i >= 0 && i < N && v.equals("idem-value-" + i) ? i : -1;
    } catch (NumberFormatException e) {
      return -1;
    }
  }

  private static String firstFailure(Exception[] failed) {
    for (int i = 0; i < failed.length; i++) {
      if (failed[i] != null) {
        return "; first failure: record " + i + ": " + failed[i];
      }
    }
    return "";
  }

  /** Runs {@code $VARVE_RESTART kill}, echoing its output; fails if it does not succeed. */
  private static void restartBroker(String script) throws Exception {
    Process p = new ProcessBuilder("bash", script, "kill").redirectErrorStream(true).start();
    try (BufferedReader out = new BufferedReader(
        new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
      String line;
      while ((line = out.readLine()) != null) {
        System.out.println("[restart] " + line);
      }
    }
    require(p.waitFor(90, TimeUnit.SECONDS), "restart script did not finish within 90s");
    require(p.exitValue() == 0, "restart script exited with " + p.exitValue());
  }
}
