/**
 * The engine crash-point matrix shared by both engines: inside one
 * engine transaction of a push, of a revert (window expiry, signed
 * rollback, fail-open with no last known good, recovery at start) and
 * of `palisade panic`, a real process is SIGKILLed at every step of
 * `ENGINE_CRASH_POINTS` that the transaction passes. A traced run of
 * the same scenario first names the steps passed, so that each one is
 * killed in turn. After each kill the complete engine dump must equal
 * the state before or after the transaction in full (before the commit
 * or batch: before; after it: after), the restarted host must reach
 * the expected policy with the status naming it, and a second panic
 * must remove everything.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ENGINE_CRASH_POINTS } from "../../policy/backend.ts";
import {
  type HostJob,
  hostOk,
  type HostRun,
  type HostStep,
  makeHostDir,
  runHost,
  SIM_PATH,
} from "./_kit.ts";

const OLD = [8001];
const NEW = [8002, 8003];

type Ref = "old" | "new" | "empty";

/** One transaction to crash inside. */
export interface EngineScenario {
  name: string;
  /** Steps run to completion before the crash run. */
  setup: HostStep[];
  /** Steps of the crash run; `panic` runs `palisade panic` instead. */
  steps: HostStep[] | "panic";
  /** Index of the step whose transaction is crashed (see HostJob). */
  engineFrom?: number;
  /** The engine after the setup. */
  initial: Ref;
  /** The engine before and after the crashed transaction. */
  before: Ref;
  after: Ref;
  /** What the restarted host must enforce (panic: the engine state). */
  expect: Ref;
}

const lkg: HostStep[] = [
  { op: "push", serial: 1, ports: OLD },
  { op: "confirm" },
];
const pushNew: HostStep = { op: "push", serial: 2, ports: NEW };

/** Every transaction of a push, a revert and a panic. */
export function engineScenarios(): EngineScenario[] {
  return [
    {
      name: "a push over a last known good",
      setup: lkg,
      steps: [pushNew],
      engineFrom: 0,
      initial: "old",
      before: "old",
      after: "new",
      expect: "old",
    },
    {
      name: "a push on a fresh host",
      setup: [],
      steps: [{ op: "push", serial: 1, ports: NEW }],
      engineFrom: 0,
      initial: "empty",
      before: "empty",
      after: "new",
      expect: "empty",
    },
    {
      name: "a revert on window expiry",
      setup: lkg,
      steps: [pushNew, { op: "expire" }],
      engineFrom: 1,
      initial: "old",
      before: "new",
      after: "old",
      expect: "old",
    },
    {
      name: "a revert on a signed rollback",
      setup: lkg,
      steps: [pushNew, { op: "rollback" }],
      engineFrom: 1,
      initial: "old",
      before: "new",
      after: "old",
      expect: "old",
    },
    {
      name: "a fail-open revert with no last known good",
      setup: [],
      steps: [{ op: "push", serial: 1, ports: NEW }, { op: "expire" }],
      engineFrom: 1,
      initial: "empty",
      before: "new",
      after: "empty",
      expect: "empty",
    },
    {
      name: "the revert of a crashed window at start",
      setup: [...lkg, pushNew],
      steps: [],
      initial: "new",
      before: "new",
      after: "old",
      expect: "old",
    },
    {
      name: "palisade panic",
      setup: lkg,
      steps: "panic",
      initial: "old",
      before: "old",
      after: "empty",
      expect: "empty",
    },
  ];
}

/** How the matrix reaches an engine. */
export interface EngineCrashEngine {
  engine: "wfp" | "nft";
  /** Environment of every process of one scenario. */
  env(dir: string): Record<string, string>;
  /** Environment of the reference-dump process. */
  expectEnv(dir: string): Record<string, string>;
  /** Arguments of `main.ts panic` for this engine. */
  panicArgs: string[];
  /** Library the panic process may load. */
  library: string;
  /** Every crash point of this engine. */
  points: string[];
  /** Steps every transaction of this engine must pass. */
  required: string[];
}

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;

