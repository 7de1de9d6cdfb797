/**
 * `deno task assess`: runs the reliability matrix (crash points, engine
 * faults, bad input, resource pressure, damaged state, soak) with full
 * counts and writes `RELIABILITY.md`, a Reliability Engineer Assessment
 * generated from this run's JUnit reports and soak figures only.
 *
 * ```sh
 * deno task assess                       # 10,000 fuzz cases per target,
 *                                        # 10,000 sim / 1,000 nft cycles
 * deno task assess --fuzz-runs 500 --soak-sim 500 --soak-nft 100
 * ```
 *
 * The files that change nftables re-run inside a network namespace
 * this tool creates and deletes (`ip netns`); that needs root. Without
 * root they skip, and the approval can be CONDITIONAL at best.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  type CaseResult,
  evidenceLine,
  exercisedCrashPoints,
  FAILURE_MODES,
  SECTIONS,
} from "./_assess_report.ts";

/** The flags of `deno task test`. */
export const TEST_FLAGS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-net",
  "--allow-ffi",
  "--allow-sys",
  "--allow-run=ip,nft,openssl,deno,gcc,x86_64-w64-mingw32-gcc,mount,umount,sh",
];

/** The matrix: test files, and whether each must run in a namespace. */
export const MATRIX: { file: string; netns: boolean }[] = [
  { file: "service/_crash_hook_test.ts", netns: false },
  { file: "tests/reliability/crash_sim_test.ts", netns: false },
  { file: "tests/reliability/crash_nft_test.ts", netns: true },
  { file: "tests/reliability/crash_serve_test.ts", netns: true },
  { file: "tests/reliability/crash_serve_wfp_test.ts", netns: false },
  { file: "tests/reliability/crash_engine_sim_test.ts", netns: false },
  { file: "tests/reliability/crash_engine_nft_test.ts", netns: true },
  { file: "tests/reliability/faults_sim_test.ts", netns: false },
  { file: "tests/reliability/faults_nft_test.ts", netns: true },
  { file: "tests/reliability/fuzz_test.ts", netns: false },
  { file: "tests/reliability/pressure_test.ts", netns: false },
  { file: "tests/reliability/state_damage_test.ts", netns: false },
  { file: "tests/reliability/soak_sim_test.ts", netns: false },
  { file: "tests/reliability/soak_nft_test.ts", netns: true },
];

/** Counts of one run. */
export interface Counts {
  fuzzRuns: number;
  soakSim: number;
  soakNft: number;
}

function unescapeXml(text: string): string {
  return text.replace(/&(quot|apos|lt|gt|amp|#\d+|#x[0-9a-f]+);/gi, (_, e) => {
    const named: Record<string, string> = {
      quot: '"',
      apos: "'",
      lt: "<",
      gt: ">",
      amp: "&",
    };
    if (e in named) return named[e];
    const code = e[1] === "x" || e[1] === "X"
      ? parseInt(e.slice(2), 16)
      : parseInt(e.slice(1), 10);
    return String.fromCodePoint(code);
  });
}

/**
 * The test cases of a `deno test --reporter=junit` report, attributed
 * to the repository-relative `file` that was run.
 *
 * @example
 * ```ts
 * import { parseJunit } from "./assess.ts";
 * const xml = '<testcase name="a &amp; b" time="0.5"></testcase>';
 * const [c] = parseJunit(xml, "x_test.ts");
 * if (c.name !== "a & b" || c.outcome !== "passed") throw new Error();
 * ```
 */
export function parseJunit(xml: string, file: string): CaseResult[] {
  const cases: CaseResult[] = [];
  const pattern = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const match of xml.matchAll(pattern)) {
    const attrs = match[1];
    const body = match[3] ?? "";
    const name = /\bname="([^"]*)"/.exec(attrs)?.[1] ?? "";
    const time = Number(/\btime="([^"]*)"/.exec(attrs)?.[1] ?? 0);
    const failure = /<(failure|error)\b([^>]*)>?/.exec(body);
    const result: CaseResult = {
      file,
      name: unescapeXml(name),
      outcome: failure
        ? "failed"
        : /<skipped\b/.test(body)
        ? "skipped"
        : "passed",
      seconds: Number.isFinite(time) ? time : 0,
    };
    if (failure) {
      const message = /\bmessage="([^"]*)"/.exec(failure[2])?.[1];
      if (message) result.message = unescapeXml(message).slice(0, 300);
    }
    cases.push(result);
  }
  return cases;
}

