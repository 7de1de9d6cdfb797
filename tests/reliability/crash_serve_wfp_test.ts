/**
 * Crash points of the real service on the WFP engine: `palisade serve`
 * runs under its narrow permission flags (the simulator as its only FFI
 * grant, plus the grant to read `PALISADE_CRASHPOINT`), is driven over
 * its HTTP API, SIGKILLed at every named step and restarted. The
 * complete simulator dump must then equal the dump of the last known
 * good, of the new policy or of the empty engine — the one the scenario
 * expects, never a mix — and `/v1/status` must name the same generation.
 */
import assert from "node:assert/strict";
import { CRASH_POINTS } from "../../policy/manager.ts";
import {
  signedBundle,
  signedHeartbeat,
  signedRollback,
} from "../_service_kit.ts";
import {
  call,
  freePort,
  makeWfpServiceKit,
  referenceDumps,
  SIM_PATH,
  simDump,
  WfpServe,
  type WfpServiceKit,
  withoutIds,
} from "../_wfp_serve_kit.ts";
import { need, policyFor, simBuilt } from "./_kit.ts";

const OLD = policyFor("old", [8001]);
const NEW = policyFor("new", [8002, 8003]);

/** One crash scenario of the real service. */
interface Scenario {
  point: string;
  /** Whether a confirmed last known good (generation 1) exists first. */
  lkg: boolean;
  /** How a revert point is reached. */
  revertBy?: "rollback" | "expiry";
  expect: Ref;
}

type Ref = "old" | "new" | "empty";

/** What the engine holds at the moment of the kill (one whole policy). */
function atKill(s: Scenario): Ref {
  switch (s.point) {
    case "push.after-pending-write":
      return s.lkg ? "old" : "empty";
    case "revert.after-apply":
    case "revert.after-status-write":
    case "start.after-recover":
      return "old";
    default:
      return "new";
  }
}

/** The names of the reference dumps equal to `dump`. */
function matching(refs: Record<string, string>, dump: string): string[] {
  return Object.entries(refs).filter(([, d]) => d === dump)
    .map(([name]) => name);
}

function scenarios(): Scenario[] {
  const list: Scenario[] = [];
  for (const point of CRASH_POINTS) {
    if (point.startsWith("push.")) {
      list.push({ point, lkg: true, expect: "old" });
      list.push({ point, lkg: false, expect: "empty" });
    } else if (point.startsWith("revert.")) {
      list.push({ point, lkg: true, revertBy: "rollback", expect: "old" });
      list.push({ point, lkg: true, revertBy: "expiry", expect: "old" });
    } else if (point.startsWith("confirm.")) {
      const expect = point === "confirm.after-write" ? "new" : "old";
      list.push({ point, lkg: true, expect });
    } else {
      list.push({ point, lkg: true, expect: "old" });
    }
  }
  return list;
}

function title(s: Scenario): string {
  const how = s.revertBy ? ` on ${s.revertBy}` : "";
  const host = s.lkg ? "" : " on a fresh host";
  const into = s.expect === "new"
    ? "the new policy"
    : s.expect === "old"
    ? "the last known good"
    : "the empty engine";
  return `palisade serve SIGKILLed at ${s.point}${how}${host} (wfp) ` +
    `restarts into ${into} in full`;
}

let refs: Record<string, string> | null = null;

/** Runs the steps that reach `s.point` in a serve armed to die there. */
async function crashRun(kit: WfpServiceKit, s: Scenario): Promise<WfpServe> {
  const serial = s.lkg ? 2 : 1;
  const push = signedBundle(kit, {
    serial,
    policy: NEW,
    window: s.revertBy === "expiry" ? 2 : 30,
  });
  if (s.point.startsWith("start.")) {
    // A crashed window first, so that the start has something to recover.
    const first = await new WfpServe(kit, {
      crashPoint: "push.after-status-write",
    }).started();
    await call(kit, "/v1/bundles", push);
    assert.equal((await first.status).signal, "SIGKILL");
    const serve = new WfpServe(kit, { crashPoint: s.point });
    assert.equal(await serve.listening(), false, serve.output());
    return serve;
  }
  const serve = await new WfpServe(kit, { crashPoint: s.point }).started();
  const pushed = await call(kit, "/v1/bundles", push);
  if (s.point.startsWith("confirm.")) {
    assert.equal(pushed.status, 200, JSON.stringify(pushed.json));
    await call(
      kit,
      "/v1/heartbeat",
      signedHeartbeat(kit, pushed.json.generation, pushed.json.nonce),
    );
  } else if (s.revertBy === "rollback") {
    assert.equal(pushed.status, 200, JSON.stringify(pushed.json));
    await call(kit, "/v1/rollback", signedRollback(kit));
  } else if (s.revertBy === "expiry") {
    assert.equal(pushed.status, 200, JSON.stringify(pushed.json));
    // The watchdog fires after 2 s; the status promise waits for the kill.
  }
  return serve;
}

for (const s of scenarios()) {
  Deno.test(title(s), async (t) => {
    if (
      !need(t, simBuilt(), `${SIM_PATH} is missing (deno task build:wfpsim)`)
    ) {
      return;
    }
    const kit = await makeWfpServiceKit({
      listen: `127.0.0.1:${freePort()}`,
      commitWindow: { default: 30, max: 60 },
    });
    let serve: WfpServe | null = null;
    try {
      refs ??= referenceDumps(kit.dir, { old: OLD, new: NEW });
      const expected = refs;
      assert.equal(new Set(Object.values(expected)).size, 3);
      const now = () => withoutIds(simDump(kit.store));

      if (s.lkg) {
        serve = await new WfpServe(kit).started();
        const first = await call(
          kit,
          "/v1/bundles",
          signedBundle(kit, { serial: 1, policy: OLD, window: 30 }),
        );
        assert.equal(first.status, 200, JSON.stringify(first.json));
        const ok = await call(
          kit,
          "/v1/heartbeat",
          signedHeartbeat(kit, first.json.generation, first.json.nonce),
        );
        assert.equal(ok.status, 200, JSON.stringify(ok.json));
        assert.equal(now(), expected.old);
        const stopped = await serve.stop("SIGTERM");
        assert.equal(stopped.code, 0, serve.output());
      }

      serve = await crashRun(kit, s);
      const killed = await serve.status;
      assert.equal(
        killed.signal,
        "SIGKILL",
        `not killed at ${s.point}: ${serve.output()}`,
      );
      // Each engine transaction is atomic: even at the kill the engine
      // holds one whole policy.
      const killedDump = now();
      assert.deepEqual(matching(expected, killedDump), [atKill(s)], killedDump);

      serve = await new WfpServe(kit).started();
      const dump = now();
      assert.deepEqual(matching(expected, dump), [s.expect], dump);
      const status = await call(kit, "/v1/status");
      assert.equal(status.status, 200, JSON.stringify(status.json));
      if (s.expect === "empty") assert.equal(status.json.active, null);
      else {
        const generation = s.expect === "new" ? 2 : 1;
        assert.equal(status.json.active?.generation, generation);
      }
      assert.equal(status.json.pending, null);
      assert.equal(status.json.state, "idle");
    } finally {
      await serve?.stop("SIGKILL");
      await Deno.remove(kit.dir, { recursive: true }).catch(() => {});
    }
  });
}
