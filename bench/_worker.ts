/**
 * One measurement in its own process: `deno run … bench/_worker.ts TASK
 * JSON`. Tasks that touch nftables run only inside the bench namespace
 * named in their arguments (the parent starts them with `ip netns
 * exec`); simulator tasks run anywhere. The result is printed as one
 * line `RESULT <json>`.
 *
 * @module
 */
import {
  type Backend,
  type ManagerEvent,
  openBackend,
  PolicyManager,
  verifyBundle,
} from "../mod.ts";
import { NftContext } from "../ffi/nft/mod.ts";
import { assertInBenchNetns, run } from "./_netns.ts";
import { nftScript } from "./_nft_text.ts";
import {
  addressPolicyValue,
  baselinePolicyValue,
  normalize,
  rulesPolicyValue,
} from "./_policies.ts";
import { measureService } from "./_service.ts";
import { benchSigner } from "./_signing.ts";
import { timeMs, timeMsAsync } from "./_stats.ts";
import * as signing from "../signing/mod.ts";
import { type Ed25519Verifier, verifyBundleWebCrypto } from "./_webcrypto.ts";

/** Arguments every task understands. */
export interface TaskArgs {
  runs: number;
  /** Bench namespace the task must run in (nft tasks). */
  ns?: string;
  /** Policy size: addresses or rules. */
  size: number;
  engine?: "nft" | "wfp";
  /** Path of the WFP simulator library. */
  simLibrary?: string;
  /** Run each side once unrecorded before the measured runs. */
  warmup?: boolean;
}

/** What a task reports: named sample series plus notes. */
export interface TaskResult {
  samples: Record<string, number[]>;
  notes: string[];
  /** Facts the parent needs to label the figures. */
  info?: Record<string, string>;
}

async function openEngine(args: TaskArgs): Promise<Backend> {
  if (args.engine === "wfp") {
    if (args.simLibrary === undefined) {
      throw new TypeError("Cannot open the simulator: no library path given");
    }
    return openBackend({
      engine: "wfp",
      wfpLibrary: args.simLibrary,
      dynamic: true,
    });
  }
  await assertInBenchNetns(args.ns ?? "");
  return openBackend({ engine: "nft" });
}

