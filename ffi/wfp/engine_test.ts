import assert from "node:assert/strict";
import { simTest } from "./_sim_fixture.ts";
import type { WfpFilter } from "./codec.ts";
import { WfpEngine, type WfpLibrary } from "./engine.ts";
import { WfpError } from "./errors.ts";
import {
  filterKey,
  PALISADE_PROVIDER_KEY,
  PALISADE_SUBLAYER_KEY,
  providerKey,
  WFP_CONDITIONS,
  WFP_LAYERS,
  ZERO_GUID,
} from "./guids.ts";

const INVALID = 0x80320035; // FWP_E_INVALID_PARAMETER

const PROVIDER = {
  key: PALISADE_PROVIDER_KEY,
  name: "palisade",
  flags: 0,
};
const SUBLAYER = {
  key: PALISADE_SUBLAYER_KEY,
  name: "palisade",
  flags: 0,
  providerKey: PALISADE_PROVIDER_KEY,
  weight: 0x8000,
};

function filter(n: number): WfpFilter {
  return {
    key: filterKey(
      `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`,
    ),
    name: `rule-${n}`,
    flags: 0,
    providerKey: PALISADE_PROVIDER_KEY,
    layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_CONNECT_V4,
    subLayerKey: PALISADE_SUBLAYER_KEY,
    weight: { type: "uint64", value: BigInt(1000 - n) },
    conditions: [{
      field: WFP_CONDITIONS.FWPM_CONDITION_IP_REMOTE_PORT,
      match: 0,
      value: { type: "uint16", value: 1000 + n },
    }],
    action: 0x1001,
  };
}

function seed(library: WfpLibrary, filters = 1): void {
  using engine = WfpEngine.open(library);
  engine.transaction(() => {
    engine.addProvider(PROVIDER);
    engine.addSubLayer(SUBLAYER);
    for (let i = 0; i < filters; i++) engine.addFilter(filter(i));
  });
}

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  assert.fail("expected an error");
}

simTest(
  "WfpEngine.open() and close() leave no handle; close() is safe twice",
  ({ library, hooks }) => {
    const engine = WfpEngine.open(library);
    assert.equal(hooks.openHandles(), 1);
    engine.close();
    engine.close();
    assert.equal(engine.closed, true);
    assert.throws(() => engine.begin(), /session is closed/);
  },
);

simTest(
  "WfpEngine.open() reports a refused session with its code",
  ({ library, hooks }) => {
    hooks.injectFault("FwpmEngineOpen0", 1, 5);
    const error = catchError(() => WfpEngine.open(library));
    assert.ok(error instanceof WfpError);
    assert.equal(error.call, "FwpmEngineOpen0");
    assert.equal(error.codeName, "ERROR_ACCESS_DENIED");
    assert.match(
      error.message,
      /^Cannot open WFP engine: ERROR_ACCESS_DENIED \(0x00000005\)/,
    );
  },
);

simTest(
  "every WFP call's failure becomes a WfpError naming that call",
  ({ library, hooks }) => {
    seed(library, 2);
    using engine = WfpEngine.open(library);
    const cases: [string, () => unknown][] = [
      ["FwpmTransactionBegin0", () => engine.begin()],
      ["FwpmProviderAdd0", () =>
        engine.addProvider({
          ...PROVIDER,
          key: providerKey("11111111-2222-4333-8444-555555555555"),
        })],
      [
        "FwpmProviderGetByKey0",
        () => engine.getProvider(PALISADE_PROVIDER_KEY),
      ],
      [
        "FwpmProviderDeleteByKey0",
        () => engine.deleteProvider(PALISADE_PROVIDER_KEY),
      ],
      ["FwpmSubLayerAdd0", () => engine.addSubLayer(SUBLAYER)],
      [
        "FwpmSubLayerGetByKey0",
        () => engine.getSubLayer(PALISADE_SUBLAYER_KEY),
      ],
      [
        "FwpmSubLayerDeleteByKey0",
        () => engine.deleteSubLayer(PALISADE_SUBLAYER_KEY),
      ],
      ["FwpmFilterAdd0", () => engine.addFilter(filter(9))],
      ["FwpmFilterGetByKey0", () => engine.getFilter(filter(0).key)],
      ["FwpmFilterDeleteByKey0", () => engine.deleteFilterByKey(filter(0).key)],
      [
        "FwpmFilterDeleteById0",
        () =>
          engine.deleteFilterById(engine.getFilter(filter(1).key)!.filterId!),
      ],
      ["FwpmFilterCreateEnumHandle0", () =>
        engine.enumFilters({
          layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_CONNECT_V4,
        })],
      ["FwpmFilterEnum0", () =>
        engine.enumFilters({
          layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_CONNECT_V4,
        })],
      ["FwpmFilterDestroyEnumHandle0", () =>
        engine.enumFilters({
          layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_CONNECT_V4,
        })],
      [
        "FwpmGetAppIdFromFileName0",
        () => library.appIdFromFileName("C:\\app.exe"),
      ],
    ];
    const before = hooks.dumpText();
    for (const [call, run] of cases) {
      hooks.injectFault(call, 1, INVALID);
      const error = catchError(run);
      assert.ok(error instanceof WfpError, `${call}: ${error}`);
      assert.equal(error.call, call);
      assert.equal(error.code, INVALID);
      assert.equal(error.codeName, "FWP_E_INVALID_PARAMETER");
      assert.match(
        error.message,
        /^Cannot .*: FWP_E_INVALID_PARAMETER \(0x80320035\) — /,
      );
    }
    assert.equal(hooks.dumpText(), before);
    assert.equal(engine.getFilter(filter(1).key)?.name, "rule-1");
  },
);

