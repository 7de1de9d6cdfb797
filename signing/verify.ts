/**
 * Verification of signed envelopes and the statements inside them.
 *
 * Order of work, each step refusing with its own reason before the next
 * runs: size bound → strict JSON envelope → canonical base64 → payload
 * type → each signature (key ID narrows, strict Ed25519 over the PAE
 * decides) → key allowed for this payload type → distinct public keys
 * against the threshold → only then the verified payload bytes are
 * parsed (strict JSON) → statement checks (fields, time, host, serial).
 *
 * @module
 */
import { decodeBase64Strict, toHex } from "./_base64.ts";
import { type Envelope, pae, PAYLOAD_TYPES, type PayloadKind } from "./dsse.ts";
import { verifyEd25519 } from "./ed25519.ts";
import { VerifyError, type VerifyReason } from "./errors.ts";
import {
  type BundleStatement,
  type ConfirmStatement,
  parseBundleStatement,
  parseConfirmStatement,
  parseRollbackStatement,
  type RollbackStatement,
} from "./statements.ts";
import { parseStrictJson, StrictJsonError } from "./strict_json.ts";
import type { TrustedKey, TrustStore } from "./trust.ts";

export { VerifyError } from "./errors.ts";

/** Default size bound of an envelope: 16 MiB. */
export const DEFAULT_MAX_ENVELOPE_BYTES = 16 * 1024 * 1024;

/** Default tolerance for clocks that disagree, in seconds. */
export const DEFAULT_CLOCK_SKEW_SECONDS = 300;

/** A decoded envelope whose signatures have not been checked yet. */
export interface DecodedEnvelope {
  /** The envelope as parsed (exact DSSE fields). */
  envelope: Envelope;
  /** The payload bytes, decoded from base64. */
  payload: Uint8Array;
  /** Raw signature bytes, in envelope order. */
  signatures: Uint8Array[];
}

/** An envelope that passed every signature check. */
export interface VerifiedEnvelope {
  /** The envelope as parsed (exact DSSE fields). */
  envelope: Envelope;
  /** The exact payload bytes that were verified. */
  payload: Uint8Array;
  /** Those bytes parsed as strict JSON. */
  value: unknown;
  /** Key IDs of the distinct keys whose signatures counted. */
  signers: string[];
}

/** Options of {@linkcode verifyEnvelope}. */
export interface VerifyEnvelopeOptions {
  /** Keys, permissions and thresholds to verify against. */
  trust: TrustStore;
  /** The payload kind the caller expects; any other type is refused. */
  kind: PayloadKind;
  /** Size bound in bytes, checked before parsing (default 16 MiB). */
  maxBytes?: number;
}

/**
 * Decodes an envelope without checking signatures: size bound, strict
 * JSON, exact field set, canonical base64. Used to add a signature to
 * an existing bundle and as the first half of
 * {@linkcode verifyEnvelope}.
 *
 * @throws {VerifyError} `oversize`, `malformed-json`, `bad-envelope`,
 *   `missing-field`, `bad-base64` or `non-canonical-signature`
 *
 * @example
 * ```ts
 * import { decodeEnvelope, generateKeyPair, signPayload } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const { privateKey } = generateKeyPair();
 * const envelope = signPayload("t", Uint8Array.of(1, 2), privateKey);
 * const decoded = decodeEnvelope(JSON.stringify(envelope));
 * assert.deepEqual(decoded.payload, Uint8Array.of(1, 2));
 * assert.equal(decoded.signatures[0].length, 64);
 * ```
 */
export function decodeEnvelope(
  input: Uint8Array | string,
  maxBytes: number = DEFAULT_MAX_ENVELOPE_BYTES,
): DecodedEnvelope {
  return explained("Cannot decode envelope", () => decode(input, maxBytes));
}

