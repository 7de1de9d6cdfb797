/**
 * Ed25519 keys in the formats OpenSSL uses: PKCS#8 PEM for private
 * keys and SPKI PEM for public keys. A key ID is the lowercase hex
 * SHA-256 of the public key's SPKI DER encoding.
 *
 * @module
 */
import { sha256 } from "@noble/hashes/sha2.js";
import {
  bytesEqual,
  decodeBase64Strict,
  encodeBase64,
  toHex,
} from "./_base64.ts";
import { checkPublicKey, publicKeyFromSeed } from "./ed25519.ts";

/** An Ed25519 public key that passed every check, with its key ID. */
export interface PublicKey {
  /** The 32-byte encoded point A of RFC 8032. */
  readonly bytes: Uint8Array;
  /** Lowercase hex SHA-256 of the SPKI DER encoding. */
  readonly id: string;
}

/** An Ed25519 private key and the public key it signs for. */
export interface PrivateKey {
  /** The 32-byte private key (the RFC 8032 seed). */
  readonly seed: Uint8Array;
  /** The public key this private key signs for. */
  readonly publicKey: PublicKey;
}

/** Machine-readable reason a key is refused. */
export type KeyErrorReason =
  | "bad-pem"
  | "bad-der"
  | "wrong-algorithm"
  | "bad-key-length"
  | "encrypted-key"
  | "non-canonical-key"
  | "small-order-key"
  | "mismatched-public-key";

/** A key text or key bytes that cannot be used. */
export class KeyError extends Error {
  /** Stable reason code, see {@linkcode KeyErrorReason}. */
  readonly reason: KeyErrorReason;

  /** Makes a key error with a reason code and a message for people. */
  constructor(reason: KeyErrorReason, message: string) {
    super(message);
    this.name = "KeyError";
    this.reason = reason;
  }
}

// The only DER encodings of an Ed25519 key (RFC 8410): a fixed prefix
// followed by the 32 key bytes. AlgorithmIdentifier has no parameters.
const ED25519_OID = Uint8Array.of(0x2b, 0x65, 0x70);
const SPKI_PREFIX = Uint8Array.fromHex("302a300506032b6570032100");
const PKCS8_PREFIX = Uint8Array.fromHex("302e020100300506032b657004220420");

const KNOWN_OIDS: Record<string, string> = {
  "2b6571": "Ed448",
  "2b656e": "X25519",
  "2b656f": "X448",
  "2a864886f70d010101": "RSA",
  "2a8648ce3d0201": "EC",
  "2a8648ce380401": "DSA",
};

/**
 * Makes a new random key pair.
 *
 * @example
 * ```ts
 * import { generateKeyPair } from "./keys.ts";
 * import assert from "node:assert/strict";
 *
 * const { privateKey, publicKey } = generateKeyPair();
 * assert.deepEqual(privateKey.publicKey.id, publicKey.id);
 * assert.deepEqual(publicKey.id.length, 64);
 * ```
 */
export function generateKeyPair(): {
  privateKey: PrivateKey;
  publicKey: PublicKey;
} {
  const privateKey = privateKeyFromSeed(
    crypto.getRandomValues(new Uint8Array(32)),
  );
  return { privateKey, publicKey: privateKey.publicKey };
}

/**
 * Wraps a 32-byte seed as a private key.
 *
 * @throws {KeyError} `bad-key-length` when the seed is not 32 bytes
 */
export function privateKeyFromSeed(seed: Uint8Array): PrivateKey {
  if (seed.length !== 32) {
    throw new KeyError(
      "bad-key-length",
      `Cannot use private key: an Ed25519 private key has 32 bytes, not ${seed.length}`,
    );
  }
  const copy = seed.slice();
  return { seed: copy, publicKey: publicKeyFromBytes(publicKeyFromSeed(copy)) };
}

/**
 * Checks raw public key bytes and returns them with their key ID.
 *
 * @param bytes the 32-byte encoded point
 * @param source names the key in error messages
 * @throws {KeyError} `bad-key-length`, `non-canonical-key` or
 *   `small-order-key`
 */
export function publicKeyFromBytes(
  bytes: Uint8Array,
  source = "public key",
): PublicKey {
  if (bytes.length !== 32) {
    throw new KeyError(
      "bad-key-length",
      `Cannot use ${source}: an Ed25519 public key has 32 bytes, not ${bytes.length}`,
    );
  }
  const check = checkPublicKey(bytes);
  if (check === "small-order-key") {
    throw new KeyError(
      "small-order-key",
      `Cannot use ${source}: it is a point of small order, for which any signature would prove nothing`,
    );
  }
  if (check === "non-canonical-key") {
    throw new KeyError(
      "non-canonical-key",
      `Cannot use ${source}: it is not the canonical encoding of a point on Ed25519`,
    );
  }
  const copy = bytes.slice();
  return { bytes: copy, id: keyIdOf(copy) };
}

