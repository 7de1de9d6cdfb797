/**
 * Ed25519 with strict RFC 8032 verification rules: the one function
 * every signature check in Palisade goes through.
 *
 * Verification runs on the runtime's native Ed25519 (`node:crypto`,
 * synchronous), behind the same strictness checks as the pure
 * JavaScript reference {@linkcode verifyEd25519Noble}. Signing and key
 * derivation use @noble/ed25519; Ed25519 is deterministic, so both
 * produce the same bytes for the same seed.
 *
 * @module
 */
import * as ed from "@noble/ed25519";
import { Buffer } from "node:buffer";
import {
  createHash,
  createPublicKey,
  type KeyObject,
  verify,
} from "node:crypto";

// The native SHA-512 is ten times faster than a JavaScript one on large
// payloads, and verification hashes the whole payload.
ed.hashes.sha512 = (message: Uint8Array) =>
  new Uint8Array(createHash("sha512").update(message).digest());

/** Order of the Ed25519 base point (RFC 8032 section 5.1). */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

/** Field prime 2^255 - 19. */
const P = 2n ** 255n - 19n;

/** L, P and P - 1 as 32 little-endian bytes, for checks without bigint. */
const L_BYTES = littleEndianBytes(L);
const P_BYTES = littleEndianBytes(P);
const P_MINUS_1_BYTES = littleEndianBytes(P - 1n);
const ONE_BYTES = littleEndianBytes(1n);

/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410). */
const SPKI_PREFIX = Uint8Array.fromHex("302a300506032b6570032100");

/** Most public keys remembered with their check and native handle. */
const KEY_CACHE_SIZE = 256;

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
 * order, then the group equation [S]B = R + [k]A checked by the
 * runtime's native Ed25519.
 *
 * The native check is cofactorless, so it is stricter than the
 * cofactored equation of {@linkcode verifyEd25519Noble}: the two differ
 * only on signatures whose R or A carries a small-order component,
 * which no honest signer produces. A public key is checked and imported
 * once, then reused from a bounded cache.
 *
 * @param signature the 64-byte signature R ‖ S
 * @param message the signed bytes
 * @param publicKey the 32-byte public key A
 * @returns `valid` or the reason the signature is refused
 *
 * @example
 * ```ts
 * import { signEd25519, verifyEd25519Native } from "./ed25519.ts";
 * import { generateKeyPair } from "./keys.ts";
 * import assert from "node:assert/strict";
 *
 * const { privateKey, publicKey } = generateKeyPair();
 * const message = new TextEncoder().encode("hello");
 * const signature = signEd25519(message, privateKey.seed);
 * assert.deepEqual(
 *   verifyEd25519Native(signature, message, publicKey.bytes),
 *   "valid",
 * );
 * ```
 */
export function verifyEd25519Native(
  signature: Uint8Array,
  message: Uint8Array,
  publicKey: Uint8Array,
): Ed25519Result {
  const key = nativeKey(publicKey);
  if (typeof key === "string") return key;

  if (signature.length !== 64) return "non-canonical-signature";
  if (!below(signature.subarray(32), L_BYTES, false)) {
    return "non-canonical-signature";
  }
  const r = signature.subarray(0, 32);
  if (!below(r, P_BYTES, true) || isNegativeZero(r)) {
    return "non-canonical-signature";
  }

  if (verify(null, message, key, signature)) return "valid";

  // Only a refusal pays for decoding R, to tell a point off the curve
  // (not a canonical signature) from a signature that does not hold.
  return isCanonicalPoint(r) ? "bad-signature" : "non-canonical-signature";
}

/**
 * Verifies an Ed25519 signature with strict rules: canonical S
 * (S < L), canonical R and A (y < p, no negative zero), A not of small
 * order, then the cofactored group equation of RFC 8032 section 5.1.7,
 * all in JavaScript by @noble/ed25519. This is the verifier bundles,
 * heartbeats and rollback commands go through: see
 * {@linkcode verifyEd25519}.
 *
 * @param signature the 64-byte signature R ‖ S
 * @param message the signed bytes
 * @param publicKey the 32-byte public key A
 * @returns `valid` or the reason the signature is refused
 *
 * @example
 * ```ts
 * import { signEd25519, verifyEd25519Noble } from "./ed25519.ts";
 * import { generateKeyPair } from "./keys.ts";
 * import assert from "node:assert/strict";
 *
 * const { privateKey, publicKey } = generateKeyPair();
 * const message = new TextEncoder().encode("hello");
 * const signature = signEd25519(message, privateKey.seed);
 * assert.deepEqual(
 *   verifyEd25519Noble(signature, message, publicKey.bytes),
 *   "valid",
 * );
 * ```
 */
export function verifyEd25519Noble(
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

/** Which Ed25519 verifier {@linkcode verifyEd25519} is. */
export const VERIFY_IMPLEMENTATION: "noble" | "native" = "noble";

/**
 * The Ed25519 verifier the product uses for bundles, heartbeats and
 * rollback commands: {@linkcode verifyEd25519Noble}.
 *
 * {@linkcode verifyEd25519Native} passes the same Wycheproof and refusal
 * tests and is about twenty times faster on small bundles, but in the
 * 1,000-cycle nftables soak the service's resident memory grows by 13%
 * after warm-up with it, against under 5% with @noble/ed25519.
 */
// Limitation: verification stays on @noble/ed25519 (about 0.7 ms a signature) until the native verifier's memory growth under the soak is explained.
export const verifyEd25519: (
  signature: Uint8Array,
  message: Uint8Array,
  publicKey: Uint8Array,
) => Ed25519Result = verifyEd25519Noble;

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

const keys = new Map<string, KeyObject | Ed25519Result>();

/** The native handle of a usable public key, or why it is refused. */
function nativeKey(publicKey: Uint8Array): KeyObject | Ed25519Result {
  if (publicKey.length !== 32) return "non-canonical-key";

  const id = publicKey.toHex();
  const cached = keys.get(id);
  if (cached !== undefined) return cached;

  const checked = checkPublicKey(publicKey);
  const entry = checked === "valid"
    ? createPublicKey({
      key: Buffer.concat([SPKI_PREFIX, publicKey]),
      format: "der",
      type: "spki",
    })
    : checked;
  // The oldest key goes first; a trust store's few keys stay.
  if (keys.size >= KEY_CACHE_SIZE) {
    for (const oldest of keys.keys()) {
      keys.delete(oldest);
      break;
    }
  }
  keys.set(id, entry);
  return entry;
}

/**
 * Whether 32 little-endian bytes are below `bound`; with `yOnly` the
 * top bit (the sign of x in a point encoding) is left out.
 */
function below(bytes: Uint8Array, bound: Uint8Array, yOnly: boolean): boolean {
  for (let i = 31; i >= 0; i--) {
    const byte = i === 31 && yOnly ? bytes[i] & 0x7f : bytes[i];
    if (byte !== bound[i]) return byte < bound[i];
  }
  return false;
}

/** The two points with x = 0 (y = ±1) encoded with the sign bit set. */
function isNegativeZero(bytes: Uint8Array): boolean {
  if ((bytes[31] & 0x80) === 0) return false;
  const y = bytes.slice();
  y[31] &= 0x7f;
  return equal(y, ONE_BYTES) || equal(y, P_MINUS_1_BYTES);
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return false;
  return true;
}

function littleEndianBytes(value: bigint): Uint8Array {
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return bytes;
}
