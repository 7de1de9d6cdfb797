/**
 * A host process for the reliability tests: opens a real engine (the
 * WFP simulator with a store file, or nftables inside the namespace it
 * was started in) and a `PolicyManager` over a state folder, with the
 * crash hook of `service/_crash_hook.ts`, and runs the steps it is
 * given. It prints one JSON line per step and, at the end, the status
 * and the complete normalised engine dump.
 *
 * Usage: `deno run … _host.ts '<HostJob as JSON>'`
 *
 * @module
 */
import type { Backend } from "../../policy/backend.ts";
import { type ManagerEvent, PolicyManager } from "../../policy/manager.ts";
import { validatePolicyValue } from "../../policy/parse.ts";
import { loadTrustStore, parsePrivateKeyPem } from "../../signing/mod.ts";
import { crashHookFromEnv } from "../../service/_crash_hook.ts";
import { Logger } from "../../service/logger.ts";
import { assertInPrivateNetns } from "../_netns.ts";
import {
  type HostJob,
  normalizeNft,
  normalizeWfp,
  policyFor,
  signBundle,
  signConfirm,
  signRollback,
  SIM_PATH,
} from "./_kit.ts";

/** Rotation bound of the host's log. */
const LOG_MAX_BYTES = 64 * 1024;
const LOG_FILES = 3;

function print(value: unknown) {
  console.log(
    JSON.stringify(value, (_k, v) => typeof v === "bigint" ? v.toString() : v),
  );
}