/**
 * Returns the key ID of a public key: lowercase hex SHA-256 of its SPKI
 * DER encoding, the same as
 * `openssl pkey -pubin -outform DER | sha256sum`.
 *
 * @param publicKey the 32-byte public key or a {@linkcode PublicKey}
 *
 * @example
 * ```ts
 * import { keyIdOf } from "./keys.ts";
 * import assert from "node:assert/strict";
 *
 * // RFC 8032 test 1 public key.
 * const key = Uint8Array.fromHex(
 *   "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
 * );
 * assert.match(keyIdOf(key), /^[0-9a-f]{64}$/);
 * ```
 */
export function keyIdOf(publicKey: Uint8Array | PublicKey): string {
  const bytes = publicKey instanceof Uint8Array ? publicKey : publicKey.bytes;
  return toHex(sha256(spkiDer(bytes)));
}

/**
 * Parses a PKCS#8 PEM Ed25519 private key, as written by
 * {@linkcode encodePrivateKeyPem} or `openssl genpkey -algorithm
 * ed25519`. A PKCS#8 v2 key with an embedded public key is accepted
 * when that key matches the private one.
 *
 * @param text the PEM text
 * @param source names the key in error messages (usually the path)
 * @throws {KeyError} with the reason the key cannot be used
 *
 * @example
 * ```ts
 * import {
 *   encodePrivateKeyPem,
 *   generateKeyPair,
 *   parsePrivateKeyPem,
 * } from "./keys.ts";
 * import assert from "node:assert/strict";
 *
 * const { privateKey } = generateKeyPair();
 * const pem = encodePrivateKeyPem(privateKey);
 * const back = parsePrivateKeyPem(pem, "release.key");
 * assert.equal(back.publicKey.id, privateKey.publicKey.id);
 * ```
 */
export function parsePrivateKeyPem(text: string, source: string): PrivateKey {
  const der = pemBody(text, "PRIVATE KEY", source);
  if (der.length === 48 && bytesEqual(der.subarray(0, 16), PKCS8_PREFIX)) {
    return privateKeyFromSeed(der.subarray(16));
  }

  // Anything else: walk the DER to say precisely what is wrong.
  const outer = readTlv(der, 0, 0x30, source);
  if (outer.next !== der.length) fail("bad-der", source, "trailing data");
  const version = readTlv(der, outer.start, 0x02, source);
  const v = der.subarray(version.start, version.end);
  if (v.length !== 1 || v[0] > 1) {
    fail("bad-der", source, "unsupported PKCS#8 version");
  }
  const algorithm = readAlgorithm(der, version.next, source);
  const wrapped = readTlv(der, algorithm, 0x04, source);
  const inner = readTlv(der, wrapped.start, 0x04, source);
  if (inner.next !== wrapped.end) fail("bad-der", source, "trailing data");
  const seed = der.subarray(inner.start, inner.end);
  if (seed.length !== 32) {
    throw new KeyError(
      "bad-key-length",
      `Cannot use ${source}: an Ed25519 private key has 32 bytes, not ${seed.length}`,
    );
  }
  const key = privateKeyFromSeed(seed);

  let pos = wrapped.next;
  if (pos < outer.end && der[pos] === 0xa0) {
    pos = readTlv(der, pos, 0xa0, source).next;
  }
  if (pos < outer.end && der[pos] === 0x81) {
    const embedded = readTlv(der, pos, 0x81, source);
    const bits = der.subarray(embedded.start, embedded.end);
    if (
      v[0] !== 1 || bits.length !== 33 || bits[0] !== 0 ||
      !bytesEqual(bits.subarray(1), key.publicKey.bytes)
    ) {
      throw new KeyError(
        "mismatched-public-key",
        `Cannot use ${source}: the embedded public key does not belong to the private key`,
      );
    }
    pos = embedded.next;
  }
  if (pos !== outer.end) fail("bad-der", source, "unexpected fields");
  return key;
}

/**
 * Parses an SPKI PEM Ed25519 public key, as written by
 * {@linkcode encodePublicKeyPem} or `openssl pkey -pubout`.
 *
 * @param text the PEM text
 * @param source names the key in error messages (a path or a label)
 * @throws {KeyError} with the reason the key cannot be used: not
 *   Ed25519, wrong length, not canonical, or of small order
 *
 * @example
 * ```ts
 * import {
 *   encodePublicKeyPem,
 *   generateKeyPair,
 *   parsePublicKeyPem,
 * } from "./keys.ts";
 * import assert from "node:assert/strict";
 *
 * const { publicKey } = generateKeyPair();
 * const pem = encodePublicKeyPem(publicKey);
 * assert.equal(parsePublicKeyPem(pem, "release.pub").id, publicKey.id);
 * ```
 */
