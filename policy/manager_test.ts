import assert from "node:assert/strict";
import { GenerationStore } from "./store.ts";
import {
  CRASH_POINTS,
  type CrashPoint,
  type ManagerEvent,
  type ManagerOptions,
  PolicyManager,
  RefusedError,
} from "./manager.ts";
import { MemoryBackend } from "./memory_backend.ts";
import { EngineError } from "./backend.ts";
import { ForeignObjectsError } from "./backend.ts";
import {
  bundle,
  FakeClock,
  FaultyFs,
  heartbeat,
  HOST,
  makeKeys,
  policyValue,
  rejects,
  rollbackCommand,
  T0,
  tempStateDir,
} from "./_fixture.ts";

const keys = makeKeys();

class Crash extends Error {}

interface Harness {
  manager: PolicyManager;
  backend: MemoryBackend;
  clock: FakeClock;
  events: ManagerEvent[];
  dir: string;
  fs: FaultyFs;
  /** Opens another manager on the same state, engine and clock. */
  restart(extra?: Partial<ManagerOptions>): Promise<PolicyManager>;
}

async function open(
  dir: string,
  extra: Partial<ManagerOptions> & {
    clock?: FakeClock;
    backend?: MemoryBackend;
    fs?: FaultyFs;
  } = {},
): Promise<Harness> {
  const clock = extra.clock ?? new FakeClock();
  const backend = extra.backend ?? new MemoryBackend();
  const fs = extra.fs ?? new FaultyFs();
  const events: ManagerEvent[] = [];
  const options = (more: Partial<ManagerOptions> = {}): ManagerOptions => ({
    backend,
    stateDir: dir,
    trust: keys.trust,
    host: HOST,
    groups: ["edge"],
    commitWindow: { default: 30, max: 600 },
    now: clock.clock,
    timers: clock.timers,
    onEvent: (e) => events.push(e),
    retry: { attempts: 3, baseMs: 1, maxMs: 2 },
    fs,
    ...extra,
    ...more,
  });
  const manager = await PolicyManager.open(options());
  return {
    manager,
    backend,
    clock,
    events,
    dir,
    fs,
    restart: (more) => PolicyManager.open(options(more)),
  };
}

function installedName(backend: MemoryBackend): string | null {
  return backend.installed?.name ?? null;
}

function names(events: ManagerEvent[]): string[] {
  return events.map((e) => e.event);
}

async function statusOnDisk(dir: string, generation: number) {
  const file = `${dir}/generations/${
    String(generation).padStart(8, "0")
  }.status.json`;
  return JSON.parse(await Deno.readTextFile(file)).status;
}

/** Pushes serial `serial` and confirms it; returns the push result. */
async function pushConfirmed(h: Harness, serial: number, ports = [8080]) {
  const pushed = await h.manager.push(bundle(keys, { serial, ports }), {
    connection: "c1",
  });
  await h.manager.confirm(
    heartbeat(keys, pushed.generation, pushed.nonce, { now: h.clock.now }),
    { connection: "c2" },
  );
  return pushed;
}

Deno.test("PolicyManager.open() on an empty state directory enforces nothing", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const status = h.manager.status();
  assert.equal(status.state, "idle");
  assert.equal(status.active, null);
  assert.equal(status.lastKnownGood, null);
  assert.equal(status.stateWritable, true);
  assert.equal(h.backend.count("removeAll"), 1);
  assert.deepEqual(names(h.events).filter((n) => n !== "state.problem"), [
    "start",
  ]);
  await h.manager.close();
});

Deno.test("PolicyManager.push() applies, records a pending generation and arms the watchdog", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const result = await h.manager.push(bundle(keys, { serial: 1 }));

  assert.equal(result.generation, 1);
  assert.equal(result.serial, 1);
  assert.equal(result.windowSeconds, 30);
  assert.equal(result.deadline, new Date(T0 + 30_000).toISOString());
  assert.match(result.nonce, /^[0-9a-f]{32}$/);
  assert.deepEqual(result.stats.added, ["block-8080"]);
  assert.equal(h.backend.installed?.name, "policy-1");
  assert.equal(await statusOnDisk(tmp.dir, 1), "pending");
  assert.equal(h.clock.armed, 1);

  const status = h.manager.status();
  assert.equal(status.state, "pending");
  assert.equal(status.pending?.secondsLeft, 30);
  assert.equal(status.active?.generation, 1);
  assert.equal(h.manager.current()?.policy.rules[0].id, "block-8080");
  const ops = names(h.events).filter((n) =>
    n.startsWith("apply") ||
    n.startsWith("watchdog")
  );
  assert.deepEqual(ops, [
    "apply.diff",
    "apply.attempt",
    "apply.commit",
    "watchdog.armed",
  ]);
  const diff = h.events.find((e) => e.event === "apply.diff")!;
  assert.deepEqual(diff.added, ["block-8080"]);
  await h.manager.close();
});

Deno.test("PolicyManager.push() refuses a second bundle while a window is open", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await h.manager.push(bundle(keys, { serial: 1 }));
  const error = await rejects(
    () => h.manager.push(bundle(keys, { serial: 2 })),
    RefusedError,
  );
  assert.equal(error.code, "pending");
  assert.equal(error.httpStatus, 409);
  assert.equal(
    (error.detail?.pending as { generation: number }).generation,
    1,
  );
  assert.equal(h.backend.installed?.name, "policy-1");
  const refused = h.events.find((e) => e.event === "refused")!;
  assert.equal(refused.code, "pending");
  await h.manager.close();
});

