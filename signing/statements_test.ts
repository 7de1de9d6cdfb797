import assert from "node:assert/strict";
import { decodeBase64Strict } from "./_base64.ts";
import { HOST, newKey, NOW } from "./_testing.ts";
import { PAYLOAD_TYPES } from "./dsse.ts";
import { SigningError } from "./errors.ts";
import {
  makeBundleStatement,
  makeConfirmStatement,
  makeRollbackStatement,
  parseBundleStatement,
  signStatement,
} from "./statements.ts";

const POLICY = { name: "edge-baseline", rules: [] };

Deno.test("makeBundleStatement() fills the defaults", () => {
  const statement = makeBundleStatement({
    policy: POLICY,
    serial: 3,
    issuedAt: NOW,
  });
  assert.deepEqual(statement, {
    name: "edge-baseline",
    serial: 3,
    issuedAt: "2026-06-01T12:00:00.000Z",
    expiresAt: "2026-06-08T12:00:00.000Z",
    targets: [],
    commitWindowSeconds: 120,
    policy: POLICY,
  });
  assert.deepEqual(Object.keys(statement), [
    "name",
    "serial",
    "issuedAt",
    "expiresAt",
    "targets",
    "commitWindowSeconds",
    "policy",
  ]);
});

Deno.test("makeBundleStatement() refuses what a host would refuse", () => {
  assert.throws(
    () => makeBundleStatement({ policy: { rules: [] }, serial: 1 }),
    /Cannot make bundle statement: .*'name'/,
  );
  assert.throws(
    () => makeBundleStatement({ policy: POLICY, serial: -1 }),
    TypeError,
  );
  assert.throws(
    () =>
      makeBundleStatement({
        policy: POLICY,
        serial: 1,
        commitWindowSeconds: 1,
      }),
    /commitWindowSeconds/,
  );
  assert.throws(
    () =>
      makeBundleStatement({
        policy: POLICY,
        serial: 1,
        issuedAt: NOW,
        expiresAt: NOW,
      }),
    /not after issuedAt/,
  );
  assert.throws(
    () => makeBundleStatement({ policy: POLICY, serial: 1, targets: ["a b"] }),
    /target/,
  );
});

Deno.test("parseBundleStatement() accepts ISO 8601 offsets and fractions", () => {
  const value = {
    ...makeBundleStatement({ policy: POLICY, serial: 1, issuedAt: NOW }),
    issuedAt: "2026-06-01T14:00:00+02:00",
    expiresAt: "2026-06-02T12:00:00.5Z",
  };
  assert.equal(parseBundleStatement(value).expiresAt, "2026-06-02T12:00:00.5Z");
});

Deno.test("signStatement() signs JSON.stringify of the statement once", () => {
  const statement = makeBundleStatement({ policy: POLICY, serial: 1 });
  const envelope = signStatement("bundle", statement, [newKey(), newKey()]);
  assert.equal(envelope.payloadType, PAYLOAD_TYPES.bundle);
  assert.equal(envelope.signatures.length, 2);
  assert.equal(
    new TextDecoder().decode(decodeBase64Strict(envelope.payload)!),
    JSON.stringify(statement),
  );
});

Deno.test("signStatement() refuses no keys and the same key twice", () => {
  const statement = makeBundleStatement({ policy: POLICY, serial: 1 });
  assert.throws(() => signStatement("bundle", statement, []), TypeError);
  const key = newKey();
  assert.throws(
    () => signStatement("bundle", statement, [key, key]),
    SigningError,
  );
});

Deno.test("makeConfirmStatement() and makeRollbackStatement() build exact shapes", () => {
  assert.deepEqual(
    makeConfirmStatement({ host: HOST, generation: 2, nonce: "n", now: NOW }),
    { host: HOST, generation: 2, nonce: "n", issuedAt: NOW.toISOString() },
  );
  assert.deepEqual(
    makeRollbackStatement({ host: HOST, nonce: "n", now: NOW }),
    {
      host: HOST,
      nonce: "n",
      issuedAt: NOW.toISOString(),
      expiresAt: "2026-06-01T12:05:00.000Z",
      to: "last-known-good",
    },
  );
  assert.throws(
    () => makeConfirmStatement({ host: "", generation: 1, nonce: "n" }),
    /host/,
  );
  assert.throws(
    () => makeRollbackStatement({ host: HOST, nonce: "n", validSeconds: 0 }),
    /not after/,
  );
});
