import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import software.amazon.event.ruler.Machine;

/**
 * Measures event-ruler's throughput on the patterns benchmark corpus:
 * for each rule count, adds that many rules, warms up, then matches the
 * events repeatedly for a fixed time. Prints one JSON line per rule count
 * with events/s and the total number of matches over one pass (to compare
 * with sluice's matcher on the same corpus).
 */
public final class Harness {
    public static void main(String[] args) throws Exception {
        List<String> rules = Files.readAllLines(Path.of(args[0]));
        List<String> events = Files.readAllLines(Path.of(args[1]));
        double seconds = args.length > 2 ? Double.parseDouble(args[2]) : 3.0;
        for (int n : new int[] {1, 100, 1000, 10000}) {
            Machine m = new Machine();
            for (int i = 0; i < n; i++) {
                m.addRule("r" + i, rules.get(i));
            }
            long matches = 0;
            for (String e : events) {
                matches += m.rulesForJSONEvent(e).size();
            }
            long deadline = System.nanoTime() + (long) (seconds * 1e9 / 2);
            while (System.nanoTime() < deadline) {
                for (String e : events) {
                    m.rulesForJSONEvent(e);
                }
            }
            long done = 0;
            long start = System.nanoTime();
            long end = start + (long) (seconds * 1e9);
            while (System.nanoTime() < end) {
                for (String e : events) {
                    m.rulesForJSONEvent(e);
                }
                done += events.size();
            }
            double eps = done / ((System.nanoTime() - start) / 1e9);
            System.out.printf("{\"rules\": %d, \"events_per_sec\": %.0f, \"matches\": %d}%n", n, eps, matches);
        }
    }
}