/** The approval: APPROVED only when every check ran and passed. */
export function decide(
  results: CaseResult[],
  opts: { missing: string[]; root: boolean; fullCounts: boolean },
): { verdict: "APPROVED" | "CONDITIONAL" | "BLOCKED"; reasons: string[] } {
  const reasons: string[] = [];
  const failed = results.filter((r) => r.outcome === "failed");
  if (failed.length > 0 || opts.missing.length > 0) {
    for (const f of failed) reasons.push(`failed: ${f.file}: ${f.name}`);
    for (const m of opts.missing) reasons.push(`no result: ${m}`);
    return { verdict: "BLOCKED", reasons };
  }
  const skipped = results.filter((r) => r.outcome === "skipped");
  for (const s of skipped) reasons.push(`skipped: ${s.file}: ${s.name}`);
  if (!opts.root) reasons.push("not run as root: namespace and tmpfs checks");
  if (!opts.fullCounts) reasons.push("reduced counts (see Run)");
  return { verdict: reasons.length > 0 ? "CONDITIONAL" : "APPROVED", reasons };
}

/** Everything the report is made of. */
export interface ReportInput {
  date: string;
  deno: string;
  seconds: number;
  counts: Counts;
  fullCounts: boolean;
  root: boolean;
  files: { file: string; passed: number; failed: number; skipped: number }[];
  results: CaseResult[];
  soak: Record<string, unknown>[];
  missing: string[];
}

function check(ok: boolean): string {
  return ok ? "x" : " ";
}

