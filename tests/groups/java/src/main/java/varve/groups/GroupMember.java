package varve.groups;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;

/**
 * One subscribed KafkaConsumer on its own thread, recording every rebalance callback.
 * The consumer is touched only by its thread; the recorded state is published through
 * volatile fields and synchronized lists, so other threads may read it at any time.
 */
final class GroupMember implements Runnable {
  /** One listener invocation: kind is "revoked", "assigned" or "lost". */
  record Callback(String kind, Set<Integer> partitions, long atNanos) {}

  final String name;
  private final Properties props;
  private final String topic;
  private final List<Callback> callbacks = new ArrayList<>();
  private final AtomicInteger nonEmptyCallbacks = new AtomicInteger();
  private final Set<Integer> owned = new TreeSet<>();
  private volatile Set<Integer> ownedSnapshot = Set.of();
  private volatile int generation = -1;
  private volatile String memberId = "";
  private volatile boolean stop;
  private volatile Throwable error;
  private final Thread thread;

  GroupMember(String name, Properties props, String topic) {
    this.name = name;
    this.props = props;
    this.topic = topic;
    this.thread = new Thread(this, "member-" + name);
  }

  GroupMember start() {
    thread.start();
    return this;
  }

  @Override
  public void run() {
    try (KafkaConsumer<String, String> c = new KafkaConsumer<>(props)) {
      c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> ps) {
          note("revoked", ps);
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> ps) {
          note("assigned", ps);
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> ps) {
          note("lost", ps);
        }
      });
      while (!stop) {
        ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(100));
        generation = c.groupMetadata().generationId();
        memberId = c.groupMetadata().memberId();
        if (!rs.isEmpty()) {
          c.commitSync(Duration.ofSeconds(30));
        }
      }
      // close(): a dynamic member sends LeaveGroup; a static one (group.instance.id) does not.
    } catch (Throwable t) {
      error = t;
    }
  }

  private void note(String kind, Collection<TopicPartition> ps) {
    Set<Integer> parts = new TreeSet<>();
    for (TopicPartition tp : ps) {
      parts.add(tp.partition());
    }
    synchronized (this) {
      callbacks.add(new Callback(kind, parts, System.nanoTime()));
      if (kind.equals("assigned")) {
        owned.addAll(parts);
      } else {
        owned.removeAll(parts);
      }
      ownedSnapshot = Set.copyOf(owned);
    }
    if (!parts.isEmpty()) {
      nonEmptyCallbacks.incrementAndGet();
    }
    System.out.printf("  [%s] %s %s -> owns %s (generation %d)%n", name, kind, parts,
        new TreeSet<>(ownedSnapshot), generation);
  }

  Set<Integer> owned() {
    return ownedSnapshot;
  }

  int generation() {
    return generation;
  }

  String memberId() {
    return memberId;
  }

  synchronized List<Callback> callbacks() {
    return new ArrayList<>(callbacks);
  }

  /** Listener invocations so far (any kind, including empty assigned sets). */
  synchronized int callbackCount() {
    return callbacks.size();
  }

  void checkAlive() {
    if (error != null) {
      throw new Common.CheckFailed("member " + name + " failed: " + error);
    }
  }

  /** Stops polling and closes the consumer; waits up to 30s for the close. */
  void stopAndClose() throws InterruptedException {
    stop = true;
    thread.join(30_000);
    Common.require(!thread.isAlive(), "member " + name + " did not close within 30s");
    checkAlive();
  }
}
