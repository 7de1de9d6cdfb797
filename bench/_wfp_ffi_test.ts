import assert from "node:assert/strict";
import { benchFilterKey } from "./_wfp_ffi.ts";

Deno.test("benchFilterKey() gives the keys tools/wfpsim/bench_add.c uses", () => {
  // Data1 = n * 2654435761 mod 2^32, Data2 = n >> 16, Data3 = n,
  // Data4 = be 00 00 00 00 00 00 00, as in the C loop.
  assert.equal(benchFilterKey(0), "00000000-0000-0000-be00-000000000000");
  assert.equal(benchFilterKey(1), "9e3779b1-0000-0001-be00-000000000000");
  assert.equal(benchFilterKey(70000), "610afe70-0001-1170-be00-000000000000");
});
