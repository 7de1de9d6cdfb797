import assert from "node:assert/strict";
import {
  checkWfp,
  describeWfpCode,
  formatWfpCode,
  WfpError,
} from "./errors.ts";

Deno.test("checkWfp() returns on ERROR_SUCCESS", () => {
  assert.equal(checkWfp(0, "FwpmEngineOpen0", "open WFP engine"), undefined);
});

Deno.test("checkWfp() throws a WfpError shaped as the style guide says", () => {
  let error: unknown;
  try {
    checkWfp(0x8032000f, "FwpmTransactionCommit0", "commit WFP transaction");
  } catch (caught) {
    error = caught;
  }
  assert.ok(error instanceof WfpError);
  assert.equal(
    error.message,
    "Cannot commit WFP transaction: FWP_E_TXN_ABORTED (0x8032000F) — the transaction was aborted by the engine (FwpmTransactionCommit0); retry later; if it persists, check the BFE service",
  );
  assert.equal(error.call, "FwpmTransactionCommit0");
  assert.equal(error.code, 0x8032000f);
  assert.equal(error.codeName, "FWP_E_TXN_ABORTED");
  assert.equal(error.transient, true);
});

Deno.test("checkWfp() treats a negative int32 status as the same unsigned code", () => {
  try {
    checkWfp(
      0x8032000a | 0,
      "FwpmSubLayerDeleteByKey0",
      "delete WFP",
      "sublayer x",
    );
    assert.fail("no error");
  } catch (error) {
    assert.ok(error instanceof WfpError);
    assert.equal(error.code, 0x8032000a);
    assert.equal(error.codeName, "FWP_E_IN_USE");
    assert.equal(error.object, "sublayer x");
    assert.equal(error.transient, false);
    assert.match(error.message, /^Cannot delete WFP sublayer x: FWP_E_IN_USE/);
  }
});

Deno.test("describeWfpCode() names unknown codes without dropping them", () => {
  const info = describeWfpCode(0x80329999);
  assert.equal(info.name, "UNKNOWN_STATUS");
  const error = new WfpError("open WFP engine", "FwpmEngineOpen0", 0x80329999);
  assert.match(error.message, /0x80329999/);
  assert.equal(formatWfpCode(5), "0x00000005");
});

Deno.test("describeWfpCode() flags only timeouts, aborts and an absent BFE as transient", () => {
  assert.equal(describeWfpCode(0x80320012).transient, true);
  assert.equal(describeWfpCode(0x000006ba).transient, true);
  assert.equal(describeWfpCode(0x80320009).transient, false);
  assert.equal(
    describeWfpCode(5).hint,
    "run as Administrator or as the service account",
  );
});

Deno.test("WfpError names the failed call and the operator hint in its message", () => {
  const error = new WfpError(
    "delete WFP",
    "FwpmSubLayerDeleteByKey0",
    0x8032000a,
    "sublayer x",
  );
  assert.match(error.message, /\(FwpmSubLayerDeleteByKey0\)/);
  assert.ok(error.message.endsWith(`; ${error.hint}`), error.message);
  assert.equal(
    error.hint,
    "another object still references it; find and remove that first",
  );
});