export function parsePublicKeyPem(text: string, source: string): PublicKey {
  const der = pemBody(text, "PUBLIC KEY", source);
  if (der.length === 44 && bytesEqual(der.subarray(0, 12), SPKI_PREFIX)) {
    return publicKeyFromBytes(der.subarray(12), source);
  }

  const outer = readTlv(der, 0, 0x30, source);
  if (outer.next !== der.length) fail("bad-der", source, "trailing data");
  const algorithm = readAlgorithm(der, outer.start, source);
  const bits = readTlv(der, algorithm, 0x03, source);
  if (bits.next !== outer.end) fail("bad-der", source, "unexpected fields");
  if (bits.end === bits.start || der[bits.start] !== 0) {
    fail("bad-der", source, "bit string with unused bits");
  }
  const raw = der.subarray(bits.start + 1, bits.end);
  throw new KeyError(
    "bad-key-length",
    `Cannot use ${source}: an Ed25519 public key has 32 bytes, not ${raw.length}`,
  );
}

/** Encodes a private key as PKCS#8 v1 PEM, as OpenSSL writes it. */
export function encodePrivateKeyPem(key: PrivateKey): string {
  const der = new Uint8Array(48);
  der.set(PKCS8_PREFIX);
  der.set(key.seed, 16);
  return pem("PRIVATE KEY", der);
}

/** Encodes a public key as SPKI PEM, as OpenSSL writes it. */
export function encodePublicKeyPem(key: PublicKey | Uint8Array): string {
  return pem(
    "PUBLIC KEY",
    spkiDer(key instanceof Uint8Array ? key : key.bytes),
  );
}

function spkiDer(bytes: Uint8Array): Uint8Array {
  const der = new Uint8Array(44);
  der.set(SPKI_PREFIX);
  der.set(bytes, 12);
  return der;
}

function pem(label: string, der: Uint8Array): string {
  const body = encodeBase64(der).match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

function pemBody(text: string, label: string, source: string): Uint8Array {
  const blocks = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)];
  if (blocks.length !== 1) {
    fail(
      "bad-pem",
      source,
      blocks.length === 0
        ? `no PEM block found (expected "${label}")`
        : `expected one PEM block, found ${blocks.length}`,
    );
  }
  const found = blocks[0][1];
  if (found === "ENCRYPTED PRIVATE KEY" && label === "PRIVATE KEY") {
    throw new KeyError(
      "encrypted-key",
      `Cannot use ${source}: the private key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN.key)`,
    );
  }
  if (found !== label) {
    fail(
      "bad-pem",
      source,
      `expected a "${label}" PEM block, found "${found}"`,
    );
  }

  const match = text.match(
    /^\s*-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]*?)\r?\n?-----END ([A-Z0-9 ]+)-----\s*$/,
  );
  if (match === null || match[3] !== label) {
    fail("bad-pem", source, "malformed PEM block or data outside it");
  }
  const der = decodeBase64Strict(match[2].replace(/\r?\n/g, ""));
  if (der === null) fail("bad-pem", source, "invalid base64 in PEM body");
  return der;
}

interface Tlv {
  start: number;
  end: number;
  next: number;
}

function readTlv(
  der: Uint8Array,
  pos: number,
  tag: number,
  source: string,
): Tlv {
  if (pos >= der.length || der[pos] !== tag) {
    fail(
      "bad-der",
      source,
      `expected DER tag 0x${tag.toString(16)} at byte ${pos}`,
    );
  }
  let length = der[pos + 1];
  let start = pos + 2;
  if (length === undefined) fail("bad-der", source, "truncated");
  if (length >= 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 2) fail("bad-der", source, "bad length");
    length = 0;
    for (let i = 0; i < count; i++) {
      if (start >= der.length) fail("bad-der", source, "truncated");
      length = length * 256 + der[start++];
    }
    if (length < 0x80 || (count === 2 && length < 0x100)) {
      fail("bad-der", source, "non-minimal length");
    }
  }
  const end = start + length;
  if (end > der.length) fail("bad-der", source, "truncated");
  return { start, end, next: end };
}

function readAlgorithm(der: Uint8Array, pos: number, source: string): number {
  const sequence = readTlv(der, pos, 0x30, source);
  const oid = readTlv(der, sequence.start, 0x06, source);
  const bytes = der.subarray(oid.start, oid.end);
  if (!bytesEqual(bytes, ED25519_OID)) {
    const name = KNOWN_OIDS[toHex(bytes)] ?? `OID ${toHex(bytes)}`;
    throw new KeyError(
      "wrong-algorithm",
      `Cannot use ${source}: it is a ${name} key, not Ed25519`,
    );
  }
  if (oid.next !== sequence.end) {
    fail("bad-der", source, "Ed25519 takes no algorithm parameters");
  }
  return sequence.next;
}

function fail(reason: KeyErrorReason, source: string, why: string): never {
  throw new KeyError(reason, `Cannot use ${source}: ${why}`);
}
