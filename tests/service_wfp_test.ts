/**
 * The service end to end on the WFP engine: the real `palisade serve`
 * runs under its narrow permission flags with the WFP simulator as its
 * only FFI grant, is driven over HTTP with signed bundles and
 * heartbeats, and every check compares the complete simulator dump,
 * read in this process from the same store file, with the dump of the
 * expected policy applied on an empty engine (filter IDs aside).
 */
import assert from "node:assert/strict";
import {
  filterKey,
  PALISADE_PROVIDER_KEY,
  PALISADE_SUBLAYER_KEY,
  providerKey,
  WFP_CONDITIONS,
  WFP_LAYERS,
  WfpEngine,
  WfpLibrary,
} from "../ffi/wfp/mod.ts";
import { signedBundle, signedHeartbeat } from "./_service_kit.ts";
import { need, policyFor, simBuilt } from "./reliability/_kit.ts";
import {
  call,
  freePort,
  makeWfpServiceKit,
  referenceDumps,
  runPanic,
  SIM_PATH,
  simDump,
  WfpServe,
  type WfpServiceKit,
  withoutIds,
  withStore,
} from "./_wfp_serve_kit.ts";

const OLD = policyFor("old", [8001]);
const NEW = {
  name: "new",
  rules: [
    ...(policyFor("new", [8002, 8003]) as { rules: unknown[] }).rules,
    {
      id: "out-dns",
      action: "permit",
      direction: "out",
      protocol: "udp",
      remote: ["192.0.2.53", "2001:db8::53"],
      remotePorts: [53],
    },
    {
      id: "app-block",
      action: "block",
      direction: "out",
      protocol: "tcp",
      remotePorts: ["8000-8999"],
      app: "C:\\Program Files\\Example\\example.exe",
    },
  ],
};

let refs: Record<string, string> | null = null;

/** Runs `fn` with a fresh WFP service folder; removes it afterwards. */
async function withKit(
  t: Deno.TestContext,
  opts: { window?: number; wfpMode?: "persistent" | "dynamic" },
  fn: (kit: WfpServiceKit, ref: Record<string, string>) => Promise<void>,
): Promise<void> {
  if (!need(t, simBuilt(), `${SIM_PATH} is missing (deno task build:wfpsim)`)) {
    return;
  }
  const kit = await makeWfpServiceKit({
    listen: `127.0.0.1:${freePort()}`,
    commitWindow: { default: opts.window ?? 30, max: 60 },
    wfpMode: opts.wfpMode,
  });
  try {
    refs ??= referenceDumps(kit.dir, { old: OLD, new: NEW });
    await fn(kit, refs);
  } finally {
    await Deno.remove(kit.dir, { recursive: true }).catch(() => {});
  }
}

/** Pushes `policy` as `serial` and returns the push reply. */
async function push(
  kit: WfpServiceKit,
  serial: number,
  policy: unknown,
  window = 30,
) {
  const reply = await call(
    kit,
    "/v1/bundles",
    signedBundle(kit, { serial, policy, window }),
  );
  assert.equal(reply.status, 200, JSON.stringify(reply.json));
  return reply.json as { generation: number; nonce: string; deadline: string };
}

/** Confirms a push with a signed heartbeat. */
async function confirm(
  kit: WfpServiceKit,
  pushed: { generation: number; nonce: string },
) {
  const reply = await call(
    kit,
    "/v1/heartbeat",
    signedHeartbeat(kit, pushed.generation, pushed.nonce),
  );
  assert.equal(reply.status, 200, JSON.stringify(reply.json));
}

const now = (kit: WfpServiceKit) => withoutIds(simDump(kit.store));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("palisade serve on WFP keeps a confirmed policy past its deadline and after a stop", async (t) => {
  await withKit(t, {}, async (kit, ref) => {
    assert.notEqual(ref.new, ref.empty);
    await using serve = await new WfpServe(kit).started();
    assert.equal(now(kit), ref.empty);
    const pushed = await push(kit, 1, NEW, 3);
    assert.equal(now(kit), ref.new);
    await confirm(kit, pushed);
    // Past the deadline the watchdog would have fired had it stayed armed.
    await sleep(Math.max(0, Date.parse(pushed.deadline) - Date.now()) + 1000);
    assert.equal(now(kit), ref.new, "a confirmed policy was reverted");
    const status = await call(kit, "/v1/status");
    assert.equal(status.json.lastKnownGood?.generation, 1);
    assert.equal(status.json.pending, null);
    assert.equal(serve.find("revert"), undefined);

    const stopped = await serve.stop("SIGTERM");
    assert.equal(stopped.code, 0, serve.output());
    // Persistent objects stay in force once the service is gone.
    assert.equal(now(kit), ref.new);
  });
});

Deno.test("palisade serve on WFP reverts an unconfirmed push at its deadline to the last known good", async (t) => {
  await withKit(t, {}, async (kit, ref) => {
    await using serve = await new WfpServe(kit).started();
    await confirm(kit, await push(kit, 1, OLD));
    assert.equal(now(kit), ref.old);
    await push(kit, 2, NEW, 3);
    assert.equal(now(kit), ref.new);
    const revert = await serve.waitFor("revert", 15_000);
    assert.equal(now(kit), ref.old);
    assert.ok(serve.find("watchdog.expired"), serve.output());
    const armed = serve.lines.findLast((l) => l.event === "watchdog.armed")!;
    const lag = Date.parse(String(revert.ts)) -
      Date.parse(String(armed.deadline));
    console.log(`deadline-to-reverted on WFP: ${lag} ms`);
    assert.ok(lag >= 0, `reverted ${lag} ms before the deadline`);
    const status = await call(kit, "/v1/status");
    assert.equal(status.json.active?.generation, 1);
    assert.equal(status.json.pending, null);
  });
});