simTest(
  "WfpEngine.close() reports a failed FwpmEngineClose0 and can be retried",
  ({ library, hooks }) => {
    const engine = WfpEngine.open(library);
    hooks.injectFault("FwpmEngineClose0", 1, 6);
    const error = catchError(() => engine.close());
    assert.ok(error instanceof WfpError);
    assert.equal(error.call, "FwpmEngineClose0");
    assert.equal(error.codeName, "ERROR_INVALID_HANDLE");
    assert.equal(engine.closed, false);
    engine.close();
    assert.equal(engine.closed, true);
  },
);

simTest("WfpEngine.transaction() commits what fn did", ({ library, hooks }) => {
  seed(library, 3);
  const dump = hooks.dump();
  assert.equal(dump.providers.length, 1);
  assert.equal(dump.sublayers.length, 1);
  assert.equal(dump.filters.length, 3);
  assert.equal(dump.filters[0].layer, "FWPM_LAYER_ALE_AUTH_CONNECT_V4");
});

simTest(
  "WfpEngine.transaction() aborts on a throw and rethrows the original",
  ({ library, hooks }) => {
    seed(library);
    const before = hooks.dumpText();
    using engine = WfpEngine.open(library);
    const original = new Error("policy step failed");
    const error = catchError(() =>
      engine.transaction(() => {
        engine.addFilter(filter(5));
        engine.deleteFilterByKey(filter(0).key);
        throw original;
      })
    );
    assert.equal(error, original);
    assert.equal(engine.inTransaction, false);
    assert.equal(hooks.dumpText(), before);
    engine.transaction(() => engine.addFilter(filter(6)));
    assert.equal(hooks.dump().filters.length, 2);
  },
);

simTest(
  "WfpEngine.transaction() aborts when the commit fails",
  ({ library, hooks }) => {
    seed(library);
    const before = hooks.dumpText();
    using engine = WfpEngine.open(library);
    hooks.injectFault("FwpmTransactionCommit0", 1, 0x8032000f);
    const error = catchError(() =>
      engine.transaction(() => engine.addFilter(filter(7)))
    );
    assert.ok(error instanceof WfpError);
    assert.equal(error.call, "FwpmTransactionCommit0");
    assert.equal(error.transient, true);
    assert.equal(hooks.dumpText(), before);
    assert.equal(engine.inTransaction, false);
  },
);

simTest(
  "WfpEngine.transaction() closes the session when the abort fails too",
  ({ library, hooks }) => {
    seed(library);
    const before = hooks.dumpText();
    const engine = WfpEngine.open(library);
    hooks.injectFault("FwpmFilterAdd0", 1, INVALID);
    hooks.injectFault("FwpmTransactionAbort0", 1, 6);
    const error = catchError(() =>
      engine.transaction(() => engine.addFilter(filter(8)))
    );
    assert.ok(error instanceof WfpError);
    assert.equal(error.call, "FwpmFilterAdd0");
    const abortError = (error as { abortError?: unknown }).abortError;
    assert.ok(abortError instanceof WfpError);
    assert.equal(abortError.call, "FwpmTransactionAbort0");
    assert.equal(engine.closed, true);
    assert.equal(hooks.dumpText(), before);
  },
);

