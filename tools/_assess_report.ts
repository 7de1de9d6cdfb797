/**
 * The templates of `RELIABILITY.md`: failure modes, rollback
 * validation, transactional safety and observability, each claim tied
 * to the test file (and test names) that prove it. The generator fills
 * in the results of one run; nothing else goes into the file.
 *
 * @module
 */
import { ENGINE_CRASH_POINTS } from "../policy/backend.ts";
import { CRASH_POINTS } from "../policy/manager.ts";

/** One test case as the JUnit report of a run gives it. */
export interface CaseResult {
  /** Repository-relative test file. */
  file: string;
  name: string;
  outcome: "passed" | "failed" | "skipped";
  seconds: number;
  message?: string;
}

/** Tests that prove one claim: a file and a pattern over test names. */
export interface Evidence {
  file: string;
  /** Matches the names of the tests that prove the claim. */
  match: RegExp;
}

/** One numbered failure mode of the assessment. */
export interface FailureMode {
  title: string;
  trigger: string;
  impact: string;
  detection: string;
  recovery: string;
  safeState: string;
  evidence: Evidence[];
  /** Files whose passed tests name the crash points they exercised. */
  crashPoints?: string[];
}

const R = "tests/reliability";

/** Names of the engine crash tests of a push or a revert. */
const ENGINE_TRANSACTION = /^SIGKILL at each engine crash point of (a|the) /;

