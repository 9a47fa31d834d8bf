package varve.interop;

import static varve.interop.Support.require;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;

/**
 * Produces keyed records with headers and explicit CreateTime timestamps under every codec
 * (none, gzip, snappy, lz4, zstd) and every acks setting (0, 1, all), one fresh 3-partition
 * topic per combination, 10,000 records per codec, then reads each topic back from the
 * beginning (assign + seekToBeginning, no group) and compares every field of every record
 * with what was sent and acknowledged.
 */
final class Roundtrip {
  private static final String[] CODECS = {"none", "gzip", "snappy", "lz4", "zstd"};
  private static final String[] ACKS = {"0", "1", "all"};
  private static final int PER_CODEC = 10_000;
  private static final int PARTITIONS = 3;
  private static final int MAX_REPORTED = 10;

  private long produced_;
  private long consumed_;
  private long mismatches_;
  private final List<String> report_ = new ArrayList<>();

  /** One record as sent. */
  private record Sent(byte[] key, byte[] value, Header[] headers, long timestamp,
      Integer partition) {}

  void run() throws Exception {
    String run = Long.toString(System.currentTimeMillis() % 1_000_000, 36);
    try (Admin admin = Support.admin()) {
      for (String codec : CODECS) {
        for (int a = 0; a < ACKS.length; a++) {
          // 3334 + 3333 + 3333 = 10,000 records per codec.
          int n = PER_CODEC / ACKS.length + (a < PER_CODEC % ACKS.length ? 1 : 0);
          combination(admin, "java-rt-" + run + "-" + codec + "-acks" + ACKS[a], codec, ACKS[a], n);
        }
      }
    }
    System.out.printf("roundtrip total: produced=%d consumed=%d mismatches=%d%n",
        produced_, consumed_, mismatches_);
    if (mismatches_ != 0 || produced_ != consumed_) {
      throw new Support.CheckFailed("roundtrip: " + mismatches_ + " mismatches, produced="
          + produced_ + " consumed=" + consumed_ + "; first problems:\n  "
          + String.join("\n  ", report_));
    }
  }

  private static Sent make(String topic, int i, long base) {
    byte[] key = (topic + "/key-" + i).getBytes(StandardCharsets.UTF_8);
    byte[] value;
    if (i % 997 == 13) {
      value = null; // a null value (tombstone) must come back as null
    } else {
      Random rnd = new Random(i * 7919L);
      byte[] binary = new byte[i % 64];
      rnd.nextBytes(binary);
      String text = "value-" + i + "-" + "abcdefgh".repeat(i % 40);
      ByteBuffer b = ByteBuffer.allocate(text.length() + binary.length);
      b.put(text.getBytes(StandardCharsets.UTF_8)).put(binary);
      value = b.array();
    }
    List<Header> hs = new ArrayList<>();
    hs.add(new RecordHeader("seq", ByteBuffer.allocate(4).putInt(i).array()));
    hs.add(new RecordHeader("topic", topic.getBytes(StandardCharsets.UTF_8)));
    if (i % 5 == 0) {
      hs.add(new RecordHeader("empty", new byte[0]));
    }
    if (i % 7 == 0) {
      hs.add(new RecordHeader("null-value", null));
    }
    if (i % 11 == 0) {
      hs.add(new RecordHeader("seq", "repeated-key".getBytes(StandardCharsets.UTF_8)));
    }
    // Half the records choose their partition explicitly, half by key hash.
    Integer partition = i % 2 == 0 ? i % PARTITIONS : null;
    return new Sent(key, value, hs.toArray(new Header[0]), base + i, partition);
  }

