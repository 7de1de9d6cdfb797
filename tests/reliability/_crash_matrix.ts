/**
 * The crash-point matrix shared by both engines: for every step the
 * manager names, a host process is SIGKILLed at that step, restarted,
 * and its complete engine dump must equal the dump of the last known
 * good or of the new policy — never anything else — with the status
 * naming the same generation.
 *
 * @module
 */
import assert from "node:assert/strict";
import { CRASH_POINTS } from "../../policy/manager.ts";
import {
  type HostJob,
  hostOk,
  type HostStep,
  makeHostDir,
  runHost,
} from "./_kit.ts";

/** The two policies of every scenario. */
const OLD = [8001];
const NEW = [8002, 8003];

/** One crash scenario. */
export interface CrashScenario {
  name: string;
  /** Steps run to completion before the crash run. */
  setup: HostStep[];
  /** Crash runs in order: steps and the point that kills the process. */
  crashes: { steps: HostStep[]; point: string }[];
  /** What the engine must hold after the restart. */
  expect: "old" | "new" | "empty";
}

const lkg: HostStep[] = [
  { op: "push", serial: 1, ports: OLD },
  { op: "confirm" },
];
const pushNew: HostStep = { op: "push", serial: 2, ports: NEW };

/** Every scenario: each crash point, with and without a last known good. */
export function crashScenarios(): CrashScenario[] {
  const list: CrashScenario[] = [];
  for (const point of CRASH_POINTS) {
    if (point.startsWith("push.")) {
      list.push({
        name: `${point} with a last known good`,
        setup: lkg,
        crashes: [{ steps: [pushNew], point }],
        expect: "old",
      });
      list.push({
        name: `${point} on a fresh host`,
        setup: [],
        crashes: [{ steps: [{ op: "push", serial: 1, ports: NEW }], point }],
        expect: "empty",
      });
    } else if (point.startsWith("confirm.")) {
      list.push({
        name: `${point}`,
        setup: lkg,
        crashes: [{ steps: [pushNew, { op: "confirm" }], point }],
        expect: point === "confirm.after-write" ? "new" : "old",
      });
    } else if (point.startsWith("revert.")) {
      list.push({
        name: `${point} on window expiry`,
        setup: lkg,
        crashes: [{ steps: [pushNew, { op: "expire" }], point }],
        expect: "old",
      });
      list.push({
        name: `${point} on a signed rollback`,
        setup: lkg,
        crashes: [{ steps: [pushNew, { op: "rollback" }], point }],
        expect: "old",
      });
      list.push({
        name: `${point} on expiry with no last known good`,
        setup: [],
        crashes: [{
          steps: [{ op: "push", serial: 1, ports: NEW }, { op: "expire" }],
          point,
        }],
        expect: "empty",
      });
    } else {
      list.push({
        name: `${point} while recovering a crashed window`,
        setup: lkg,
        crashes: [
          { steps: [pushNew], point: "push.after-status-write" },
          { steps: [], point },
        ],
        expect: "old",
      });
    }
  }
  return list;
}

/** How the matrix reaches an engine. */
export interface CrashEngine {
  engine: "wfp" | "nft";
  /** Extra environment of every host process of one scenario. */
  env(dir: string): Record<string, string>;
  /** Environment of the reference-dump process. */
  expectEnv(dir: string): Record<string, string>;
}

/** Registers one test per scenario for `engine`. */
export function registerCrashMatrix(
  engine: CrashEngine,
  ready: (t: Deno.TestContext) => boolean,
): void {
  let refs: Promise<Record<string, string>> | null = null;
  const references = async () => {
    await using dir = await makeHostDir();
    const job: HostJob = {
      engine: engine.engine,
      stateDir: dir.stateDir,
      logDir: dir.logDir,
      keyPath: dir.keyPath,
      trustPath: dir.trustPath,
      steps: [
        { op: "expect", ports: OLD },
        { op: "expect", ports: NEW },
        { op: "expect", ports: null },
      ],
    };
    const run = hostOk(
      await runHost(job, { env: engine.expectEnv(dir.dir) }),
      "make reference dumps",
    );
    const dumps = run.lines.filter((l) => "expect" in l).map((l) =>
      String(l.dump)
    );
    assert.equal(dumps.length, 3);
    assert.equal(new Set(dumps).size, 3, "reference dumps must differ");
    return { old: dumps[0], new: dumps[1], empty: dumps[2] };
  };

  for (const scenario of crashScenarios()) {
    Deno.test(
      `crash at ${scenario.name} (${engine.engine}) restarts into the ${
        scenario.expect === "new"
          ? "new policy"
          : scenario.expect === "old"
          ? "last known good"
          : "empty ruleset"
      } in full`,
      async (t) => {
        if (!ready(t)) return;
        refs ??= references();
        const expected = await refs;
        await using dir = await makeHostDir();
        const env = engine.env(dir.dir);
        const job = (steps: HostStep[]): HostJob => ({
          engine: engine.engine,
          stateDir: dir.stateDir,
          logDir: dir.logDir,
          keyPath: dir.keyPath,
          trustPath: dir.trustPath,
          steps,
        });

        if (scenario.setup.length > 0) {
          const setup = hostOk(
            await runHost(job(scenario.setup), { env }),
            "set up",
          );
          assert.equal(setup.final!.dump, expected.old);
        }
        for (const crash of scenario.crashes) {
          const run = await runHost(job(crash.steps), {
            env,
            crashPoint: crash.point,
          });
          assert.equal(
            run.signal,
            "SIGKILL",
            `the host was not killed at ${crash.point}: exit ${run.code}\n` +
              run.stderr + run.lines.map((l) => JSON.stringify(l)).join("\n"),
          );
          assert.ok(!run.final, "a killed host printed its final line");
        }

        const after = hostOk(await runHost(job([]), { env }), "restart");
        const dump = after.final!.dump;
        const matches = Object.entries(expected).filter(([, d]) => d === dump)
          .map(([k]) => k);
        assert.deepEqual(
          matches,
          [scenario.expect],
          `engine dump after restart matches ${JSON.stringify(matches)}:\n` +
            dump,
        );
        // The restart saw a pending generation unless the crash came
        // after it was settled on disk.
        const last = scenario.crashes.at(-1)!.point;
        const settled = [
          "confirm.after-write",
          "revert.after-status-write",
          "start.after-recover",
        ].includes(last);
        const events = after.lines.map((l) => l.event);
        assert.equal(events.includes("recover.pending"), !settled);
        assert.ok(events.includes("start"), "no start event");
        const status = after.final!.status as {
          state: string;
          active: { generation: number } | null;
          pending: unknown;
          lastKnownGood: { generation: number } | null;
        };
        assert.equal(status.pending, null);
        assert.equal(status.state, "idle");
        const generation = { old: 1, new: 2, empty: null }[scenario.expect];
        assert.equal(status.active?.generation ?? null, generation);
        assert.equal(status.lastKnownGood?.generation ?? null, generation);
      },
    );
  }
}
