import assert from "node:assert/strict";
import {
  SIM_LIBRARY,
  simAvailable,
  type SimContext,
  simTest,
} from "../ffi/wfp/_sim_fixture.ts";
import { backendConformance } from "../tests/_backend_conformance.ts";
import {
  filterKey,
  type LayerKey,
  layerKey,
  PALISADE_PROVIDER_KEY,
  PALISADE_SUBLAYER_KEY,
  type ProviderKey,
  providerKey,
  simulatorHooks,
  type SubLayerKey,
  subLayerKey,
  WFP_CONDITIONS,
  WFP_LAYERS,
  WfpEngine,
  WfpLibrary,
} from "../ffi/wfp/mod.ts";
import { ENGINE_CRASH_POINTS, EngineError } from "./backend.ts";
import type { NormalPolicy, NormalRule } from "./types.ts";
import { ForeignObjectsError } from "./backend.ts";
import { openWfpBackend } from "./wfp_backend.ts";
import { ALL_WFP_LAYERS } from "./_wfp_layers.ts";

function rule(id: string, extra: Partial<NormalRule>): NormalRule {
  return {
    id,
    action: "permit",
    direction: "out",
    protocol: "tcp",
    remote: [],
    local: [],
    remotePorts: [],
    localPorts: [],
    ...extra,
  };
}

const A: NormalPolicy = {
  name: "a",
  rules: [
    rule("block-smb-out", {
      action: "block",
      remote: ["203.0.113.0/24", "2001:db8::/32"],
      remotePorts: [{ first: 137, last: 139 }, { first: 445, last: 445 }],
    }),
    rule("web-in", {
      direction: "in",
      localPorts: [{ first: 443, last: 443 }],
    }),
    rule("no-telemetry", {
      action: "block",
      protocol: "any",
      app: "C:\\Program Files\\Telemetry\\agent.exe",
    }),
    rule("dns-out", {
      protocol: "udp",
      remote: ["192.0.2.53/32"],
      remotePorts: [{ first: 53, last: 53 }],
    }),
  ],
};

/** A with one rule inserted, one changed and one removed. */
const B: NormalPolicy = {
  name: "b",
  rules: [
    A.rules[0],
    rule("ssh-in", {
      direction: "in",
      remote: ["198.51.100.0/24"],
      localPorts: [{ first: 22, last: 22 }],
    }),
    { ...A.rules[1], localPorts: [{ first: 8443, last: 8443 }] },
    A.rules[3],
  ],
};

function ids(ctx: SimContext): Map<string, string> {
  return new Map(
    ctx.hooks.dump().filters.map((f) => [`${f.name}@${f.layer}`, f.id]),
  );
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
  "WfpBackend.apply() installs provider, sublayer and one filter per rule and layer",
  (ctx) => {
    using backend = openWfpBackend({ library: ctx.path });
    const stats = backend.apply(A, null);
    assert.equal(backend.engine, "wfp");
    assert.deepEqual(stats.added, A.rules.map((r) => r.id));
    assert.equal(stats.incremental, false);
    assert.equal(stats.objects, 2 + 7);

    const dump = ctx.hooks.dump();
    assert.deepEqual(dump.providers.map((p) => [p.key, p.name, p.persistent]), [
      [PALISADE_PROVIDER_KEY, "palisade", true],
    ]);
    assert.deepEqual(
      dump.sublayers.map((s) => [s.key, s.name, s.providerKey]),
      [
        [PALISADE_SUBLAYER_KEY, "palisade", PALISADE_PROVIDER_KEY],
      ],
    );
    assert.deepEqual([...ids(ctx).keys()].sort(), [
      "block-smb-out@FWPM_LAYER_ALE_AUTH_CONNECT_V4",
      "block-smb-out@FWPM_LAYER_ALE_AUTH_CONNECT_V6",
      "dns-out@FWPM_LAYER_ALE_AUTH_CONNECT_V4",
      "no-telemetry@FWPM_LAYER_ALE_AUTH_CONNECT_V4",
      "no-telemetry@FWPM_LAYER_ALE_AUTH_CONNECT_V6",
      "web-in@FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4",
      "web-in@FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6",
    ]);
    // The simulator's own table of condition names agrees with ours.
    const smb = dump.filters.find((f) =>
      f.name === "block-smb-out" && f.layer === "FWPM_LAYER_ALE_AUTH_CONNECT_V4"
    )!;
    assert.equal(smb.action, "FWP_ACTION_BLOCK");
    assert.deepEqual(smb.conditions.map((c) => c.fieldName), [
      "FWPM_CONDITION_IP_PROTOCOL",
      "FWPM_CONDITION_IP_REMOTE_ADDRESS",
      "FWPM_CONDITION_IP_REMOTE_PORT",
      "FWPM_CONDITION_IP_REMOTE_PORT",
    ]);
    const agent = dump.filters.find((f) => f.name === "no-telemetry")!;
    assert.equal(agent.conditions[0].fieldName, "FWPM_CONDITION_ALE_APP_ID");
    // Earlier rules weigh more, so WFP evaluates them first.
    const weight = (name: string) =>
      BigInt(dump.filters.find((f) => f.name === name)!.weight);
    assert.ok(weight("block-smb-out") > weight("web-in"));
    assert.ok(weight("web-in") > weight("dns-out"));
    assert.deepEqual(backend.readBack(A), { ok: true });
  },
);

