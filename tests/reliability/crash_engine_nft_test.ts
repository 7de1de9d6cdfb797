/**
 * Engine crash points on nftables: the file re-runs itself inside a
 * fresh network namespace, where a host process (or `palisade panic`)
 * is SIGKILLed right before and right after the batch of a push, a
 * revert and a panic, and `nft -j -s list ruleset` is compared whole.
 */
import { assertInPrivateNetns, netnsSuite } from "../_netns.ts";
import {
  NFT_ENGINE,
  registerEngineCrashMatrix,
  registerPanicUnarmed,
} from "./_engine_crash_matrix.ts";

const inside = netnsSuite(
  "engine crash points on nftables hold inside a fresh network namespace",
  import.meta.url,
);

if (inside) {
  assertInPrivateNetns();
  registerEngineCrashMatrix(NFT_ENGINE, () => true);
  registerPanicUnarmed(NFT_ENGINE, () => true);
}
