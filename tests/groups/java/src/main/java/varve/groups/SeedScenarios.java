package varve.groups;

import static varve.groups.Common.require;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * groups_seed_scenarios: the consumer-side loss cases of the seed article, each on its own
 * topic (3 partitions, RECORDS keyed records) and group. A child JVM consumes with one commit
 * discipline and "crashes" (Runtime.halt, or SIGKILL from this process); then a consumer in
 * the same group continues from the committed offsets (process, then commitSync) to the end.
 * Every processed record is one line "REC partition offset key" in the scenario's file, so
 * lost = produced keys never processed, duplicated = processed lines - distinct keys.
 *  a) enable.auto.commit=true, crash after the polled batch's offsets were auto-committed but
 *     before it was processed: lost > 0 (exactly the unprocessed batch).
 *  b) commitSync, then crash before processing: lost > 0 (exactly that batch).
 *  c) process, then commitSync; SIGKILL at arbitrary points (twice): lost == 0, duplicates
 *     at most one poll batch per crash.
 *  d) per-partition commitSync of offset+1 after each partition's records (the seed's
 *     example); SIGKILL twice: lost == 0, duplicates at most one poll batch per crash.
 *  e) commitAsync with a callback after each batch, final commitSync on a clean close:
 *     callbacks saw successes and no failure, lost == 0, committed == end offsets.
 */
final class SeedScenarios {
  static final int PARTITIONS = 3;
  static final int RECORDS = 1500;
  static final int MAX_POLL = 100;

  private final Path dir;
  private final List<String> failures = new ArrayList<>();
  private final List<Process> children = new java.util.concurrent.CopyOnWriteArrayList<>();

  SeedScenarios() throws Exception {
    dir = Files.createTempDirectory("varve-groups-seed");
  }

