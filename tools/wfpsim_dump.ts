/**
 * `deno task wfpsim:dump`: prints every object the WFP simulator holds
 * (providers, sublayers, filters with their conditions) as JSON.
 *
 * The simulator reads its persisted-object file from the environment
 * variable `WFPSIM_STORE`; without it a fresh process sees an empty engine.
 *
 * Usage: `deno task wfpsim:dump [--library PATH]`
 *
 * @module
 */
import { parseArgs } from "node:util";

/** One condition of a simulated filter, as the simulator renders it. */
export interface WfpsimCondition {
  /** Condition field GUID, lowercase. */
  field: string;
  /** Symbolic field name, e.g. `FWPM_CONDITION_IP_REMOTE_PORT`. */
  fieldName: string;
  /** Symbolic match type, e.g. `FWP_MATCH_EQUAL`. */
  match: string;
  /** The value: `type` plus readable fields that depend on the type. */
  value: { type: string; [field: string]: unknown };
}

/** A filter in the simulator's store. */
export interface WfpsimFilter {
  /** Run-time filter ID (decimal UINT64). */
  id: string;
  key: string;
  name: string;
  description: string | null;
  layerKey: string;
  /** Symbolic layer name, e.g. `FWPM_LAYER_ALE_AUTH_CONNECT_V4`. */
  layer: string | null;
  subLayerKey: string;
  providerKey: string | null;
  /** Effective weight (decimal UINT64). */
  weight: string;
  action: string;
  flags: number;
  conditions: WfpsimCondition[];
}

/** The whole committed store of the simulator, each list sorted by key. */
export interface WfpsimDump {
  providers: {
    key: string;
    name: string;
    description: string | null;
    flags: number;
    /** False for objects of a dynamic session. */
    persistent: boolean;
  }[];
  sublayers: {
    key: string;
    name: string;
    providerKey: string | null;
    weight: number;
    flags: number;
  }[];
  filters: WfpsimFilter[];
}

const symbols = {
  WfpsimDump: {
    parameters: [
      "buffer", // uint8_t* buf
      "u64", // uint64_t cap
    ],
    result: "u64", // uint64_t: length needed
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** Default library path: the simulator built by `deno task build:wfpsim`. */
export const WFPSIM_DEFAULT_LIBRARY = "./tools/wfpsim/libwfpsim.so";

/**
 * Reads the simulator's committed store through its `WfpsimDump` hook.
 *
 * @param libraryPath path of `libwfpsim.so`
 * @returns the parsed dump
 * @throws {Error} when the library cannot be loaded or returns no dump
 *
 * @example
 * ```ts ignore
 * const dump = readWfpsimDump("./tools/wfpsim/libwfpsim.so");
 * console.log(dump.filters.length);
 * ```
 */
export function readWfpsimDump(libraryPath: string): WfpsimDump {
  let lib: Deno.DynamicLibrary<typeof symbols>;
  try {
    lib = Deno.dlopen(libraryPath, symbols);
  } catch (error) {
    throw new Error(
      `Cannot load the WFP simulator ${libraryPath}: ${
        (error as Error).message
      } (build it with "deno task build:wfpsim")`,
    );
  }
  try {
    // The store can change between the two calls; retry a few times.
    for (let attempt = 0; attempt < 5; attempt++) {
      const needed = lib.symbols.WfpsimDump(null, 0n);
      if (needed === 0n) {
        throw new Error(
          "Cannot read the WFP simulator store: the library returned no " +
            "dump (is WFPSIM_STORE readable and intact?)",
        );
      }
      const buf = new Uint8Array(Number(needed) + 1);
      const again = lib.symbols.WfpsimDump(buf, BigInt(buf.length));
      if (again === needed) {
        const text = new TextDecoder().decode(buf.subarray(0, Number(needed)));
        return JSON.parse(text) as WfpsimDump;
      }
    }
    throw new Error(
      "Cannot read the WFP simulator store: it kept changing while read",
    );
  } finally {
    lib.close();
  }
}

async function main(args: string[]): Promise<number> {
  let library = WFPSIM_DEFAULT_LIBRARY;
  try {
    const { values } = parseArgs({
      args,
      options: { library: { type: "string" } },
      strict: true,
      allowPositionals: false,
    });
    if (values.library) library = values.library;
  } catch (error) {
    console.error(`Cannot parse arguments: ${(error as Error).message}`);
    console.error("Usage: deno task wfpsim:dump [--library PATH]");
    return 2;
  }

  if (!Deno.env.get("WFPSIM_STORE")) {
    console.error(
      "Note: WFPSIM_STORE is not set, so only this process's (empty) " +
        "in-memory engine is shown",
    );
  }
  try {
    const dump = readWfpsimDump(library);
    await Deno.stdout.write(
      new TextEncoder().encode(JSON.stringify(dump, null, 2) + "\n"),
    );
    return 0;
  } catch (error) {
    console.error((error as Error).message);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