Deno.test("PolicyManager.confirm() within the window makes the generation the last known good", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const pushed = await h.manager.push(bundle(keys, { serial: 1 }));
  await h.clock.advance(10_000);
  const result = await h.manager.confirm(
    heartbeat(keys, 1, pushed.nonce, { now: h.clock.now }),
  );

  assert.deepEqual(result, { generation: 1, serial: 1 });
  assert.equal(h.clock.armed, 0);
  const status = h.manager.status();
  assert.equal(status.state, "idle");
  assert.deepEqual(status.lastKnownGood, {
    generation: 1,
    serial: 1,
    name: "policy-1",
  });
  assert.equal(await statusOnDisk(tmp.dir, 1), "confirmed");

  // The window's end passes without a revert.
  await h.clock.advance(60_000);
  assert.equal(h.backend.installed?.name, "policy-1");
  assert.ok(!names(h.events).includes("watchdog.expired"));
  await h.manager.close();
});

Deno.test("PolicyManager.confirm() refuses a replayed heartbeat", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const pushed = await h.manager.push(bundle(keys, { serial: 1 }));
  const beat = heartbeat(keys, 1, pushed.nonce);
  await h.manager.confirm(beat);
  const error = await rejects(() => h.manager.confirm(beat), RefusedError);
  assert.equal(error.code, "replayed");
  await h.manager.close();
});

Deno.test("PolicyManager.confirm() refuses a wrong nonce and keeps the window open", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const pushed = await h.manager.push(bundle(keys, { serial: 1 }));
  const error = await rejects(
    () => h.manager.confirm(heartbeat(keys, 1, "0".repeat(32))),
    RefusedError,
  );
  assert.equal(error.code, "wrong-nonce");
  assert.equal(error.httpStatus, 403);
  assert.equal(h.manager.status().state, "pending");
  await h.manager.confirm(heartbeat(keys, 1, pushed.nonce));
  assert.equal(h.manager.status().lastKnownGood?.generation, 1);
  await h.manager.close();
});

Deno.test("PolicyManager.confirm() refuses a heartbeat for another host", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const pushed = await h.manager.push(bundle(keys, { serial: 1 }));
  const error = await rejects(
    () =>
      h.manager.confirm(heartbeat(keys, 1, pushed.nonce, { host: "web-2" })),
    RefusedError,
  );
  assert.equal(error.code, "wrong-host");
  assert.equal(h.manager.status().state, "pending");
  await h.manager.close();
});

Deno.test("PolicyManager.confirm() refuses another generation and a confirm with nothing pending", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const none = await rejects(
    () => h.manager.confirm(heartbeat(keys, 1, "a".repeat(32))),
    RefusedError,
  );
  assert.equal(none.code, "no-pending");
  const pushed = await h.manager.push(bundle(keys, { serial: 1 }));
  const other = await rejects(
    () => h.manager.confirm(heartbeat(keys, 2, pushed.nonce)),
    RefusedError,
  );
  assert.equal(other.code, "wrong-generation");
  await h.manager.close();
});

Deno.test("PolicyManager.confirm() after the deadline is refused and the generation reverted", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1);
  const pushed = await h.manager.push(bundle(keys, { serial: 2, ports: [22] }));
  // Time passes the deadline before the timer had a chance to fire.
  h.clock.now += 30_000;
  const error = await rejects(
    () =>
      h.manager.confirm(heartbeat(keys, 2, pushed.nonce, { now: h.clock.now })),
    RefusedError,
  );
  assert.equal(error.code, "window-closed");
  assert.equal(h.backend.installed?.name, "policy-1");
  assert.equal(await statusOnDisk(tmp.dir, 2), "reverted");
  assert.equal(h.manager.status().state, "idle");
  await h.manager.close();
});

Deno.test("PolicyManager.confirm() refuses a heartbeat over the push's own connection", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const pushed = await h.manager.push(bundle(keys, { serial: 1 }), {
    connection: "10.0.0.2:50000",
  });
  const beat = heartbeat(keys, 1, pushed.nonce);
  const error = await rejects(
    () => h.manager.confirm(beat, { connection: "10.0.0.2:50000" }),
    RefusedError,
  );
  assert.equal(error.code, "same-connection");
  await h.manager.confirm(beat, { connection: "10.0.0.2:50001" });
  assert.equal(h.manager.status().lastKnownGood?.generation, 1);
  await h.manager.close();
});

Deno.test("PolicyManager reverts to the last known good when the window expires", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1, [8080]);
  await h.manager.push(bundle(keys, { serial: 2, ports: [8080, 22] }));
  assert.equal(h.backend.installed?.rules.length, 2);

  await h.clock.advance(29_999);
  assert.equal(h.manager.status().state, "pending");
  await h.clock.advance(1);

  assert.deepEqual(h.backend.installed?.rules.map((r) => r.id), [
    "block-8080",
  ]);
  assert.equal(await statusOnDisk(tmp.dir, 2), "reverted");
  const status = h.manager.status();
  assert.equal(status.state, "idle");
  assert.equal(status.active?.generation, 1);
  assert.equal(status.pending, null);
  const revert = h.events.find((e) => e.event === "revert")!;
  assert.deepEqual(revert.removed, ["block-22"]);
  assert.equal(revert.to, 1);
  assert.equal(revert.reverted, 2);
  assert.ok(names(h.events).includes("watchdog.expired"));
  // The revert was checked against the engine.
  assert.equal(h.backend.calls.at(-1)?.op, "readBack");
  await h.manager.close();
});

