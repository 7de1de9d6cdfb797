/**
 * The other Ed25519 library of the verification benchmark: WebCrypto
 * (`crypto.subtle`, native in Deno) wrapped in the same strictness rules
 * as Palisade's own verifier, so that both accept and refuse the same
 * signatures and only speed differs: canonical S (S < L), canonical R
 * and A (y < p, no negative zero), A not of small order. The rules on A
 * are checked once per key, as a trust store's keys are fixed.
 *
 * @module
 */
import {
  checkPublicKey,
  decodeEnvelope,
  type Ed25519Result,
  pae,
  parseBundleStatement,
  parseStrictJson,
  PAYLOAD_TYPES,
  type TrustStore,
} from "../signing/mod.ts";

/** Order of the Ed25519 base point (RFC 8032 section 5.1). */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

/** Field prime 2^255 - 19. */
const P = 2n ** 255n - 19n;

const keys = new Map<string, Promise<CryptoKey | Ed25519Result>>();

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function littleEndian(bytes: Uint8Array): bigint {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) {
    value = (value << 8n) | BigInt(bytes[i]);
  }
  return value;
}

/** y < p, and no sign bit on the two points with x = 0 (y = ±1). */
function canonicalEncoding(bytes: Uint8Array): boolean {
  const y = littleEndian(bytes) & ((1n << 255n) - 1n);
  const sign = (bytes[31] & 0x80) !== 0;
  return y < P && !(sign && (y === 1n || y === P - 1n));
}

function importKey(publicKey: Uint8Array): Promise<CryptoKey | Ed25519Result> {
  const id = hex(publicKey);
  let entry = keys.get(id);
  if (entry === undefined) {
    const checked = checkPublicKey(publicKey);
    entry = checked !== "valid"
      ? Promise.resolve(checked)
      : crypto.subtle.importKey(
        "raw",
        publicKey.slice(),
        { name: "Ed25519" },
        false,
        ["verify"],
      ).catch(() => "non-canonical-key" as const);
    keys.set(id, entry);
  }
  return entry;
}

/**
 * Verifies an Ed25519 signature with WebCrypto under Palisade's strict
 * rules; same answers as `verifyEd25519()`.
 *
 * @param signature the 64-byte signature R ‖ S
 * @param message the signed bytes
 * @param publicKey the 32-byte public key A
 * @returns `valid` or the reason the signature is refused
 */
export async function verifyEd25519WebCrypto(
  signature: Uint8Array,
  message: Uint8Array,
  publicKey: Uint8Array,
): Promise<Ed25519Result> {
  const key = await importKey(publicKey);
  if (typeof key === "string") return key;
  if (signature.length !== 64) return "non-canonical-signature";
  if (littleEndian(signature.subarray(32)) >= L) {
    return "non-canonical-signature";
  }
  if (!canonicalEncoding(signature.subarray(0, 32))) {
    return "non-canonical-signature";
  }
  try {
    const ok = await crypto.subtle.verify(
      "Ed25519",
      key,
      signature.slice(),
      message.slice(),
    );
    return ok ? "valid" : "bad-signature";
  } catch {
    return "bad-signature";
  }
}

/** A strict Ed25519 verifier, synchronous or not. */
export type Ed25519Verifier = (
  signature: Uint8Array,
  message: Uint8Array,
  publicKey: Uint8Array,
) => Ed25519Result | Promise<Ed25519Result>;

/**
 * Verifies a signed bundle the way `verifyBundle()` does (envelope,
 * payload type, signatures against the trust store, threshold by
 * distinct key, strict JSON payload, statement fields and validity
 * period), with `verifier` doing the Ed25519 work (WebCrypto by
 * default). Host and serial checks are left out, as the benchmark
 * passes neither.
 *
 * @throws {Error} the bundle does not verify
 */
export async function verifyBundleWebCrypto(
  input: Uint8Array,
  trust: TrustStore,
  now = new Date(),
  verifier: Ed25519Verifier = verifyEd25519WebCrypto,
): Promise<unknown> {
  const { envelope, payload, signatures } = decodeEnvelope(input);
  if (envelope.payloadType !== PAYLOAD_TYPES.bundle) {
    throw new Error(
      `Cannot verify bundle: payload type is ${envelope.payloadType}`,
    );
  }
  const message = pae(envelope.payloadType, payload);
  const signers = new Set<string>();
  for (const [i, signature] of signatures.entries()) {
    const keyid = envelope.signatures[i].keyid;
    const candidates = keyid === ""
      ? trust.keys
      : trust.keys.filter((k) => k.id === keyid);
    for (const key of candidates) {
      const result = await verifier(signature, message, key.publicKey.bytes);
      if (result !== "valid") continue;
      if (key.allow.includes("bundle")) signers.add(hex(key.publicKey.bytes));
      break;
    }
  }
  if (signers.size < trust.threshold.bundle) {
    throw new Error(
      `Cannot verify bundle: ${signers.size} trusted signer(s), ` +
        `${trust.threshold.bundle} required`,
    );
  }
  const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
    .decode(payload);
  const statement = parseBundleStatement(parseStrictJson(text, "payload"));
  const skew = 300_000;
  if (
    Date.parse(statement.issuedAt) - skew > now.getTime() ||
    Date.parse(statement.expiresAt) + skew < now.getTime()
  ) {
    throw new Error("Cannot verify bundle: outside its validity period");
  }
  return statement;
}
