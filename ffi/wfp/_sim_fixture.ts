/**
 * Test fixture for code that runs against the WFP simulator: loads
 * `tools/wfpsim/libwfpsim.so`, empties its store before each test and
 * checks after each test that no handle stayed open and no buffer the
 * engine returned stayed unfreed. Without the library the tests are
 * skipped with a message, or fail when `CI` is set.
 *
 * @module
 */
import assert from "node:assert/strict";
import { WfpLibrary } from "./engine.ts";
import { simulatorHooks, type WfpSimulatorHooks } from "./simulator.ts";

/** Where `deno task build:wfpsim` puts the simulator. */
export const SIM_LIBRARY = "tools/wfpsim/libwfpsim.so";

/** What a simulator test gets. */
export interface SimContext {
  library: WfpLibrary;
  hooks: WfpSimulatorHooks;
  path: string;
}

/** True when the simulator library has been built. */
export function simAvailable(): boolean {
  try {
    return Deno.statSync(SIM_LIBRARY).isFile;
  } catch {
    return false;
  }
}

let warned = false;

/**
 * Whether `CI` is set, read only where the environment may be read: the
 * Windows test command grants no `--allow-env`.
 */
function ciSet(): boolean {
  const query = { name: "env", variable: "CI" } as const;
  if (Deno.permissions.querySync(query).state !== "granted") return false;
  return Deno.env.get("CI") !== undefined && Deno.env.get("CI") !== "";
}

/**
 * Registers a test that needs the simulator.
 *
 * @example
 * ```ts ignore
 * simTest("WfpEngine.open() opens a session", ({ library }) => { … });
 * ```
 */
export function simTest(
  name: string,
  fn: (ctx: SimContext) => void | Promise<void>,
): void {
  if (!simAvailable()) {
    // The simulator is a Linux shared library; Windows runs the same
    // backend suite against fwpuclnt.dll instead.
    if (ciSet() && Deno.build.os !== "windows") {
      Deno.test(name, () => {
        throw new Error(
          `Cannot run "${name}": ${SIM_LIBRARY} is missing; run deno task build:wfpsim`,
        );
      });
      return;
    }
    if (!warned) {
      console.warn(
        `skipping WFP simulator tests: ${SIM_LIBRARY} is missing (deno task build:wfpsim)`,
      );
      warned = true;
    }
    Deno.test({ name, ignore: true, fn: () => {} });
    return;
  }

  Deno.test(name, async () => {
    using library = WfpLibrary.open(SIM_LIBRARY);
    const hooks = simulatorHooks(library);
    assert.ok(hooks, `${SIM_LIBRARY} lacks the simulator's test hooks`);
    hooks.clearFaults();
    hooks.reset();
    try {
      await fn({ library, hooks, path: SIM_LIBRARY });
    } finally {
      hooks.clearFaults();
    }
    assert.equal(hooks.openHandles(), 0, "engine or enum handles left open");
    assert.equal(hooks.unfreedAllocations(), 0n, "engine buffers not freed");
  });
}
