package varve.groups;

import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.RangeAssignor;
import org.apache.kafka.clients.consumer.RoundRobinAssignor;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;

/**
 * The Java member of groups_mixed_clients: subscribes to TOPIC in GROUP with the range or
 * roundrobin assignor, and writes to OUTFILE (one write per line, in this order):
 * {@code ASSIGN p,p,...} after every rebalance callback (the partitions it owns now),
 * {@code REC partition offset key} per processed record, then commits synchronously after
 * each processed poll batch ({@code COMMIT ok n} / {@code COMMIT err ...}). SIGTERM closes
 * the consumer cleanly (LeaveGroup) and writes {@code CLOSED}.
 * Usage: mixed_member TOPIC GROUP range|roundrobin OUTFILE SLEEP_MS (per-record delay)
 */
final class MixedMember {
  private MixedMember() {}

  static void run(String[] args) throws Exception {
    String topic = args[0];
    String group = args[1];
    String strategy = args[2];
    Common.EventFile out = new Common.EventFile(args[3]);
    int sleepMs = Integer.parseInt(args[4]);
    Properties p = Common.consumerProps(group, "groups-java-member");
    p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG,
        strategy.equals("range") ? RangeAssignor.class.getName()
            : RoundRobinAssignor.class.getName());
    p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 100);
    KafkaConsumer<String, String> c = new KafkaConsumer<>(p);
    AtomicBoolean stop = new AtomicBoolean(false);
    CountDownLatch closed = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      stop.set(true);
      c.wakeup();
      try {
        closed.await(20, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }));
    Set<TopicPartition> owned = new TreeSet<>((a, b) -> Integer.compare(a.partition(), b.partition()));
    try {
      c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> ps) {
          owned.removeAll(ps);
          out.line("ASSIGN " + Common.partitionsString(owned));
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> ps) {
          owned.addAll(ps);
          out.line("ASSIGN " + Common.partitionsString(owned));
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> ps) {
          owned.removeAll(ps);
          out.line("ASSIGN " + Common.partitionsString(owned));
        }
      });
      while (!stop.get()) {
        ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
        if (rs.isEmpty()) {
          continue;
        }
        for (ConsumerRecord<String, String> r : rs) {
          out.line("REC " + r.partition() + " " + r.offset() + " " + r.key());
          if (sleepMs > 0) {
            Thread.sleep(sleepMs);
          }
        }
        try {
          c.commitSync(Duration.ofSeconds(30));
          out.line("COMMIT ok " + rs.count());
        } catch (WakeupException e) {
          throw e;
        } catch (Exception e) {
          // A rebalance between poll and commit: the records are redelivered (duplicates).
          out.line("COMMIT err " + e.getClass().getSimpleName() + " " + e.getMessage());
        }
      }
    } catch (WakeupException e) {
      // SIGTERM: fall through to the clean close.
    } finally {
      c.close(Duration.ofSeconds(15));
      out.line("CLOSED");
      out.close();
      closed.countDown();
    }
  }
}