/** The text of `RELIABILITY.md`. */
export function renderReport(input: ReportInput): string {
  // A claim whose proof matched no test case is a missing check.
  const unproven = new Set<string>();
  const all = [
    ...FAILURE_MODES.flatMap((m) => m.evidence),
    ...SECTIONS.flatMap((s) => s.claims.flatMap((c) => c.evidence)),
  ];
  for (const evidence of all) {
    if (
      !input.results.some((r) =>
        r.file === evidence.file && evidence.match.test(r.name)
      )
    ) {
      unproven.add(`${evidence.file} (${evidence.match})`);
    }
  }
  const { verdict, reasons } = decide(input.results, {
    missing: [...input.missing, ...unproven],
    root: input.root,
    fullCounts: input.fullCounts,
  });
  const out: string[] = [];
  const total = input.results.length;
  const passed = input.results.filter((r) => r.outcome === "passed").length;
  out.push("# Reliability Engineer Assessment");
  out.push("");
  out.push(
    "Generated by `deno task assess` from the results of one run; " +
      "do not edit by hand. Method: `docs/reliability.md`.",
  );
  out.push("");
  out.push("## Run");
  out.push("");
  out.push(`- Date: ${input.date}; Deno ${input.deno}; ${input.seconds} s`);
  out.push(
    `- Counts: ${input.counts.fuzzRuns} bad-input cases per target; ` +
      `soak ${input.counts.soakSim} cycles on the WFP simulator and ` +
      `${input.counts.soakNft} on nftables` +
      (input.fullCounts ? " (full counts)" : " (REDUCED counts)"),
  );
  out.push(`- Root: ${input.root ? "yes" : "no"}`);
  out.push(`- Test cases: ${passed}/${total} passed`);
  out.push("");
  out.push("| test file | passed | failed | skipped |");
  out.push("| --- | --- | --- | --- |");
  for (const f of input.files) {
    out.push(`| \`${f.file}\` | ${f.passed} | ${f.failed} | ${f.skipped} |`);
  }
  out.push("");

  out.push("## Failure modes");
  out.push("");
  FAILURE_MODES.forEach((mode, i) => {
    const marker = `${i + 1}. `;
    // Sub-items are indented by the marker's width, so that they stay
    // under their item for items 10 and up too.
    const sub = " ".repeat(marker.length);
    out.push(`${marker}**${mode.title}**: ${mode.trigger}`);
    out.push(`${sub}- Impact: ${mode.impact}`);
    out.push(`${sub}- Detection: ${mode.detection}`);
    out.push(`${sub}- Recovery: ${mode.recovery}`);
    out.push(`${sub}- Safe state: ${mode.safeState}`);
    for (const evidence of mode.evidence) {
      const line = evidenceLine(evidence, input.results);
      out.push(`${sub}- [${check(line.ok)}] Proof: ${line.text}`);
    }
    const panic = mode.title.startsWith("Panic");
    for (const file of mode.crashPoints ?? []) {
      const lines = exercisedCrashPoints(file, input.results, { panic });
      out.push(
        `${sub}- Crash points exercised by passed tests of \`${file}\`:` +
          (lines.length === 0 ? " none" : ""),
      );
      for (const line of lines) out.push(`${sub}  - ${line}`);
    }
  });
  out.push("");

  for (const section of SECTIONS) {
    out.push(`## ${section.title}`);
    out.push("");
    for (const claim of section.claims) {
      const lines = claim.evidence.map((e) => evidenceLine(e, input.results));
      const ok = lines.every((l) => l.ok);
      out.push(`- [${check(ok)}] ${claim.text}`);
      for (const line of lines) out.push(`  - ${line.text}`);
    }
    out.push("");
  }

  out.push("## Soak figures");
  out.push("");
  if (input.soak.length === 0) {
    out.push("No soak figures were recorded in this run.");
  } else {
    out.push(
      "| engine | cycles | failures | s | RSS after warm-up KiB | RSS end KiB | growth % | max handles | max unfreed | fds warm/end | log bytes (bound) |",
    );
    out.push(
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    );
    for (const s of input.soak) {
      const log = s.log as { bytes: number };
      const bound = s.logBound as { bytes: number };
      out.push(
        `| ${s.engine} | ${s.cycles} | ${s.failures} | ${s.seconds} | ` +
          `${s.rssWarmKiB} | ${s.rssEndKiB} | ${s.rssGrowthPct} | ` +
          `${s.maxOpenHandles ?? "n/a"} | ${
            s.maxUnfreedAllocations ?? "n/a"
          } | ` +
          `${s.fdsWarm ?? "?"}/${
            s.fdsEnd ?? "?"
          } | ${log.bytes} (${bound.bytes}) |`,
      );
    }
    out.push("");
    out.push(
      "Warm-up is the first half of the cycles; resident memory per tenth " +
        "of the run (KiB):",
    );
    out.push("");
    for (const s of input.soak) {
      out.push(`- ${s.engine}: ${(s.rssCurveKiB as number[]).join(", ")}`);
    }
  }
  out.push("");

  out.push("## Approval");
  out.push("");
  out.push(`- [${check(verdict === "APPROVED")}] APPROVED`);
  out.push(`- [${check(verdict === "CONDITIONAL")}] CONDITIONAL`);
  out.push(`- [${check(verdict === "BLOCKED")}] BLOCKED`);
  out.push("");
  if (reasons.length > 0) {
    out.push("Reasons:");
    out.push("");
    for (const reason of reasons) out.push(`- ${reason}`);
    out.push("");
  }
  return out.join("\n");
}