Deno.test("PolicyManager expiry with no last known good removes everything", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await h.manager.push(bundle(keys, { serial: 1 }));
  await h.clock.advance(30_000);
  assert.equal(h.backend.installed, null);
  assert.equal(h.manager.status().state, "idle");
  assert.equal(h.manager.current(), null);
  assert.equal(await statusOnDisk(tmp.dir, 1), "reverted");
  await h.manager.close();
});

Deno.test("PolicyManager retries a failed revert and then restores the last known good", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1);
  await h.manager.push(bundle(keys, { serial: 2, ports: [22] }));
  h.backend.inject("apply", { times: 2 });
  await h.clock.advance(30_000);

  assert.equal(h.backend.installed?.name, "policy-1");
  assert.equal(
    h.events.filter((e) => e.event === "revert.failed").length,
    2,
  );
  assert.equal(h.manager.status().state, "idle");
  assert.ok(!names(h.events).includes("failopen"));
  await h.manager.close();
});

Deno.test("PolicyManager fails open when every revert attempt fails", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1);
  await h.manager.push(bundle(keys, { serial: 2, ports: [22] }));
  h.backend.inject("apply", { times: 3 });
  await h.clock.advance(30_000);

  assert.equal(h.backend.installed, null);
  const status = h.manager.status();
  assert.equal(status.state, "failed-open");
  assert.equal(status.lastError?.code, "failed-open");
  assert.equal(status.active, null);
  assert.equal(await statusOnDisk(tmp.dir, 2), "reverted");
  const failopen = h.events.find((e) => e.event === "failopen")!;
  assert.equal(failopen.level, "error");
  await h.manager.close();
});

Deno.test("PolicyManager retries when the read-back after a revert does not match", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1);
  await h.manager.push(bundle(keys, { serial: 2, ports: [22] }));
  h.backend.inject("readBack", { times: 1 });
  await h.clock.advance(30_000);

  assert.equal(h.backend.installed?.name, "policy-1");
  assert.equal(
    h.events.filter((e) => e.event === "readback.mismatch").length,
    1,
  );
  // After a mismatch the retry replaces everything (current unknown).
  const applies = h.backend.calls.filter((c) => c.op === "apply");
  assert.equal(applies.at(-1)?.current, null);
  assert.equal(h.manager.status().state, "idle");
  await h.manager.close();
});

Deno.test("PolicyManager fails open and records the error when read-back keeps mismatching", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1);
  await h.manager.push(bundle(keys, { serial: 2, ports: [22] }));
  h.backend.inject("readBack", { times: 3 });
  await h.clock.advance(30_000);

  assert.equal(h.backend.installed, null);
  const status = h.manager.status();
  assert.equal(status.state, "failed-open");
  assert.match(status.lastError!.message, /Cannot restore generation 1/);
  assert.equal(
    h.events.filter((e) => e.event === "readback.mismatch").length,
    3,
  );
  await h.manager.close();
});

Deno.test("PolicyManager counts own objects removed beside a kept foreign object as failed open, with a warning", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await h.manager.push(bundle(keys, { serial: 1 }));
  // As on WFP when another product's filter holds Palisade's sublayer:
  // Palisade's own rules are gone, the empty sublayer stays.
  const removeAll = h.backend.removeAll.bind(h.backend);
  h.backend.removeAll = () => {
    const removed = removeAll();
    throw new ForeignObjectsError(
      "Cannot delete WFP sublayer: FWP_E_IN_USE (0x8032000A) — foreign " +
        'filter 9 "theirs" is inside it',
      "FwpmSubLayerDeleteByKey0",
      removed,
      ['filter 9 "theirs"'],
    );
  };
  await h.clock.advance(30_000);

  assert.equal(h.backend.installed, null);
  const status = h.manager.status();
  assert.notEqual(status.lastError?.code, "failopen-failed");
  assert.equal(status.active, null);
  const kept = h.events.filter((e) => e.event === "remove.kept");
  assert.ok(kept.length >= 1, names(h.events).join());
  assert.equal(kept[0].level, "warn");
  assert.deepEqual(kept[0].foreign, ['filter 9 "theirs"']);
  assert.ok(!names(h.events).includes("revert.failed"));
  await h.manager.close();
});

Deno.test("PolicyManager records failopen-failed when even removing everything fails", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await h.manager.push(bundle(keys, { serial: 1 }));
  h.backend.inject("removeAll", { times: 6 });
  await h.clock.advance(30_000);
  const status = h.manager.status();
  assert.equal(status.state, "failed-open");
  assert.equal(status.lastError?.code, "failopen-failed");
  assert.match(status.lastError!.message, /palisade panic/);
  await h.manager.close();
});

