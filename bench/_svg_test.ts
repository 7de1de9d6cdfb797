import assert from "node:assert/strict";
import { applyChart } from "./_svg.ts";

const point = (size: number, median: number) => ({
  size,
  time: { median, min: median * 0.9, max: median * 1.1, runs: 3 },
});

Deno.test("applyChart() draws one line and one dot per point of each series", () => {
  const svg = applyChart("apply", [
    {
      label: "Palisade",
      color: "#00f",
      points: [point(100, 2), point(1000, 9)],
    },
    { label: "nft -f", color: "#f00", points: [point(100, 3), point(1000, 8)] },
  ]);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.equal(svg.match(/<polyline /g)?.length, 2);
  assert.equal(svg.match(/<circle /g)?.length, 4);
  assert.match(svg, /Palisade, 1000 addresses: 9.0 ms/);
});

Deno.test("applyChart() escapes labels", () => {
  const svg = applyChart("a < b", [
    { label: "x & y", color: "#000", points: [point(10, 1)] },
  ]);
  assert.match(svg, /a &lt; b/);
  assert.match(svg, /x &amp; y/);
});

Deno.test("applyChart() refuses a chart without points", () => {
  assert.throws(() => applyChart("t", []), RangeError);
});
