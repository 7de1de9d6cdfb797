/**
 * Palisade's benchmark suite, `deno task bench [--quick] [--out DIR]`:
 * each measurement next to its reference on the same machine in the
 * same run, reported as median, min and max with the ratio palisade ÷
 * reference (lower is better). Benchmarks print; they never fail on
 * time, only when a measurement cannot be taken.
 *
 * Writes `results.json` (one entry per measurement), `samples.json`
 * (every sample, with sizes and notes) and `apply.svg` to the output
 * folder: `bench/` by default, a new temporary folder with `--quick`.
 *
 * Everything that changes nftables runs in a worker process started
 * inside a fresh network namespace made for it and deleted afterwards.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  canUseNetns,
  CHILD_TIMEOUT_MS,
  deleteLiveNetns,
  mustRun,
  run,
  withBenchNetns,
} from "./_netns.ts";
import { round, summarize, type Summary } from "./_stats.ts";
import { applyChart } from "./_svg.ts";

const HERE = new URL("./", import.meta.url).pathname;
const ROOT = new URL("../", import.meta.url).pathname;
const WORKER = `${HERE}_worker.ts`;
const WORKER_FLAGS = [
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-ffi",
  "--allow-net",
  "--allow-env",
  "--allow-sys",
];

/** One line of `results.json`. */
export interface BenchResult {
  name: string;
  unit: string;
  /** Median of Palisade's samples; null when it could not be measured. */
  palisade: number | null;
  /** Median of the reference's samples, where there is one. */
  reference?: number | null;
  /** palisade ÷ reference; lower is better. */
  ratio?: number | null;
}

/** Every sample of one measurement, as `samples.json` keeps it. */
export interface Measurement {
  name: string;
  unit: string;
  /** What the measurement ran on: addresses, rules or filters. */
  size?: number;
  palisade: number[];
  reference?: number[];
  /** What the reference is. */
  referenceLabel?: string;
  /** The goal, for the table. */
  goal?: string;
  notes: string[];
  /** Why it could not be measured. */
  error?: string;
  /** Further sample series, for context. */
  extra?: Record<string, number[]>;
}

/** Sizes and run counts of one suite run. */
export interface BenchPlan {
  quick: boolean;
  applySizes: number[];
  applyRuns: number;
  warmup: boolean;
  incrementalRules: number;
  incrementalRuns: number;
  revertRules: number;
  revertRuns: number;
  panicRuns: number;
  ffiFilters: number;
  ffiRuns: number;
  verifyRuns: number;
  serviceRuns: number;
  serviceAddresses: number;
}

/**
 * The full suite (under 10 minutes on 2 cores) or its smoke version.
 *
 * @example
 * ```ts
 * import { benchPlan } from "./bench.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(benchPlan(true).applySizes, [100, 1000, 10000, 50000]);
 * ```
 */
export function benchPlan(quick: boolean): BenchPlan {
  return quick
    ? {
      quick,
      applySizes: [100, 1_000, 10_000, 50_000],
      applyRuns: 1,
      warmup: false,
      // Limitation: the smoke version measures the one-rule change on
      // 1,000 rules, still reported as apply-incremental-nft-10000.
      incrementalRules: 1_000,
      incrementalRuns: 1,
      revertRules: 10_000,
      revertRuns: 1,
      panicRuns: 1,
      ffiFilters: 10_000,
      ffiRuns: 1,
      verifyRuns: 1,
      serviceRuns: 1,
      serviceAddresses: 50_000,
    }
    : {
      quick,
      applySizes: [100, 1_000, 10_000, 50_000],
      applyRuns: 9,
      warmup: true,
      incrementalRules: 10_000,
      incrementalRuns: 7,
      revertRules: 10_000,
      revertRuns: 5,
      panicRuns: 9,
      ffiFilters: 10_000,
      ffiRuns: 9,
      verifyRuns: 9,
      serviceRuns: 5,
      serviceAddresses: 50_000,
    };
}

interface WorkerResult {
  samples: Record<string, number[]>;
  notes: string[];
  info?: Record<string, string>;
}

