/**
 * The soak run shared by both engines: a host process runs N
 * apply/confirm/revert cycles and reports handles, unfreed engine
 * allocations, resident memory after warm-up and log size; the figures
 * are printed and, with `PALISADE_REL_FIGURES` set, appended to that
 * file as one JSON line for `deno task assess`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { hostOk, makeHostDir, runHost } from "./_kit.ts";

/** Largest growth of resident memory after warm-up, in percent. */
export const MAX_RSS_GROWTH_PCT = 5;

/** File descriptors the runtime may hold open at one moment and not another. */
export const MAX_FD_NOISE = 2;

/** What one soak run measured. */
export interface SoakFigures {
  engine: "wfp" | "nft" | "memory";
  cycles: number;
  failures: number;
  seconds: number;
  rssWarmKiB: number;
  rssEndKiB: number;
  rssGrowthPct: number;
  rssCurveKiB: number[];
  fdsWarm: number | null;
  fdsEnd: number | null;
  maxOpenHandles: number | null;
  maxUnfreedAllocations: number | null;
  openHandlesAfterClose?: number;
  unfreedAfterClose?: number;
  log: { files: number; bytes: number };
  logBound: { files: number; bytes: number };
}

/** Runs `cycles` cycles on `engine`, checks the bounds, returns figures. */
export async function soak(
  engine: "wfp" | "nft" | "memory",
  cycles: number,
  env: Record<string, string> = {},
): Promise<SoakFigures> {
  await using dir = await makeHostDir();
  // Warm-up is the first half: V8 and the allocator grow in steps early
  // on (see the printed curve); growth over the second half is a leak.
  const warmup = Math.floor(cycles / 2);
  const run = hostOk(
    await runHost({
      engine,
      stateDir: dir.stateDir,
      logDir: dir.logDir,
      keyPath: dir.keyPath,
      trustPath: dir.trustPath,
      steps: [{ op: "soak", cycles, warmup }],
    }, { env }),
    `soak ${engine}`,
  );
  const line = run.lines.find((l) => l.op === "soak");
  assert.ok(line?.ok, JSON.stringify(line));
  const final = run.final as unknown as Record<string, number>;
  const figures = {
    engine,
    ...line,
    openHandlesAfterClose: final.openHandlesAfterClose,
    unfreedAfterClose: final.unfreedAfterClose,
  } as unknown as SoakFigures;
  delete (figures as unknown as Record<string, unknown>).step;
  delete (figures as unknown as Record<string, unknown>).op;
  delete (figures as unknown as Record<string, unknown>).ok;
  console.log(`SOAK ${JSON.stringify(figures)}`);
  const out = Deno.env.get("PALISADE_REL_FIGURES");
  if (out) {
    await Deno.writeTextFile(out, JSON.stringify(figures) + "\n", {
      append: true,
    });
  }

  assert.equal(figures.failures, 0, "every cycle succeeded");
  if (engine === "wfp") {
    assert.ok(figures.maxOpenHandles! <= 1, "only the service's session");
    assert.equal(figures.maxUnfreedAllocations, 0);
    assert.equal(figures.openHandlesAfterClose, 0);
    assert.equal(figures.unfreedAfterClose, 0);
  }
  if (figures.fdsWarm !== null && figures.fdsEnd !== null) {
    // The runtime opens and closes a descriptor or two of its own (its
    // blocking thread pool); a leak grows with the cycles instead.
    assert.ok(
      figures.fdsEnd <= figures.fdsWarm + MAX_FD_NOISE,
      `file descriptors grew from ${figures.fdsWarm} to ${figures.fdsEnd}`,
    );
  }
  assert.ok(
    figures.rssGrowthPct < MAX_RSS_GROWTH_PCT,
    `resident memory grew ${figures.rssGrowthPct}% after warm-up`,
  );
  assert.ok(figures.log.files <= figures.logBound.files, "log files bound");
  assert.ok(figures.log.bytes <= figures.logBound.bytes, "log bytes bound");
  return figures;
}