simTest("WfpBackend.apply() changes only the filters the diff names", (ctx) => {
  using backend = openWfpBackend({ library: ctx.path });
  backend.apply(A, null);
  const before = ids(ctx);
  const stats = backend.apply(B, A);
  assert.equal(stats.incremental, true);
  assert.deepEqual(stats.added, ["ssh-in"]);
  assert.deepEqual(stats.removed, ["no-telemetry"]);
  assert.deepEqual(stats.changed, ["web-in"]);
  // ssh-in (1 add), web-in (2 delete + 2 add), no-telemetry (2 delete).
  assert.equal(stats.objects, 7);
  const after = ids(ctx);
  for (const kept of ["block-smb-out", "dns-out"]) {
    for (const [name, id] of before) {
      if (name.startsWith(`${kept}@`)) assert.equal(after.get(name), id);
    }
  }
  assert.deepEqual(backend.readBack(B), { ok: true });
  assert.equal(backend.readBack(A).ok, false);
});

simTest(
  "WfpBackend.apply() replaces everything when the engine does not hold current",
  (ctx) => {
    using backend = openWfpBackend({ library: ctx.path });
    backend.apply(A, null);
    {
      using engine = WfpEngine.open(ctx.library);
      const victim = engine.enumFilters({
        layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4,
        providerKey: PALISADE_PROVIDER_KEY,
      })[0];
      engine.deleteFilterById(victim.filterId!);
    }
    const stats = backend.apply(B, A);
    assert.equal(stats.incremental, false);
    assert.deepEqual(backend.readBack(B), { ok: true });
  },
);

simTest(
  "WfpBackend.apply() replaces everything when current's application no longer resolves",
  (ctx) => {
    using backend = openWfpBackend({ library: ctx.path });
    backend.apply(A, null);
    // B has no app rule; A's application ID is the only one resolved.
    ctx.hooks.injectFault("FwpmGetAppIdFromFileName0", 1, 2);
    const stats = backend.apply(B, A);
    assert.equal(stats.incremental, false);
    assert.deepEqual(backend.readBack(B), { ok: true });
  },
);

simTest(
  "WfpBackend reverts by applying the previous policy over the current one",
  (ctx) => {
    using backend = openWfpBackend({ library: ctx.path });
    backend.apply(A, null);
    const original = ctx.hooks.dump().filters.map((f) => [f.key, f.name]);
    backend.apply(B, A);
    const stats = backend.apply(A, B);
    assert.equal(stats.incremental, true);
    assert.deepEqual(backend.readBack(A), { ok: true });
    assert.deepEqual(
      ctx.hooks.dump().filters.map((f) => [f.key, f.name]).sort(),
      original.sort(),
    );
  },
);

simTest(
  "WfpBackend.removeAll() removes filters, sublayer and provider and is idempotent",
  (ctx) => {
    using backend = openWfpBackend({ library: ctx.path });
    backend.apply(A, null);
    assert.equal(backend.removeAll(), 7 + 2);
    assert.deepEqual(ctx.hooks.dump(), {
      providers: [],
      sublayers: [],
      filters: [],
    });
    assert.equal(backend.removeAll(), 0);
    assert.deepEqual(backend.readBack(null), { ok: true });
  },
);

