/**
 * Test hooks of the WFP simulator (`tools/wfpsim/libwfpsim.so`). The real
 * `fwpuclnt.dll` has none of these exports; {@linkcode simulatorHooks}
 * returns null for it.
 *
 * @module
 */
import type { WfpLibrary } from "./engine.ts";

/** One filter as the simulator's dump shows it. */
export interface WfpsimDumpFilter {
  /** Run-time filter ID, decimal. */
  id: string;
  /** Filter key. */
  key: string;
  /** Display name (Palisade: the rule ID). */
  name: string;
  /** Display description. */
  description?: string;
  /** Layer key. */
  layerKey: string;
  /** Symbolic layer name, from the simulator's own table. */
  layer?: string;
  /** Sublayer key. */
  subLayerKey: string;
  /** Provider key, if any. */
  providerKey?: string | null;
  /** Effective weight, decimal. */
  weight: string;
  /** Action name, e.g. `FWP_ACTION_BLOCK`. */
  action: string;
  /** `FWPM_FILTER_FLAG_*`. */
  flags: number;
  /** Conditions, with symbolic field names. */
  conditions: {
    field: string;
    fieldName?: string;
    match: string;
    value: Record<string, unknown>;
  }[];
}

/** The simulator's committed store. */
export interface WfpsimDump {
  /** Every committed provider. */
  providers: {
    key: string;
    name: string;
    description?: string;
    flags: number;
    persistent?: boolean;
  }[];
  /** Every committed sublayer. */
  sublayers: {
    key: string;
    name: string;
    providerKey?: string | null;
    weight: number;
    flags: number;
  }[];
  /** Every committed filter. */
  filters: WfpsimDumpFilter[];
}

/** Fault injection and accounting of the simulator. */
export interface WfpSimulatorHooks {
  /** Makes the `nth` next call of `fn` return `code` without effect. */
  injectFault(fn: string, nth: number, code: number): void;
  /** Cancels every pending injected fault. */
  clearFaults(): void;
  /** Engine and enumeration handles open in this process. */
  openHandles(): number;
  /** Engine-allocated blocks not yet given to `FwpmFreeMemory0`. */
  unfreedAllocations(): bigint;
  /** Empties the store. */
  reset(): void;
  /** The committed store as parsed JSON. */
  dump(): WfpsimDump;
  /** The committed store as the exact JSON text. */
  dumpText(): string;
}

/**
 * The simulator's hooks, or null when `library` is not the simulator.
 *
 * @example
 * ```ts ignore
 * const hooks = simulatorHooks(library);
 * hooks?.injectFault("FwpmTransactionCommit0", 1, 0x8032000f);
 * ```
 */
export function simulatorHooks(library: WfpLibrary): WfpSimulatorHooks | null {
  const fn = library.symbols;
  const inject = fn.WfpsimInjectFault;
  const clear = fn.WfpsimClearFaults;
  const handles = fn.WfpsimOpenHandles;
  const unfreed = fn.WfpsimUnfreedAllocations;
  const reset = fn.WfpsimReset;
  const dump = fn.WfpsimDump;
  if (!inject || !clear || !handles || !unfreed || !reset || !dump) {
    return null;
  }

  const dumpText = (): string => {
    const needed = Number(dump(null, 0n));
    const buffer = new Uint8Array(needed + 1);
    const written = Number(dump(buffer, BigInt(buffer.length)));
    if (written !== needed) {
      throw new RangeError(
        `Cannot dump the simulator: its size changed from ${needed} to ${written}`,
      );
    }
    return new TextDecoder().decode(buffer.subarray(0, needed));
  };

  return {
    injectFault(name, nth, code) {
      const text = new TextEncoder().encode(`${name}\0`);
      inject(text, nth, code >>> 0);
    },
    clearFaults: () => clear(),
    openHandles: () => handles(),
    unfreedAllocations: () => unfreed(),
    reset() {
      const status = reset();
      if (status !== 0) {
        throw new Error(`Cannot reset the simulator: status ${status}`);
      }
    },
    dump: () => JSON.parse(dumpText()),
    dumpText,
  };
}