function decode(input: Uint8Array | string, maxBytes: number): DecodedEnvelope {
  const text = boundedText(input, maxBytes);

  let value;
  try {
    value = parseStrictJson(text, "envelope");
  } catch (error) {
    if (!(error instanceof StrictJsonError)) throw error;
    throw new VerifyError("malformed-json", error.message);
  }

  const envelope = envelopeShape(value);
  const payload = decodeBase64Strict(envelope.payload);
  if (payload === null) {
    throw new VerifyError(
      "bad-base64",
      "Envelope payload is not canonical standard base64 (padded, no whitespace, no URL-safe characters)",
    );
  }
  const signatures = envelope.signatures.map((s, i) => {
    const sig = decodeBase64Strict(s.sig);
    if (sig === null) {
      throw new VerifyError(
        "bad-base64",
        `Signature ${i + 1} is not canonical standard base64`,
      );
    }
    if (sig.length !== 64) {
      throw new VerifyError(
        "non-canonical-signature",
        `Signature ${
          i + 1
        } has ${sig.length} bytes; an Ed25519 signature has 64`,
      );
    }
    return sig;
  });
  return { envelope, payload, signatures };
}

/**
 * Verifies a DSSE envelope against a trust store for one payload kind
 * and returns the verified payload, parsed.
 *
 * A signature that claims a trusted key but does not verify refuses the
 * whole envelope. Signatures by unknown keys, or by keys not allowed for
 * this kind, do not count; they decide the reason only when too few
 * signers remain. Signers are counted by distinct public key.
 *
 * @param input the envelope as bytes or text
 * @throws {VerifyError} with the first reason that applies
 *
 * @example
 * ```ts
 * import {
 *   encodePublicKeyPem,
 *   generateKeyPair,
 *   parseTrustStore,
 *   signPayload,
 *   verifyEnvelope,
 * } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const { privateKey, publicKey } = generateKeyPair();
 * const trust = parseTrustStore(JSON.stringify({
 *   keys: [{
 *     id: publicKey.id,
 *     publicKey: encodePublicKeyPem(publicKey),
 *     allow: ["bundle", "confirm", "rollback"],
 *   }],
 *   threshold: { bundle: 1, confirm: 1, rollback: 1 },
 * }), "trust.jsonc");
 * const envelope = signPayload(
 *   "application/vnd.palisade.confirm+json",
 *   new TextEncoder().encode('{"ok":true}'),
 *   privateKey,
 * );
 * const verified = verifyEnvelope(JSON.stringify(envelope), {
 *   trust,
 *   kind: "confirm",
 * });
 * assert.deepEqual(verified.value, { ok: true });
 * ```
 */
export function verifyEnvelope(
  input: Uint8Array | string,
  opts: VerifyEnvelopeOptions,
): VerifiedEnvelope {
  return explained(`Cannot verify ${opts.kind}`, () => verify(input, opts));
}

function verify(
  input: Uint8Array | string,
  opts: VerifyEnvelopeOptions,
): VerifiedEnvelope {
  const { envelope, payload, signatures } = decode(
    input,
    opts.maxBytes ?? DEFAULT_MAX_ENVELOPE_BYTES,
  );

  const expected = PAYLOAD_TYPES[opts.kind];
  if (envelope.payloadType !== expected) {
    throw new VerifyError(
      "wrong-payload-type",
      `Payload type is ${
        JSON.stringify(envelope.payloadType)
      }, expected ${expected}`,
    );
  }

  const message = pae(envelope.payloadType, payload);
  const signers = new Map<string, string>();
  const ignored: { reason: VerifyReason; message: string }[] = [];
  for (const [i, sig] of signatures.entries()) {
    const keyid = envelope.signatures[i].keyid;
    const label = `Signature ${i + 1} (key ID ${keyid || "none"})`;
    const candidates = keyid === ""
      ? opts.trust.keys
      : opts.trust.keys.filter((k) => k.id === keyid);
    if (candidates.length === 0) {
      ignored.push({
        reason: "unknown-key",
        message:
          `${label}: no key with this ID in trust store ${opts.trust.source}`,
      });
      continue;
    }

    const key = matchingKey(sig, message, candidates, label);
    if (key === undefined) {
      ignored.push({
        reason: "unknown-key",
        message: `${label}: made by none of the trusted keys`,
      });
      continue;
    }
    if (!key.allow.includes(opts.kind)) {
      ignored.push({
        reason: "key-not-allowed",
        message:
          `${label}: key ${key.id} is trusted but not allowed to sign ${opts.kind}`,
      });
      continue;
    }
    signers.set(toHex(key.publicKey.bytes), key.id);
  }

  // A hand-made store could hold anything; never let a missing or odd
  // threshold turn into "no signature needed".
  const needed = opts.trust.threshold[opts.kind];
  if (!Number.isSafeInteger(needed) || needed < 1) {
    throw new VerifyError(
      "too-few-signers",
      `Trust store ${opts.trust.source} has no usable threshold for ${opts.kind}`,
    );
  }
  if (signers.size < needed) {
    if (signers.size === 0 && ignored.length > 0) {
      throw new VerifyError(ignored[0].reason, ignored[0].message);
    }
    const details = ignored.map((x) => `; ${x.message}`).join("");
    throw new VerifyError(
      "too-few-signers",
      `${signers.size} distinct trusted signer(s) of ${opts.kind}, ${needed} required${details}`,
    );
  }

  let value;
  try {
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
      .decode(payload);
    value = parseStrictJson(text, "payload");
  } catch (error) {
    if (error instanceof StrictJsonError) {
      throw new VerifyError("malformed-json", error.message);
    }
    if (error instanceof TypeError) {
      throw new VerifyError("malformed-json", "Payload is not valid UTF-8");
    }
    throw error;
  }

  return { envelope, payload, value, signers: [...signers.values()] };
}