simTest(
  "WfpBackend.removeAll() from a second session clears what a running one applied",
  (ctx) => {
    using service = openWfpBackend({ library: ctx.path });
    service.apply(A, null);
    {
      using panic = openWfpBackend({ library: ctx.path });
      assert.equal(panic.removeAll(), 9);
    }
    assert.equal(ctx.hooks.dump().filters.length, 0);
    assert.equal(service.readBack(A).ok, false);
  },
);

simTest(
  "WfpBackend.removeAll() leaves a foreign filter in its sublayer and names it",
  (ctx) => {
    using backend = openWfpBackend({ library: ctx.path });
    backend.apply(A, null);
    const other = providerKey("5f8b7c1e-0000-4000-8000-00000000abcd");
    {
      using engine = WfpEngine.open(ctx.library);
      engine.transaction(() => {
        engine.addProvider({ key: other, name: "other-product", flags: 1 });
        engine.addFilter({
          key: filterKey("5f8b7c1e-0000-4000-8000-0000000000f1"),
          name: "their-filter",
          flags: 1,
          providerKey: other,
          layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_CONNECT_V4,
          subLayerKey: PALISADE_SUBLAYER_KEY,
          weight: { type: "uint64", value: 1n },
          conditions: [{
            field: WFP_CONDITIONS.FWPM_CONDITION_IP_REMOTE_PORT,
            match: 0,
            value: { type: "uint16", value: 25 },
          }],
          action: 0x1001,
        });
      });
    }
    const foreignId =
      ctx.hooks.dump().filters.find((f) => f.name === "their-filter")!.id;

    const error = catchError(() => backend.removeAll());
    assert.ok(error instanceof EngineError);
    assert.equal(error.codeName, "FWP_E_IN_USE");
    assert.equal(error.code, 0x8032000a);
    assert.match(
      error.message,
      new RegExp(`filter ${foreignId} "their-filter"`),
    );
    assert.match(error.message, new RegExp(`provider ${other}`));

    const dump = ctx.hooks.dump();
    assert.deepEqual(dump.filters.map((f) => f.name), ["their-filter"]);
    assert.equal(dump.sublayers.length, 1);
    assert.ok(dump.providers.some((p) => p.key === other));
    // A second panic changes nothing and still says why.
    assert.throws(() => backend.removeAll(), EngineError);
    assert.equal(ctx.hooks.dump().filters.length, 1);
  },
);

simTest(
  "WfpBackend.apply() and readBack() enumerate each of the four layers once, removeAll() every layer",
  (ctx) => {
    using backend = openWfpBackend({ library: ctx.path });
    backend.apply(A, null);
    const enumerations = (fn: () => unknown): number => {
      // The nth next enumeration fails: count how many an operation makes.
      for (let nth = 1; nth <= 128; nth++) {
        ctx.hooks.injectFault("FwpmFilterCreateEnumHandle0", nth, 5);
        try {
          fn();
          return nth - 1;
        } catch (error) {
          assert.ok(error instanceof EngineError);
        } finally {
          ctx.hooks.clearFaults();
        }
      }
      return assert.fail("more than 128 enumerations");
    };
    assert.equal(enumerations(() => backend.readBack(A)), 4);
    assert.equal(
      enumerations(() => {
        assert.equal(backend.apply(B, A).incremental, true);
      }),
      4,
    );
    assert.equal(backend.readBack(B).ok, true);
    // removeAll searches every layer fwpmu.h defines for foreign filters.
    assert.equal(
      enumerations(() => backend.removeAll()),
      ALL_WFP_LAYERS.size,
    );
    assert.deepEqual(ctx.hooks.dump().filters, []);
  },
);

