import assert from "node:assert/strict";
import { generateKeyPair, signEd25519, verifyEd25519 } from "../signing/mod.ts";
import { verifyEd25519WebCrypto } from "./_webcrypto.ts";

const L = 2n ** 252n + 27742317777372353535851937790883648493n;

function withS(signature: Uint8Array, add: bigint): Uint8Array {
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(signature[i]);
  s += add;
  const out = signature.slice();
  for (let i = 32; i < 64; i++) {
    out[i] = Number(s & 255n);
    s >>= 8n;
  }
  return out;
}

const { privateKey, publicKey } = generateKeyPair();
const message = new TextEncoder().encode("palisade bench");
const signature = signEd25519(message, privateKey.seed);

const CASES: [string, Uint8Array, Uint8Array, Uint8Array][] = [
  ["a valid signature", signature, message, publicKey.bytes],
  ["another message", signature, new Uint8Array([1]), publicKey.bytes],
  ["S + L", withS(signature, L), message, publicKey.bytes],
  ["a small-order key", signature, message, new Uint8Array(32).fill(0)],
  [
    "a non-canonical R (y = p)",
    Uint8Array.from([
      ...Uint8Array.fromHex(
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      ),
      ...signature.subarray(32),
    ]),
    message,
    publicKey.bytes,
  ],
  ["a short signature", signature.subarray(0, 63), message, publicKey.bytes],
];

for (const [what, sig, msg, key] of CASES) {
  Deno.test(`verifyEd25519WebCrypto() answers like verifyEd25519() for ${what}`, async () => {
    assert.equal(
      await verifyEd25519WebCrypto(sig, msg, key),
      verifyEd25519(sig, msg, key),
    );
  });
}

Deno.test("verifyEd25519WebCrypto() refuses S + L although the curve equation holds", async () => {
  assert.equal(
    await verifyEd25519WebCrypto(withS(signature, L), message, publicKey.bytes),
    "non-canonical-signature",
  );
});

const VECTORS = new URL(
  "../../shared/testdata/wycheproof/ed25519_test.json",
  import.meta.url,
);

Deno.test("verifyEd25519WebCrypto() accepts exactly the Wycheproof cases marked valid", async (t) => {
  let text: string;
  try {
    text = await Deno.readTextFile(VECTORS);
  } catch {
    if (Deno.env.get("CI")) throw new Error(`Cannot read ${VECTORS}`);
    console.warn(`SKIPPED "${t.name}": ${VECTORS.pathname} is absent`);
    return;
  }
  const file = JSON.parse(text) as {
    testGroups: {
      publicKey: { pk: string };
      tests: { tcId: number; msg: string; sig: string; result: string }[];
    }[];
  };
  const wrong: number[] = [];
  let count = 0;
  for (const group of file.testGroups) {
    const key = Uint8Array.fromHex(group.publicKey.pk);
    for (const test of group.tests) {
      count++;
      const result = await verifyEd25519WebCrypto(
        Uint8Array.fromHex(test.sig),
        Uint8Array.fromHex(test.msg),
        key,
      );
      if ((result === "valid") !== (test.result === "valid")) {
        wrong.push(test.tcId);
      }
    }
  }
  assert.ok(count > 100);
  assert.deepEqual(wrong, []);
});