/** Options of {@linkcode verifyBundle}. */
export interface VerifyBundleOptions {
  /** Keys, permissions and thresholds to verify against. */
  trust: TrustStore;
  /** Current time (default: now). */
  now?: Date;
  /** This host's name; when given, the bundle's targets must name it
   * or one of its groups (an empty target list names every host). */
  host?: string;
  /** This host's groups, matched against `group:NAME` targets. */
  groups?: string[];
  /** Highest serial this host ever accepted; the bundle must be above. */
  serialFloor?: number;
  /** Tolerance for clocks that disagree (default 300 seconds). */
  clockSkewSeconds?: number;
  /** Size bound in bytes (default 16 MiB). */
  maxBytes?: number;
}

/** A bundle that passed every check. Its policy is not validated yet. */
export interface VerifiedBundle {
  /** The checked statement, including the policy as written. */
  statement: BundleStatement;
  /** The exact payload bytes that were verified. */
  payload: Uint8Array;
  /** The envelope as received. */
  envelope: Envelope;
  /** Key IDs of the distinct keys whose signatures counted. */
  signers: string[];
}

/**
 * Verifies a signed bundle: the envelope (see
 * {@linkcode verifyEnvelope}), then the statement's fields, its validity
 * period, its targets and its serial. The policy inside is returned as
 * written; the caller validates it.
 *
 * @throws {VerifyError} with the first reason that applies
 *
 * @example
 * ```ts
 * import {
 *   encodePublicKeyPem,
 *   generateKeyPair,
 *   makeBundleStatement,
 *   parseTrustStore,
 *   serializeEnvelope,
 *   signStatement,
 *   verifyBundle,
 *   VerifyError,
 * } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const { privateKey, publicKey } = generateKeyPair();
 * const trust = parseTrustStore(JSON.stringify({
 *   keys: [{
 *     id: publicKey.id,
 *     publicKey: encodePublicKeyPem(publicKey),
 *     allow: ["bundle", "confirm", "rollback"],
 *   }],
 *   threshold: { bundle: 1, confirm: 1, rollback: 1 },
 * }), "trust.jsonc");
 * const statement = makeBundleStatement({
 *   policy: { name: "edge", rules: [] },
 *   serial: 8,
 *   targets: ["web-1"],
 * });
 * const bundle = serializeEnvelope(
 *   signStatement("bundle", statement, [privateKey]),
 * );
 *
 * const ok = verifyBundle(bundle, { trust, host: "web-1", serialFloor: 7 });
 * assert.equal(ok.statement.serial, 8);
 * assert.throws(
 *   () => verifyBundle(bundle, { trust, host: "web-1", serialFloor: 8 }),
 *   (e: unknown) => e instanceof VerifyError && e.reason === "serial-too-low",
 * );
 * ```
 */
export function verifyBundle(
  input: Uint8Array | string,
  opts: VerifyBundleOptions,
): VerifiedBundle {
  return explained("Cannot verify bundle", () => bundle(input, opts));
}

