import assert from "node:assert/strict";
import {
  openBackend,
  resolveWfpLibrary,
  WINDOWS_WFP_LIBRARY,
} from "./open_backend.ts";

Deno.test("resolveWfpLibrary() maps the bare DLL name to System32 on Windows", () => {
  assert.equal(
    resolveWfpLibrary("fwpuclnt.dll", "windows"),
    WINDOWS_WFP_LIBRARY,
  );
  assert.equal(
    resolveWfpLibrary("FWPUCLNT.DLL", "windows"),
    WINDOWS_WFP_LIBRARY,
  );
});

Deno.test("resolveWfpLibrary() keeps explicit paths and other systems as given", () => {
  assert.equal(
    resolveWfpLibrary("D:\\lab\\fwpuclnt.dll", "windows"),
    "D:\\lab\\fwpuclnt.dll",
  );
  assert.equal(resolveWfpLibrary("fwpuclnt.dll", "linux"), "fwpuclnt.dll");
  assert.equal(
    resolveWfpLibrary("./tools/wfpsim/libwfpsim.so", "linux"),
    "./tools/wfpsim/libwfpsim.so",
  );
});

Deno.test("openBackend() refuses an unknown engine name", () => {
  assert.throws(
    () => openBackend({ engine: "ipfw" as "nft" }),
    (error: unknown) =>
      error instanceof TypeError && /use nft or wfp/.test(error.message),
  );
});