/** A finished `palisade panic` process. */
export interface PanicRun {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `palisade panic` as its own process, granted its library and
 * the crash-point variable (`grantEnv`), or under the task's own
 * permission set `-P=panic` when `grantEnv` is false.
 */
export async function runPanic(
  engine: EngineCrashEngine,
  env: Record<string, string>,
  opts: { crashPoint?: string; grantEnv?: boolean } = {},
): Promise<PanicRun> {
  const grants = opts.grantEnv === false
    ? ["-P=panic"]
    : [`--allow-ffi=${engine.library}`, "--allow-env=PALISADE_CRASHPOINT"];
  const all: Record<string, string> = { NO_COLOR: "1", ...env };
  if (opts.crashPoint) all.PALISADE_CRASHPOINT = opts.crashPoint;
  const output = await new Deno.Command("deno", {
    args: ["run", "--no-prompt", ...grants, MAIN, "panic", ...engine.panicArgs],
    cwd: ROOT,
    env: all,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  return {
    code: output.code,
    signal: output.signal,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** Whether the state after a kill at `point` is the transaction's new one. */
function afterCommit(point: string): boolean {
  return point === "engine.after-commit" || point === "engine.after-batch";
}

function show(run: HostRun): string {
  return `exit ${run.code} (${run.signal})\n${run.stderr}\n` +
    run.lines.map((l) => JSON.stringify(l)).join("\n");
}

/** Registers one test per scenario, one step per engine crash point. */
export function registerEngineCrashMatrix(
  engine: EngineCrashEngine,
  ready: (t: Deno.TestContext) => boolean,
): void {
  let refs: Promise<Record<Ref, string>> | null = null;
  const references = async () => {
    await using dir = await makeHostDir();
    const run = hostOk(
      await runHost({
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
      }, { env: engine.expectEnv(dir.dir) }),
      "make reference dumps",
    );
    const dumps = run.lines.filter((l) => "expect" in l).map((l) =>
      String(l.dump)
    );
    assert.equal(dumps.length, 3);
    assert.equal(new Set(dumps).size, 3, "reference dumps must differ");
    return { old: dumps[0], new: dumps[1], empty: dumps[2] };
  };

  for (const scenario of engineScenarios()) {
    Deno.test(
      `SIGKILL at each engine crash point of ${scenario.name} ` +
        `(${engine.engine}) leaves one whole state and restarts into ` +
        `the ${scenario.expect === "old" ? "last known good" : "empty engine"}`,
      async (t) => {
        if (!ready(t)) return;
        refs ??= references();
        const expected = await refs;
        const which = (dump: string) =>
          Object.entries(expected).filter(([, d]) => d === dump).map(([k]) =>
            k
          );

        /** A fresh host folder with the scenario's setup done. */
        const prepare = async () => {
          const dir = await makeHostDir();
          const env = engine.env(dir.dir);
          // What earlier tests left in the namespace goes first.
          const clean = await runPanic(engine, env);
          assert.equal(clean.code, 0, clean.stderr);
          const job = (steps: HostStep[], more: Partial<HostJob> = {}) => ({
            engine: engine.engine,
            stateDir: dir.stateDir,
            logDir: dir.logDir,
            keyPath: dir.keyPath,
            trustPath: dir.trustPath,
            steps,
            ...more,
          });
          if (scenario.setup.length > 0) {
            hostOk(await runHost(job(scenario.setup), { env }), "set up");
          }
          const dump = async () =>
            hostOk(
              await runHost(job([], { dumpOnly: true }), { env }),
              "dump the engine",
            ).final!.dump;
          assert.deepEqual(which(await dump()), [scenario.initial]);
          return { dir, env, job, dump };
        };

        // The traced run: which engine steps the transaction passes.
        let passed: string[];
        {
          const { dir, env, job, dump } = await prepare();
          await using _dir = dir;
          if (scenario.steps === "panic") {
            const panicked = await runPanic(engine, {
              ...env,
              PALISADE_CRASHPOINT: "engine.not-a-step",
            });
            assert.equal(panicked.code, 0, panicked.stderr);
            // The panic process prints no trace: every step of the
            // engine is tried, and one it does not pass leaves it alive
            // and the engine empty.
            passed = [];
            for (const point of engine.points) {
              const probe = await prepare();
              await using _probe = probe.dir;
              const run = await runPanic(engine, probe.env, {
                crashPoint: point,
              });
              if (run.signal === "SIGKILL") passed.push(point);
              else {
                assert.equal(run.code, 0, run.stderr);
                assert.deepEqual(which(await probe.dump()), ["empty"]);
              }
            }
          } else {
            const run = hostOk(
              await runHost(
                job(scenario.steps, {
                  engineFrom: scenario.engineFrom,
                  traceEngine: true,
                }),
                { env },
              ),
              "trace the transaction",
            );
            passed = [
              ...new Set(
                run.lines.filter((l) => "engineStep" in l && l.armed).map((
                  l,
                ) => String(l.engineStep)),
              ),
            ];
          }
          assert.deepEqual(which(await dump()), [scenario.after]);
        }
        for (const point of passed) {
          assert.ok(
            (ENGINE_CRASH_POINTS as readonly string[]).includes(point),
            `unknown engine crash point ${point}`,
          );
        }

        const killedAt: string[] = [];
        for (const point of passed) {
          await t.step(point, async () => {
            const { dir, env, job, dump } = await prepare();
            await using _dir = dir;
            const atKill = afterCommit(point)
              ? scenario.after
              : scenario.before;
            if (scenario.steps === "panic") {
              const killed = await runPanic(engine, env, { crashPoint: point });
              killedAt.push(point);
              assert.equal(killed.signal, "SIGKILL", killed.stderr);
              assert.deepEqual(which(await dump()), [atKill]);
              const again = await runPanic(engine, env);
              assert.equal(again.code, 0, again.stderr);
              assert.match(
                again.stdout,
                atKill === "empty" ? /nothing to remove/i : /removed/i,
              );
              assert.deepEqual(which(await dump()), ["empty"]);
              return;
            }
            const run = await runHost(
              job(scenario.steps, { engineFrom: scenario.engineFrom }),
              { env, crashPoint: point },
            );
            assert.equal(run.signal, "SIGKILL", show(run));
            killedAt.push(point);
            assert.ok(!run.final, "a killed host printed its final line");
            assert.deepEqual(which(await dump()), [atKill]);

            const after = hostOk(await runHost(job([]), { env }), "restart");
            assert.deepEqual(
              which(after.final!.dump),
              [scenario.expect],
              after.final!.dump,
            );
            const status = after.final!.status as {
              state: string;
              active: { generation: number } | null;
              pending: unknown;
            };
            assert.equal(status.pending, null);
            assert.equal(status.state, "idle");
            const generation = scenario.expect === "old" ? 1 : null;
            assert.equal(status.active?.generation ?? null, generation);
          });
        }
        console.log(
          `engine crash points killed in ${scenario.name} ` +
            `(${engine.engine}): ${killedAt.join(", ")}`,
        );
        for (const point of engine.required) {
          assert.ok(
            killedAt.includes(point),
            `no kill at ${point}: ${JSON.stringify(killedAt)}`,
          );
        }
      },
    );
  }
}

/**
 * Registers the check that the `panic` task's own permission set, which
 * grants no environment, leaves the crash hook unarmed.
 */
export function registerPanicUnarmed(
  engine: EngineCrashEngine,
  ready: (t: Deno.TestContext) => boolean,
): void {
  Deno.test(
    `palisade panic under -P=panic ignores PALISADE_CRASHPOINT ` +
      `(${engine.engine})`,
    async (t) => {
      if (!ready(t)) return;
      await using dir = await makeHostDir();
      const env = engine.env(dir.dir);
      const clean = await runPanic(engine, env);
      assert.equal(clean.code, 0, clean.stderr);
      hostOk(
        await runHost({
          engine: engine.engine,
          stateDir: dir.stateDir,
          logDir: dir.logDir,
          keyPath: dir.keyPath,
          trustPath: dir.trustPath,
          steps: lkg,
        }, { env }),
        "set up",
      );
      for (const point of engine.required) {
        const run = await runPanic(engine, env, {
          crashPoint: point,
          grantEnv: false,
        });
        assert.equal(run.signal, null, `killed at ${point}: ${run.stderr}`);
        assert.equal(run.code, 0, run.stderr);
      }
      const last = await runPanic(engine, env, { grantEnv: false });
      assert.match(last.stdout, /nothing to remove/i);
    },
  );
}

/** The WFP simulator as the matrix's engine. */
export const WFP_ENGINE: EngineCrashEngine = {
  engine: "wfp",
  env: (dir) => ({ WFPSIM_STORE: `${dir}/wfpsim.store` }),
  expectEnv: (dir) => ({ WFPSIM_STORE: `${dir}/reference.store` }),
  panicArgs: ["--engine", "wfp", "--wfp-library", SIM_PATH],
  library: SIM_PATH,
  points: ENGINE_CRASH_POINTS.slice(0, 7),
  required: [
    "engine.after-begin",
    "engine.before-commit",
    "engine.after-commit",
  ],
};

/** nftables (inside the caller's namespace) as the matrix's engine. */
export const NFT_ENGINE: EngineCrashEngine = {
  engine: "nft",
  env: () => ({}),
  expectEnv: () => ({}),
  panicArgs: ["--engine", "nft"],
  library: "/usr/lib/x86_64-linux-gnu/libnftables.so.1",
  points: ["engine.before-batch", "engine.after-batch"],
  required: ["engine.before-batch", "engine.after-batch"],
};
