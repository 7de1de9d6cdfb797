import assert from "node:assert/strict";
import { SMALL_ORDER, SMALL_ORDER_NON_CANONICAL } from "./_testing.ts";
import {
  checkPublicKey,
  publicKeyFromSeed,
  signEd25519,
  verifyEd25519,
} from "./ed25519.ts";

// RFC 8032 section 7.1, test 2: one-byte message 0x72.
const SEED = Uint8Array.fromHex(
  "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
);
const PUBLIC = Uint8Array.fromHex(
  "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
);
const SIGNATURE = Uint8Array.fromHex(
  "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da" +
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
);
const MESSAGE = Uint8Array.of(0x72);

Deno.test("signEd25519() reproduces the RFC 8032 test vector", () => {
  assert.deepEqual(publicKeyFromSeed(SEED), PUBLIC);
  assert.deepEqual(signEd25519(MESSAGE, SEED), SIGNATURE);
  assert.equal(verifyEd25519(SIGNATURE, MESSAGE, PUBLIC), "valid");
});

Deno.test("verifyEd25519() refuses another message", () => {
  assert.equal(
    verifyEd25519(SIGNATURE, Uint8Array.of(0x73), PUBLIC),
    "bad-signature",
  );
});

Deno.test("verifyEd25519() refuses S + L as non-canonical", () => {
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(SIGNATURE[i]);
  let t = s + L;
  const sig = SIGNATURE.slice();
  for (let i = 32; i < 64; i++) {
    sig[i] = Number(t & 0xffn);
    t >>= 8n;
  }
  assert.equal(verifyEd25519(sig, MESSAGE, PUBLIC), "non-canonical-signature");
});

Deno.test("verifyEd25519() refuses signatures of the wrong length", () => {
  for (
    const sig of [SIGNATURE.subarray(0, 63), Uint8Array.of(...SIGNATURE, 0)]
  ) {
    assert.equal(
      verifyEd25519(sig, MESSAGE, PUBLIC),
      "non-canonical-signature",
    );
  }
});

Deno.test("verifyEd25519() refuses every small-order key, in every encoding", () => {
  for (const raw of [...SMALL_ORDER, ...SMALL_ORDER_NON_CANONICAL]) {
    const key = Uint8Array.fromHex(raw);
    assert.equal(checkPublicKey(key), "small-order-key", raw);
    // R = A, S = 0 satisfies the cofactored equation for small-order A.
    const sig = new Uint8Array(64);
    sig.set(key);
    assert.notEqual(verifyEd25519(sig, MESSAGE, key), "valid", raw);
  }
});

Deno.test("checkPublicKey() refuses a key of the wrong length", () => {
  assert.equal(checkPublicKey(PUBLIC.subarray(1)), "non-canonical-key");
  assert.equal(checkPublicKey(PUBLIC), "valid");
});

Deno.test("signEd25519() refuses a seed of the wrong length", () => {
  assert.throws(() => signEd25519(MESSAGE, new Uint8Array(31)), RangeError);
  assert.throws(() => publicKeyFromSeed(new Uint8Array(33)), RangeError);
});