function bundle(
  input: Uint8Array | string,
  opts: VerifyBundleOptions,
): VerifiedBundle {
  const verified = verify(input, {
    trust: opts.trust,
    kind: "bundle",
    maxBytes: opts.maxBytes,
  });
  const statement = parseBundleStatement(verified.value);

  checkPeriod(statement.issuedAt, statement.expiresAt, "bundle", opts);

  if (opts.host !== undefined && statement.targets.length > 0) {
    const names = [
      opts.host,
      ...(opts.groups ?? []).map((g) => `group:${g}`),
    ];
    if (!names.some((name) => statement.targets.includes(name))) {
      throw new VerifyError(
        "wrong-host",
        `Bundle targets ${
          statement.targets.join(", ")
        }, which names neither host ${opts.host} nor its groups (${
          (opts.groups ?? []).join(", ") || "none"
        })`,
      );
    }
  }

  if (opts.serialFloor !== undefined && statement.serial <= opts.serialFloor) {
    throw new VerifyError(
      "serial-too-low",
      `Bundle serial ${statement.serial} is not above ${opts.serialFloor}, the highest this host has accepted`,
    );
  }

  return {
    statement,
    payload: verified.payload,
    envelope: verified.envelope,
    signers: verified.signers,
  };
}

/** Options of {@linkcode verifyConfirm}. */
export interface VerifyConfirmOptions {
  /** Keys, permissions and thresholds to verify against. */
  trust: TrustStore;
  /** Current time (default: now). */
  now?: Date;
  /** This host's name; the statement must name it. */
  host?: string;
  /** Tolerance for clocks that disagree (default 300 seconds). */
  clockSkewSeconds?: number;
  /** When given, a confirm issued longer ago than this is `expired`. */
  maxAgeSeconds?: number;
}

/** A confirm statement that passed every check. */
export interface VerifiedConfirm {
  /** The checked heartbeat. */
  statement: ConfirmStatement;
  /** The envelope as received. */
  envelope: Envelope;
  /** Key IDs of the distinct keys whose signatures counted. */
  signers: string[];
}

/**
 * Verifies a signed confirm heartbeat. The caller still checks that the
 * nonce and generation are the ones it issued, and uses the nonce once.
 *
 * @throws {VerifyError} with the first reason that applies
 *
 * @example
 * ```ts
 * import {
 *   encodePublicKeyPem,
 *   generateKeyPair,
 *   makeConfirmStatement,
 *   parseTrustStore,
 *   signStatement,
 *   verifyConfirm,
 * } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const { privateKey, publicKey } = generateKeyPair();
 * const trust = parseTrustStore(JSON.stringify({
 *   keys: [{
 *     id: publicKey.id,
 *     publicKey: encodePublicKeyPem(publicKey),
 *     allow: ["bundle", "confirm", "rollback"],
 *   }],
 *   threshold: { bundle: 1, confirm: 1, rollback: 1 },
 * }), "trust.jsonc");
 * const heartbeat = signStatement(
 *   "confirm",
 *   makeConfirmStatement({ host: "web-1", generation: 3, nonce: "n-1" }),
 *   [privateKey],
 * );
 * const { statement } = verifyConfirm(JSON.stringify(heartbeat), {
 *   trust,
 *   host: "web-1",
 * });
 * assert.equal(statement.generation, 3);
 * ```
 */
export function verifyConfirm(
  input: Uint8Array | string,
  opts: VerifyConfirmOptions,
): VerifiedConfirm {
  const verified = verifyEnvelope(input, {
    trust: opts.trust,
    kind: "confirm",
  });
  const statement = parseConfirmStatement(verified.value);

  checkPeriod(statement.issuedAt, undefined, "confirm", opts);
  if (opts.maxAgeSeconds !== undefined) {
    const now = (opts.now ?? new Date()).getTime();
    const skew = opts.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
    const limit = Date.parse(statement.issuedAt) +
      (opts.maxAgeSeconds + skew) * 1000;
    if (now > limit) {
      throw new VerifyError(
        "expired",
        `Confirm was issued at ${statement.issuedAt}, more than ${opts.maxAgeSeconds} seconds ago`,
      );
    }
  }
  checkHost(statement.host, opts.host, "confirm");

  return { statement, envelope: verified.envelope, signers: verified.signers };
}

/** Longest validity (`expiresAt - issuedAt`) a rollback may carry. */
export const MAX_ROLLBACK_VALIDITY_SECONDS = 600;

