/**
 * Summaries of timing samples: median, min and max, nothing fancier,
 * since the result of the suite is the ratio against the reference
 * measured in the same run.
 *
 * @module
 */

/** Median, min and max of one series of samples. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number;
}

/**
 * Summarises `samples`.
 *
 * @throws {RangeError} there are no samples, or one is not finite
 *
 * @example
 * ```ts
 * import { summarize } from "./_stats.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(summarize([3, 1, 2]).median, 2);
 * ```
 */
export function summarize(samples: number[]): Summary {
  if (samples.length === 0) {
    throw new RangeError("Cannot summarise samples: there are none");
  }
  if (!samples.every(Number.isFinite)) {
    throw new RangeError(
      `Cannot summarise samples: ${samples.join(", ")} holds a non-number`,
    );
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1
    ? sorted[mid]
    : (sorted[mid - 1] + sorted[mid]) / 2;
  return {
    median,
    min: sorted[0],
    max: sorted[sorted.length - 1],
    runs: sorted.length,
  };
}

/** Milliseconds `fn` takes, by the monotonic clock. */
export function timeMs(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

/** Milliseconds the promise of `fn` takes to settle successfully. */
export async function timeMsAsync(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

/** Rounds to a few significant digits, for tables and results. */
export function round(value: number, digits = 4): number {
  if (value === 0 || !Number.isFinite(value)) return value;
  return Number(value.toPrecision(digits));
}