async function openEngine(
  engine: "wfp" | "nft" | "memory",
  crashPoint?: (name: string) => void,
) {
  if (engine === "memory") {
    const { MemoryBackend } = await import("../../policy/memory_backend.ts");
    const backend = new MemoryBackend();
    const dump = () => Promise.resolve(JSON.stringify(backend.installed));
    return { backend, dump, sim: null };
  }
  if (engine === "nft") {
    assertInPrivateNetns();
    const { NftBackend } = await import("../../policy/nft_backend.ts");
    const backend: Backend = new NftBackend({ crashPoint });
    const dump = async () => {
      const output = await new Deno.Command("nft", {
        args: ["-j", "-s", "list", "ruleset"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!output.success) {
        throw new Error(
          `Cannot dump nftables: ${new TextDecoder().decode(output.stderr)}`,
        );
      }
      return normalizeNft(new TextDecoder().decode(output.stdout));
    };
    return { backend, dump, sim: null };
  }
  const { openWfpBackend } = await import("../../policy/wfp_backend.ts");
  const { WfpLibrary } = await import("../../ffi/wfp/engine.ts");
  const { simulatorHooks } = await import("../../ffi/wfp/simulator.ts");
  const backend = openWfpBackend({ library: SIM_PATH, crashPoint });
  const library = WfpLibrary.open(SIM_PATH);
  const sim = simulatorHooks(library);
  if (!sim) throw new Error(`Cannot use ${SIM_PATH}: it has no test hooks`);
  const dump = () => Promise.resolve(normalizeWfp(sim.dumpText()));
  return { backend, dump, sim, library };
}

function memory(): { rss: number; heap: number; fds: number | null } {
  (globalThis as { gc?: () => void }).gc?.();
  const usage = Deno.memoryUsage();
  return {
    rss: usage.rss,
    heap: usage.heapUsed + usage.external,
    fds: openFds(),
  };
}

/** The fewest open descriptors over a few samples, 20 ms apart. */
async function settledFds(): Promise<number | null> {
  let least: number | null = null;
  for (let i = 0; i < 5; i++) {
    const n = openFds();
    if (n !== null && (least === null || n < least)) least = n;
    await new Promise((r) => setTimeout(r, 20));
  }
  return least;
}

/**
 * Open file descriptors of this process, counted by `sh` (Deno grants
 * `/proc/self` only with every permission).
 */
function openFds(): number | null {
  try {
    const output = new Deno.Command("sh", {
      args: ["-c", 'ls "/proc/$1/fd" | wc -l', "sh", String(Deno.pid)],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    const count = Number(new TextDecoder().decode(output.stdout).trim());
    return output.success && Number.isInteger(count) ? count : null;
  } catch {
    return null;
  }
}

async function logBytes(
  dir: string,
): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile) continue;
    files++;
    bytes += (await Deno.stat(`${dir}/${entry.name}`)).size;
  }
  return { files, bytes };
}

async function main(job: HostJob) {
  // The engine's crash points: live from step `engineFrom` on (from the
  // start, recovery included, when it is not given), and printed as
  // they pass when `traceEngine` is set.
  const hook = crashHookFromEnv();
  let armed = job.engineFrom === undefined;
  const engineHook = (name: string) => {
    if (job.traceEngine) print({ engineStep: name, armed });
    if (armed) hook?.(name);
  };
  const engine = await openEngine(
    job.engine,
    hook !== undefined || job.traceEngine ? engineHook : undefined,
  );
  const { backend, dump, sim } = engine;

  if (job.dumpOnly) {
    const text = await dump();
    backend.close();
    engine.library?.close();
    print({ final: { status: {}, dump: text } });
    return;
  }

  if (job.steps[0]?.op === "expect") {
    // Reference dumps: each policy applied fresh, then removed again.
    for (const step of job.steps) {
      if (step.op !== "expect") continue;
      backend.removeAll();
      if (step.ports !== null) {
        const { policy } = validatePolicyValue(
          policyFor(`p-${step.ports.join("-")}`, step.ports),
          "expect",
        );
        backend.apply(policy, null);
      }
      print({ expect: step.ports, dump: await dump() });
      backend.removeAll();
    }
    backend.close();
    print({ final: { status: {}, dump: await dump() } });
    return;
  }

  const key = parsePrivateKeyPem(await Deno.readTextFile(job.keyPath), "key");
  const trust = await loadTrustStore(job.trustPath);
  const quiet = job.steps.some((s) => s.op === "soak");
  using logger = Logger.open({
    dir: job.logDir,
    maxBytes: LOG_MAX_BYTES,
    files: LOG_FILES,
    console: null,
  });

  // The watchdog runs on a clock the steps move, so that a revert by
  // expiry happens exactly when a step says so.
  let offset = 0;
  const now = () => Date.now() + offset;
  const timers = new Map<number, { at: number; fn: () => Promise<void> }>();
  let nextTimer = 1;
  const expire = async (ms: number) => {
    offset += ms;
    for (const [id, timer] of [...timers]) {
      if (timer.at > now()) continue;
      timers.delete(id);
      await timer.fn();
    }
  };

  const manager = await PolicyManager.open({
    backend,
    stateDir: job.stateDir,
    trust,
    host: "rel-1",
    groups: [],
    commitWindow: { default: 30, max: 3600 },
    maxGenerations: 6,
    retry: { attempts: 3, baseMs: 1, maxMs: 5 },
    now,
    timers: {
      set: (fn, ms) => {
        const id = nextTimer++;
        timers.set(id, { at: now() + ms, fn });
        return id;
      },
      clear: (id) => void timers.delete(id as number),
    },
    onEvent: (event: ManagerEvent) => {
      logger.log(event);
      if (!quiet) print(event);
    },
    crashPoint: crashHookFromEnv(),
  });

  let last: { generation: number; nonce: string; window: number } | null = null;
  for (const [index, step] of job.steps.entries()) {
    if (index === job.engineFrom) armed = true;
    try {
      switch (step.op) {
        case "push": {
          const window = step.window ?? 30;
          const bytes = signBundle(
            key,
            step.serial,
            policyFor(`p-${step.ports.join("-")}`, step.ports),
            window,
            now(),
          );
          const result = await manager.push(bytes);
          last = { generation: result.generation, nonce: result.nonce, window };
          print({ step: index, op: step.op, ok: true, result });
          break;
        }
        case "confirm": {
          if (!last) throw new Error("Cannot confirm: nothing was pushed");
          const result = await manager.confirm(
            signConfirm(key, last.generation, last.nonce, now()),
          );
          print({ step: index, op: step.op, ok: true, result });
          break;
        }
        case "expire": {
          await expire(((last?.window ?? 30) + 1) * 1000);
          print({ step: index, op: step.op, ok: true });
          break;
        }
        case "rollback": {
          const result = await manager.rollback(signRollback(key, now()));
          print({ step: index, op: step.op, ok: true, result });
          break;
        }
        case "soak": {
          print({ step: index, op: step.op, ok: true, ...await soak(step) });
          break;
        }
        default:
          throw new Error(`Cannot run step ${JSON.stringify(step)}`);
      }
    } catch (error) {
      const e = error as { code?: string; message?: string };
      print({
        step: index,
        op: step.op,
        ok: false,
        code: e.code ?? null,
        message: e.message ?? String(error),
      });
    }
  }

  async function soak(step: { cycles: number; warmup: number }) {
    let serial = manager.status().highestSerial;
    let warm: ReturnType<typeof memory> = { rss: 0, heap: 0, fds: null };
    const curve: number[] = [];
    let maxHandles = 0;
    let maxUnfreed = 0n;
    let failures = 0;
    const started = performance.now();
    for (let cycle = 0; cycle < step.cycles; cycle++) {
      if (cycle === step.warmup) {
        warm = memory();
        warm.fds = await settledFds();
      }
      if (cycle % Math.max(1, Math.floor(step.cycles / 10)) === 0) {
        curve.push(Math.round(memory().rss / 1024));
      }
      const ports = [8000 + (cycle % 7), 8100 + (cycle % 3)];
      serial += 1;
      const bytes = signBundle(
        key,
        serial,
        policyFor(`soak-${cycle % 5}`, ports),
        30,
        now(),
      );
      try {
        const pushed = await manager.push(bytes);
        if (cycle % 2 === 0) {
          await manager.confirm(
            signConfirm(key, pushed.generation, pushed.nonce, now()),
          );
        } else if (cycle % 6 === 1) {
          await manager.rollback(signRollback(key, now()));
        } else {
          await expire(31_000);
        }
      } catch {
        failures++;
      }
      if (sim) {
        maxHandles = Math.max(maxHandles, sim.openHandles());
        const unfreed = sim.unfreedAllocations();
        if (unfreed > maxUnfreed) maxUnfreed = unfreed;
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const end = memory();
    end.fds = await settledFds();
    return {
      cycles: step.cycles,
      failures,
      seconds: Math.round(seconds * 10) / 10,
      warmupCycles: step.warmup,
      rssWarmKiB: Math.round(warm.rss / 1024),
      rssEndKiB: Math.round(end.rss / 1024),
      rssGrowthPct: Math.round((end.rss - warm.rss) / warm.rss * 10_000) / 100,
      heapWarmKiB: Math.round(warm.heap / 1024),
      heapEndKiB: Math.round(end.heap / 1024),
      rssCurveKiB: curve,
      fdsWarm: warm.fds,
      fdsEnd: end.fds,
      maxOpenHandles: sim ? maxHandles : null,
      maxUnfreedAllocations: sim ? Number(maxUnfreed) : null,
      log: await logBytes(job.logDir),
      logBound: { files: LOG_FILES, bytes: LOG_MAX_BYTES * LOG_FILES },
    };
  }

  const status = manager.status();
  const finalDump = await dump();
  await manager.close();
  backend.close();
  const after = sim
    ? {
      openHandlesAfterClose: sim.openHandles(),
      unfreedAfterClose: Number(sim.unfreedAllocations()),
    }
    : {};
  engine.library?.close();
  print({ final: { status, dump: finalDump, ...after } });
}

if (import.meta.main) {
  await main(JSON.parse(Deno.args[0]) as HostJob);
}
