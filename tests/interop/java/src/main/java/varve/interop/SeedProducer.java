package varve.interop;

import static varve.interop.Support.require;

import java.time.Duration;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.Callback;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerInterceptor;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The "don't lose messages" producer set-up from the seed article: acks=all, retries=10,
 * retry.backoff.ms=300, enable.idempotence=true, an interceptor, String serializers; one
 * batch of synchronous sends ({@code send(record).get()}) and one of asynchronous sends with a
 * {@link Callback}. Every send must be acknowledged, the interceptor must have seen every
 * send and acknowledgement, and every record must be read back at its acknowledged
 * partition and offset.
 */
final class SeedProducer {
  private static final int SYNC = 200;
  private static final int ASYNC = 2_000;
  private static final int PARTITIONS = 3;

  /** Counts what the producer reports to interceptors (the article installs one). */
  public static final class CountingInterceptor implements ProducerInterceptor<String, String> {
    static final AtomicLong sends = new AtomicLong();
    static final AtomicLong acks = new AtomicLong();
    static final AtomicLong errors = new AtomicLong();

    @Override
    public ProducerRecord<String, String> onSend(ProducerRecord<String, String> record) {
      sends.incrementAndGet();
      return record;
    }

    @Override
    public void onAcknowledgement(RecordMetadata metadata, Exception exception) {
      (exception == null ? acks : errors).incrementAndGet();
    }

    @Override
    public void close() {}

    @Override
    public void configure(Map<String, ?> configs) {}
  }

  void run() throws Exception {
    String topic = "java-seed-" + Long.toString(System.currentTimeMillis() % 1_000_000, 36);
    try (Admin admin = Support.admin()) {
      Support.createTopic(admin, topic, PARTITIONS, null);
    }

    Properties props = new Properties();
    props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, Support.bootstrap());
    props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    props.put(ProducerConfig.ACKS_CONFIG, "all");
    props.put(ProducerConfig.RETRIES_CONFIG, 10);
    props.put(ProducerConfig.RETRY_BACKOFF_MS_CONFIG, 300);
    props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
    props.put(ProducerConfig.INTERCEPTOR_CLASSES_CONFIG, CountingInterceptor.class.getName());
    props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30_000);

    Map<String, RecordMetadata> ackedAt = new ConcurrentHashMap<>();
    Map<String, String> valueOf = new ConcurrentHashMap<>();
    Map<String, Exception> failures = new ConcurrentHashMap<>();
    CountDownLatch asyncDone = new CountDownLatch(ASYNC);

    try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
      // Synchronous: block on each send's future until the broker acknowledges it.
      for (int i = 0; i < SYNC; i++) {
        String key = "sync-key-" + i;
        String value = "sync-value-" + i;
        valueOf.put(key, value);
        try {
          RecordMetadata md = producer.send(new ProducerRecord<>(topic, key, value))
              .get(60, TimeUnit.SECONDS);
          ackedAt.put(key, md);
        } catch (Exception e) {
          failures.put(key, e);
        }
      }
      System.out.printf("sync sends: %d acknowledged, %d failed%n", ackedAt.size(), failures.size());

      // Asynchronous: the callback records the outcome of each send.
      for (int i = 0; i < ASYNC; i++) {
        String key = "async-key-" + i;
        String value = "async-value-" + i;
        valueOf.put(key, value);
        producer.send(new ProducerRecord<>(topic, key, value), new Callback() {
          @Override
          public void onCompletion(RecordMetadata metadata, Exception exception) {
            if (exception != null) {
              failures.put(key, exception);
            } else {
              ackedAt.put(key, metadata);
            }
            asyncDone.countDown();
          }
        });
      }
      require(asyncDone.await(90, TimeUnit.SECONDS),
          "async callbacks: only " + (ASYNC - asyncDone.getCount()) + " of " + ASYNC
              + " completed within 90s");
    }
    System.out.printf("all sends: %d acknowledged, %d failed; interceptor saw sends=%d acks=%d "
        + "errors=%d%n", ackedAt.size(), failures.size(), CountingInterceptor.sends.get(),
        CountingInterceptor.acks.get(), CountingInterceptor.errors.get());
    if (!failures.isEmpty()) {
      var first = failures.entrySet().iterator().next();
      throw new Support.CheckFailed(failures.size() + " sends failed, e.g. " + first.getKey()
          + ": " + first.getValue());
    }
    Support.requireEqual((long) SYNC + ASYNC, CountingInterceptor.sends.get(), "interceptor onSend count");
    Support.requireEqual((long) SYNC + ASYNC, CountingInterceptor.acks.get(),
        "interceptor successful onAcknowledgement count");

    var byPartition = Support.readAll(topic, PARTITIONS, 0, Duration.ofSeconds(60));
    long consumed = 0;
    long mismatches = 0;
    Map<String, Boolean> seen = new ConcurrentHashMap<>();
    for (var e : byPartition.entrySet()) {
      for (ConsumerRecord<byte[], byte[]> r : e.getValue()) {
        consumed++;
        String key = r.key() == null ? "<null>" : new String(r.key(), java.nio.charset.StandardCharsets.UTF_8);
        String value = r.value() == null ? null : new String(r.value(), java.nio.charset.StandardCharsets.UTF_8);
        RecordMetadata md = ackedAt.get(key);
        String problem = null;
        if (md == null) {
          problem = "unexpected key " + key;
        } else if (seen.put(key, true) != null) {
          problem = "duplicate " + key;
        } else if (md.partition() != r.partition() || md.offset() != r.offset()) {
          problem = key + " acknowledged at " + md.partition() + "@" + md.offset()
              + ", read at " + r.partition() + "@" + r.offset();
        } else if (!valueOf.get(key).equals(value)) {
          problem = key + " value " + value + ", sent " + valueOf.get(key);
        }
        if (problem != null) {
          mismatches++;
          if (mismatches <= 10) {
            System.out.println("MISMATCH " + problem);
          }
        }
      }
    }
    long missing = ackedAt.keySet().stream().filter(k -> !seen.containsKey(k)).count();
    long produced = SYNC + ASYNC;
    System.out.printf("seed producer: produced=%d acknowledged=%d consumed=%d missing=%d "
        + "mismatches=%d%n", produced, ackedAt.size(), consumed, missing, mismatches);
    require(missing == 0 && mismatches == 0 && consumed == produced,
        "seed producer: " + missing + " acknowledged records missing, " + mismatches
            + " mismatches, consumed " + consumed + " of " + produced);
  }
}
