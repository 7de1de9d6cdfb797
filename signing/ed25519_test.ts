import * as ed from "@noble/ed25519";
import fc from "fast-check";
import assert from "node:assert/strict";
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  sign,
} from "node:crypto";
import { SMALL_ORDER, SMALL_ORDER_NON_CANONICAL } from "./_testing.ts";
import {
  checkPublicKey,
  publicKeyFromSeed,
  signEd25519,
  VERIFY_IMPLEMENTATION,
  verifyEd25519,
  verifyEd25519Native,
  verifyEd25519Noble,
} from "./ed25519.ts";
import {
  encodePrivateKeyPem,
  encodePublicKeyPem,
  privateKeyFromSeed,
} from "./keys.ts";

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
  assert.equal(verifyEd25519Native(SIGNATURE, MESSAGE, PUBLIC), "valid");
});

Deno.test("verifyEd25519Native() refuses another message", () => {
  assert.equal(
    verifyEd25519Native(SIGNATURE, Uint8Array.of(0x73), PUBLIC),
    "bad-signature",
  );
});

Deno.test("verifyEd25519Native() refuses S + L as non-canonical", () => {
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(SIGNATURE[i]);
  let t = s + L;
  const sig = SIGNATURE.slice();
  for (let i = 32; i < 64; i++) {
    sig[i] = Number(t & 0xffn);
    t >>= 8n;
  }
  assert.equal(
    verifyEd25519Native(sig, MESSAGE, PUBLIC),
    "non-canonical-signature",
  );
});

Deno.test("verifyEd25519Native() refuses signatures of the wrong length", () => {
  for (
    const sig of [SIGNATURE.subarray(0, 63), Uint8Array.of(...SIGNATURE, 0)]
  ) {
    assert.equal(
      verifyEd25519Native(sig, MESSAGE, PUBLIC),
      "non-canonical-signature",
    );
  }
});