Deno.test("PolicyManager.push() refuses a reverted bundle replayed, and any lower serial", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const five = bundle(keys, { serial: 5 });
  await h.manager.push(five);
  await h.clock.advance(30_000);
  assert.equal(h.manager.status().highestSerial, 5);

  for (const bytes of [five, bundle(keys, { serial: 4 })]) {
    const error = await rejects(() => h.manager.push(bytes), RefusedError);
    assert.equal(error.code, "serial-too-low");
    assert.equal(error.httpStatus, 409);
  }
  await h.manager.close();

  // The floor survives a restart too.
  const again = await h.restart();
  const error = await rejects(() => again.push(five), RefusedError);
  assert.equal(error.code, "serial-too-low");
  const ok = await again.push(bundle(keys, { serial: 6 }));
  assert.equal(ok.generation, 2);
  await again.close();
});

Deno.test("PolicyManager.push() refuses a foreign-host, tampered or expired bundle with nothing changed", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1);
  const before = h.backend.installed;
  const applies = h.backend.count("apply");

  // Flip the lowest bit of S: still canonical, no longer valid.
  const envelope = JSON.parse(
    new TextDecoder().decode(bundle(keys, { serial: 2 })),
  );
  const sig = Uint8Array.from(
    atob(envelope.signatures[0].sig),
    (c) => c.charCodeAt(0),
  );
  sig[32] ^= 1;
  envelope.signatures[0].sig = btoa(String.fromCharCode(...sig));
  const tampered = JSON.stringify(envelope);
  const cases: [Uint8Array, string][] = [
    [bundle(keys, { serial: 2, targets: ["web-2"] }), "wrong-host"],
    [new TextEncoder().encode(tampered), "bad-signature"],
    [
      bundle(keys, {
        serial: 2,
        issuedAt: T0 - 7_200_000,
        expiresAt: T0 - 3_600_000,
      }),
      "expired",
    ],
    [bundle(makeKeys(), { serial: 2 }), "unknown-key"],
  ];
  for (const [bytes, code] of cases) {
    const error = await rejects(() => h.manager.push(bytes), RefusedError);
    assert.equal(error.code, code, error.message);
    assert.equal(error.httpStatus, 403);
  }
  assert.deepEqual(h.backend.installed, before);
  assert.equal(h.backend.count("apply"), applies);
  assert.equal(h.manager.status().highestSerial, 1);
  assert.deepEqual(
    (await GenerationStore.load(tmp.dir, { trust: keys.trust })).onDisk(),
    [1],
  );
  await h.manager.close();
});

Deno.test("PolicyManager.push() accepts a bundle that targets one of the host's groups", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const result = await h.manager.push(
    bundle(keys, { serial: 1, targets: ["group:edge"] }),
  );
  assert.equal(result.generation, 1);
  await h.manager.close();
});

Deno.test("PolicyManager.push() refuses an invalid policy before writing anything", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const catchAll = {
    name: "deny-all",
    rules: [{ id: "all", action: "block", direction: "in", protocol: "any" }],
  };
  const error = await rejects(
    () => h.manager.push(bundle(keys, { serial: 1, policy: catchAll })),
    RefusedError,
  );
  assert.equal(error.code, "bad-policy");
  assert.equal(error.httpStatus, 422);
  assert.equal(error.detail?.ruleId, "all");
  assert.equal(h.manager.status().highestSerial, 0);
  assert.equal(h.backend.count("apply"), 0);
  await h.manager.close();
});

Deno.test("PolicyManager.push() refuses a commit window outside 2 to the host maximum", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const error = await rejects(
    () => h.manager.push(bundle(keys, { serial: 1, window: 601 })),
    RefusedError,
  );
  assert.equal(error.code, "bad-window");
  assert.match(error.message, /2 to 600/);
  const ok = await h.manager.push(bundle(keys, { serial: 1, window: 2 }));
  assert.equal(ok.deadline, new Date(T0 + 2_000).toISOString());
  await h.manager.close();
});

Deno.test("PolicyManager.push() keeps the previous policy when the engine refuses", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1);
  h.backend.inject("apply", {
    error: new EngineError("Cannot commit batch: bad element", {
      call: "nft_run_cmd_from_buffer",
      code: 22,
      codeName: "EINVAL",
      ruleId: "block-22",
    }),
  });
  const error = await rejects(
    () => h.manager.push(bundle(keys, { serial: 2, ports: [22] })),
    RefusedError,
  );
  assert.equal(error.code, "engine-failed");
  assert.equal(error.httpStatus, 500);
  assert.match(error.message, /bad element/);
  assert.equal(error.detail?.ruleId, "block-22");
  assert.equal(h.backend.installed?.name, "policy-1");
  assert.equal(await statusOnDisk(tmp.dir, 2), "reverted");
  const status = h.manager.status();
  assert.equal(status.state, "idle");
  assert.equal(status.active?.generation, 1);
  assert.equal(status.lastError?.code, "engine-failed");
  const abort = h.events.find((e) => e.event === "apply.abort")!;
  assert.equal(abort.codeName, "EINVAL");
  assert.equal(abort.call, "nft_run_cmd_from_buffer");
  const refused = h.events.find((e) => e.event === "refused")!;
  assert.equal(refused.code, "engine-failed");
  // A non-transient failure is not retried.
  assert.equal(h.events.filter((e) => e.event === "apply.attempt").length, 2);
  await h.manager.close();
});

Deno.test("PolicyManager.push() retries a transient engine failure", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  h.backend.inject("apply", { times: 2, transient: true });
  const result = await h.manager.push(bundle(keys, { serial: 1 }));
  assert.equal(result.generation, 1);
  assert.equal(h.backend.installed?.name, "policy-1");
  const aborts = h.events.filter((e) => e.event === "apply.abort");
  assert.deepEqual(aborts.map((e) => e.retry), [true, true]);
  await h.manager.close();
});