// Limitation: the apply figure starts from a validated policy; the
// validation time is reported beside it, not inside it.
async function applyFull(args: TaskArgs): Promise<TaskResult> {
  const value = addressPolicyValue(args.size);
  const validate: number[] = [];
  const policy = normalize(value);
  const dir = await Deno.makeTempDir({ prefix: "palisade-bench-" });
  const script = `${dir}/policy.nft`;
  const scriptText = nftScript(policy);
  await Deno.writeTextFile(script, scriptText);
  const palisade: number[] = [];
  const reference: number[] = [];
  const textInProcess: number[] = [];
  const notes: string[] = [];
  try {
    using backend = await openEngine(args);
    // The same text through libnftables in this process: the reference
    // without the cost of starting `nft`, for the notes.
    using nft = new NftContext();
    for (let r = args.warmup ? -1 : 0; r < args.runs; r++) {
      const keep = r >= 0;
      const validateMs = timeMs(() => normalize(value));
      backend.removeAll();
      const applyMs = timeMs(() => backend.apply(policy, null));
      if (r === 0) mustReadBack(backend, policy, "Palisade's apply");

      backend.removeAll();
      const textMs = timeMs(() => nft.run(scriptText));
      if (r === 0) mustReadBack(backend, policy, "the in-process text load");

      backend.removeAll();
      const start = performance.now();
      const result = await run(["nft", "-f", script]);
      const loadMs = performance.now() - start;
      if (keep) {
        validate.push(validateMs);
        palisade.push(applyMs);
        reference.push(loadMs);
        textInProcess.push(textMs);
      }
      if (result.code !== 0) {
        throw new Error(`Cannot load the nft script: ${result.stderr}`);
      }
      if (r === 0) {
        // A reference that loads something else measures nothing.
        const check = backend.readBack(policy);
        if (!check.ok) {
          throw new Error(
            `Cannot compare with nft -f: its ruleset differs from ` +
              `Palisade's: ${check.detail}`,
          );
        }
        notes.push("the nft -f ruleset reads back equal to Palisade's");
      }
    }
    backend.removeAll();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return { samples: { palisade, reference, validate, textInProcess }, notes };
}

function mustReadBack(
  backend: Backend,
  policy: Parameters<Backend["readBack"]>[0],
  what: string,
): void {
  const check = backend.readBack(policy);
  if (!check.ok) {
    throw new Error(`Cannot confirm ${what}: ${check.detail}`);
  }
}

async function applyIncremental(args: TaskArgs): Promise<TaskResult> {
  const base = normalize(rulesPolicyValue(args.size));
  const edited = normalize(rulesPolicyValue(args.size, true));
  const palisade: number[] = [];
  const reference: number[] = [];
  const notes: string[] = [];
  using backend = await openEngine(args);
  backend.removeAll();
  backend.apply(base, null);
  for (let r = 0; r < args.runs; r++) {
    // One rule changes each way: base → edited through the small
    // transaction, edited → base as a full replace of the table.
    let incremental = false;
    palisade.push(timeMs(() => {
      incremental = backend.apply(edited, base).incremental;
    }));
    if (!incremental) notes.push(`run ${r + 1}: apply was not incremental`);
    if (r === 0) mustReadBack(backend, edited, "the incremental apply");
    reference.push(timeMs(() => backend.apply(base, null)));
  }
  mustReadBack(backend, base, "the full apply");
  backend.removeAll();
  return { samples: { palisade, reference }, notes };
}

async function panic(args: TaskArgs): Promise<TaskResult> {
  const policy = normalize(rulesPolicyValue(args.size));
  const palisade: number[] = [];
  using backend = await openEngine(args);
  for (let r = 0; r < args.runs; r++) {
    backend.apply(policy, null);
    let removed = 0;
    palisade.push(timeMs(() => removed = backend.removeAll()));
    if (removed === 0) throw new Error("Cannot measure panic: nothing removed");
    mustReadBack(backend, null, "panic");
  }
  return { samples: { palisade }, notes: [] };
}

async function revert(args: TaskArgs): Promise<TaskResult> {
  const host = "bench-host";
  const signer = benchSigner();
  const bigValue = rulesPolicyValue(args.size);
  const stateDir = await Deno.makeTempDir({ prefix: "palisade-bench-" });
  const palisade: number[] = [];
  const notes: string[] = [];
  let onRevert: ((at: number) => void) | null = null;
  const onEvent = (event: ManagerEvent) => {
    if (event.event === "revert") onRevert?.(Date.now());
  };
  using backend = await openEngine(args);
  backend.removeAll();
  try {
    await using manager = await PolicyManager.open({
      backend,
      stateDir,
      trust: signer.trust,
      host,
      groups: [],
      commitWindow: { default: 2, max: 60 },
      onEvent,
    });
    const first = await manager.push(
      signer.bundle(baselinePolicyValue(), 1, host, 60),
      { connection: "push-1" },
    );
    await manager.confirm(
      signer.confirm(host, first.generation, first.nonce),
      { connection: "heartbeat-1" },
    );
    for (let r = 0; r < args.runs; r++) {
      const bundle = signer.bundle(bigValue, r + 2, host, 2);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const reverted = new Promise<number>((resolve, reject) => {
        onRevert = resolve;
        timer = setTimeout(
          () => reject(new Error("Cannot see a revert within 120 s")),
          120_000,
        );
      });
      const pushed = await manager.push(bundle, {
        connection: `push-${r + 2}`,
      });
      const at = await reverted.finally(() => clearTimeout(timer));
      palisade.push(at - Date.parse(pushed.deadline));
      const status = manager.status();
      if (status.active?.name !== "baseline") {
        throw new Error(
          `Cannot confirm the revert: ${status.active?.name} is active`,
        );
      }
    }
    notes.push(
      `pending ${args.size}-rule policy reverted to a 2-rule last known good`,
    );
  } finally {
    backend.removeAll();
    await Deno.remove(stateDir, { recursive: true });
  }
  return { samples: { palisade }, notes };
}

/**
 * The product's verifyBundle() against the same steps with each
 * Ed25519 library under the same strict rules: @noble/ed25519 (through
 * `verifyEd25519Noble` where the product keeps it as its reference,
 * else `verifyEd25519`) and WebCrypto.
 */
async function verify(args: TaskArgs): Promise<TaskResult> {
  const signer = benchSigner();
  const tiny = signer.bundle(baselinePolicyValue(), 1, "bench-host", 60);
  // About 1 MB of policy: rules with address lists.
  const rules = Array.from({ length: 3000 }, (_, i) => ({
    id: `rule-${i}`,
    action: "block",
    direction: "out",
    protocol: "tcp",
    remote: Array.from(
      { length: 12 },
      (_, j) => `198.51.${i % 256}.${j * 16}/28`,
    ),
    remotePorts: [445, "137-139"],
  }));
  const large = signer.bundle({ name: "large", rules }, 1, "bench-host", 60);
  const exports = signing as unknown as Record<string, unknown>;
  const nobleName = typeof exports.verifyEd25519Noble === "function"
    ? "verifyEd25519Noble"
    : "verifyEd25519";
  const native = exports.verifyEd25519Native as Ed25519Verifier | undefined;
  const noble = exports[nobleName] as Ed25519Verifier;
  const notes = [
    `tiny bundle ${tiny.length} bytes, large ${large.length}`,
    `@noble/ed25519 through ${nobleName}()`,
  ];
  const trust = signer.trust;
  const ways: Record<string, () => Promise<unknown> | unknown> = {};
  const samples: Record<string, number[]> = {};
  for (const [label, bundle] of [["tiny", tiny], ["1mb", large]] as const) {
    ways[`${label}-product`] = () => verifyBundle(bundle, { trust });
    ways[`${label}-noble`] = () =>
      verifyBundleWebCrypto(bundle, trust, new Date(), noble);
    ways[`${label}-webcrypto`] = () => verifyBundleWebCrypto(bundle, trust);
    if (native !== undefined) {
      ways[`${label}-native`] = () =>
        verifyBundleWebCrypto(bundle, trust, new Date(), native);
    }
  }
  for (const [name, fn] of Object.entries(ways)) {
    // Enough verifications per sample to last about 0.1 s with noble.
    const iterations = name.startsWith("tiny") ? 200 : 10;
    await fn();
    samples[name] = [];
    for (let r = 0; r < args.runs; r++) {
      samples[name].push(
        await timeMsAsync(async () => {
          for (let i = 0; i < iterations; i++) await fn();
        }) / iterations,
      );
    }
  }
  const product = exports.VERIFY_IMPLEMENTATION === "native"
    ? "native"
    : "noble";
  return { samples, notes, info: { product } };
}

async function service(args: TaskArgs): Promise<TaskResult> {
  await assertInBenchNetns(args.ns ?? "");
  const samples = await measureService(args.runs, args.size);
  return {
    samples: {
      start: samples.startMs,
      rssIdle: samples.rssIdleMiB,
      rssHeld: samples.rssHeldMiB,
    },
    notes: [],
  };
}

const TASKS: Record<
  string,
  (args: TaskArgs) => Promise<TaskResult> | TaskResult
> = {
  "apply-full": applyFull,
  "apply-incremental": applyIncremental,
  panic,
  revert,
  "ffi-filter-add": async (args) =>
    (await import("./_wfp_ffi.ts")).ffiFilterAdd(args),
  verify,
  service,
};

if (import.meta.main) {
  const [task, json] = Deno.args;
  const fn = TASKS[task];
  if (fn === undefined) {
    console.error(`Cannot run task ${task}: unknown`);
    Deno.exit(2);
  }
  const result = await fn(JSON.parse(json ?? "{}") as TaskArgs);
  console.log(`RESULT ${JSON.stringify(result)}`);
  Deno.exit(0);
}
