import assert from "node:assert/strict";
import {
  verifyEd25519,
  verifyEd25519Native,
  verifyEd25519Noble,
} from "../signing/mod.ts";

interface WycheproofTest {
  tcId: number;
  comment: string;
  msg: string;
  sig: string;
  result: "valid" | "invalid";
}

interface WycheproofFile {
  numberOfTests: number;
  testGroups: { publicKey: { pk: string }; tests: WycheproofTest[] }[];
}

const VECTORS = new URL(
  "../../shared/testdata/wycheproof/ed25519_test.json",
  import.meta.url,
);

Deno.test("verifyEd25519() accepts exactly the Wycheproof cases marked valid", async () => {
  const file: WycheproofFile = JSON.parse(await Deno.readTextFile(VECTORS));
  let count = 0;
  const wrong: string[] = [];
  for (const group of file.testGroups) {
    const publicKey = Uint8Array.fromHex(group.publicKey.pk);
    for (const test of group.tests) {
      count++;
      const result = verifyEd25519(
        Uint8Array.fromHex(test.sig),
        Uint8Array.fromHex(test.msg),
        publicKey,
      );
      const accepted = result === "valid";
      if (accepted !== (test.result === "valid")) {
        wrong.push(`tcId ${test.tcId} (${test.comment}): got ${result}`);
      }
    }
  }
  assert.deepEqual(count, file.numberOfTests);
  assert.deepEqual(wrong, []);
});

Deno.test("verifyEd25519Native() gives the same answer as verifyEd25519Noble() on every Wycheproof case", async () => {
  const file: WycheproofFile = JSON.parse(await Deno.readTextFile(VECTORS));
  const differ: string[] = [];
  let count = 0;
  for (const group of file.testGroups) {
    const publicKey = Uint8Array.fromHex(group.publicKey.pk);
    for (const test of group.tests) {
      count++;
      const args = [
        Uint8Array.fromHex(test.sig),
        Uint8Array.fromHex(test.msg),
        publicKey,
      ] as const;
      const native = verifyEd25519Native(...args);
      const noble = verifyEd25519Noble(...args);
      if (native !== noble) {
        differ.push(`tcId ${test.tcId}: native ${native}, noble ${noble}`);
      }
    }
  }
  assert.equal(count, file.numberOfTests);
  assert.deepEqual(differ, []);
});