simTest(
  "WfpEngine refuses a zero GUID before calling the engine",
  ({ library, hooks }) => {
    using engine = WfpEngine.open(library);
    hooks.injectFault("FwpmProviderAdd0", 1, INVALID);
    assert.throws(
      () => engine.addProvider({ ...PROVIDER, key: ZERO_GUID as never }),
      { name: "RangeError", message: /zero GUID/ },
    );
    assert.throws(
      () => engine.addFilter({ ...filter(1), layerKey: ZERO_GUID as never }),
      RangeError,
    );
    // The injected fault is still pending: the refused call never ran.
    const error = catchError(() => engine.addProvider(PROVIDER));
    assert.ok(error instanceof WfpError);
    assert.equal(error.call, "FwpmProviderAdd0");
  },
);

simTest(
  "WfpEngine getters return null for absent objects and decode present ones",
  ({ library }) => {
    using engine = WfpEngine.open(library);
    assert.equal(engine.getProvider(PALISADE_PROVIDER_KEY), null);
    assert.equal(engine.getSubLayer(PALISADE_SUBLAYER_KEY), null);
    assert.equal(engine.getFilter(filter(0).key), null);
    seed(library);
    assert.deepEqual(engine.getProvider(PALISADE_PROVIDER_KEY), PROVIDER);
    assert.deepEqual(engine.getSubLayer(PALISADE_SUBLAYER_KEY), SUBLAYER);
    const got = engine.getFilter(filter(0).key)!;
    assert.equal(got.name, "rule-0");
    assert.deepEqual(got.conditions, filter(0).conditions);
    assert.equal(typeof got.filterId, "bigint");
  },
);

simTest(
  "WfpEngine.addFilter() in one session stores each of many mixed filters as given",
  ({ library, hooks }) => {
    const mixed = (n: number): WfpFilter => {
      const base = filter(n);
      if (n % 3 === 0) return base;
      const v4 = {
        field: WFP_CONDITIONS.FWPM_CONDITION_IP_REMOTE_ADDRESS,
        match: 0,
        value: {
          type: "v4AddrMask" as const,
          addr: 0x0a000000 + n,
          mask: ~0 >>> 0,
        },
      };
      return n % 3 === 1
        ? {
          ...base,
          layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4,
          description: `rule ${n}`,
          conditions: [v4, ...base.conditions, v4],
        }
        : { ...base, providerKey: undefined, conditions: [] };
    };
    const filters = Array.from({ length: 30 }, (_, n) => mixed(n));
    using engine = WfpEngine.open(library);
    const ids = engine.transaction(() => {
      engine.addProvider(PROVIDER);
      engine.addSubLayer(SUBLAYER);
      return filters.map((f) => engine.addFilter(f));
    });
    assert.equal(new Set(ids).size, filters.length);
    filters.forEach((want, i) => {
      const { filterId, effectiveWeight: _, ...got } = engine.getFilter(
        want.key,
      )!;
      assert.equal(filterId, ids[i]);
      const expected: Partial<WfpFilter> = { ...want };
      if (expected.providerKey === undefined) delete expected.providerKey;
      assert.deepEqual(got, expected);
    });
    assert.equal(hooks.unfreedAllocations(), 0n);
  },
);

simTest(
  "WfpEngine.enumFilters() pages through many filters and frees every page",
  ({ library, hooks }) => {
    seed(library, 600);
    using engine = WfpEngine.open(library);
    const all = engine.enumFilters({
      layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_CONNECT_V4,
      providerKey: PALISADE_PROVIDER_KEY,
    });
    assert.equal(all.length, 600);
    assert.equal(new Set(all.map((f) => f.key)).size, 600);
    assert.equal(hooks.unfreedAllocations(), 0n);
    const other = engine.enumFilters({
      layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6,
    });
    assert.equal(other.length, 0);
  },
);

simTest(
  "WfpFilterEnum is disposable and close() is safe twice",
  ({ library, hooks }) => {
    seed(library, 3);
    using engine = WfpEngine.open(library);
    const filters = engine.openFilterEnum({
      layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_CONNECT_V4,
    });
    assert.equal(hooks.openHandles(), 2);
    assert.equal(filters.next(2).length, 2);
    filters.close();
    filters.close();
    assert.equal(hooks.openHandles(), 1);
    assert.throws(() => filters.next(), /enumeration is closed/);
    {
      using scoped = engine.openFilterEnum({
        layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_CONNECT_V4,
      });
      assert.equal(scoped.next().length, 3);
    }
    assert.equal(hooks.openHandles(), 1);
  },
);

simTest(
  "WfpLibrary.appIdFromFileName() returns the engine's application ID",
  ({ library, hooks }) => {
    const id = library.appIdFromFileName("C:\\Program Files\\App\\app.exe");
    assert.ok(id.length > 0);
    assert.equal(hooks.unfreedAllocations(), 0n);
  },
);