Deno.test("verifyEd25519Native() refuses every small-order key, in every encoding", () => {
  for (const raw of [...SMALL_ORDER, ...SMALL_ORDER_NON_CANONICAL]) {
    const key = Uint8Array.fromHex(raw);
    assert.equal(checkPublicKey(key), "small-order-key", raw);
    // R = A, S = 0 satisfies the cofactored equation for small-order A.
    const sig = new Uint8Array(64);
    sig.set(key);
    assert.notEqual(verifyEd25519Native(sig, MESSAGE, key), "valid", raw);
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

const L = 2n ** 252n + 27742317777372353535851937790883648493n;

function toLittleEndian(value: bigint): Uint8Array {
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return bytes;
}

function fromLittleEndian(bytes: Uint8Array): bigint {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) {
    value = (value << 8n) | BigInt(bytes[i]);
  }
  return value;
}

function sha512ModL(...parts: Uint8Array[]): bigint {
  const hash = createHash("sha512");
  for (const part of parts) hash.update(part);
  return fromLittleEndian(new Uint8Array(hash.digest())) % L;
}

/**
 * Signs like RFC 8032 but with a nonce point R = [r]B + T and public
 * key A + U, where T and U are of small order: the cofactored equation
 * holds, the cofactorless one does not.
 */
function mixedOrderSignature(
  seed: Uint8Array,
  message: Uint8Array,
  torsionR: string,
  torsionA: string,
): { signature: Uint8Array; publicKey: Uint8Array } {
  const { scalar } = ed.utils.getExtendedPublicKey(seed);
  const a = ed.Point.BASE.multiply(scalar).add(ed.Point.fromHex(torsionA));
  const publicKey = a.toBytes();
  const r = sha512ModL(seed, message) || 1n;
  const point = ed.Point.BASE.multiply(r).add(ed.Point.fromHex(torsionR));
  const rBytes = point.toBytes();
  const k = sha512ModL(rBytes, publicKey, message);
  const s = (r + k * scalar) % L;
  return {
    signature: Uint8Array.of(...rBytes, ...toLittleEndian(s)),
    publicKey,
  };
}

// A point of order 8 and the identity.
const ORDER_8 = SMALL_ORDER[4];
const IDENTITY = SMALL_ORDER[0];

Deno.test("verifyEd25519Native() agrees with verifyEd25519Noble() on random signatures and single-byte changes", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 0, maxLength: 300 }),
      fc.constantFrom("none", "signature", "message", "key"),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      (seed, message, part, at, flip) => {
        const publicKey = publicKeyFromSeed(seed);
        const signature = signEd25519(message, seed);
        const target = { none: undefined, signature, message, key: publicKey }[
          part
        ];
        if (target !== undefined && target.length > 0) {
          target[at % target.length] ^= flip;
        }

        const native = verifyEd25519Native(signature, message, publicKey);
        const noble = verifyEd25519Noble(signature, message, publicKey);
        assert.equal(native, noble);
        if (target === undefined || target.length === 0) {
          assert.equal(native, "valid");
        } else {
          assert.notEqual(native, "valid");
        }
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("verifyEd25519Native() refuses a non-canonical or off-curve R like verifyEd25519Noble()", () => {
  // The smallest y whose x² has no square root: no point has it.
  let offCurve: Uint8Array | undefined;
  for (let y = 2n; y < 100n && offCurve === undefined; y++) {
    const bytes = toLittleEndian(y);
    try {
      ed.Point.fromBytes(bytes, false);
    } catch {
      offCurve = bytes;
    }
  }
  assert.ok(offCurve, "a y off the curve below 100");

  for (
    const r of [
      ...SMALL_ORDER_NON_CANONICAL.map((h) => Uint8Array.fromHex(h)),
      offCurve,
    ]
  ) {
    const sig = SIGNATURE.slice();
    sig.set(r);
    assert.equal(
      verifyEd25519Native(sig, MESSAGE, PUBLIC),
      "non-canonical-signature",
    );
    assert.equal(
      verifyEd25519Noble(sig, MESSAGE, PUBLIC),
      "non-canonical-signature",
    );
  }
});

Deno.test("verifyEd25519Native() refuses a signature whose R has a small-order part, which the cofactored reference accepts", () => {
  const { signature, publicKey } = mixedOrderSignature(
    SEED,
    MESSAGE,
    ORDER_8,
    IDENTITY,
  );
  assert.deepEqual(publicKey, PUBLIC);
  assert.equal(verifyEd25519Noble(signature, MESSAGE, publicKey), "valid");
  assert.equal(
    verifyEd25519Native(signature, MESSAGE, publicKey),
    "bad-signature",
  );
});

Deno.test("verifyEd25519Native() refuses a signature under a key with a small-order part, which the cofactored reference accepts", () => {
  // [k]U vanishes when 8 divides k; another message avoids that case.
  let checked = 0;
  for (let i = 0; i < 16 && checked < 4; i++) {
    const message = Uint8Array.of(i);
    const { signature, publicKey } = mixedOrderSignature(
      SEED,
      message,
      IDENTITY,
      ORDER_8,
    );
    const k = sha512ModL(signature.subarray(0, 32), publicKey, message);
    if (k % 8n === 0n) continue;
    checked++;
    assert.equal(checkPublicKey(publicKey), "valid");
    assert.equal(verifyEd25519Noble(signature, message, publicKey), "valid");
    assert.equal(
      verifyEd25519Native(signature, message, publicKey),
      "bad-signature",
    );
  }
  assert.equal(checked, 4);
});

Deno.test("signEd25519() signs exactly like node:crypto with the PKCS#8 key of the same seed", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 0, maxLength: 300 }),
      (seed, message) => {
        const key = privateKeyFromSeed(seed);
        const native = createPrivateKey(encodePrivateKeyPem(key));
        const expected = new Uint8Array(sign(null, message, native));
        assert.deepEqual(signEd25519(message, seed), expected);
        assert.deepEqual(
          new Uint8Array(
            createPublicKey(encodePublicKeyPem(key.publicKey)).export({
              format: "der",
              type: "spki",
            }),
          ).subarray(12),
          key.publicKey.bytes,
        );
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("verifyEd25519Native() keeps its answers when more keys are used than it remembers", () => {
  const first = publicKeyFromSeed(SEED);
  assert.equal(verifyEd25519Native(SIGNATURE, MESSAGE, first), "valid");
  const small = Uint8Array.fromHex(SMALL_ORDER[4]);
  assert.equal(
    verifyEd25519Native(SIGNATURE, MESSAGE, small),
    "small-order-key",
  );

  for (let i = 0; i < 600; i++) {
    const seed = new Uint8Array(32);
    seed[0] = i & 0xff;
    seed[1] = i >> 8;
    seed[2] = 1;
    const publicKey = publicKeyFromSeed(seed);
    const signature = signEd25519(MESSAGE, seed);
    assert.equal(verifyEd25519Native(signature, MESSAGE, publicKey), "valid");
    assert.equal(
      verifyEd25519Native(SIGNATURE, MESSAGE, publicKey),
      "bad-signature",
    );
  }

  assert.equal(verifyEd25519Native(SIGNATURE, MESSAGE, first), "valid");
  assert.equal(
    verifyEd25519Native(SIGNATURE, MESSAGE, small),
    "small-order-key",
  );
});

Deno.test("verifyEd25519Native() does not keep a key's answer after its bytes change", () => {
  const key = PUBLIC.slice();
  assert.equal(verifyEd25519Native(SIGNATURE, MESSAGE, key), "valid");
  key[0] ^= 1;
  assert.notEqual(verifyEd25519Native(SIGNATURE, MESSAGE, key), "valid");
  key[0] ^= 1;
  assert.equal(verifyEd25519Native(SIGNATURE, MESSAGE, key), "valid");
});

Deno.test("verifyEd25519Native() reads signature, message and key from views at an offset", () => {
  const signature = new Uint8Array(100);
  signature.set(SIGNATURE, 20);
  const message = Uint8Array.of(0x00, 0x72, 0x73);
  const key = new Uint8Array(50);
  key.set(PUBLIC, 9);
  const view = (bytes: Uint8Array, at: number, length: number) =>
    bytes.subarray(at, at + length);

  assert.equal(
    verifyEd25519Native(
      view(signature, 20, 64),
      view(message, 1, 1),
      view(key, 9, 32),
    ),
    "valid",
  );
  assert.equal(
    verifyEd25519Native(
      view(signature, 20, 64),
      view(message, 2, 1),
      view(key, 9, 32),
    ),
    "bad-signature",
  );
  assert.notEqual(
    verifyEd25519Native(
      view(signature, 19, 64),
      view(message, 1, 1),
      view(key, 9, 32),
    ),
    "valid",
  );
});

Deno.test("verifyEd25519() is the verifier VERIFY_IMPLEMENTATION names", () => {
  assert.equal(VERIFY_IMPLEMENTATION, "noble");
  assert.equal(verifyEd25519, verifyEd25519Noble);
  assert.equal(verifyEd25519(SIGNATURE, MESSAGE, PUBLIC), "valid");
});