/** The failure modes, in the order the report numbers them. */
export const FAILURE_MODES: FailureMode[] = [
  {
    title: "Service crash mid-operation",
    trigger:
      "the service process is SIGKILLed at a named step of push, confirm, " +
      "revert or start-up (`CRASH_POINTS` of the manager), or inside the " +
      "engine transaction of a push or a revert (each step of " +
      "`ENGINE_CRASH_POINTS` that the transaction passes)",
    impact:
      "the engine may hold the new policy while the state says pending, or " +
      "the old one while the new is recorded",
    detection:
      "at start the manager finds the pending generation and reads the " +
      "engine back (`recover.pending` event)",
    recovery:
      "the pending generation is marked reverted and the last known good " +
      "is restored as one transaction before the control API listens",
    safeState:
      "the complete engine dump equals the last known good, the confirmed " +
      "new policy, or (no last known good) holds no Palisade object — " +
      "never a mix; status names the same generation",
    evidence: [
      { file: `${R}/crash_sim_test.ts`, match: /^crash at / },
      { file: `${R}/crash_nft_test.ts`, match: /^crash at / },
      { file: `${R}/crash_serve_test.ts`, match: /^palisade serve / },
      { file: `${R}/crash_serve_wfp_test.ts`, match: /^palisade serve / },
      { file: "service/_crash_hook_test.ts", match: /./ },
      { file: `${R}/crash_engine_sim_test.ts`, match: ENGINE_TRANSACTION },
      { file: `${R}/crash_engine_nft_test.ts`, match: ENGINE_TRANSACTION },
    ],
    crashPoints: [
      `${R}/crash_sim_test.ts`,
      `${R}/crash_nft_test.ts`,
      `${R}/crash_serve_test.ts`,
      `${R}/crash_serve_wfp_test.ts`,
      `${R}/crash_engine_sim_test.ts`,
      `${R}/crash_engine_nft_test.ts`,
    ],
  },
  {
    title: "Engine call fails mid-apply",
    trigger:
      "any engine call of an apply fails (WFP: each Fwpm* call failed in " +
      "turn; nftables: the kernel refuses a batch with one bad element)",
    impact: "the new policy cannot be installed",
    detection:
      "one `apply.abort` event naming the call, the code and the rule ID; " +
      "the push is answered `engine-failed`",
    recovery: "the transaction is aborted; the generation is marked reverted",
    safeState:
      "the engine dump is byte-identical to the one before the push; the " +
      "previous policy stays in force",
    evidence: [
      { file: `${R}/faults_sim_test.ts`, match: /^push aborts/ },
      { file: `${R}/faults_nft_test.ts`, match: /^push aborts/ },
    ],
  },
  {
    title: "Transient engine failure",
    trigger: "an engine call fails with a transient code (FWP_E_TIMEOUT)",
    impact: "the first attempt of the transaction is aborted",
    detection: "`apply.abort` at level warn with `retry: true`",
    recovery: "retry with backoff; permanent codes are never retried",
    safeState: "the policy is applied once, whole",
    evidence: [{ file: `${R}/faults_sim_test.ts`, match: /transient/ }],
  },
  {
    title: "Revert fails",
    trigger: "an engine call of a revert fails once, or on every attempt " +
      "(window expiry or signed rollback)",
    impact: "the last known good cannot be restored",
    detection: "`revert.failed` per attempt, then `failopen` at level error",
    recovery:
      "retry with backoff; after the last attempt every Palisade object is " +
      "removed (fail-open); if even that fails, status says to run " +
      "`palisade panic`",
    safeState:
      "last known good in full, or no Palisade object at all; never half a " +
      "policy",
    evidence: [
      { file: `${R}/faults_sim_test.ts`, match: /^revert / },
      { file: `${R}/faults_nft_test.ts`, match: /^revert / },
    ],
  },
  {
    title: "Panic under engine failure",
    trigger: "an engine call of `palisade panic` fails",
    impact: "Palisade's objects cannot be removed on this attempt",
    detection: "the panic command fails with the call and code",
    recovery: "run panic again; it is idempotent and needs no state",
    safeState: "the engine is unchanged by the failed attempt",
    evidence: [
      { file: `${R}/faults_sim_test.ts`, match: /^panic / },
      { file: `${R}/faults_nft_test.ts`, match: /^panic / },
    ],
  },
  {
    title: "Panic killed mid-way",
    trigger: "`palisade panic` is SIGKILLed at each step of its engine " +
      "transaction (`ENGINE_CRASH_POINTS`)",
    impact: "Palisade's objects may be left partly removed",
    detection: "the panic command does not report success",
    recovery: "run panic again; it completes and needs no state",
    safeState: "after the kill the complete engine dump holds every Palisade " +
      "object or none; after the second panic none; the `panic` task's " +
      "permission set cannot arm the hook",
    evidence: [
      { file: `${R}/crash_engine_sim_test.ts`, match: /palisade panic/ },
      { file: `${R}/crash_engine_nft_test.ts`, match: /palisade panic/ },
    ],
    crashPoints: [
      `${R}/crash_engine_sim_test.ts`,
      `${R}/crash_engine_nft_test.ts`,
    ],
  },
  {
    title: "Corrupt, truncated or tampered state",
    trigger:
      "a generation's bundle or status file is truncated, emptied, deleted, " +
      "replaced or tampered with; the serial floor is damaged",
    impact: "the newest last known good cannot be trusted",
    detection: "`state.problem` per file; status lists `problems`",
    recovery: "the file is refused; start-up falls back to the newest intact " +
      "confirmed generation, else fails open",
    safeState: "an older last known good in full, or no Palisade object; the " +
      "service still starts and still refuses replayed serials",
    evidence: [{ file: `${R}/state_damage_test.ts`, match: /damaged|file/ }],
  },
  {
    title: "Revoked key or missing trust store",
    trigger:
      "the trust store no longer trusts a stored generation's signer, or " +
      "is missing",
    impact: "stored generations no longer verify; nothing can be verified",
    detection:
      "`state.problem` per refused generation; a missing trust store stops " +
      "the start with `Cannot load trust store`",
    recovery:
      "fall back to a generation signed by a trusted key, else fail open; " +
      "a missing trust store stops the service before the engine is opened",
    safeState: "the engine is untouched by a start that cannot verify",
    evidence: [
      { file: `${R}/state_damage_test.ts`, match: /revoked|trust store/ },
    ],
  },
  {
    title: "State disk full",
    trigger: "the state directory's file system has no byte left",
    impact: "no generation or status can be written",
    detection:
      "status `stateWritable: false`; pushes answered 507 `state-disk-full`",
    recovery: "pushes work again as soon as space returns",
    safeState: "the last known good stays enforced; nothing half-written",
    evidence: [{ file: `${R}/pressure_test.ts`, match: /disk full/ }],
  },
  {
    title: "Read-only state",
    trigger: "the state directory is remounted read-only",
    impact: "no generation or status can be written",
    detection:
      "status `stateWritable: false`; pushes answered 503 `state-read-only`",
    recovery: "pushes work again once it is writable",
    safeState: "the last known good stays enforced",
    evidence: [{ file: `${R}/pressure_test.ts`, match: /read-only/ }],
  },
  {
    title: "Bad, hostile or malformed input",
    trigger:
      "random and mutated-from-valid bundles (also re-signed by a trusted " +
      "key), policies, trust stores, config files and requests to every " +
      "HTTP endpoint",
    impact: "a crash, a partial apply or an unclear refusal",
    detection: "a typed error whose message starts `Cannot`; HTTP 4xx JSON",
    recovery: "nothing to recover: the input is refused",
    safeState: "the process carries on and the engine dump is unchanged",
    evidence: [{ file: `${R}/fuzz_test.ts`, match: /clear/ }],
  },
  {
    title: "Oversize bodies and slow senders",
    trigger: "a body above the bound, or one that arrives too slowly",
    impact: "memory or connection exhaustion",
    detection: "HTTP 413 `body-too-large` or 408 `body-timeout`",
    recovery: "the request is cut off; the server keeps serving",
    safeState: "nothing is read past the bound",
    evidence: [{ file: `${R}/fuzz_test.ts`, match: /cuts off/ }],
  },
  {
    title: "Resource leak over time",
    trigger: "long runs of apply/confirm/revert cycles",
    impact: "handles, engine allocations, memory or logs grow until failure",
    detection: "engine handle and allocation counters, resident memory, file " +
      "descriptors and log size sampled by the soak",
    recovery: "none needed while the bounds hold",
    safeState:
      "handles and unfreed allocations at zero after close; resident " +
      "memory after warm-up within 5%; logs within their rotation bound",
    evidence: [
      { file: `${R}/soak_sim_test.ts`, match: /./ },
      { file: `${R}/soak_nft_test.ts`, match: /./ },
    ],
  },
];

