/**
 * Soak on the WFP simulator: `PALISADE_SOAK_SIM` apply/confirm/revert
 * cycles (200 by default; `deno task assess` asks 10,000) in one host
 * process: no handle or engine allocation left behind, resident memory
 * after warm-up within 5%, logs within their rotation bound.
 */
import { countFromEnv, need, simBuilt } from "./_kit.ts";
import { soak } from "./_soak.ts";

const CYCLES = countFromEnv("PALISADE_SOAK_SIM", 200);

Deno.test(`${CYCLES} apply/confirm/revert cycles on the simulator leave no handle, allocation, memory or log growth`, async (t) => {
  if (!need(t, simBuilt(), "needs deno task build:wfpsim")) return;
  await soak("wfp", CYCLES);
});
