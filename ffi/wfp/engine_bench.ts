/**
 * Filters added per second through the FFI binding against the WFP
 * simulator (`deno bench --allow-read --allow-ffi --allow-env
 * ffi/wfp/engine_bench.ts`). Each iteration adds 1000 filters with a
 * port and an address condition in one transaction, then removes them.
 *
 * @module
 */
import { SIM_LIBRARY, simAvailable } from "./_sim_fixture.ts";
import type { WfpFilter } from "./codec.ts";
import { WfpEngine, WfpLibrary } from "./engine.ts";
import {
  filterKey,
  PALISADE_PROVIDER_KEY,
  PALISADE_SUBLAYER_KEY,
  WFP_CONDITIONS,
  WFP_LAYERS,
} from "./guids.ts";
import { simulatorHooks } from "./simulator.ts";

const BATCH = 1000;

function filter(n: number): WfpFilter {
  const hex = n.toString(16).padStart(12, "0");
  return {
    key: filterKey(`00000000-0000-4000-8000-${hex}`),
    name: `rule-${n}`,
    flags: 0,
    providerKey: PALISADE_PROVIDER_KEY,
    layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_CONNECT_V4,
    subLayerKey: PALISADE_SUBLAYER_KEY,
    weight: { type: "uint64", value: BigInt(1_000_000 - n) },
    conditions: [
      {
        field: WFP_CONDITIONS.FWPM_CONDITION_IP_REMOTE_PORT,
        match: 0,
        value: { type: "uint16", value: 1 + (n % 65535) },
      },
      {
        field: WFP_CONDITIONS.FWPM_CONDITION_IP_REMOTE_ADDRESS,
        match: 0,
        value: {
          type: "v4AddrMask",
          addr: 0xc0000200 + (n % 256),
          mask: ~0 >>> 0,
        },
      },
    ],
    action: 0x1001,
  };
}

if (simAvailable()) {
  const library = WfpLibrary.open(SIM_LIBRARY);
  const hooks = simulatorHooks(library)!;
  hooks.reset();
  const engine = WfpEngine.open(library, { dynamic: true });
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
  });
  const filters = Array.from({ length: BATCH }, (_, i) => filter(i));

  Deno.bench(`WfpEngine.addFilter() x${BATCH} in one transaction`, (b) => {
    b.start();
    engine.transaction(() => {
      for (const f of filters) engine.addFilter(f);
    });
    b.end();
    engine.transaction(() => {
      for (const f of filters) engine.deleteFilterByKey(f.key);
    });
  });

  addEventListener("unload", () => {
    engine.close();
    library.close();
  });
}
