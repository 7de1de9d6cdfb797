import assert from "node:assert/strict";
import { benchPlan, type Measurement, resultOf, table } from "./bench.ts";

/** Every entry issue 7 names, plus the simulator's revert and panic. */
const NAMES = [
  "apply-full-nft-100",
  "apply-full-nft-1000",
  "apply-full-nft-10000",
  "apply-full-nft-50000",
  "apply-incremental-nft-10000",
  "revert-nft-10000",
  "panic-nft-10000",
  "revert-sim-10000",
  "panic-sim-10000",
  "ffi-filter-add-sim",
  "verify-tiny",
  "verify-1mb",
  "start-ms",
  "rss-idle-mb",
  "rss-50000-mb",
];

/** Entries that have a reference and so a ratio. */
const WITH_REFERENCE = new Set([
  "apply-full-nft-100",
  "apply-full-nft-1000",
  "apply-full-nft-10000",
  "apply-full-nft-50000",
  "apply-incremental-nft-10000",
  "ffi-filter-add-sim",
  "verify-tiny",
  "verify-1mb",
]);

const measurement = (over: Partial<Measurement>): Measurement => ({
  name: "m",
  unit: "ms",
  palisade: [3, 1, 2],
  notes: [],
  ...over,
});

Deno.test("resultOf() reports medians and palisade ÷ reference", () => {
  const entry = resultOf(measurement({
    reference: [4, 4, 8],
    referenceLabel: "nft -f",
  }));
  assert.deepEqual(entry, {
    name: "m",
    unit: "ms",
    palisade: 2,
    reference: 4,
    ratio: 0.5,
  });
});

Deno.test("resultOf() leaves out reference and ratio where there is none", () => {
  assert.deepEqual(resultOf(measurement({})), {
    name: "m",
    unit: "ms",
    palisade: 2,
  });
});

Deno.test("resultOf() writes null for a measurement that failed", () => {
  const entry = resultOf(measurement({
    palisade: [],
    referenceLabel: "C loop",
    error: "no simulator",
  }));
  assert.equal(entry.palisade, null);
  assert.equal(entry.ratio, null);
});

Deno.test("table() marks a failed measurement as not measured", () => {
  const text = table([measurement({ name: "x", palisade: [], error: "e" })]);
  assert.match(text, /^x +ms +NOT MEASURED/m);
});

Deno.test("benchPlan() keeps the smoke version to one run of each", () => {
  const quick = benchPlan(true);
  assert.equal(quick.applyRuns, 1);
  assert.ok(quick.incrementalRules < benchPlan(false).incrementalRules);
});

Deno.test("deno task bench --quick writes every named result with numbers", async (t) => {
  if (Deno.uid() !== 0) {
    const why = "needs root to create network namespaces";
    if (Deno.env.get("CI")) throw new Error(`Cannot run "${t.name}": ${why}`);
    console.warn(`SKIPPED "${t.name}": ${why}`);
    return;
  }
  const out = await Deno.makeTempDir({ prefix: "palisade-bench-test-" });
  try {
    const config = JSON.parse(
      await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
    );
    // The `bench` task's own command, so the test runs what CI runs.
    const entry = config.tasks.bench;
    const command: string = typeof entry === "string" ? entry : entry.command;
    const task = command.split(" ");
    const script = new URL("./bench.ts", import.meta.url).pathname;
    const args = [...task.slice(1, -1), script, "--quick", "--out", out];
    // By name: the test flags grant `--allow-run=deno`, not a path.
    const output = await new Deno.Command("deno", {
      args,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(600_000),
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, `bench --quick failed:\n${stdout}\n${stderr}`);

    const results = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
    assert.deepEqual(results.map((r: { name: string }) => r.name), NAMES);
    for (const r of results) {
      assert.ok(Number.isFinite(r.palisade), `${r.name}: palisade`);
      if (WITH_REFERENCE.has(r.name)) {
        assert.ok(Number.isFinite(r.reference), `${r.name}: reference`);
        assert.ok(Number.isFinite(r.ratio), `${r.name}: ratio`);
      } else {
        assert.equal(r.reference, undefined, `${r.name}: reference`);
      }
    }

    const samples = JSON.parse(await Deno.readTextFile(`${out}/samples.json`));
    assert.equal(samples.plan.quick, true);
    for (const m of samples.measurements as Measurement[]) {
      assert.ok(m.palisade.every(Number.isFinite), `${m.name}: samples`);
    }
    const svg = await Deno.readTextFile(`${out}/apply.svg`);
    assert.equal(svg.match(/<polyline /g)?.length, 2);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
