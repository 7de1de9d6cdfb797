import assert from "node:assert/strict";
import { round, summarize } from "./_stats.ts";

Deno.test("summarize() takes the middle sample of an odd count", () => {
  assert.deepEqual(summarize([5, 1, 3]), {
    median: 3,
    min: 1,
    max: 5,
    runs: 3,
  });
});

Deno.test("summarize() averages the two middle samples of an even count", () => {
  assert.equal(summarize([4, 1, 2, 10]).median, 3);
});

Deno.test("summarize() refuses an empty series", () => {
  assert.throws(() => summarize([]), RangeError);
});

Deno.test("summarize() refuses a series holding NaN", () => {
  assert.throws(() => summarize([1, NaN]), /non-number/);
});

Deno.test("round() keeps four significant digits", () => {
  assert.equal(round(123.456789), 123.5);
  assert.equal(round(0.000123456), 0.0001235);
});
