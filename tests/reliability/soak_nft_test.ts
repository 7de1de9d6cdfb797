/**
 * Soak on nftables inside a fresh network namespace:
 * `PALISADE_SOAK_NFT` apply/confirm/revert cycles (200 by default;
 * `deno task assess` asks 1,000) in one host process: resident memory
 * after warm-up within 5%, file descriptors flat, logs within their
 * rotation bound.
 */
import { netnsSuite } from "../_netns.ts";
import { countFromEnv } from "./_kit.ts";
import { soak } from "./_soak.ts";

const CYCLES = countFromEnv("PALISADE_SOAK_NFT", 200);

if (
  netnsSuite(
    "soak on nftables holds inside a fresh network namespace",
    import.meta.url,
  )
) {
  Deno.test(`${CYCLES} apply/confirm/revert cycles on nftables leave no memory or log growth`, async () => {
    await soak("nft", CYCLES);
  });
}