Deno.test("palisade serve on WFP SIGKILLed inside the window reverts on restart", async (t) => {
  await withKit(t, {}, async (kit, ref) => {
    let serve = await new WfpServe(kit).started();
    try {
      await confirm(kit, await push(kit, 1, OLD));
      await push(kit, 2, NEW, 30);
      assert.equal(now(kit), ref.new);
      const killed = await serve.stop("SIGKILL");
      assert.equal(killed.signal, "SIGKILL");
      // Persistent filters outlive the process: only the restart undoes them.
      assert.equal(now(kit), ref.new);

      serve = await new WfpServe(kit).started();
      assert.equal(serve.find("recover.pending")?.generation, 2);
      assert.equal(now(kit), ref.old);
      const status = await call(kit, "/v1/status");
      assert.equal(status.json.active?.generation, 1);
      assert.equal(status.json.pending, null);
      assert.equal(status.json.state, "idle");
    } finally {
      await serve.stop("SIGKILL");
    }
  });
});

Deno.test("palisade panic on WFP beside a running service removes everything, then has nothing to remove", async (t) => {
  await withKit(t, {}, async (kit, ref) => {
    await using _serve = await new WfpServe(kit).started();
    await confirm(kit, await push(kit, 1, NEW));
    const before = simDump(kit.store);
    assert.equal(withoutIds(before), ref.new);
    const objects = before.filters.length + before.sublayers.length +
      before.providers.length;

    const first = await runPanic(kit.store);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.equal(
      first.stdout.trim(),
      `removed ${objects} WFP objects under Palisade's provider`,
    );
    assert.equal(now(kit), ref.empty);

    const second = await runPanic(kit.store);
    assert.equal(second.code, 0, second.stdout + second.stderr);
    assert.equal(second.stdout.trim(), "nothing to remove");
    assert.equal(now(kit), ref.empty);

    // The service beside it rebuilds the next policy in full.
    await push(kit, 2, OLD);
    assert.equal(now(kit), ref.old);
  });
});

Deno.test("palisade panic on WFP names a foreign filter in Palisade's sublayer, exits non-zero and never deletes it", async (t) => {
  await withKit(t, {}, async (kit) => {
    await using _serve = await new WfpServe(kit).started();
    await confirm(kit, await push(kit, 1, OLD));
    const other = providerKey("5f8b7c1e-0000-4000-8000-00000000abcd");
    const theirs = filterKey("5f8b7c1e-0000-4000-8000-0000000000f1");
    withStore(kit.store, () => {
      using library = WfpLibrary.open(SIM_PATH);
      using engine = WfpEngine.open(library);
      engine.transaction(() => {
        engine.addProvider({ key: other, name: "other-product", flags: 1 });
        engine.addFilter({
          key: theirs,
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
    });
    const before = simDump(kit.store);
    const foreign = before.filters.find((f) => f.key === theirs)!;
    assert.ok(foreign, JSON.stringify(before));

    for (let run = 0; run < 2; run++) {
      const result = await runPanic(kit.store);
      assert.equal(result.code, 1, result.stdout + result.stderr);
      assert.match(
        result.stderr,
        new RegExp(`filter ${foreign.id} "their-filter"`),
      );
      assert.match(result.stderr, /FWP_E_IN_USE/);
      const after = simDump(kit.store);
      // Palisade's own filters are gone (fail open); the foreign filter,
      // its provider, and the sublayer it needs are exactly as before.
      assert.deepEqual(after.filters, [foreign]);
      assert.deepEqual(after.providers, before.providers);
      assert.deepEqual(after.sublayers, before.sublayers);
      assert.ok(after.providers.some((p) => p.key === PALISADE_PROVIDER_KEY));
    }

    // Once its owner removes it, panic completes.
    withStore(kit.store, () => {
      using library = WfpLibrary.open(SIM_PATH);
      using engine = WfpEngine.open(library);
      engine.transaction(() => {
        engine.deleteFilterByKey(theirs);
        engine.deleteProvider(other);
      });
    });
    const last = await runPanic(kit.store);
    assert.equal(last.code, 0, last.stdout + last.stderr);
    assert.equal(
      last.stdout.trim(),
      "removed 2 WFP objects under Palisade's provider",
    );
    const empty = simDump(kit.store);
    assert.deepEqual(empty, { providers: [], sublayers: [], filters: [] });
  });
});

Deno.test("palisade serve on WFP in dynamic mode leaves nothing behind when it stops or dies", async (t) => {
  await withKit(t, { wfpMode: "dynamic" }, async (kit) => {
    const dynamicRef = referenceDumps(kit.dir, { new: NEW }, { dynamic: true });
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      await using serve = await new WfpServe(kit).started();
      const serial = signal === "SIGTERM" ? 1 : 2;
      await confirm(kit, await push(kit, serial, NEW));
      const live = simDump(kit.store);
      assert.equal(withoutIds(live), dynamicRef.new);
      assert.ok(live.filters.length > 0 && live.providers.length > 0);
      assert.ok(live.providers.every((p) => !p.persistent));
      const stopped = await serve.stop(signal);
      if (signal === "SIGTERM") assert.equal(stopped.code, 0, serve.output());
      assert.deepEqual(simDump(kit.store), {
        providers: [],
        sublayers: [],
        filters: [],
      }, `objects left after ${signal}`);
    }
  });
});