simTest(
  "WfpBackend.apply() stays incremental beside a foreign filter in its sublayer",
  (ctx) => {
    using backend = openWfpBackend({ library: ctx.path });
    backend.apply(A, null);
    const other = providerKey("5f8b7c1e-0000-4000-8000-00000000abce");
    {
      using engine = WfpEngine.open(ctx.library);
      engine.transaction(() => {
        engine.addProvider({ key: other, name: "other-product", flags: 1 });
        engine.addFilter({
          key: filterKey("5f8b7c1e-0000-4000-8000-0000000000f2"),
          name: "their-filter",
          flags: 1,
          providerKey: other,
          layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4,
          subLayerKey: PALISADE_SUBLAYER_KEY,
          weight: { type: "uint64", value: 1n },
          conditions: [],
          action: 0x1001,
        });
      });
    }
    const stats = backend.apply(B, A);
    assert.equal(stats.incremental, true);
    assert.deepEqual(backend.readBack(B), { ok: true });
    assert.ok(
      ctx.hooks.dump().filters.some((f) => f.name === "their-filter"),
    );
    assert.throws(
      () => backend.removeAll(),
      /foreign filter \d+ "their-filter"/,
    );
    assert.deepEqual(ctx.hooks.dump().filters.map((f) => f.name), [
      "their-filter",
    ]);
  },
);

simTest(
  "WfpBackend refuses a provider GUID held by another product and never deletes it",
  (ctx) => {
    {
      using engine = WfpEngine.open(ctx.library);
      engine.transaction(() =>
        engine.addProvider({
          key: PALISADE_PROVIDER_KEY,
          name: "impostor",
          flags: 1,
        })
      );
    }
    const before = ctx.hooks.dumpText();
    using backend = openWfpBackend({ library: ctx.path });
    for (
      const run of [() => backend.apply(A, null), () => backend.removeAll()]
    ) {
      const error = catchError(run);
      assert.ok(error instanceof EngineError);
      assert.match(error.message, /foreign provider named "impostor"/);
    }
    assert.equal(ctx.hooks.dumpText(), before);
  },
);

simTest(
  "WfpBackend in dynamic mode leaves nothing behind when its session closes",
  (ctx) => {
    {
      using backend = openWfpBackend({ library: ctx.path, dynamic: true });
      backend.apply(A, null);
      const dump = ctx.hooks.dump();
      assert.equal(dump.filters.length, 7);
      assert.ok(dump.filters.every((f) => (f.flags & 1) === 0));
    }
    assert.deepEqual(ctx.hooks.dump(), {
      providers: [],
      sublayers: [],
      filters: [],
    });
  },
);

const CALLS = [
  "FwpmEngineOpen0",
  "FwpmGetAppIdFromFileName0",
  "FwpmTransactionBegin0",
  "FwpmProviderGetByKey0",
  "FwpmSubLayerGetByKey0",
  "FwpmFilterCreateEnumHandle0",
  "FwpmFilterEnum0",
  "FwpmFilterDestroyEnumHandle0",
  "FwpmProviderAdd0",
  "FwpmSubLayerAdd0",
  "FwpmFilterAdd0",
  "FwpmFilterDeleteById0",
  "FwpmFilterDeleteByKey0",
  "FwpmSubLayerDeleteByKey0",
  "FwpmProviderDeleteByKey0",
  "FwpmTransactionCommit0",
];

/**
 * Fails each call of an apply in turn (every function, every Nth call
 * until the apply no longer reaches it) and checks the engine is exactly
 * as before each time.
 */
function faultEveryCall(
  ctx: SimContext,
  setup: () => void,
  run: () => void,
  allowed: (before: string, after: string) => boolean = (a, b) => a === b,
): number {
  let injected = 0;
  for (const call of CALLS) {
    for (let nth = 1; nth <= 64; nth++) {
      ctx.hooks.reset();
      setup();
      const before = ctx.hooks.dumpText();
      ctx.hooks.injectFault(call, nth, 0x80320035);
      let failed = false;
      try {
        run();
      } catch (error) {
        failed = true;
        assert.ok(error instanceof EngineError, `${call}#${nth}: ${error}`);
        assert.equal(error.call, call);
        assert.equal(error.codeName, "FWP_E_INVALID_PARAMETER");
      }
      ctx.hooks.clearFaults();
      assert.equal(ctx.hooks.openHandles(), 0, `${call}#${nth}: handles`);
      assert.equal(ctx.hooks.unfreedAllocations(), 0n, `${call}#${nth}`);
      if (!failed) break;
      const after = ctx.hooks.dumpText();
      assert.ok(allowed(before, after), `${call}#${nth}: changed: ${after}`);
      injected++;
    }
  }
  return injected;
}

