package varve.groups;

import static varve.groups.Common.require;

import java.util.HashSet;
import java.util.List;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;

/**
 * groups_cooperative_static:
 * (1) CooperativeStickyAssignor: members A and B share 6 partitions; C joins. A and B may only
 *     revoke the partitions that move to C (incremental rebalance), keep the rest without a
 *     revocation, and gain nothing; the revoked partitions together are exactly C's.
 * (2) Static membership: S1 (group.instance.id=s1) and S2 share 6 partitions; S1 is closed
 *     (a static member sends no LeaveGroup) and restarted within session.timeout.ms: it gets
 *     the same partitions, and S2 sees no rebalance (no listener call, same generation).
 *     Then S1 is closed for good: after its session times out S2 owns all 6.
 */
final class CooperativeStatic {
  static final int PARTITIONS = 6;

  void run() throws Exception {
    String topic = "groups-coop-" + System.nanoTime();
    try (Admin admin = Common.admin()) {
      Common.createTopic(admin, topic, PARTITIONS);
      Common.produceKeyed(topic, 600);
      cooperative(admin, topic);
      staticMembership(admin, topic);
    }
  }

  private static Properties props(String group, String client) {
    Properties p = Common.consumerProps(group, client);
    p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG,
        CooperativeStickyAssignor.class.getName());
    return p;
  }

  /** Waits (bounded) until the members own disjoint sets covering all partitions, stable 1s. */
  static void awaitStable(List<GroupMember> members, long timeoutMs, String what)
      throws InterruptedException {
    long deadline = System.currentTimeMillis() + timeoutMs;
    long stableSince = -1;
    String last = "";
    while (true) {
      for (GroupMember m : members) {
        m.checkAlive();
      }
      Set<Integer> union = new HashSet<>();
      int total = 0;
      StringBuilder sb = new StringBuilder();
      Set<Integer> gens = new HashSet<>();
      for (GroupMember m : members) {
        union.addAll(m.owned());
        total += m.owned().size();
        gens.add(m.generation());
        sb.append(m.name).append('=').append(new TreeSet<>(m.owned()))
            .append("@g").append(m.generation()).append(' ');
      }
      boolean ok = union.size() == PARTITIONS && total == PARTITIONS && gens.size() == 1;
      String now = sb.toString();
      if (ok && now.equals(last)) {
        if (stableSince < 0) {
          stableSince = System.currentTimeMillis();
        } else if (System.currentTimeMillis() - stableSince >= 1000) {
          System.out.println(what + ": stable " + now);
          return;
        }
      } else {
        stableSince = -1;
      }
      last = now;
      if (System.currentTimeMillis() > deadline) {
        throw new Common.CheckFailed(what + ": no stable assignment covering " + PARTITIONS
            + " partitions exactly once within " + timeoutMs + "ms; last: " + now);
      }
      Thread.sleep(100);
    }
  }

  private void cooperative(Admin admin, String topic) throws Exception {
    String group = "groups-coop-" + System.nanoTime();
    System.out.println("cooperative: group " + group);
    GroupMember a = new GroupMember("A", props(group, "coop-A"), topic).start();
    GroupMember b = new GroupMember("B", props(group, "coop-B"), topic).start();
    awaitStable(List.of(a, b), 60_000, "cooperative A+B");
    Set<Integer> a0 = Set.copyOf(a.owned());
    Set<Integer> b0 = Set.copyOf(b.owned());
    int aSeen = a.callbacks().size();
    int bSeen = b.callbacks().size();
    long cStart = System.nanoTime();
    GroupMember c = new GroupMember("C", props(group, "coop-C"), topic).start();
    awaitStable(List.of(a, b, c), 60_000, "cooperative A+B+C");
    System.out.printf("cooperative: third member balanced in %.1fs%n",
        (System.nanoTime() - cStart) / 1e9);
    for (GroupMember m : List.of(a, b, c)) {
      require(m.owned().size() == 2, "cooperative: " + m.name + " owns " + m.owned()
          + ", expected 2 of 6 partitions with 3 members");
    }
    Set<Integer> cFinal = Set.copyOf(c.owned());
    Set<Integer> revokedAll = new TreeSet<>();
    for (Object[] x : new Object[][] {{a, a0, aSeen}, {b, b0, bSeen}}) {
      GroupMember m = (GroupMember) x[0];
      @SuppressWarnings("unchecked")
      Set<Integer> before = (Set<Integer>) x[1];
      int seen = (Integer) x[2];
      Set<Integer> revoked = new TreeSet<>();
      Set<Integer> gained = new TreeSet<>();
      for (GroupMember.Callback cb : m.callbacks().subList(seen, m.callbacks().size())) {
        require(!cb.kind().equals("lost"), "cooperative: " + m.name + " lost partitions "
            + cb.partitions() + " (onPartitionsLost) during a normal rebalance");
        if (cb.kind().equals("revoked")) {
          revoked.addAll(cb.partitions());
        } else {
          gained.addAll(cb.partitions());
        }
      }
      Set<Integer> moved = new TreeSet<>(before);
      moved.removeAll(m.owned());
      System.out.printf("cooperative: %s before=%s after=%s revoked=%s newly-assigned=%s%n",
          m.name, new TreeSet<>(before), new TreeSet<>(m.owned()), revoked, gained);
      require(revoked.equals(moved), "cooperative: " + m.name + " revoked " + revoked
          + " but only " + moved + " moved away (an eager rebalance revokes everything)");
      require(gained.isEmpty(), "cooperative: " + m.name + " was newly assigned " + gained
          + " although a member joined (kept partitions must not be reassigned)");
      require(cFinal.containsAll(revoked), "cooperative: " + m.name + " revoked " + revoked
          + " which did not go to the new member (owns " + cFinal + ")");
      revokedAll.addAll(revoked);
    }
    require(revokedAll.equals(cFinal), "cooperative: revoked " + revokedAll
        + " but the new member owns " + cFinal);
    ConsumerGroupDescription d = Common.await(
        admin.describeConsumerGroups(List.of(group)).describedGroups().get(group), "describe");
    System.out.println("cooperative: describeConsumerGroups state=" + d.groupState()
        + " assignor=" + d.partitionAssignor() + " members=" + d.members().size());
    require(d.members().size() == 3, "cooperative: described members " + d.members().size());
    require("cooperative-sticky".equals(d.partitionAssignor()),
        "cooperative: described assignor " + d.partitionAssignor());
    for (GroupMember m : List.of(a, b, c)) {
      m.stopAndClose();
    }
    System.out.println("cooperative: OK (revoked only moved partitions: " + revokedAll + ")");
  }

  private void staticMembership(Admin admin, String topic) throws Exception {
    String group = "groups-static-" + System.nanoTime();
    System.out.println("static: group " + group);
    int sessionMs = 10_000;
    Properties p1 = props(group, "static-1");
    p1.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "s1");
    p1.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, sessionMs);
    Properties p2 = props(group, "static-2");
    p2.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, "s2");
    p2.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, sessionMs);
    GroupMember s1 = new GroupMember("S1", p1, topic).start();
    GroupMember s2 = new GroupMember("S2", p2, topic).start();
    awaitStable(List.of(s1, s2), 60_000, "static S1+S2");
    Set<Integer> s1Owned = Set.copyOf(s1.owned());
    Set<Integer> s2Owned = Set.copyOf(s2.owned());
    int s2Gen = s2.generation();
    int s2Calls = s2.callbackCount();
    String s1OldId = s1.memberId();

    long closedAt = System.nanoTime();
    s1.stopAndClose();  // static member: no LeaveGroup
    GroupMember s1b = new GroupMember("S1'", p1, topic).start();
    long deadline = System.currentTimeMillis() + sessionMs;
    while (s1b.owned().isEmpty() || s1b.memberId().isEmpty()) {
      s1b.checkAlive();
      require(System.currentTimeMillis() < deadline, "static: restarted S1 got no partitions"
          + " within session.timeout.ms=" + sessionMs);
      Thread.sleep(50);
    }
    double back = (System.nanoTime() - closedAt) / 1e9;
    System.out.printf("static: S1 restarted, owns %s after %.1fs (before: %s); member id %s -> %s%n",
        new TreeSet<>(s1b.owned()), back, new TreeSet<>(s1Owned), s1OldId, s1b.memberId());
    require(!s1b.memberId().equals(s1OldId), "static: restarted S1 kept member id " + s1OldId);
    require(s1b.owned().equals(s1Owned), "static: restarted S1 owns " + s1b.owned()
        + ", expected its old partitions " + s1Owned);
    // Give S2 several heartbeats in which a rebalance would show up.
    Thread.sleep(4000);
    s2.checkAlive();
    s1b.checkAlive();
    System.out.printf("static: S2 listener calls %d -> %d, generation %d -> %d, owns %s%n",
        s2Calls, s2.callbackCount(), s2Gen, s2.generation(), new TreeSet<>(s2.owned()));
    require(s2.callbackCount() == s2Calls, "static: S2's rebalance listener was invoked "
        + s2.callbacks().subList(s2Calls, s2.callbackCount()) + " while static S1 restarted");
    require(s2.generation() == s2Gen, "static: S2's generation changed " + s2Gen + " -> "
        + s2.generation() + " while static S1 restarted");
    require(s2.owned().equals(s2Owned), "static: S2 owns " + s2.owned() + ", was " + s2Owned);
    require(s1b.generation() == s2Gen, "static: restarted S1 is in generation "
        + s1b.generation() + ", S2 in " + s2Gen);
    ConsumerGroupDescription d = Common.await(
        admin.describeConsumerGroups(List.of(group)).describedGroups().get(group), "describe");
    Set<String> instances = new TreeSet<>();
    for (MemberDescription m : d.members()) {
      instances.add(String.valueOf(m.groupInstanceId().orElse("<none>")));
    }
    System.out.println("static: describeConsumerGroups state=" + d.groupState()
        + " instances=" + instances);
    require(instances.equals(Set.of("s1", "s2")), "static: described instance ids " + instances);

    // S1 goes away for good: no LeaveGroup, so S2 takes over only after the session timeout.
    long goneAt = System.nanoTime();
    s1b.stopAndClose();
    deadline = System.currentTimeMillis() + sessionMs + 15_000;
    while (s2.owned().size() != PARTITIONS) {
      s2.checkAlive();
      require(System.currentTimeMillis() < deadline, "static: S2 owns " + s2.owned()
          + " " + (sessionMs + 15_000) + "ms after static S1 left without LeaveGroup");
      Thread.sleep(100);
    }
    double took = (System.nanoTime() - goneAt) / 1e9;
    System.out.printf("static: S2 owns all %d partitions %.1fs after S1 stopped (session %ds)%n",
        PARTITIONS, took, sessionMs / 1000);
    require(took >= sessionMs / 1000.0 - 1.5, "static: S2 took over after " + took
        + "s, before S1's session (" + sessionMs + "ms) could expire: was a LeaveGroup sent?");
    s2.stopAndClose();
    System.out.println("static: OK");
  }
}
