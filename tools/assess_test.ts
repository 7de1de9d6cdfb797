import assert from "node:assert/strict";
import { decide, parseJunit, renderReport } from "./assess.ts";
import {
  type CaseResult,
  exercisedCrashPoints,
  FAILURE_MODES,
} from "./_assess_report.ts";

const XML = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="deno test" tests="3" failures="1" errors="0" time="1.0">
  <testsuite name="./tests/reliability/x_test.ts" tests="3">
    <testcase name="crash at push.after-apply (wfp) &quot;ok&quot;" classname="x" time="0.500">
    </testcase>
    <testcase name="push aborts &amp; keeps" classname="x" time="0.100">
      <failure message="Expected 1, got 2">AssertionError</failure>
    </testcase>
    <testcase name="ignored one" classname="x" time="0.000">
      <skipped/>
    </testcase>
  </testsuite>
</testsuites>`;

function input(results: CaseResult[], full = true) {
  return {
    date: "2026-01-01T00:00:00.000Z",
    deno: "2.9.6",
    seconds: 1,
    counts: { fuzzRuns: 10_000, soakSim: 10_000, soakNft: 1_000 },
    fullCounts: full,
    root: true,
    files: [],
    results,
    soak: [],
    missing: [],
  };
}

Deno.test("parseJunit() reads names, outcomes, times and failure messages", () => {
  const cases = parseJunit(XML, "tests/reliability/x_test.ts");
  assert.deepEqual(cases.map((c) => [c.name, c.outcome]), [
    ['crash at push.after-apply (wfp) "ok"', "passed"],
    ["push aborts & keeps", "failed"],
    ["ignored one", "skipped"],
  ]);
  assert.equal(cases[0].seconds, 0.5);
  assert.equal(cases[1].message, "Expected 1, got 2");
  assert.equal(cases[0].file, "tests/reliability/x_test.ts");
});

Deno.test("decide() blocks on any failure and on a file without results", () => {
  const [ok, bad] = parseJunit(XML, "f.ts");
  const failed = decide([ok, bad], {
    missing: [],
    root: true,
    fullCounts: true,
  });
  assert.equal(failed.verdict, "BLOCKED");
  assert.match(failed.reasons[0], /push aborts/);
  const missing = decide([ok], {
    missing: ["g.ts"],
    root: true,
    fullCounts: true,
  });
  assert.equal(missing.verdict, "BLOCKED");
});

Deno.test("decide() approves only a full run as root with every case passed", () => {
  const [ok, , skipped] = parseJunit(XML, "f.ts");
  const opts = { missing: [], root: true, fullCounts: true };
  assert.equal(decide([ok], opts).verdict, "APPROVED");
  assert.equal(decide([ok, skipped], opts).verdict, "CONDITIONAL");
  assert.equal(
    decide([ok], { ...opts, fullCounts: false }).verdict,
    "CONDITIONAL",
  );
  assert.equal(decide([ok], { ...opts, root: false }).verdict, "CONDITIONAL");
});

Deno.test("renderReport() numbers failure modes and ticks exactly one approval line", () => {
  const text = renderReport(input([]));
  assert.match(text, /^1\. \*\*Service crash mid-operation\*\*: /m);
  assert.match(text, /^13\. \*\*Resource leak over time\*\*: /m);
  // No results at all: every proof is missing, so nothing is approved.
  assert.match(text, /NOT RUN/);
  const ticked = text.split("\n").filter((l) =>
    /^- \[x\] (APPROVED|CONDITIONAL|BLOCKED)$/.test(l)
  );
  assert.deepEqual(ticked, ["- [x] BLOCKED"]);
  assert.match(text, /REDUCED counts|full counts/);
});

Deno.test("renderReport() indents the sub-items of items 10 and up by the marker's width", () => {
  const text = renderReport(input([]));
  const lines = text.split("\n");
  const at = lines.findIndex((l) => l.startsWith("10. "));
  assert.ok(at > 0, "no item 10");
  assert.match(lines[at + 1], /^ {4}- Impact: /);
  const first = lines.findIndex((l) => l.startsWith("1. "));
  assert.match(lines[first + 1], /^ {3}- Impact: /);
});

Deno.test("renderReport() cites each proof file once per failure mode", () => {
  for (const mode of FAILURE_MODES) {
    const cited = mode.evidence.map((e) => e.file);
    assert.equal(new Set(cited).size, cited.length, mode.title);
  }
});

Deno.test("exercisedCrashPoints() names only points of passed tests", () => {
  const file = "tests/reliability/crash_engine_sim_test.ts";
  const parent =
    "SIGKILL at each engine crash point of a push on a fresh host (wfp) x";
  const panic = "SIGKILL at each engine crash point of palisade panic (wfp) x";
  const results: CaseResult[] = [
    { file, name: parent, outcome: "passed", seconds: 1 },
    {
      file,
      name: `${parent} > engine.after-begin`,
      outcome: "passed",
      seconds: 1,
    },
    {
      file,
      name: `${parent} > engine.after-adds`,
      outcome: "failed",
      seconds: 1,
    },
    { file, name: panic, outcome: "failed", seconds: 1 },
    {
      file,
      name: `${panic} > engine.after-commit`,
      outcome: "passed",
      seconds: 1,
    },
    {
      file: "m_test.ts",
      name: "crash at push.after-apply with x",
      outcome: "passed",
      seconds: 1,
    },
  ];
  assert.deepEqual(exercisedCrashPoints(file, results, { panic: false }), [
    "a push on a fresh host: `engine.after-begin`",
  ]);
  assert.deepEqual(exercisedCrashPoints(file, results, { panic: true }), []);
  assert.deepEqual(
    exercisedCrashPoints("m_test.ts", results, { panic: false }),
    ["manager: `push.after-apply`"],
  );
});
