/**
 * Crash points on nftables: the file re-runs itself inside a fresh
 * network namespace, where a host process is SIGKILLed at every named
 * step and restarted, and `nft -j -s list ruleset` is compared whole.
 */
import { assertInPrivateNetns, netnsSuite } from "../_netns.ts";
import { registerCrashMatrix } from "./_crash_matrix.ts";

const inside = netnsSuite(
  "crash points on nftables hold inside a fresh network namespace",
  import.meta.url,
);

if (inside) {
  assertInPrivateNetns();
  registerCrashMatrix(
    { engine: "nft", env: () => ({}), expectEnv: () => ({}) },
    () => true,
  );
}