async function worker(
  task: string,
  args: Record<string, unknown>,
  ns?: string,
): Promise<WorkerResult> {
  const argv = [
    Deno.execPath(),
    "run",
    ...WORKER_FLAGS,
    WORKER,
    task,
    JSON.stringify({ ...args, ns }),
  ];
  const full = ns === undefined ? argv : ["ip", "netns", "exec", ns, ...argv];
  const result = await run(full, CHILD_TIMEOUT_MS);
  const line = result.stdout.split("\n").find((l) => l.startsWith("RESULT "));
  if (result.code !== 0 || line === undefined) {
    const tail = result.stderr.trim().split("\n").slice(-6).join("\n");
    throw new Error(
      `Cannot run bench task ${task}: exit ${result.code}: ${tail}`,
    );
  }
  return JSON.parse(line.slice("RESULT ".length));
}

function inNetns(
  task: string,
  args: Record<string, unknown>,
): Promise<WorkerResult> {
  if (!canUseNetns()) {
    throw new Error(
      "Cannot make a network namespace for this measurement: needs root " +
        "on Linux",
    );
  }
  return withBenchNetns((ns) => worker(task, args, ns));
}

/** The simulator library, and the C loop linked against it. */
interface SimTools {
  library: string;
  cLoop: string | null;
}

/**
 * Builds the simulator from its current sources the way `deno task
 * build:wfpsim` does, into `tmp`, so a stale build is never measured;
 * falls back to the built library when the sources do not compile.
 */
async function simTools(tmp: string): Promise<SimTools> {
  const built = `${ROOT}tools/wfpsim/libwfpsim.so`;
  let library = `${tmp}/libwfpsim.so`;
  const sources = ["wfpsim.c", "wfpsim_store.c"].map((f) =>
    `${ROOT}tools/wfpsim/${f}`
  );
  try {
    await mustRun([
      "gcc",
      "-O2",
      "-shared",
      "-fPIC",
      "-fvisibility=hidden",
      "-o",
      library,
      ...sources,
    ]);
  } catch (error) {
    if (!exists(built)) throw error;
    library = built;
  }
  const source = `${ROOT}tools/wfpsim/bench_add.c`;
  if (!exists(source)) return { library, cLoop: null };
  const cLoop = `${tmp}/bench_add`;
  const dir = library.slice(0, library.lastIndexOf("/"));
  await mustRun([
    "gcc",
    "-O2",
    `-I${ROOT}tools/wfpsim`,
    "-o",
    cLoop,
    source,
    library,
    `-Wl,-rpath,${dir}`,
  ]);
  return { library, cLoop };
}

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

async function cLoopSamples(
  cLoop: string,
  filters: number,
  runs: number,
): Promise<number[]> {
  const samples: number[] = [];
  for (let r = 0; r < runs; r++) {
    const out = JSON.parse(await mustRun([cLoop, String(filters)]));
    samples.push(out.seconds * 1e6 / out.filters);
  }
  return samples;
}

/**
 * Runs every measurement of `plan`; one that fails is kept with its
 * error and the rest still run.
 */