/** Options of {@linkcode verifyRollback}. */
export interface VerifyRollbackOptions {
  /** Longest validity accepted, in seconds (default
   * {@linkcode MAX_ROLLBACK_VALIDITY_SECONDS}); a longer one is
   * `bad-statement`. */
  maxValiditySeconds?: number;
  /** Keys, permissions and thresholds to verify against. */
  trust: TrustStore;
  /** Current time (default: now). */
  now?: Date;
  /** This host's name; the statement must name it. */
  host: string;
  /** Tolerance for clocks that disagree (default 300 seconds). */
  clockSkewSeconds?: number;
}

/** A rollback statement that passed every check. */
export interface VerifiedRollback {
  /** The checked rollback order. */
  statement: RollbackStatement;
  /** The envelope as received. */
  envelope: Envelope;
  /** Key IDs of the distinct keys whose signatures counted. */
  signers: string[];
}

/**
 * Verifies a signed rollback order for this host. Its validity
 * (`expiresAt - issuedAt`) may be at most `maxValiditySeconds`, so a
 * captured order cannot be kept for later. The caller still checks
 * that the nonce is unused, and uses it once.
 *
 * @throws {VerifyError} with the first reason that applies
 *
 * @example
 * ```ts
 * import {
 *   encodePublicKeyPem,
 *   generateKeyPair,
 *   makeRollbackStatement,
 *   parseTrustStore,
 *   signStatement,
 *   verifyRollback,
 * } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const { privateKey, publicKey } = generateKeyPair();
 * const trust = parseTrustStore(JSON.stringify({
 *   keys: [{
 *     id: publicKey.id,
 *     publicKey: encodePublicKeyPem(publicKey),
 *     allow: ["bundle", "confirm", "rollback"],
 *   }],
 *   threshold: { bundle: 1, confirm: 1, rollback: 1 },
 * }), "trust.jsonc");
 * const order = signStatement(
 *   "rollback",
 *   makeRollbackStatement({ host: "web-1", nonce: "n-2", to: "empty" }),
 *   [privateKey],
 * );
 * const { statement } = verifyRollback(JSON.stringify(order), {
 *   trust,
 *   host: "web-1",
 * });
 * assert.equal(statement.to, "empty");
 * ```
 */
export function verifyRollback(
  input: Uint8Array | string,
  opts: VerifyRollbackOptions,
): VerifiedRollback {
  return explained("Cannot verify rollback", () => rollback(input, opts));
}

function rollback(
  input: Uint8Array | string,
  opts: VerifyRollbackOptions,
): VerifiedRollback {
  const verified = verify(input, {
    trust: opts.trust,
    kind: "rollback",
  });
  const statement = parseRollbackStatement(verified.value);

  const maxValidity = opts.maxValiditySeconds ?? MAX_ROLLBACK_VALIDITY_SECONDS;
  const validity =
    (Date.parse(statement.expiresAt) - Date.parse(statement.issuedAt)) / 1000;
  if (validity > maxValidity) {
    throw new VerifyError(
      "bad-statement",
      `The rollback is valid for ${validity} seconds (${statement.issuedAt} ` +
        `to ${statement.expiresAt}); at most ${maxValidity} are accepted`,
    );
  }
  checkPeriod(statement.issuedAt, statement.expiresAt, "rollback", opts);
  checkHost(statement.host, opts.host, "rollback");

  return { statement, envelope: verified.envelope, signers: verified.signers };
}

/** Runs `fn`; a refusal's message gets `prefix` unless it has one. */
function explained<T>(prefix: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (!(error instanceof VerifyError)) throw error;
    const message = error.message.replace(/^Cannot accept statement: /, "");
    if (message.startsWith("Cannot")) throw error;
    const why = message[0].toLowerCase() + message.slice(1);
    throw new VerifyError(error.reason, `${prefix}: ${why}`);
  }
}

function boundedText(input: Uint8Array | string, maxBytes: number): string {
  // A string's UTF-8 form is at least as long as its UTF-16 length, so
  // an over-long string is refused before it is encoded.
  const size = typeof input === "string" ? input.length : input.length;
  if (size > maxBytes) {
    throw new VerifyError(
      "oversize",
      `Envelope is larger than the ${maxBytes}-byte limit`,
    );
  }
  if (typeof input === "string") {
    const bytes = new TextEncoder().encode(input).length;
    if (bytes > maxBytes) {
      throw new VerifyError(
        "oversize",
        `Envelope is larger than the ${maxBytes}-byte limit`,
      );
    }
    return input;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
      .decode(input);
  } catch {
    throw new VerifyError("malformed-json", "Envelope is not valid UTF-8");
  }
}