Deno.test("PolicyManager.push() refuses a rule the engine cannot express", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const withApp = {
    name: "apps",
    rules: [{
      id: "no-app",
      action: "block",
      direction: "out",
      protocol: "tcp",
      remotePorts: [25],
      app: "C:\\\\app.exe",
    }],
  };
  const error = await rejects(
    () => h.manager.push(bundle(keys, { serial: 1, policy: withApp })),
    RefusedError,
  );
  assert.equal(error.code, "unsupported-rule");
  assert.match(error.message, /no-app/);
  // Refused before anything was written: no generation, floor unmoved.
  await assert.rejects(() => statusOnDisk(tmp.dir, 1), Deno.errors.NotFound);
  assert.equal(h.manager.status().highestSerial, 0);
  assert.equal(h.backend.count("apply"), 0);
  const pushed = await h.manager.push(bundle(keys, { serial: 1 }));
  assert.equal(pushed.generation, 1);
  await h.manager.close();
});

Deno.test("PolicyManager starts on a read-only state directory and refuses pushes until it is writable", async () => {
  await using tmp = await tempStateDir();
  const first = await open(tmp.dir);
  await pushConfirmed(first, 1);
  await first.manager.close();

  const fs = new FaultyFs();
  fs.failWith = "read-only";
  const backend = new MemoryBackend();
  const h = await open(tmp.dir, { fs, backend });
  assert.equal(fs.writes, 0);
  const status = h.manager.status();
  assert.equal(status.stateWritable, false);
  assert.equal(backend.installed?.name, "policy-1");

  const error = await rejects(
    () => h.manager.push(bundle(keys, { serial: 2 })),
    RefusedError,
  );
  assert.equal(error.code, "state-read-only");
  assert.equal(error.httpStatus, 503);
  assert.match(error.message, new RegExp(tmp.dir));
  assert.equal(backend.installed?.name, "policy-1");

  fs.failWith = null;
  const ok = await h.manager.push(bundle(keys, { serial: 2 }));
  assert.equal(ok.generation, 2);
  assert.equal(h.manager.status().stateWritable, true);
  await h.manager.close();
});

Deno.test("PolicyManager.push() on a full disk is refused with nothing applied", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  h.fs.failOneWrite("disk-full", 1);
  const error = await rejects(
    () => h.manager.push(bundle(keys, { serial: 1 })),
    RefusedError,
  );
  assert.equal(error.code, "state-disk-full");
  assert.equal(error.httpStatus, 507);
  assert.equal(h.backend.count("apply"), 0);
  assert.equal(h.manager.status().highestSerial, 0);
  assert.equal(h.manager.status().stateWritable, false);
  // The next push probes again and goes through.
  const ok = await h.manager.push(bundle(keys, { serial: 1 }));
  assert.equal(ok.generation, 1);
  await h.manager.close();
});

Deno.test("PolicyManager.confirm() that cannot be recorded is refused and the window keeps running", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1);
  const pushed = await h.manager.push(bundle(keys, { serial: 2, ports: [22] }));
  h.fs.failWith = "read-only";
  const error = await rejects(
    () => h.manager.confirm(heartbeat(keys, 2, pushed.nonce)),
    RefusedError,
  );
  assert.equal(error.code, "state-read-only");
  assert.equal(h.manager.status().state, "pending");
  await h.clock.advance(30_000);
  assert.equal(h.backend.installed?.name, "policy-1");
  await h.manager.close();
});

Deno.test("PolicyManager.open() reverts a generation left pending by a restart inside its window", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1);
  await h.manager.push(bundle(keys, { serial: 2, ports: [22] }));
  await h.manager.close();
  assert.equal(h.backend.installed?.name, "policy-2");

  const events: ManagerEvent[] = [];
  const again = await h.restart({ onEvent: (e) => events.push(e) });
  assert.equal(h.backend.installed?.name, "policy-1");
  assert.equal(await statusOnDisk(tmp.dir, 2), "reverted");
  const recover = events.find((e) => e.event === "recover.pending")!;
  assert.equal(recover.generation, 2);
  assert.ok(
    names(events).indexOf("recover.pending") < names(events).indexOf("start"),
  );
  const status = again.status();
  assert.equal(status.state, "idle");
  assert.equal(status.active?.generation, 1);
  assert.equal(status.highestSerial, 2);
  await again.close();
});

Deno.test("PolicyManager.open() keeps the last known good the engine already holds", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1);
  await h.manager.close();
  const applies = h.backend.count("apply");

  const again = await h.restart();
  assert.equal(h.backend.count("apply"), applies);
  assert.equal(again.status().active?.generation, 1);
  await again.close();

  // After a reboot the engine is empty: the LKG is applied in full.
  h.backend.setInstalled(null);
  const third = await h.restart();
  assert.equal(h.backend.installed?.name, "policy-1");
  assert.equal(
    h.backend.calls.filter((c) => c.op === "apply").at(-1)?.current,
    null,
  );
  await third.close();
});

