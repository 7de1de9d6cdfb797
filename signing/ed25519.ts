/**
 * Ed25519 with strict RFC 8032 verification rules: the one function
 * every signature check in Palisade goes through.
 *
 * @module
 */
import * as ed from "@noble/ed25519";
import { createHash } from "node:crypto";

// The native SHA-512 is ten times faster than a JavaScript one on large
// payloads, and verification hashes the whole payload.
ed.hashes.sha512 = (message: Uint8Array) =>
  new Uint8Array(createHash("sha512").update(message).digest());

/** Order of the Ed25519 base point (RFC 8032 section 5.1). */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

/** Field prime 2^255 - 19. */
const P = 2n ** 255n - 19n;

/**
 * Outcome of {@linkcode verifyEd25519}: `valid`, or why not.
 *
 * - `non-canonical-signature`: wrong length, S ≥ L, or R not the
 *   canonical encoding of a curve point
 * - `non-canonical-key`: the public key is not the canonical encoding
 *   of a curve point
 * - `small-order-key`: the public key is one of the 8 points of small
 *   order (in any encoding), for which a signature proves nothing
 * - `bad-signature`: well-formed but the equation does not hold
 */
export type Ed25519Result =
  | "valid"
  | "non-canonical-signature"
  | "non-canonical-key"
  | "small-order-key"
  | "bad-signature";

/**
 * Verifies an Ed25519 signature with strict rules: canonical S
 * (S < L), canonical R and A (y < p, no negative zero), A not of small
 * order, then the cofactored group equation of RFC 8032 section 5.1.7.
 *
 * @param signature the 64-byte signature R ‖ S
 * @param message the signed bytes
 * @param publicKey the 32-byte public key A
 * @returns `valid` or the reason the signature is refused
 *
 * @example
 * ```ts
 * import { signEd25519, verifyEd25519 } from "./ed25519.ts";
 * import { generateKeyPair } from "./keys.ts";
 * import assert from "node:assert/strict";
 *
 * const { privateKey, publicKey } = generateKeyPair();
 * const message = new TextEncoder().encode("hello");
 * const signature = signEd25519(message, privateKey.seed);
 * assert.deepEqual(verifyEd25519(signature, message, publicKey.bytes), "valid");
 * ```
 */
export function verifyEd25519(
  signature: Uint8Array,
  message: Uint8Array,
  publicKey: Uint8Array,
): Ed25519Result {
  const key = checkPublicKey(publicKey);
  if (key !== "valid") return key;

  if (signature.length !== 64) return "non-canonical-signature";
  if (littleEndian(signature.subarray(32)) >= L) {
    return "non-canonical-signature";
  }
  if (!isCanonicalPoint(signature.subarray(0, 32))) {
    return "non-canonical-signature";
  }

  try {
    return ed.verify(signature, message, publicKey, { zip215: false })
      ? "valid"
      : "bad-signature";
  } catch {
    return "bad-signature";
  }
}

/**
 * Checks that `publicKey` is a usable Ed25519 public key: 32 bytes, a
 * canonical encoding of a curve point, and not of small order. Small
 * order is tested first so that every encoding of the 8 small-order
 * points, canonical or not, reports `small-order-key`.
 *
 * @param publicKey the 32-byte encoded point
 * @returns `valid`, `non-canonical-key` or `small-order-key`
 */
export function checkPublicKey(
  publicKey: Uint8Array,
): "valid" | "non-canonical-key" | "small-order-key" {
  if (publicKey.length !== 32) return "non-canonical-key";

  let lenient;
  try {
    lenient = ed.Point.fromBytes(publicKey, true);
  } catch {
    return "non-canonical-key";
  }
  if (lenient.isSmallOrder()) return "small-order-key";

  return isCanonicalPoint(publicKey) ? "valid" : "non-canonical-key";
}

/**
 * Signs `message` with the 32-byte private seed.
 *
 * @param message the bytes to sign
 * @param seed the 32-byte Ed25519 private key (RFC 8032 seed)
 * @returns the 64-byte signature
 * @throws {RangeError} when the seed is not 32 bytes
 */
export function signEd25519(
  message: Uint8Array,
  seed: Uint8Array,
): Uint8Array {
  if (seed.length !== 32) {
    throw new RangeError(
      `Cannot sign: an Ed25519 private key has 32 bytes, not ${seed.length}`,
    );
  }
  return ed.sign(message, seed);
}

/**
 * Derives the 32-byte public key from a 32-byte private seed.
 *
 * @throws {RangeError} when the seed is not 32 bytes
 */
export function publicKeyFromSeed(seed: Uint8Array): Uint8Array {
  if (seed.length !== 32) {
    throw new RangeError(
      `Cannot derive public key: an Ed25519 private key has 32 bytes, not ${seed.length}`,
    );
  }
  return ed.getPublicKey(seed);
}

function isCanonicalPoint(bytes: Uint8Array): boolean {
  const y = littleEndian(bytes) & ((1n << 255n) - 1n);
  if (y >= P) return false;
  try {
    // Strict decoding also refuses x = 0 with the sign bit set.
    ed.Point.fromBytes(bytes, false);
    return true;
  } catch {
    return false;
  }
}

function littleEndian(bytes: Uint8Array): bigint {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) {
    value = (value << 8n) | BigInt(bytes[i]);
  }
  return value;
}