simTest(
  "WfpBackend.apply() leaves the engine as before when any call of a full apply fails",
  (ctx) => {
    const injected = faultEveryCall(ctx, () => {}, () => {
      using backend = openWfpBackend({ library: ctx.path });
      backend.apply(A, null);
    });
    assert.ok(injected >= 20, `only ${injected} faults injected`);
  },
);

simTest(
  "WfpBackend.apply() leaves the engine as before when any call of an incremental apply fails",
  (ctx) => {
    const injected = faultEveryCall(ctx, () => {
      using backend = openWfpBackend({ library: ctx.path });
      backend.apply(A, null);
    }, () => {
      using backend = openWfpBackend({ library: ctx.path });
      backend.apply(B, A);
    });
    assert.ok(injected >= 20, `only ${injected} faults injected`);
  },
);

simTest(
  "WfpBackend.removeAll() leaves the engine as before when any of its calls fails",
  (ctx) => {
    const injected = faultEveryCall(ctx, () => {
      using backend = openWfpBackend({ library: ctx.path });
      backend.apply(A, null);
    }, () => {
      using backend = openWfpBackend({ library: ctx.path });
      backend.removeAll();
    });
    assert.ok(injected >= 10, `only ${injected} faults injected`);
  },
);

simTest(
  "WfpBackend.removeAll() beside a foreign object stops between whole transactions when any call fails",
  (ctx) => {
    // Blocked by an object it cannot see, removeAll commits Palisade's
    // filters, then sublayer, then provider, each on its own: a failure
    // leaves one of these states, never a part of one.
    const states = (before: string) => {
      const full = JSON.parse(before);
      const ours = (f: { providerKey: string }) =>
        f.providerKey !== PALISADE_PROVIDER_KEY;
      const noFilters = { ...full, filters: full.filters.filter(ours) };
      const noSubLayer = {
        ...noFilters,
        sublayers: full.sublayers.filter((s: { key: string }) =>
          s.key !== PALISADE_SUBLAYER_KEY
        ),
      };
      return [full, noFilters, noSubLayer].map((d) => JSON.stringify(d));
    };
    const injected = faultEveryCall(
      ctx,
      () => {
        using backend = openWfpBackend({ library: ctx.path });
        backend.apply(A, null);
        addForeign(ctx, {
          layerKey: LISTEN_V4,
          subLayer: "own",
          subLayerProvider: PALISADE_PROVIDER_KEY,
          filter: false,
        });
      },
      () => {
        using backend = openWfpBackend({ library: ctx.path });
        try {
          backend.removeAll();
        } catch (error) {
          if (error instanceof ForeignObjectsError) return;
          throw error;
        }
      },
      (before, after) =>
        states(before).includes(JSON.stringify(JSON.parse(after))),
    );
    assert.ok(injected >= 10, `only ${injected} faults injected`);
  },
);

simTest(
  "WfpBackend wraps an engine failure in EngineError with the rule ID",
  (ctx) => {
    using backend = openWfpBackend({ library: ctx.path });
    ctx.hooks.injectFault("FwpmFilterAdd0", 5, 0x80320027);
    const error = catchError(() => backend.apply(A, null));
    assert.ok(error instanceof EngineError);
    assert.equal(error.ruleId, "no-telemetry");
    assert.equal(error.call, "FwpmFilterAdd0");
    assert.match(
      error.message,
      /^Cannot add WFP filter "no-telemetry" \(key [0-9a-f-]+, layer FWPM_LAYER_ALE_AUTH_CONNECT_V4\): FWP_E_TYPE_MISMATCH \(0x80320027\)/,
    );
    assert.deepEqual(ctx.hooks.dump().filters, []);
  },
);

simTest(
  "WfpBackend.counters() is empty: WFP keeps no per-filter counters",
  (ctx) => {
    using backend = openWfpBackend({ library: ctx.path });
    backend.apply(A, null);
    assert.deepEqual(backend.counters(), []);
  },
);

simTest(
  "openWfpBackend() reports a refused engine as EngineError and closes the library",
  (ctx) => {
    ctx.hooks.injectFault("FwpmEngineOpen0", 1, 5);
    const error = catchError(() => openWfpBackend({ library: ctx.path }));
    assert.ok(error instanceof EngineError);
    assert.equal(error.codeName, "ERROR_ACCESS_DENIED");
  },
);