  private void combination(Admin admin, String topic, String codec, String acks, int n)
      throws Exception {
    Support.createTopic(admin, topic, PARTITIONS, null);
    long base = System.currentTimeMillis() - 600_000;
    Sent[] sent = new Sent[n];
    RecordMetadata[] acked = new RecordMetadata[n];
    Exception[] failed = new Exception[n];
    AtomicInteger completions = new AtomicInteger();

    var props = Support.producerProps(acks, codec);
    // Idempotence needs acks=all; leave the client default (idempotent) for acks=all.
    if (!acks.equals("all")) {
      props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, false);
    }
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
      for (int i = 0; i < n; i++) {
        Sent s = make(topic, i, base);
        sent[i] = s;
        final int idx = i;
        producer.send(new ProducerRecord<>(topic, s.partition(), s.timestamp(), s.key(), s.value(),
            Arrays.asList(s.headers())), (md, ex) -> {
              if (ex != null) {
                failed[idx] = ex;
              } else {
                acked[idx] = md;
              }
              completions.incrementAndGet();
            });
      }
      producer.flush();
    }
    require(completions.get() == n, topic + ": only " + completions.get() + " of " + n
        + " sends completed after flush+close");

    long localMismatches = 0;
    Map<String, Integer> indexByKey = new HashMap<>();
    for (int i = 0; i < n; i++) {
      if (failed[i] != null) {
        localMismatches += note(topic + ": send of record " + i + " failed: " + failed[i]);
        continue;
      }
      RecordMetadata md = acked[i];
      if (sent[i].partition() != null && md.partition() != sent[i].partition()) {
        localMismatches += note(topic + ": record " + i + " acknowledged on partition "
            + md.partition() + ", sent to " + sent[i].partition());
      }
      if (acks.equals("0") ? md.offset() != -1 : md.offset() < 0) {
        localMismatches += note(topic + ": record " + i + " acknowledged with offset "
            + md.offset() + " under acks=" + acks);
      }
      indexByKey.put(new String(sent[i].key(), StandardCharsets.UTF_8), i);
    }

    var byPartition = Support.readAll(topic, PARTITIONS, acks.equals("0") ? n : 0,
        Duration.ofSeconds(60));
    boolean[] seen = new boolean[n];
    long consumed = 0;
    for (var e : byPartition.entrySet()) {
      int partition = e.getKey();
      long expectOffset = 0;
      int lastIndex = -1;
      for (ConsumerRecord<byte[], byte[]> r : e.getValue()) {
        consumed++;
        String where = topic + "-" + partition + "@" + r.offset();
        if (r.offset() != expectOffset) {
          localMismatches += note(where + ": offsets not contiguous, expected " + expectOffset);
        }
        expectOffset = r.offset() + 1;
        String key = r.key() == null ? null : new String(r.key(), StandardCharsets.UTF_8);
        Integer i = key == null ? null : indexByKey.get(key);
        if (i == null) {
          localMismatches += note(where + ": unexpected key " + key);
          continue;
        }
        if (seen[i]) {
          localMismatches += note(where + ": duplicate of record " + i);
          continue;
        }
        seen[i] = true;
        if (i < lastIndex) {
          localMismatches += note(where + ": record " + i + " after record " + lastIndex
              + " (per-partition order broken)");
        }
        lastIndex = i;
        localMismatches += compare(where, i, sent[i], acked[i], acks, r);
      }
    }
    for (int i = 0; i < n; i++) {
      if (!seen[i] && failed[i] == null) {
        localMismatches += note(topic + ": acknowledged record " + i + " (partition "
            + acked[i].partition() + ", offset " + acked[i].offset() + ") not consumed");
      }
    }
    produced_ += n;
    consumed_ += consumed;
    mismatches_ += localMismatches;
    System.out.printf("%s codec=%s acks=%s: produced=%d consumed=%d mismatches=%d%n",
        topic, codec, acks, n, consumed, localMismatches);
  }

  private int compare(String where, int i, Sent s, RecordMetadata md, String acks,
      ConsumerRecord<byte[], byte[]> r) {
    int bad = 0;
    if (r.partition() != md.partition()) {
      bad += note(where + ": record " + i + " acknowledged on partition " + md.partition());
    }
    if (!acks.equals("0") && r.offset() != md.offset()) {
      bad += note(where + ": record " + i + " acknowledged at offset " + md.offset());
    }
    if (!Arrays.equals(s.value(), r.value())) {
      bad += note(where + ": record " + i + " value differs (sent "
          + (s.value() == null ? "null" : s.value().length + " bytes") + ", got "
          + (r.value() == null ? "null" : r.value().length + " bytes") + ")");
    }
    if (r.timestampType() != TimestampType.CREATE_TIME || r.timestamp() != s.timestamp()) {
      bad += note(where + ": record " + i + " timestamp " + r.timestampType() + " "
          + r.timestamp() + ", sent CreateTime " + s.timestamp());
    }
    Header[] got = r.headers().toArray();
    boolean same = got.length == s.headers().length;
    for (int h = 0; same && h < got.length; h++) {
      same = got[h].key().equals(s.headers()[h].key())
          && Arrays.equals(got[h].value(), s.headers()[h].value());
    }
    if (!same) {
      bad += note(where + ": record " + i + " headers differ: sent "
          + Arrays.toString(s.headers()) + ", got " + Arrays.toString(got));
    }
    return bad;
  }

  private int note(String problem) {
    if (report_.size() < MAX_REPORTED) {
      report_.add(problem);
      System.out.println("MISMATCH " + problem);
    }
    return 1;
  }
}
