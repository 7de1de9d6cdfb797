/**
 * Engine crash points on the WFP simulator: a host process (or
 * `palisade panic`) whose engine store is a file is SIGKILLed at every
 * step of the WFP transaction of a push, a revert and a panic.
 */
import { need, simBuilt } from "./_kit.ts";
import {
  registerEngineCrashMatrix,
  registerPanicUnarmed,
  WFP_ENGINE,
} from "./_engine_crash_matrix.ts";

const ready = (t: Deno.TestContext) =>
  need(t, simBuilt(), "needs deno task build:wfpsim");
registerEngineCrashMatrix(WFP_ENGINE, ready);
registerPanicUnarmed(WFP_ENGINE, ready);