Deno.test("PolicyManager.open() with corrupt state and no usable generation fails open", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1);
  await h.manager.close();
  await Deno.writeTextFile(
    `${tmp.dir}/generations/00000001.bundle.json`,
    "{ truncated",
  );

  const events: ManagerEvent[] = [];
  const again = await h.restart({ onEvent: (e) => events.push(e) });
  assert.equal(h.backend.installed, null);
  const status = again.status();
  assert.equal(status.state, "failed-open");
  assert.equal(status.lastError?.code, "no-last-known-good");
  assert.equal(status.problems.length, 1);
  assert.ok(names(events).includes("state.problem"));
  await again.close();
});

Deno.test("PolicyManager.open() never throws when the engine fails", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1);
  await h.manager.close();
  h.backend.setInstalled(null);
  h.backend.inject("apply", { times: 3 });

  const again = await h.restart();
  const status = again.status();
  assert.equal(status.state, "failed-open");
  assert.equal(status.lastError?.code, "failed-open");
  assert.equal(h.backend.installed, null);
  await again.close();
});

Deno.test("PolicyManager.open() on a missing state directory starts and writes nothing when read-only", async () => {
  await using tmp = await tempStateDir();
  const fs = new FaultyFs();
  fs.failWith = "read-only";
  const h = await open(`${tmp.dir}/nowhere`, { fs });
  assert.equal(h.manager.status().stateWritable, false);
  assert.equal(h.manager.status().state, "idle");
  await assert.rejects(() => Deno.stat(`${tmp.dir}/nowhere`));
  await h.manager.close();
});

Deno.test("PolicyManager.rollback() reverts a pending generation to the last known good", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1);
  await h.manager.push(bundle(keys, { serial: 2, ports: [22] }));
  const result = await h.manager.rollback(rollbackCommand(keys));
  assert.deepEqual(result, { to: "last-known-good", generation: 1 });
  assert.equal(h.backend.installed?.name, "policy-1");
  assert.equal(await statusOnDisk(tmp.dir, 2), "reverted");
  assert.equal(h.clock.armed, 0);
  assert.equal(h.manager.status().state, "idle");
  assert.ok(names(h.events).includes("rollback"));
  await h.manager.close();
});

Deno.test("PolicyManager.rollback() to empty removes everything and keeps the last known good stored", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1);
  const result = await h.manager.rollback(
    rollbackCommand(keys, { to: "empty" }),
  );
  assert.deepEqual(result, { to: "empty", generation: null });
  assert.equal(h.backend.installed, null);
  const status = h.manager.status();
  assert.equal(status.active, null);
  assert.equal(status.lastKnownGood?.generation, 1);
  await h.manager.close();
});

Deno.test("PolicyManager.rollback() refuses a replayed, foreign or expired command", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const command = rollbackCommand(keys, { nonce: "n-1" });
  await h.manager.rollback(command);
  const cases: [Uint8Array, string][] = [
    [command, "replayed"],
    [rollbackCommand(keys, { host: "web-2" }), "wrong-host"],
    [rollbackCommand(keys, { now: T0 - 3_600_000 }), "expired"],
  ];
  for (const [bytes, code] of cases) {
    const error = await rejects(() => h.manager.rollback(bytes), RefusedError);
    assert.equal(error.code, code, error.message);
  }
  await h.manager.close();
});

Deno.test("PolicyManager prunes old generations but keeps the last known good", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir, { maxGenerations: 3 });
  await pushConfirmed(h, 1);
  for (const serial of [2, 3, 4]) {
    await h.manager.push(bundle(keys, { serial, ports: [22] }));
    await h.clock.advance(30_000);
  }
  await pushConfirmed(h, 5);
  const store = await GenerationStore.load(tmp.dir, { trust: keys.trust });
  // Generation 1 stayed while it was the LKG; 5 is the LKG now.
  assert.deepEqual(store.onDisk(), [1, 4, 5]);
  assert.equal(store.lastKnownGood()?.generation, 5);

  // With the LKG older than every other generation, it is still kept.
  for (const serial of [6, 7, 8]) {
    await h.manager.push(bundle(keys, { serial, ports: [22] }));
    await h.clock.advance(30_000);
  }
  await h.manager.push(bundle(keys, { serial: 9, ports: [23] }));
  const later = await GenerationStore.load(tmp.dir, { trust: keys.trust });
  assert.deepEqual(later.onDisk(), [5, 8, 9]);
  assert.equal(later.lastKnownGood()?.generation, 5);
  assert.equal(later.pending()[0]?.generation, 9);
  await h.manager.close();
});

Deno.test("PolicyManager.close() disarms the watchdog, refuses new work and leaves the policy", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await h.manager.push(bundle(keys, { serial: 1 }));
  await h.manager.close();
  await h.manager.close();
  assert.equal(h.clock.armed, 0);
  assert.equal(h.backend.installed?.name, "policy-1");
  const error = await rejects(
    () => h.manager.push(bundle(keys, { serial: 2 })),
    RefusedError,
  );
  assert.equal(error.code, "closed");
  assert.equal(error.httpStatus, 503);
});

Deno.test("PolicyManager.counters() passes the engine's counters through", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await h.manager.push(bundle(keys, { serial: 1 }));
  h.backend.hit("block-8080", 3n, 180n);
  assert.deepEqual(h.manager.counters(), [
    { id: "block-8080", packets: 3n, bytes: 180n },
  ]);
  await h.manager.close();
});