function envelopeShape(value: unknown): Envelope {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new VerifyError("bad-envelope", "Envelope must be a JSON object");
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!["payloadType", "payload", "signatures"].includes(key)) {
      throw new VerifyError("bad-envelope", `Unknown envelope field '${key}'`);
    }
  }
  for (const key of ["payloadType", "payload", "signatures"]) {
    if (!Object.hasOwn(record, key)) {
      throw new VerifyError("missing-field", `Envelope has no '${key}' field`);
    }
  }
  if (typeof record.payloadType !== "string") {
    throw new VerifyError(
      "bad-envelope",
      "Envelope payloadType must be a string",
    );
  }
  if (typeof record.payload !== "string") {
    throw new VerifyError("bad-envelope", "Envelope payload must be a string");
  }
  if (!Array.isArray(record.signatures)) {
    throw new VerifyError(
      "bad-envelope",
      "Envelope signatures must be an array",
    );
  }
  if (record.signatures.length === 0) {
    throw new VerifyError("too-few-signers", "Envelope has no signatures");
  }

  const signatures = record.signatures.map((entry: unknown, i: number) => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw new VerifyError(
        "bad-envelope",
        `Signature ${i + 1} must be an object`,
      );
    }
    const s = entry as Record<string, unknown>;
    for (const key of Object.keys(s)) {
      if (key !== "keyid" && key !== "sig") {
        throw new VerifyError(
          "bad-envelope",
          `Unknown field '${key}' in signature ${i + 1}`,
        );
      }
    }
    for (const key of ["keyid", "sig"]) {
      if (!Object.hasOwn(s, key)) {
        throw new VerifyError(
          "missing-field",
          `Signature ${i + 1} has no '${key}' field`,
        );
      }
      if (typeof s[key] !== "string") {
        throw new VerifyError(
          "bad-envelope",
          `Signature ${i + 1} field '${key}' must be a string`,
        );
      }
    }
    return { keyid: s.keyid as string, sig: s.sig as string };
  });

  return {
    payloadType: record.payloadType,
    payload: record.payload,
    signatures,
  };
}

function matchingKey(
  sig: Uint8Array,
  message: Uint8Array,
  candidates: TrustedKey[],
  label: string,
): TrustedKey | undefined {
  for (const key of candidates) {
    const result = verifyEd25519(sig, message, key.publicKey.bytes);
    if (result === "valid") return key;
    if (result === "non-canonical-signature") {
      throw new VerifyError(
        "non-canonical-signature",
        `${label}: not a canonical Ed25519 signature (S not below the group order, or R not a canonical point)`,
      );
    }
    if (result === "small-order-key" || result === "non-canonical-key") {
      throw new VerifyError(
        "small-order-key",
        `${label}: trusted key ${key.id} is not a usable Ed25519 key (${result})`,
      );
    }
  }

  // With a key ID the signer is named: a failure is a forgery or damage.
  if (
    candidates.length === 1 || new Set(candidates.map((k) => k.id)).size === 1
  ) {
    throw new VerifyError(
      "bad-signature",
      `${label}: signature does not verify under key ${
        candidates[0].id
      }; the bundle was changed or signed by another key`,
    );
  }
  return undefined;
}

function checkPeriod(
  issuedAt: string,
  expiresAt: string | undefined,
  kind: string,
  opts: { now?: Date; clockSkewSeconds?: number },
): void {
  const now = (opts.now ?? new Date()).getTime();
  const skew = (opts.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS) * 1000;
  if (Date.parse(issuedAt) - skew > now) {
    throw new VerifyError(
      "not-yet-valid",
      `The ${kind} was issued at ${issuedAt}, in the future by this host's clock (${
        new Date(now).toISOString()
      })`,
    );
  }
  if (expiresAt !== undefined && Date.parse(expiresAt) + skew < now) {
    throw new VerifyError(
      "expired",
      `The ${kind} expired at ${expiresAt} (now ${
        new Date(now).toISOString()
      })`,
    );
  }
}

function checkHost(
  named: string,
  host: string | undefined,
  kind: string,
): void {
  if (host !== undefined && named !== host) {
    throw new VerifyError(
      "wrong-host",
      `The ${kind} is for host ${named}, not ${host}`,
    );
  }
}