Deno.test("openWfpBackend() names the library it cannot load", () => {
  assert.throws(
    () => openWfpBackend({ library: "/nonexistent/fwpuclnt.dll" }),
    /Cannot load WFP library "\/nonexistent\/fwpuclnt.dll"/,
  );
});

if (simAvailable()) {
  backendConformance("wfp (simulator)", () => {
    const library = WfpLibrary.open(SIM_LIBRARY);
    const hooks = simulatorHooks(library)!;
    hooks.clearFaults();
    hooks.reset();
    return Promise.resolve({
      backend: openWfpBackend({ library: SIM_LIBRARY }),
      dump: () => hooks.dump(),
      cleanup: () => {
        try {
          assert.equal(hooks.openHandles(), 0, "handles left open");
          assert.equal(hooks.unfreedAllocations(), 0n, "buffers not freed");
        } finally {
          library.close();
        }
      },
    });
  });
} else if (Deno.env.get("CI") && Deno.build.os !== "windows") {
  Deno.test("wfp (simulator) backend conformance", () => {
    throw new Error(`Cannot run: ${SIM_LIBRARY} is missing`);
  });
}

/**
 * The engine's state as Palisade can read it through the binding alone:
 * its provider, sublayer and every filter under its provider. Used with
 * a library that has no simulator hooks (the real fwpuclnt.dll).
 */
function liveDump(library: WfpLibrary): unknown {
  using engine = WfpEngine.open(library);
  const filters = Object.values(WFP_LAYERS).flatMap((layerKey) =>
    engine.enumFilters({ layerKey, providerKey: PALISADE_PROVIDER_KEY })
  ).map(({ filterId: _id, effectiveWeight: _w, ...rest }) => rest);
  return JSON.parse(JSON.stringify(
    {
      provider: engine.getProvider(PALISADE_PROVIDER_KEY),
      subLayer: engine.getSubLayer(PALISADE_SUBLAYER_KEY),
      filters,
    },
    (_key, value) =>
      typeof value === "bigint"
        ? value.toString()
        : value instanceof Uint8Array
        ? [...value]
        : value,
  ));
}

// Against a real engine: PALISADE_WFP_LIBRARY=fwpuclnt.dll on Windows
// (administrator). Sessions are dynamic, so whatever a failing test
// leaves behind vanishes with the test process.
const REAL_LIBRARY = Deno.env.get("PALISADE_WFP_LIBRARY");
if (REAL_LIBRARY) {
  backendConformance(`wfp (${REAL_LIBRARY})`, () => {
    const library = WfpLibrary.open(REAL_LIBRARY);
    const state = liveDump(library) as { provider: unknown; subLayer: unknown };
    if (state.provider !== null || state.subLayer !== null) {
      library.close();
      throw new Error(
        "Cannot run the WFP suite here: this host has Palisade objects installed; use a test machine",
      );
    }
    const backend = openWfpBackend({ library: REAL_LIBRARY, dynamic: true });
    return Promise.resolve({
      backend,
      dump: () => liveDump(library),
      cleanup: () => {
        try {
          using again = openWfpBackend({ library: REAL_LIBRARY });
          again.removeAll();
        } finally {
          library.close();
        }
      },
    });
  });
}

simTest(
  "WfpBackend.validate() refuses what apply would, without touching the engine",
  (ctx) => {
    using backend = openWfpBackend({ library: ctx.path });
    const bad: NormalPolicy = {
      name: "bad",
      rules: [rule("icmp-ports", {
        protocol: "icmp",
        remotePorts: [{ first: 80, last: 80 }],
      })],
    };
    assert.throws(() => backend.validate?.(bad), TypeError);
    assert.throws(() => backend.apply(bad, null), TypeError);
    backend.validate?.(A);
    backend.validate?.({
      name: "app",
      rules: [rule("app-out", { app: "C:\\not\\installed.exe" })],
    });
    assert.equal(ids(ctx).size, 0);
  },
);