/** A titled section of claims, each with its evidence. */
export interface Section {
  title: string;
  claims: { text: string; evidence: Evidence[] }[];
}

/** Rollback validation, transactional safety, observability. */
export const SECTIONS: Section[] = [
  {
    title: "Rollback validation",
    claims: [
      {
        text: "Trigger: the commit window expires without a heartbeat — the " +
          "engine returns to the last known good in full",
        evidence: [
          { file: `${R}/crash_sim_test.ts`, match: /on window expiry/ },
          { file: `${R}/crash_nft_test.ts`, match: /on window expiry/ },
          { file: `${R}/crash_serve_wfp_test.ts`, match: /on expiry/ },
        ],
      },
      {
        text: "Trigger: a signed rollback command — same outcome",
        evidence: [
          { file: `${R}/crash_sim_test.ts`, match: /signed rollback/ },
          { file: `${R}/crash_nft_test.ts`, match: /signed rollback/ },
          { file: `${R}/crash_serve_test.ts`, match: /revert\./ },
          { file: `${R}/crash_serve_wfp_test.ts`, match: /on rollback/ },
        ],
      },
      {
        text:
          "Trigger: a restart inside the window — recovery reverts before " +
          "anything else, also when the restart itself crashes",
        evidence: [
          { file: `${R}/crash_sim_test.ts`, match: /push\.|start\./ },
          { file: `${R}/crash_nft_test.ts`, match: /push\.|start\./ },
          { file: `${R}/crash_serve_test.ts`, match: /push\.|start\./ },
          { file: `${R}/crash_serve_wfp_test.ts`, match: /push\.|start\./ },
        ],
      },
      {
        text: "Scope: the whole policy, compared as a complete engine dump " +
          "(`nft -j -s list ruleset`, `WfpsimDump`) with the reference dump " +
          "of the expected policy",
        evidence: [
          { file: `${R}/crash_sim_test.ts`, match: /in full/ },
          { file: `${R}/crash_nft_test.ts`, match: /in full/ },
          { file: `${R}/crash_serve_wfp_test.ts`, match: /in full/ },
        ],
      },
      {
        text:
          "Edge case: no last known good — rollback removes every Palisade " +
          "object",
        evidence: [
          { file: `${R}/crash_sim_test.ts`, match: /no last known good/ },
          { file: `${R}/crash_nft_test.ts`, match: /no last known good/ },
        ],
      },
      {
        text: "Edge case: the revert itself fails — retried, then fail-open, " +
          "never half a policy",
        evidence: [
          { file: `${R}/faults_sim_test.ts`, match: /^revert / },
          { file: `${R}/faults_nft_test.ts`, match: /^revert / },
        ],
      },
    ],
  },
  {
    title: "Transactional safety",
    claims: [
      {
        text:
          "Atomic: each apply, revert and removal is one engine transaction " +
          "(WFP `FwpmTransactionBegin0`…`Commit0`, one nftables batch); a " +
          "failed call leaves the engine byte-identical",
        evidence: [
          { file: `${R}/faults_sim_test.ts`, match: /./ },
          { file: `${R}/faults_nft_test.ts`, match: /./ },
        ],
      },
      {
        text: "Atomic: state files are written by temporary file, fsync and " +
          "rename; a crash between any two steps leaves a consistent state",
        evidence: [
          { file: `${R}/crash_sim_test.ts`, match: /./ },
          { file: `${R}/state_damage_test.ts`, match: /./ },
        ],
      },
      {
        text: "Abort conditions: any engine error, and a state write that " +
          "fails (disk full, read-only) before the engine is touched",
        evidence: [
          { file: `${R}/faults_sim_test.ts`, match: /^push aborts/ },
          { file: `${R}/pressure_test.ts`, match: /./ },
        ],
      },
      {
        text: "Cleanup: no engine handle or engine-allocated buffer is left " +
          "after any test or soak; file descriptors do not grow",
        evidence: [
          { file: `${R}/faults_sim_test.ts`, match: /./ },
          { file: `${R}/soak_sim_test.ts`, match: /./ },
        ],
      },
    ],
  },
  {
    title: "Observability plan",
    claims: [
      {
        text: "Events (JSON lines, checked by the tests): `apply.abort` " +
          "(error; warn with `retry: true` when retried) naming call, code, " +
          "code name and rule ID; `apply.commit` (info); `revert.failed` " +
          "and `failopen` (error); `recover.pending` (warn) and `start` " +
          "(info) after every crash",
        evidence: [
          { file: `${R}/faults_sim_test.ts`, match: /./ },
          { file: `${R}/faults_nft_test.ts`, match: /./ },
          { file: `${R}/crash_sim_test.ts`, match: /./ },
        ],
      },
      {
        text: "Destinations: console and `palisade.log` with size-based " +
          "rotation; the soak checks that the log folder stays within its " +
          "file count and files × maxBytes",
        evidence: [
          { file: `${R}/soak_sim_test.ts`, match: /./ },
          { file: `${R}/soak_nft_test.ts`, match: /./ },
        ],
      },
      {
        text:
          "Status: `state` (idle, pending, failed-open), active, pending, " +
          "last known good, `lastError`, `stateWritable`, `problems`",
        evidence: [
          { file: `${R}/crash_sim_test.ts`, match: /./ },
          { file: `${R}/state_damage_test.ts`, match: /./ },
          { file: `${R}/pressure_test.ts`, match: /./ },
        ],
      },
    ],
  },
];