Deno.test("PolicyManager runs one operation at a time", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const results = await Promise.allSettled([
    h.manager.push(bundle(keys, { serial: 1 })),
    h.manager.push(bundle(keys, { serial: 2 })),
  ]);
  assert.equal(results[0].status, "fulfilled");
  assert.equal(results[1].status, "rejected");
  assert.equal(
    ((results[1] as PromiseRejectedResult).reason as RefusedError).code,
    "pending",
  );
  await h.manager.close();
});

/** Runs a scenario that hits `point`, crashes there, and restarts. */
async function crashAt(point: CrashPoint) {
  await using tmp = await tempStateDir();
  let armed = false;
  let hit = false;
  const crashPoint = (name: CrashPoint) => {
    if (armed && name === point) {
      hit = true;
      armed = false;
      throw new Crash(name);
    }
  };
  const h = await open(tmp.dir, { crashPoint });
  await pushConfirmed(h, 1, [8080]);

  armed = true;
  try {
    if (point.startsWith("start.")) {
      await h.restart();
    } else {
      const pushed = await h.manager.push(
        bundle(keys, { serial: 2, ports: [22] }),
      );
      if (point.startsWith("confirm.")) {
        await h.manager.confirm(heartbeat(keys, 2, pushed.nonce));
      } else {
        await h.clock.advance(30_000);
      }
    }
  } catch (error) {
    if (!(error instanceof Crash)) throw error;
  }
  assert.ok(hit, `crash point ${point} was never reached`);
  await h.manager.close();

  // The restarted service ends in a safe state: the LKG in force and
  // nothing pending, whatever step the crash hit.
  const again = await h.restart();
  const status = again.status();
  assert.equal(status.pending, null);
  assert.equal(status.state, "idle");
  const lkg = point === "confirm.after-write" ? 2 : 1;
  assert.equal(status.lastKnownGood?.generation, lkg);
  assert.equal(status.active?.generation, lkg);
  assert.equal(h.backend.installed?.name, `policy-${lkg}`);
  if (!point.startsWith("start.")) {
    assert.equal(
      await statusOnDisk(tmp.dir, 2),
      lkg === 2 ? "confirmed" : "reverted",
    );
  }
  await again.close();
}

for (const point of CRASH_POINTS) {
  Deno.test(`PolicyManager recovers after a crash at ${point}`, () =>
    crashAt(point));
}

Deno.test("policyValue() fixture policies validate", async () => {
  const { validatePolicyValue } = await import("./parse.ts");
  const { policy } = validatePolicyValue(policyValue("p", [1, 2]), "test");
  assert.equal(policy.rules.length, 2);
});

Deno.test("PolicyManager keeps working when the event sink throws", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir, {
    onEvent: () => {
      throw new Error("log sink down");
    },
  });
  const pushed = await h.manager.push(bundle(keys, { serial: 1 }));
  await h.manager.confirm(heartbeat(keys, 1, pushed.nonce));
  assert.equal(h.manager.status().lastKnownGood?.generation, 1);
  await h.manager.close();
});

Deno.test("PolicyManager re-arms a watchdog timer that fires before the deadline", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  // Timers that fire at once, as after a clock step backwards.
  const early = new FakeClock();
  const fired: (() => Promise<void>)[] = [];
  const manager = await h.restart({
    timers: {
      set: (fn) => fired.push(fn),
      clear: () => {},
    },
    now: early.clock,
  });
  await manager.push(bundle(keys, { serial: 1 }));
  early.now += 10_000;
  await fired.shift()!();
  assert.equal(manager.status().state, "pending");
  assert.equal(manager.status().pending?.secondsLeft, 20);
  assert.equal(fired.length, 1);
  early.now += 20_000;
  await fired.shift()!();
  assert.equal(manager.status().state, "idle");
  assert.equal(await statusOnDisk(tmp.dir, 1), "reverted");
  await manager.close();
  await h.manager.close();
});

Deno.test("PolicyManager.rollback() refuses a command replayed after a restart", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const command = rollbackCommand(keys, { nonce: "n-restart" });
  await h.manager.rollback(command);
  assert.equal(h.manager.status().rollbackNonces, "disk");
  await h.manager.close();

  const again = await h.restart();
  const error = await rejects(() => again.rollback(command), RefusedError);
  assert.equal(error.code, "replayed");
  await again.close();
});

Deno.test("PolicyManager.rollback() keeps used nonces in memory when the state is read-only", async () => {
  await using tmp = await tempStateDir();
  const fs = new FaultyFs();
  fs.failWith = "read-only";
  const h = await open(tmp.dir, { fs });
  const command = rollbackCommand(keys, { nonce: "n-ro" });
  await h.manager.rollback(command);
  assert.equal(h.manager.status().rollbackNonces, "memory");
  assert.ok(
    h.events.some((e) =>
      e.event === "state.problem" && /in memory only/.test(String(e.reason))
    ),
  );
  const error = await rejects(() => h.manager.rollback(command), RefusedError);
  assert.equal(error.code, "replayed");
  await h.manager.close();
});

Deno.test("PolicyManager.rollback() refuses a command valid for too long", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const error = await rejects(
    () => h.manager.rollback(rollbackCommand(keys, { validSeconds: 86_400 })),
    RefusedError,
  );
  assert.equal(error.code, "bad-statement");
  assert.match(error.message, /at most 600/);
  await h.manager.close();
});