/** Adds another product's provider and, in `subLayer`, its filter. */
function addForeign(
  ctx: SimContext,
  opts: {
    layerKey: (typeof WFP_LAYERS)[keyof typeof WFP_LAYERS] | LayerKey;
    subLayer?: "palisade" | "own";
    subLayerProvider?: ProviderKey;
    filter?: boolean;
  },
): { provider: ProviderKey; subLayer: SubLayerKey } {
  const provider = providerKey("5f8b7c1e-0000-4000-8000-00000000abcf");
  const own = subLayerKey("5f8b7c1e-0000-4000-8000-0000000000a1");
  using engine = WfpEngine.open(ctx.library);
  engine.transaction(() => {
    engine.addProvider({ key: provider, name: "other-product", flags: 1 });
    if (opts.subLayer === "own") {
      engine.addSubLayer({
        key: own,
        name: "other-sublayer",
        flags: 1,
        providerKey: opts.subLayerProvider ?? provider,
        weight: 1,
      });
    }
    if (opts.filter === false) return;
    engine.addFilter({
      key: filterKey("5f8b7c1e-0000-4000-8000-0000000000f3"),
      name: "their-listen-filter",
      flags: 1,
      providerKey: provider,
      layerKey: opts.layerKey as LayerKey,
      subLayerKey: opts.subLayer === "own" ? own : PALISADE_SUBLAYER_KEY,
      weight: { type: "uint64", value: 1n },
      conditions: [],
      action: 0x1001,
    });
  });
  return { provider, subLayer: own };
}

const LISTEN_V4 = layerKey("88bb5dad-76d7-4227-9c71-df0a3ed7be7e");

simTest(
  "WfpBackend.removeAll() removes its own filters when a foreign filter at another layer holds its sublayer",
  (ctx) => {
    using backend = openWfpBackend({ library: ctx.path });
    backend.apply(A, null);
    const { provider } = addForeign(ctx, { layerKey: LISTEN_V4 });
    const foreignId =
      ctx.hooks.dump().filters.find((f) => f.name === "their-listen-filter")!
        .id;

    const error = catchError(() => backend.removeAll());
    assert.ok(error instanceof ForeignObjectsError, String(error));
    assert.ok(error instanceof EngineError);
    assert.equal(error.codeName, "FWP_E_IN_USE");
    assert.equal(error.call, "FwpmSubLayerDeleteByKey0");
    assert.equal(error.removed, 7);
    assert.match(
      error.message,
      new RegExp(
        `filter ${foreignId} "their-listen-filter" \\(provider ${provider}, layer FWPM_LAYER_ALE_AUTH_LISTEN_V4\\)`,
      ),
    );

    // Palisade's filters are gone; the foreign filter, the sublayer it
    // needs and Palisade's provider stay.
    const dump = ctx.hooks.dump();
    assert.deepEqual(dump.filters.map((f) => f.name), ["their-listen-filter"]);
    assert.deepEqual(dump.sublayers.map((s) => s.key), [PALISADE_SUBLAYER_KEY]);
    assert.equal(dump.providers.length, 2);
    assert.deepEqual(backend.readBack(null), { ok: true });
  },
);

simTest(
  "WfpBackend.removeAll() names a foreign sublayer that holds its provider and keeps only the provider",
  (ctx) => {
    using backend = openWfpBackend({ library: ctx.path });
    backend.apply(A, null);
    const { subLayer } = addForeign(ctx, {
      layerKey: LISTEN_V4,
      subLayer: "own",
      subLayerProvider: PALISADE_PROVIDER_KEY,
    });

    const error = catchError(() => backend.removeAll());
    assert.ok(error instanceof ForeignObjectsError, String(error));
    assert.equal(error.call, "FwpmProviderDeleteByKey0");
    assert.equal(error.removed, 8);
    assert.deepEqual(error.foreign, [`sublayer ${subLayer} "other-sublayer"`]);
    assert.match(error.message, /FWP_E_IN_USE/);

    const dump = ctx.hooks.dump();
    assert.deepEqual(dump.filters.map((f) => f.name), ["their-listen-filter"]);
    assert.deepEqual(dump.sublayers.map((s) => s.key), [subLayer]);
    assert.ok(dump.providers.some((p) => p.key === PALISADE_PROVIDER_KEY));
  },
);

