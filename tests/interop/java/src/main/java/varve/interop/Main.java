package varve.interop;

/**
 * Entry point: {@code Main SCENARIO} runs one scenario against $VARVE_BOOTSTRAP and exits 0 when
 * every check held, 1 on the first failed check or unexpected exception (with the reason on
 * stderr), 2 on bad usage.
 */
public final class Main {
  private Main() {}

  public static void main(String[] args) {
    if (args.length != 1) {
      System.err.println("usage: Main roundtrip|seed_producer|idempotent_restart|admin");
      System.exit(2);
    }
    long start = System.nanoTime();
    try {
      switch (args[0]) {
        case "roundtrip" -> new Roundtrip().run();
        case "seed_producer" -> new SeedProducer().run();
        case "idempotent_restart" -> new IdempotentRestart().run();
        case "admin" -> new AdminScenario().run();
        default -> {
          System.err.println("unknown scenario " + args[0]);
          System.exit(2);
        }
      }
    } catch (Support.CheckFailed e) {
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