Deno.test("PolicyManager keeps a rollback to empty across restarts until a push is confirmed", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1);
  await h.manager.rollback(rollbackCommand(keys, { to: "empty" }));
  assert.equal(h.manager.status().state, "withdrawn");
  await h.manager.close();

  // A restart fails open instead of re-applying generation 1.
  const again = await h.restart();
  assert.equal(h.backend.installed, null);
  let status = again.status();
  assert.equal(status.state, "withdrawn");
  assert.equal(status.active, null);
  assert.equal(status.lastKnownGood?.generation, 1);
  assert.ok(status.withdrawn !== null);

  // A push whose window closes goes back to empty, not to generation 1.
  await again.push(bundle(keys, { serial: 2, ports: [22] }));
  await h.clock.advance(31_000);
  assert.equal(h.backend.installed, null);
  assert.equal(again.status().state, "withdrawn");

  // A confirmed push ends the withdrawal, also on disk.
  const pushed = await again.push(bundle(keys, { serial: 3, ports: [23] }), {
    connection: "c1",
  });
  await again.confirm(
    heartbeat(keys, pushed.generation, pushed.nonce, { now: h.clock.now }),
    { connection: "c2" },
  );
  status = again.status();
  assert.equal(status.withdrawn, null);
  assert.equal(status.state, "idle");
  await again.close();
  h.backend.setInstalled(null);
  const third = await h.restart();
  assert.equal(installedName(h.backend), "policy-3");
  await third.close();
});

Deno.test("PolicyManager.checkDrift() reports an engine emptied from outside without re-applying", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir, { driftCheckSeconds: 60 });
  await pushConfirmed(h, 1);
  assert.equal(await h.manager.checkDrift(), true);

  h.backend.setInstalled(null); // an operator's panic
  await h.clock.advance(60_000);
  let status = h.manager.status();
  assert.equal(status.state, "drifted");
  assert.equal(status.lastError?.code, "engine-drift");
  assert.match(status.drift?.detail ?? "", /./);
  assert.equal(h.events.filter((e) => e.event === "drift").length, 1);
  assert.equal(h.backend.installed, null, "the panic must stay in force");

  await h.clock.advance(60_000);
  assert.equal(h.events.filter((e) => e.event === "drift").length, 1);

  // A push re-applies and clears the drift.
  await pushConfirmed(h, 2);
  status = h.manager.status();
  assert.equal(status.state, "idle");
  assert.equal(status.drift, null);
  assert.equal(status.lastError, null);
  await h.manager.close();
  assert.equal(h.clock.armed, 0);
});

Deno.test("PolicyManager.checkDrift() clears when the engine matches again", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  await pushConfirmed(h, 1);
  const held = h.backend.installed;
  h.backend.setInstalled(null);
  assert.equal(await h.manager.checkDrift(), false);
  h.backend.setInstalled(held);
  assert.equal(await h.manager.checkDrift(), true);
  assert.equal(h.manager.status().state, "idle");
  assert.equal(h.manager.status().lastError, null);
  assert.ok(names(h.events).includes("drift.cleared"));
  await h.manager.close();
});

Deno.test("PolicyManager.confirm() names a heartbeat after the window closed", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const pushed = await h.manager.push(bundle(keys, { serial: 1 }));
  await h.clock.advance(31_000);
  const error = await rejects(
    () =>
      h.manager.confirm(
        heartbeat(keys, pushed.generation, pushed.nonce, { now: h.clock.now }),
      ),
    RefusedError,
  );
  assert.equal(error.code, "window-closed");
  assert.match(error.message, /generation 1/);
  const other = await rejects(
    () => h.manager.confirm(heartbeat(keys, 1, "f".repeat(32))),
    RefusedError,
  );
  assert.equal(other.code, "no-pending");
  await h.manager.close();
});

Deno.test("PolicyManager.confirm() refuses a heartbeat issued before the push", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const pushed = await h.manager.push(bundle(keys, { serial: 1 }));
  const error = await rejects(
    () =>
      h.manager.confirm(
        heartbeat(keys, pushed.generation, pushed.nonce, {
          now: h.clock.now - 3_600_000,
        }),
      ),
    RefusedError,
  );
  assert.equal(error.code, "issued-before-push");
  assert.equal(h.manager.status().state, "pending");
  await h.manager.close();
});

Deno.test("PolicyManager.status() drops 'no generations stored yet' once one is", async () => {
  await using tmp = await tempStateDir();
  const h = await open(`${tmp.dir}/fresh`);
  assert.ok(
    h.manager.status().problems.some((p) => /no generations/.test(p.reason)),
  );
  await pushConfirmed(h, 1);
  assert.deepEqual(h.manager.status().problems, []);
  await h.manager.close();
});

Deno.test("PolicyManager refusals keep the trust store path out of the message", async () => {
  await using tmp = await tempStateDir();
  const h = await open(tmp.dir);
  const stranger = makeKeys();
  const error = await rejects(
    () => h.manager.push(bundle(stranger, { serial: 1 })),
    RefusedError,
  );
  assert.equal(error.code, "unknown-key");
  assert.doesNotMatch(error.message, /trust\.jsonc/);
  assert.match(error.logMessage, /trust\.jsonc/);
  const logged = h.events.find((e) => e.event === "refused");
  assert.match(String(logged?.reason), /trust\.jsonc/);
  await h.manager.close();
});