simTest(
  "WfpBackend.removeAll() still removes its own objects when an empty foreign sublayer holds its provider",
  (ctx) => {
    using backend = openWfpBackend({ library: ctx.path });
    backend.apply(A, null);
    addForeign(ctx, {
      layerKey: LISTEN_V4,
      subLayer: "own",
      subLayerProvider: PALISADE_PROVIDER_KEY,
      filter: false,
    });
    const seen: string[] = [];
    using steps = openWfpBackend({
      library: ctx.path,
      crashPoint: (name) => seen.push(name),
    });
    const error = catchError(() => steps.removeAll());
    assert.ok(error instanceof ForeignObjectsError, String(error));
    assert.deepEqual(error.foreign, []);
    assert.match(error.message, /cannot enumerate/);
    // One transaction is tried and aborted at the provider; then
    // filters, sublayer and provider go one transaction each.
    assert.deepEqual(seen, [
      "engine.after-begin",
      "engine.after-deletes",
      "engine.after-sublayer",
      "engine.after-begin",
      "engine.after-deletes",
      "engine.before-commit",
      "engine.after-commit",
      "engine.after-begin",
      "engine.after-sublayer",
      "engine.before-commit",
      "engine.after-commit",
      "engine.after-begin",
    ]);
    const dump = ctx.hooks.dump();
    assert.deepEqual(dump.filters, []);
    assert.equal(dump.sublayers.length, 1);
  },
);

simTest(
  "WfpBackend refuses a sublayer named palisade under another provider and never deletes it",
  (ctx) => {
    const other = providerKey("5f8b7c1e-0000-4000-8000-00000000abd0");
    {
      using engine = WfpEngine.open(ctx.library);
      engine.transaction(() => {
        engine.addProvider({ key: other, name: "other-product", flags: 1 });
        engine.addSubLayer({
          key: PALISADE_SUBLAYER_KEY,
          name: "palisade",
          flags: 1,
          providerKey: other,
          weight: 1,
        });
      });
    }
    const before = ctx.hooks.dumpText();
    using backend = openWfpBackend({ library: ctx.path });
    for (
      const run of [() => backend.apply(A, null), () => backend.removeAll()]
    ) {
      const error = catchError(run);
      assert.ok(error instanceof EngineError);
      assert.match(
        error.message,
        new RegExp(`foreign sublayer named "palisade" \\(provider ${other}\\)`),
      );
    }
    assert.equal(ctx.hooks.dumpText(), before);
  },
);

simTest(
  "WfpBackend calls the engine crash points of apply and removeAll in order",
  (ctx) => {
    const seen: string[] = [];
    using backend = openWfpBackend({
      library: ctx.path,
      crashPoint: (name) => seen.push(name),
    });
    const take = (fn: () => unknown) => {
      seen.length = 0;
      fn();
      assert.ok(
        seen.every((s) =>
          (ENGINE_CRASH_POINTS as readonly string[]).includes(s)
        ),
        seen.join(),
      );
      return [...seen];
    };
    assert.deepEqual(take(() => backend.apply(A, null)), [
      "engine.after-begin",
      "engine.after-provider",
      "engine.after-sublayer",
      "engine.after-adds",
      "engine.before-commit",
      "engine.after-commit",
    ]);
    assert.deepEqual(take(() => backend.apply(A, null)), [
      "engine.after-begin",
      "engine.after-deletes",
      "engine.after-adds",
      "engine.before-commit",
      "engine.after-commit",
    ]);
    assert.deepEqual(take(() => backend.apply(B, A)), [
      "engine.after-begin",
      "engine.after-deletes",
      "engine.after-adds",
      "engine.before-commit",
      "engine.after-commit",
    ]);
    assert.deepEqual(take(() => backend.removeAll()), [
      "engine.after-begin",
      "engine.after-deletes",
      "engine.after-sublayer",
      "engine.after-provider",
      "engine.before-commit",
      "engine.after-commit",
    ]);
    assert.deepEqual(take(() => backend.removeAll()), []);
  },
);

simTest(
  "WfpBackend stops at a crash point without committing the transaction",
  (ctx) => {
    class Crash extends Error {}
    using backend = openWfpBackend({
      library: ctx.path,
      crashPoint: (name) => {
        if (name === "engine.before-commit") throw new Crash(name);
      },
    });
    assert.throws(() => backend.apply(A, null), Crash);
    assert.deepEqual(ctx.hooks.dump().filters, []);
  },
);
