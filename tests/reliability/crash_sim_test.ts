/**
 * Crash points on the WFP simulator: a host process whose engine store
 * is a file is SIGKILLed at every named step and restarted.
 */
import { registerCrashMatrix } from "./_crash_matrix.ts";
import { need, simBuilt } from "./_kit.ts";

registerCrashMatrix(
  {
    engine: "wfp",
    env: (dir) => ({ WFPSIM_STORE: `${dir}/wfpsim.store` }),
    expectEnv: (dir) => ({ WFPSIM_STORE: `${dir}/reference.store` }),
  },
  (t) => need(t, simBuilt(), "needs deno task build:wfpsim"),
);
