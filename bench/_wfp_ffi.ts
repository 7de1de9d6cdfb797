/**
 * Filters per second through the WFP binding against the simulator,
 * shaped and batched exactly like the C loop `tools/wfpsim/bench_add.c`.
 *
 * @module
 */
import {
  filterKey,
  PALISADE_PROVIDER_KEY,
  PALISADE_SUBLAYER_KEY,
  simulatorHooks,
  WFP_CONDITIONS,
  WFP_LAYERS,
  WfpEngine,
  type WfpFilter,
  WfpLibrary,
} from "../ffi/wfp/mod.ts";
import { timeMs } from "./_stats.ts";
import type { TaskArgs, TaskResult } from "./_worker.ts";

/**
 * The C loop's key for filter `n`: scattered like keys derived from rule
 * IDs, so both sides pay the same for the simulator's sorted inserts.
 */
export function benchFilterKey(n: number): string {
  const hex = (value: number | bigint, width: number) =>
    value.toString(16).padStart(width, "0");
  const data1 = (BigInt(n) * 2654435761n) & 0xffffffffn;
  return `${hex(data1, 8)}-${hex((n >>> 16) & 0xffff, 4)}-` +
    `${hex(n & 0xffff, 4)}-be00-000000000000`;
}

/** A filter shaped like the C loop's: remote /24, port, TCP, block. */
function benchFilter(n: number): WfpFilter {
  return {
    key: filterKey(benchFilterKey(n)),
    name: "palisade rule bench",
    flags: 0,
    providerKey: PALISADE_PROVIDER_KEY,
    layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_CONNECT_V4,
    subLayerKey: PALISADE_SUBLAYER_KEY,
    weight: { type: "uint64", value: 0xffffffffn - BigInt(n) * 16n },
    conditions: [
      {
        field: WFP_CONDITIONS.FWPM_CONDITION_IP_REMOTE_ADDRESS,
        match: 0,
        value: { type: "v4AddrMask", addr: 0xcb007100, mask: 0xffffff00 },
      },
      {
        field: WFP_CONDITIONS.FWPM_CONDITION_IP_REMOTE_PORT,
        match: 0,
        value: { type: "uint16", value: n % 65535 + 1 },
      },
      {
        field: WFP_CONDITIONS.FWPM_CONDITION_IP_PROTOCOL,
        match: 0,
        value: { type: "uint8", value: 6 },
      },
    ],
    action: 0x1001,
  };
}

/**
 * Adds `args.size` filters in one transaction, `args.runs` times, and
 * reports microseconds per filter.
 *
 * @throws {Error} the library is not the simulator, or a filter is lost
 */
export function ffiFilterAdd(args: TaskArgs): TaskResult {
  if (args.simLibrary === undefined) {
    throw new TypeError("Cannot open the simulator: no library path given");
  }
  using library = WfpLibrary.open(args.simLibrary);
  const hooks = simulatorHooks(library);
  if (hooks === null) {
    throw new Error(`Cannot measure: ${args.simLibrary} is not the simulator`);
  }
  const filters = Array.from({ length: args.size }, (_, i) => benchFilter(i));
  const palisade: number[] = [];
  for (let r = 0; r < args.runs; r++) {
    hooks.reset();
    using engine = WfpEngine.open(library, { dynamic: true });
    // Same work as the C loop: begin, provider, sublayer, N filters,
    // commit.
    const ms = timeMs(() => {
      engine.transaction(() => {
        engine.addProvider({
          key: PALISADE_PROVIDER_KEY,
          name: "palisade",
          flags: 0,
        });
        engine.addSubLayer({
          key: PALISADE_SUBLAYER_KEY,
          name: "palisade",
          flags: 0,
          providerKey: PALISADE_PROVIDER_KEY,
          weight: 0x8000,
        });
        for (const filter of filters) engine.addFilter(filter);
      });
    });
    const held = hooks.dump().filters.length;
    if (held !== args.size) {
      throw new Error(`Cannot confirm the adds: ${held} filters committed`);
    }
    palisade.push(ms * 1000 / args.size);
  }
  hooks.reset();
  return { samples: { palisade }, notes: [] };
}