export async function measureAll(
  plan: BenchPlan,
  log: (line: string) => void = () => {},
): Promise<Measurement[]> {
  const out: Measurement[] = [];
  const tmp = await Deno.makeTempDir({ prefix: "palisade-bench-" });
  const step = async (
    base: Omit<Measurement, "palisade" | "notes">,
    fn: () => Promise<Partial<Measurement>>,
  ) => {
    log(`measuring ${base.name} …`);
    const m: Measurement = { ...base, palisade: [], notes: [] };
    try {
      Object.assign(m, await fn());
    } catch (error) {
      m.error = error instanceof Error ? error.message : String(error);
      log(`  failed: ${m.error}`);
    }
    out.push(m);
  };

  try {
    for (const size of plan.applySizes) {
      await step({
        name: `apply-full-nft-${size}`,
        unit: "ms",
        size,
        referenceLabel: "nft -f",
        goal: "≤ 1.2",
      }, async () => {
        const r = await inNetns("apply-full", {
          size,
          runs: plan.applyRuns,
          warmup: plan.warmup,
        });
        return {
          palisade: r.samples.palisade,
          reference: r.samples.reference,
          notes: [
            ...r.notes,
            `policy validation (not in the apply figure): median ${
              round(summarize(r.samples.validate).median)
            } ms`,
            `the nft text loaded through libnftables in-process (no nft ` +
            `process): median ${
              round(summarize(r.samples.textInProcess).median)
            } ms`,
          ],
          extra: {
            validate: r.samples.validate,
            textInProcess: r.samples.textInProcess,
          },
        };
      });
    }

    await step({
      name: "apply-incremental-nft-10000",
      unit: "ms",
      size: plan.incrementalRules,
      referenceLabel: "full re-apply",
      goal: "≤ 0.05 (20× faster)",
    }, async () => {
      const r = await inNetns("apply-incremental", {
        size: plan.incrementalRules,
        runs: plan.incrementalRuns,
      });
      return {
        palisade: r.samples.palisade,
        reference: r.samples.reference,
        notes: r.notes,
      };
    });

    const sim = await simTools(tmp).catch((error) => error as Error);
    for (const engine of ["nft", "sim"] as const) {
      const args = engine === "nft"
        ? { engine: "nft" }
        : { engine: "wfp", simLibrary: (sim as SimTools).library };
      const task = (name: string, a: Record<string, unknown>) => {
        if (engine === "nft") return inNetns(name, { ...args, ...a });
        if (sim instanceof Error) throw sim;
        return worker(name, { ...args, ...a });
      };
      await step({
        name: `revert-${engine}-10000`,
        unit: "ms",
        size: plan.revertRules,
      }, async () => {
        const r = await task("revert", {
          size: plan.revertRules,
          runs: plan.revertRuns,
        });
        return { palisade: r.samples.palisade, notes: r.notes };
      });
      await step({
        name: `panic-${engine}-10000`,
        unit: "ms",
        size: plan.revertRules,
      }, async () => {
        const r = await task("panic", {
          size: plan.revertRules,
          runs: plan.panicRuns,
        });
        return { palisade: r.samples.palisade, notes: r.notes };
      });
    }

    await step({
      name: "ffi-filter-add-sim",
      unit: "us/filter",
      size: plan.ffiFilters,
      referenceLabel: "C loop",
      goal: "≤ 2",
    }, async () => {
      if (sim instanceof Error) throw sim;
      const r = await worker("ffi-filter-add", {
        size: plan.ffiFilters,
        runs: plan.ffiRuns,
        simLibrary: sim.library,
      });
      if (sim.cLoop === null) {
        return {
          palisade: r.samples.palisade,
          notes: ["tools/wfpsim/bench_add.c is absent: no C reference"],
        };
      }
      const reference = await cLoopSamples(
        sim.cLoop,
        plan.ffiFilters,
        plan.ffiRuns,
      );
      return { palisade: r.samples.palisade, reference };
    });

    // Palisade is verifyBundle() with the library the product uses; the
    // reference is the same steps with the other library.
    let verify: WorkerResult | Error | null = null;
    for (const label of ["tiny", "1mb"] as const) {
      await step({
        name: `verify-${label}`,
        unit: "ms",
        referenceLabel: "other library",
      }, async () => {
        verify ??= await worker("verify", { size: 0, runs: plan.verifyRuns })
          .catch((error) => error as Error);
        if (verify instanceof Error) throw verify;
        const native = verify.info?.product === "native";
        const other = native ? "noble" : "webcrypto";
        return {
          palisade: verify.samples[`${label}-product`],
          reference: verify.samples[`${label}-${other}`],
          referenceLabel: native
            ? "@noble/ed25519, same strict rules"
            : "WebCrypto, same strict rules",
          notes: [
            `palisade: verifyBundle() with ${
              native ? "native Ed25519 (node:crypto)" : "@noble/ed25519"
            }, the product's`,
            ...verify.notes,
          ],
          extra: {
            noble: verify.samples[`${label}-noble`],
            webcrypto: verify.samples[`${label}-webcrypto`],
          },
        };
      });
    }

    let service: WorkerResult | Error | null = null;
    const serviceStep = (name: string, unit: string, key: string) =>
      step({ name, unit, size: plan.serviceAddresses }, async () => {
        service ??= await inNetns("service", {
          size: plan.serviceAddresses,
          runs: plan.serviceRuns,
        }).catch((error) => error as Error);
        if (service instanceof Error) throw service;
        return { palisade: service.samples[key], notes: service.notes };
      });
    await serviceStep("start-ms", "ms", "start");
    await serviceStep("rss-idle-mb", "MiB", "rssIdle");
    await serviceStep("rss-50000-mb", "MiB", "rssHeld");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  return out;
}

/**
 * The `results.json` entry of a measurement: medians, and the ratio
 * palisade ÷ reference where there is a reference.
 *
 * @example
 * ```ts
 * import { resultOf } from "./bench.ts";
 * import assert from "node:assert/strict";
 *
 * const entry = resultOf({
 *   name: "apply-full-nft-100",
 *   unit: "ms",
 *   palisade: [2, 3, 4],
 *   reference: [6, 6, 6],
 *   referenceLabel: "nft -f",
 *   notes: [],
 * });
 * assert.equal(entry.ratio, 0.5);
 * ```
 */
export function resultOf(m: Measurement): BenchResult {
  const palisade = m.palisade.length > 0
    ? round(summarize(m.palisade).median)
    : null;
  const entry: BenchResult = { name: m.name, unit: m.unit, palisade };
  if (m.referenceLabel !== undefined) {
    const reference = m.reference !== undefined && m.reference.length > 0
      ? round(summarize(m.reference).median)
      : null;
    entry.reference = reference;
    entry.ratio = palisade !== null && reference !== null && reference > 0
      ? round(palisade / reference, 3)
      : null;
  }
  return entry;
}

function span(samples: number[] | undefined): string {
  if (samples === undefined || samples.length === 0) return "–";
  const s: Summary = summarize(samples);
  return `${round(s.median, 3)} (${round(s.min, 3)}–${round(s.max, 3)})`;
}

/** The console table. */
export function table(measurements: Measurement[]): string {
  const rows = [[
    "measurement",
    "unit",
    "palisade median (min–max)",
    "reference median (min–max)",
    "ratio",
    "goal",
  ]];
  for (const m of measurements) {
    const r = resultOf(m);
    rows.push([
      m.name,
      m.unit,
      m.error !== undefined ? "NOT MEASURED" : span(m.palisade),
      m.referenceLabel === undefined
        ? ""
        : `${span(m.reference)} ${m.referenceLabel}`,
      r.ratio === undefined || r.ratio === null ? "" : String(r.ratio),
      m.goal ?? "",
    ]);
  }
  const widths = rows[0].map((_, i) =>
    Math.max(...rows.map((row) => row[i].length))
  );
  const line = (row: string[]) =>
    row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd();
  return [
    line(rows[0]),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...rows.slice(1).map(line),
  ].join("\n");
}

function perSecond(m: Measurement): string | null {
  const per = (unit: string, samples?: number[]) =>
    samples && samples.length > 0
      ? Math.round(
        unit === "ms"
          ? 1000 / summarize(samples).median
          : 1e6 / summarize(samples).median,
      )
      : null;
  if (m.name === "ffi-filter-add-sim") {
    return `ffi-filter-add-sim: ${per("us", m.palisade)} filters/s through ` +
      `the binding, ${per("us", m.reference)} filters/s from C`;
  }
  if (m.name.startsWith("verify-")) {
    const extra = (key: string) =>
      per("ms", m.extra?.[key]) === null ? "–" : per("ms", m.extra?.[key]);
    return `${m.name}: ${per("ms", m.palisade)} bundles/s with ` +
      `verifyBundle(), ${extra("noble")} with @noble/ed25519, ` +
      `${extra("webcrypto")} with WebCrypto`;
  }
  return null;
}

/** Writes `results.json`, `samples.json` and `apply.svg` to `dir`. */
export async function writeOutputs(
  dir: string,
  plan: BenchPlan,
  measurements: Measurement[],
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const results = measurements.map(resultOf);
  await Deno.writeTextFile(
    `${dir}/results.json`,
    JSON.stringify(results, null, 2) + "\n",
  );
  await Deno.writeTextFile(
    `${dir}/samples.json`,
    JSON.stringify(
      {
        command: `deno task bench${plan.quick ? " --quick" : ""}`,
        generated: new Date().toISOString(),
        deno: Deno.version.deno,
        os: `${Deno.build.os} ${Deno.osRelease()}`,
        cpus: navigator.hardwareConcurrency,
        plan,
        measurements,
      },
      null,
      2,
    ) + "\n",
  );

  const series = [
    {
      label: "Palisade (libnftables, in-process)",
      color: "#1f77b4",
      key: "palisade",
    },
    { label: "nft -f (same ruleset)", color: "#d62728", key: "reference" },
  ] as const;
  const applies = measurements.filter((m) =>
    m.name.startsWith("apply-full-nft-") && m.error === undefined
  );
  if (applies.length > 0) {
    await Deno.writeTextFile(
      `${dir}/apply.svg`,
      applyChart(
        "Full apply into a fresh network namespace",
        series.map((s) => ({
          label: s.label,
          color: s.color,
          points: applies
            .filter((m) => (m[s.key] ?? []).length > 0)
            .map((m) => ({ size: m.size!, time: summarize(m[s.key]!) })),
        })),
      ),
    );
    // In the repository's own format, so the committed chart stays
    // `deno fmt` clean; a chart that is not formatted is still valid.
    await run([Deno.execPath(), "fmt", "--quiet", `${dir}/apply.svg`]);
  }
}

/** Runs the suite from the command line; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: "boolean", default: false },
      out: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(
      "Usage: deno task bench [--quick] [--out DIR]\n\n" +
        "  --quick    smoke version: small sizes, one run, under a minute\n" +
        "  --out DIR  where results.json, samples.json and apply.svg go\n" +
        "             (default bench/, or a temporary folder with --quick)",
    );
    return 0;
  }
  const plan = benchPlan(values.quick);
  const dir = values.out ??
    (plan.quick
      ? await Deno.makeTempDir({ prefix: "palisade-bench-quick-" })
      : HERE.replace(/\/$/, ""));
  if (!canUseNetns()) {
    console.error(
      "warning: not root; the nftables and service measurements need " +
        "network namespaces and will be marked NOT MEASURED",
    );
  }

  // An interrupted run still deletes its namespaces; Ctrl-C reaches the
  // workers too, as they share the terminal's process group.
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const onSignal = () => {
    deleteLiveNetns();
    Deno.exit(130);
  };
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);

  const started = performance.now();
  let measurements: Measurement[];
  try {
    measurements = await measureAll(plan, (l) => console.error(l));
  } finally {
    for (const signal of signals) {
      Deno.removeSignalListener(signal, onSignal);
    }
  }
  await writeOutputs(dir, plan, measurements);

  console.log(table(measurements));
  console.log("");
  for (const m of measurements) {
    const line = perSecond(m);
    if (line !== null) console.log(line);
  }
  for (const m of measurements) {
    for (const note of m.notes) console.log(`${m.name}: ${note}`);
    if (m.error !== undefined) console.log(`${m.name}: ERROR ${m.error}`);
  }
  if (plan.quick) {
    console.log(
      "\n--quick: smoke sizes and one run (incremental on " +
        `${plan.incrementalRules} rules); figures are not comparable`,
    );
  }
  const chart =
    measurements.some((m) =>
        m.name.startsWith("apply-full-") && m.error === undefined
      )
      ? ", apply.svg"
      : "";
  console.log(
    `\nwrote ${dir}/results.json, samples.json${chart} in ` +
      `${Math.round((performance.now() - started) / 1000)} s`,
  );
  return measurements.some((m) => m.error !== undefined) ? 1 : 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