/** The cases of `results` that an evidence entry names. */
export function casesFor(
  evidence: Evidence,
  results: CaseResult[],
): CaseResult[] {
  return results.filter((r) =>
    r.file === evidence.file && evidence.match.test(r.name)
  );
}

/** One line of evidence: file, counts, and the names of failures. */
export function evidenceLine(
  evidence: Evidence,
  results: CaseResult[],
): { text: string; ok: boolean } {
  const cases = casesFor(evidence, results);
  const passed = cases.filter((c) => c.outcome === "passed").length;
  const failed = cases.filter((c) => c.outcome === "failed");
  const skipped = cases.filter((c) => c.outcome === "skipped").length;
  if (cases.length === 0) {
    return { text: `\`${evidence.file}\` — NOT RUN`, ok: false };
  }
  let text = `\`${evidence.file}\` — ${passed}/${cases.length} passed`;
  if (skipped > 0) text += `, ${skipped} skipped`;
  for (const f of failed) text += `; FAILED: ${f.name}`;
  return { text, ok: failed.length === 0 && skipped === 0 };
}

/**
 * The crash points that passed tests of `file` exercised, one line per
 * test of the engine crash matrix (its steps are named by the engine
 * crash point) or one line for the manager's crash points named in the
 * test names. Empty when no passed test names one.
 */
export function exercisedCrashPoints(
  file: string,
  results: CaseResult[],
  opts: { panic: boolean },
): string[] {
  const passed = results.filter((r) =>
    r.file === file && r.outcome === "passed"
  );
  const lines: string[] = [];
  const manager = CRASH_POINTS.filter((point) =>
    passed.some((r) => !r.name.includes(" > ") && r.name.includes(point))
  );
  if (manager.length > 0 && !opts.panic) {
    lines.push(`manager: ${manager.map((p) => `\`${p}\``).join(", ")}`);
  }
  const byTest = new Map<string, string[]>();
  for (const r of passed) {
    const at = r.name.lastIndexOf(" > ");
    if (at < 0) continue;
    const point = r.name.slice(at + 3);
    if (!(ENGINE_CRASH_POINTS as readonly string[]).includes(point)) continue;
    const parent = r.name.slice(0, at);
    // The parent test must have passed as well.
    if (!passed.some((p) => p.name === parent)) continue;
    if (parent.includes("palisade panic") !== opts.panic) continue;
    const scenario = /engine crash point of (.*?) \((?:wfp|nft)\)/.exec(
      parent,
    )?.[1] ?? parent;
    byTest.set(scenario, [...(byTest.get(scenario) ?? []), point]);
  }
  for (const [scenario, points] of byTest) {
    lines.push(`${scenario}: ${points.map((p) => `\`${p}\``).join(", ")}`);
  }
  return lines;
}