  void run() throws Exception {
    String only = System.getenv().getOrDefault("SEED_ONLY", "abcde");  // for debugging
    // A failed check must not leave a child consumer running on.
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      for (Process p : children) {
        p.destroyForcibly();
      }
    }));
    try (Admin admin = Common.admin()) {
      for (String name : List.of("a_auto_commit", "b_commit_before_process",
          "c_process_then_commit", "d_per_partition_commit", "e_commit_async")) {
        if (only.indexOf(name.charAt(0)) >= 0) {
          scenario(admin, name, name.charAt(0) >= 'c');
        }
      }
    }
    require(failures.isEmpty(), "seed scenarios failed: " + failures);
  }

  private void scenario(Admin admin, String name, boolean expectNoLoss) throws Exception {
    String topic = "seed-" + name.replace('_', '-') + "-" + System.nanoTime();
    String group = "seed-group-" + name.replace('_', '-') + "-" + System.nanoTime();
    Path file = dir.resolve(name + ".log");
    Common.createTopic(admin, topic, PARTITIONS);
    Common.produceKeyed(topic, RECORDS);
    int crashes = 0;
    String mode = name.substring(2);
    switch (name.charAt(0)) {
      case 'a', 'b' -> {
        int rc = runChild(mode, topic, group, file, -1);
        require(rc == 3, name + ": child exited " + rc + ", expected its abrupt exit (3)");
        crashes = 1;
      }
      case 'c', 'd' -> {
        killChildAfter(mode, topic, group, file, 230);
        killChildAfter(mode, topic, group, file, 720);
        crashes = 2;
      }
      case 'e' -> {
        int rc = runChild(mode, topic, group, file, RECORDS);
        require(rc == 0, name + ": commitAsync child exited " + rc);
        String summary = lines(file).stream().filter(l -> l.startsWith("ASYNC")).findFirst()
            .orElseThrow(() -> new Common.CheckFailed(name + ": child wrote no ASYNC line"));
        System.out.println(name + ": " + summary);
        String[] f = summary.split(" ");
        int ok = Integer.parseInt(f[1].substring(3));
        int failed = Integer.parseInt(f[2].substring(7));
        check(name, ok > 0 && failed == 0, "commitAsync callbacks: " + summary
            + " (expected successes and no failure)");
      }
      default -> throw new IllegalStateException(name);
    }
    finish(topic, group, file);

    // Count.
    Set<String> unprocessed = new HashSet<>();
    Map<String, Integer> seen = new HashMap<>();
    int processed = 0;
    for (String l : lines(file)) {
      String[] f = l.split(" ");
      if (f[0].equals("REC")) {
        processed++;
        seen.merge(f[3], 1, Integer::sum);
      } else if (f[0].equals("UNPROCESSED")) {
        unprocessed.add(f[3]);
      }
    }
    Set<String> lostKeys = new TreeSet<>();
    for (int i = 0; i < RECORDS; i++) {
      if (!seen.containsKey("k-" + i)) {
        lostKeys.add("k-" + i);
      }
    }
    int duplicated = processed - seen.size();
    System.out.printf("%s: produced=%d processed=%d lost=%d duplicated=%d crashes=%d%n",
        name, RECORDS, processed, lostKeys.size(), duplicated, crashes);
    Map<TopicPartition, Long> end = Common.endOffsets(admin, topic, PARTITIONS);
    Map<TopicPartition, OffsetAndMetadata> committed = Common.committed(admin, group);
    for (var e : end.entrySet()) {
      OffsetAndMetadata c = committed.get(e.getKey());
      check(name, c != null && c.offset() == e.getValue(), "committed offset of " + e.getKey()
          + " is " + c + ", log end offset " + e.getValue() + " after the final consumer");
    }
    if (expectNoLoss) {
      check(name, lostKeys.isEmpty(), "lost " + lostKeys.size() + " records, e.g. "
          + lostKeys.stream().limit(10).toList());
      check(name, duplicated <= crashes * MAX_POLL, duplicated + " duplicates > one poll batch ("
          + MAX_POLL + ") per crash (" + crashes + ")");
    } else {
      check(name, !lostKeys.isEmpty(), "lost == 0: the crash did not lose the committed but"
          + " unprocessed batch " + unprocessed.size());
      check(name, lostKeys.equals(unprocessed), "lost keys " + lostKeys.size()
          + " differ from the batch the child polled and never processed (" + unprocessed.size()
          + ")");
    }
  }

  private void check(String name, boolean ok, String message) {
    if (!ok) {
      String m = name + ": " + message;
      System.out.println("CHECK FAILED " + m);
      failures.add(m);
    }
  }

  private static List<String> lines(Path file) throws Exception {
    if (!Files.exists(file)) {
      return List.of();
    }
    return Files.readAllLines(file, StandardCharsets.UTF_8);
  }

  private static long recLines(Path file) throws Exception {
    return lines(file).stream().filter(l -> l.startsWith("REC ")).count();
  }

  private Process startChild(String mode, String topic, String group, Path file, int arg)
      throws Exception {
    String java = System.getProperty("java.home") + File.separator + "bin" + File.separator + "java";
    ProcessBuilder pb = new ProcessBuilder(java, "-Xmx256m", "-cp",
        System.getProperty("java.class.path"), "varve.groups.Main", "seed_child", mode, topic,
        group, file.toString(), Integer.toString(arg));
    pb.inheritIO();
    Process p = pb.start();
    children.add(p);
    return p;
  }

  private int runChild(String mode, String topic, String group, Path file, int arg)
      throws Exception {
    Process p = startChild(mode, topic, group, file, arg);
    if (!p.waitFor(90, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new Common.CheckFailed(mode + ": child did not finish within 90s");
    }
    return p.exitValue();
  }

  /** Starts a child and SIGKILLs it once the file holds {@code recTarget} REC lines. */
  private void killChildAfter(String mode, String topic, String group, Path file, int recTarget)
      throws Exception {
    Process p = startChild(mode, topic, group, file, -1);
    long deadline = System.currentTimeMillis() + 60_000;
    while (recLines(file) < recTarget) {
      if (!p.isAlive()) {
        throw new Common.CheckFailed(mode + ": child exited (" + p.exitValue()
            + ") before the crash");
      }
      require(System.currentTimeMillis() < deadline, mode + ": child processed only "
          + recLines(file) + " records within 60s");
      Thread.sleep(5);
    }
    p.destroyForcibly();  // SIGKILL
    require(p.waitFor(10, TimeUnit.SECONDS), mode + ": child " + p.pid()
        + " still alive 10s after SIGKILL");
    System.out.printf("%s: SIGKILLed the consumer (pid %d, exit %d) after %d processed records%n",
        mode, p.pid(), p.exitValue(), recLines(file));
  }

  /** The continuing consumer: process, then commitSync, until the end offsets. */
  private void finish(String topic, String group, Path file) throws Exception {
    Properties p = Common.consumerProps(group, "seed-finisher");
    p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, MAX_POLL);
    long start = System.nanoTime();
    try (Common.EventFile out = new Common.EventFile(file.toString());
         Admin admin = Common.admin();
         KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
      Map<TopicPartition, Long> end = Common.endOffsets(admin, topic, PARTITIONS);
      c.subscribe(List.of(topic));
      long deadline = System.currentTimeMillis() + 60_000;
      Map<TopicPartition, Long> firstOffset = new HashMap<>();
      while (true) {
        ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
        for (ConsumerRecord<String, String> r : rs) {
          firstOffset.putIfAbsent(new TopicPartition(r.topic(), r.partition()), r.offset());
          out.line("REC " + r.partition() + " " + r.offset() + " " + r.key());
        }
        if (!rs.isEmpty()) {
          c.commitSync(Duration.ofSeconds(30));
        }
        if (c.assignment().size() == PARTITIONS) {
          boolean done = true;
          for (TopicPartition tp : c.assignment()) {
            done &= c.position(tp) >= end.get(tp);
          }
          if (done) {
            break;
          }
        }
        require(System.currentTimeMillis() < deadline, "finisher for " + group
            + " did not reach the end offsets " + end + " within 60s; assignment "
            + c.assignment());
      }
      c.commitSync(Duration.ofSeconds(30));
      System.out.printf("  finisher: resumed at %s, reached the end in %.1fs%n", firstOffset,
          (System.nanoTime() - start) / 1e9);
    }
  }

  // ---- child process -------------------------------------------------------------------

  /** Child: seed_child MODE TOPIC GROUP FILE ARG. Exit 3 = deliberate abrupt exit. */
  static void child(String[] args) throws Exception {
    String mode = args[0];
    String topic = args[1];
    Properties p = Common.consumerProps(args[2], "seed-" + mode);
    p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, MAX_POLL);
    int arg = Integer.parseInt(args[4]);
    if (mode.equals("auto_commit")) {
      p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, true);
      p.put(ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, 200);
    }
    Common.EventFile out = new Common.EventFile(args[3]);
    KafkaConsumer<String, String> c = new KafkaConsumer<>(p);
    c.subscribe(List.of(topic));
    int batches = 0;
    AtomicInteger asyncOk = new AtomicInteger();
    AtomicInteger asyncFailed = new AtomicInteger();
    int processed = 0;
    long idleSince = System.currentTimeMillis();
    long deadline = System.currentTimeMillis() + 60_000;
    while (System.currentTimeMillis() < deadline) {
      ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
      if (rs.isEmpty()) {
        if (mode.equals("commit_async") && processed > 0
            && System.currentTimeMillis() - idleSince > 3000) {
          break;
        }
        continue;
      }
      idleSince = System.currentTimeMillis();
      batches++;
      switch (mode) {
        case "auto_commit" -> {
          if (batches < 3) {
            process(out, rs, 0);
            continue;
          }
          // Batch 3 is being processed when the process dies; auto-commit, which runs inside
          // poll(), has committed the position past it first.
          for (ConsumerRecord<String, String> r : rs) {
            out.line("UNPROCESSED " + r.partition() + " " + r.offset() + " " + r.key());
          }
          Map<TopicPartition, Long> next = nextOffsets(rs);
          c.pause(c.assignment());
          long until = System.currentTimeMillis() + 20_000;
          while (!covered(c.committed(next.keySet(), Duration.ofSeconds(10)), next)) {
            if (System.currentTimeMillis() > until) {
              System.err.println("auto_commit child: offsets " + next
                  + " were not auto-committed within 20s");
              Runtime.getRuntime().halt(4);
            }
            c.poll(Duration.ofMillis(100));  // paused: returns nothing, auto-commits
          }
          out.line("CRASH after auto-commit of " + next);
          Runtime.getRuntime().halt(3);
        }
        case "commit_before_process" -> {
          c.commitSync(Duration.ofSeconds(30));
          if (batches < 3) {
            process(out, rs, 0);
            continue;
          }
          for (ConsumerRecord<String, String> r : rs) {
            out.line("UNPROCESSED " + r.partition() + " " + r.offset() + " " + r.key());
          }
          out.line("CRASH after commitSync, before processing");
          Runtime.getRuntime().halt(3);
        }
        case "process_then_commit" -> {
          process(out, rs, 1);
          c.commitSync(Duration.ofSeconds(30));
        }
        case "per_partition_commit" -> {
          Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
          for (TopicPartition tp : rs.partitions()) {
            List<ConsumerRecord<String, String>> prs = rs.records(tp);
            for (ConsumerRecord<String, String> r : prs) {
              out.line("REC " + r.partition() + " " + r.offset() + " " + r.key());
              sleepMs(1);
            }
            offsets.put(tp, new OffsetAndMetadata(prs.get(prs.size() - 1).offset() + 1));
          }
          c.commitSync(offsets, Duration.ofSeconds(30));
        }
        case "commit_async" -> {
          processed += process(out, rs, 0);
          c.commitAsync((offsets, e) -> {
            if (e == null) {
              asyncOk.incrementAndGet();
            } else {
              asyncFailed.incrementAndGet();
              System.err.println("commitAsync callback: " + e);
            }
          });
          if (processed >= arg) {
            break;
          }
        }
        default -> throw new IllegalArgumentException(mode);
      }
    }
    if (!mode.equals("commit_async")) {
      System.err.println(mode + " child: no crash within 60s");
      Runtime.getRuntime().halt(5);
    }
    c.commitSync(Duration.ofSeconds(30));  // final synchronous commit; also completes callbacks
    c.close(Duration.ofSeconds(15));
    out.line("ASYNC ok=" + asyncOk.get() + " failed=" + asyncFailed.get());
    out.close();
  }

  private static int process(Common.EventFile out, ConsumerRecords<String, String> rs,
      int sleepMs) {
    for (ConsumerRecord<String, String> r : rs) {
      out.line("REC " + r.partition() + " " + r.offset() + " " + r.key());
      sleepMs(sleepMs);
    }
    return rs.count();
  }

  private static void sleepMs(int ms) {
    if (ms <= 0) {
      return;
    }
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }

  private static Map<TopicPartition, Long> nextOffsets(ConsumerRecords<String, String> rs) {
    Map<TopicPartition, Long> next = new HashMap<>();
    for (TopicPartition tp : rs.partitions()) {
      List<ConsumerRecord<String, String>> prs = rs.records(tp);
      next.put(tp, prs.get(prs.size() - 1).offset() + 1);
    }
    return next;
  }

  private static boolean covered(Map<TopicPartition, OffsetAndMetadata> committed,
      Map<TopicPartition, Long> next) {
    for (var e : next.entrySet()) {
      OffsetAndMetadata c = committed.get(e.getKey());
      if (c == null || c.offset() < e.getValue()) {
        return false;
      }
    }
    return true;
  }
}