async function run(argv: string[], env: Record<string, string>) {
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(1_800_000),
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

/** Runs one test file with a JUnit report; in a fresh namespace if asked. */
async function runFile(
  root: string,
  entry: { file: string; netns: boolean },
  env: Record<string, string>,
  work: string,
  index: number,
): Promise<CaseResult[] | null> {
  const junit = `${work}/${index}.xml`;
  const test = [
    "deno",
    "test",
    ...TEST_FLAGS,
    "--reporter=dot",
    `--junit-path=${junit}`,
    `${root}/${entry.file}`,
  ];
  let result;
  if (entry.netns && Deno.uid() === 0) {
    // Named like the test helpers' namespaces, so the file runs its
    // real tests here instead of re-running itself.
    const ns = `palisade-t${Deno.pid}-${index}-assess`;
    const add = await run(["ip", "netns", "add", ns], {});
    if (add.code !== 0) throw new Error(`Cannot add ${ns}: ${add.stderr}`);
    try {
      await run(["ip", "-n", ns, "link", "set", "lo", "up"], {});
      result = await run(["ip", "netns", "exec", ns, ...test], {
        ...env,
        PALISADE_TEST_NETNS: ns,
      });
    } finally {
      await run(["ip", "netns", "delete", ns], {});
    }
  } else {
    result = await run(test, env);
  }
  console.error(
    `${entry.file}: exit ${result.code}\n${result.stdout.slice(-2000)}`,
  );
  try {
    return parseJunit(await Deno.readTextFile(junit), entry.file);
  } catch {
    console.error(result.stderr.slice(-4000));
    return null;
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "fuzz-runs": { type: "string", default: "10000" },
      "soak-sim": { type: "string", default: "10000" },
      "soak-nft": { type: "string", default: "1000" },
      out: { type: "string", default: "RELIABILITY.md" },
    },
  });
  const counts: Counts = {
    fuzzRuns: Number(values["fuzz-runs"]),
    soakSim: Number(values["soak-sim"]),
    soakNft: Number(values["soak-nft"]),
  };
  for (const [k, v] of Object.entries(counts)) {
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new RangeError(`Cannot assess: --${k} must be a positive count`);
    }
  }
  const fullCounts = counts.fuzzRuns >= 10_000 && counts.soakSim >= 10_000 &&
    counts.soakNft >= 1_000;
  const root = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
  const work = await Deno.makeTempDir({ prefix: "palisade-assess-" });
  const figures = `${work}/soak.jsonl`;
  const env = {
    PALISADE_FUZZ_RUNS: String(counts.fuzzRuns),
    PALISADE_SOAK_SIM: String(counts.soakSim),
    PALISADE_SOAK_NFT: String(counts.soakNft),
    PALISADE_REL_FIGURES: figures,
    NO_COLOR: "1",
  };
  const started = performance.now();
  const results: CaseResult[] = [];
  const files: ReportInput["files"] = [];
  const missing: string[] = [];
  try {
    for (const [index, entry] of MATRIX.entries()) {
      const cases = await runFile(root, entry, env, work, index);
      if (cases === null || cases.length === 0) {
        missing.push(entry.file);
        continue;
      }
      results.push(...cases);
      files.push({
        file: entry.file,
        passed: cases.filter((c) => c.outcome === "passed").length,
        failed: cases.filter((c) => c.outcome === "failed").length,
        skipped: cases.filter((c) => c.outcome === "skipped").length,
      });
    }
    let soak: Record<string, unknown>[] = [];
    try {
      soak = (await Deno.readTextFile(figures)).trim().split("\n")
        .filter((l) => l !== "").map((l) => JSON.parse(l));
    } catch {
      // No soak ran.
    }
    const text = renderReport({
      date: new Date().toISOString(),
      deno: Deno.version.deno,
      seconds: Math.round((performance.now() - started) / 1000),
      counts,
      fullCounts,
      root: Deno.uid() === 0,
      files,
      results,
      soak,
      missing,
    });
    const out = `${root}/${values.out}`;
    await Deno.writeTextFile(out, text);
    // The repository's formatter lays out the tables, so that the
    // committed file passes `deno fmt --check` unchanged.
    const fmt = await run(["deno", "fmt", "--quiet", out], {});
    if (fmt.code !== 0) throw new Error(`Cannot format ${out}: ${fmt.stderr}`);
    const verdict = /- \[x\] (APPROVED|CONDITIONAL|BLOCKED)/.exec(text)?.[1];
    console.log(`Wrote ${values.out}: ${verdict}`);
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}
