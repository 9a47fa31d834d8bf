package varve.groups;

import java.util.Arrays;

/**
 * Entry point: {@code Main SCENARIO [ARGS]} against $VARVE_BOOTSTRAP. Exit 0 when every check
 * held, 1 on a failed check or unexpected exception (reason on stderr), 2 on bad usage.
 * Scenarios: cooperative_static, seed_scenarios; helpers started by other processes:
 * mixed_member (groups_mixed_clients) and seed_child (seed_scenarios' crashing consumers).
 */
public final class Main {
  private Main() {}

  public static void main(String[] args) {
    if (args.length < 1) {
      System.err.println("usage: Main cooperative_static|seed_scenarios|mixed_member|seed_child ...");
      System.exit(2);
    }
    String[] rest = Arrays.copyOfRange(args, 1, args.length);
    long start = System.nanoTime();
    try {
      switch (args[0]) {
        case "cooperative_static" -> new CooperativeStatic().run();
        case "seed_scenarios" -> new SeedScenarios().run();
        case "mixed_member" -> {
          MixedMember.run(rest);
          System.exit(0);
        }
        case "seed_child" -> {
          SeedScenarios.child(rest);
          System.exit(0);
        }
        default -> {
          System.err.println("unknown scenario " + args[0]);
          System.exit(2);
        }
      }
    } catch (Common.CheckFailed e) {
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
}
