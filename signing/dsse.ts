/**
 * DSSE v1 envelopes (secure-systems-lab/dsse): the payload travels as
 * base64 bytes, and each signature covers the pre-authentication
 * encoding of the payload type and those exact bytes, never a
 * re-serialisation.
 *
 * @module
 */
import { decodeBase64Strict, encodeBase64 } from "./_base64.ts";
import { signEd25519, verifyEd25519 } from "./ed25519.ts";
import { SigningError } from "./errors.ts";
import type { PrivateKey } from "./keys.ts";

/** The three payload types Palisade signs; distinct so that a
 * signature for one can never pass as another. */
export const PAYLOAD_TYPES = {
  bundle: "application/vnd.palisade.bundle+json",
  confirm: "application/vnd.palisade.confirm+json",
  rollback: "application/vnd.palisade.rollback+json",
} as const;

/** Short name of a payload type, as used in trust store `allow` lists. */
export type PayloadKind = keyof typeof PAYLOAD_TYPES;

/** One signature in an envelope. */
export interface EnvelopeSignature {
  /** Key ID of the signer; a hint that narrows the keys to try. */
  keyid: string;
  /** Standard base64 of the 64-byte Ed25519 signature over the PAE. */
  sig: string;
}

/** A DSSE envelope as written to disk and sent over the wire. */
export interface Envelope {
  /** Media type of the payload; part of what is signed. */
  payloadType: string;
  /** Standard base64 (padded) of the payload bytes. */
  payload: string;
  /** One or more signatures over the same PAE. */
  signatures: EnvelopeSignature[];
}

const encoder = new TextEncoder();

/**
 * Returns the DSSE v1 pre-authentication encoding:
 * `"DSSEv1" SP len(type) SP type SP len(payload) SP payload`, where
 * lengths are decimal byte counts of the UTF-8 encodings.
 *
 * @example
 * ```ts
 * import { pae } from "./dsse.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = pae("é", new TextEncoder().encode("hi"));
 * assert.deepEqual(new TextDecoder().decode(bytes), "DSSEv1 2 é 2 hi");
 * ```
 */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = encoder.encode(payloadType);
  const head = encoder.encode(`DSSEv1 ${type.length} `);
  const middle = encoder.encode(` ${payload.length} `);
  const out = new Uint8Array(
    head.length + type.length + middle.length + payload.length,
  );
  out.set(head);
  out.set(type, head.length);
  out.set(middle, head.length + type.length);
  out.set(payload, head.length + type.length + middle.length);
  return out;
}

/**
 * Signs `payload` under `payloadType` and returns a new envelope with
 * one signature.
 *
 * @example
 * ```ts
 * import { signPayload } from "./dsse.ts";
 * import { generateKeyPair } from "./keys.ts";
 * import assert from "node:assert/strict";
 *
 * const { privateKey } = generateKeyPair();
 * const envelope = signPayload(
 *   "text/plain",
 *   new TextEncoder().encode("hi"),
 *   privateKey,
 * );
 * assert.deepEqual(envelope.payload, "aGk=");
 * assert.deepEqual(envelope.signatures[0].keyid, privateKey.publicKey.id);
 * ```
 */
export function signPayload(
  payloadType: string,
  payload: Uint8Array,
  key: PrivateKey,
): Envelope {
  return {
    payloadType,
    payload: encodeBase64(payload),
    signatures: [sign(payloadType, payload, key)],
  };
}

/**
 * Returns a copy of `envelope` with one more signature by `key`, for
 * k-of-n signing. The payload bytes are signed exactly as they are.
 *
 * @throws {SigningError} when `key` already signed this envelope (by
 *   key ID or by a signature that verifies under its public key), or
 *   the payload is not canonical base64
 *
 * @example
 * ```ts
 * import { addSignature, signPayload } from "./dsse.ts";
 * import { generateKeyPair } from "./keys.ts";
 * import assert from "node:assert/strict";
 *
 * const first = generateKeyPair().privateKey;
 * const second = generateKeyPair().privateKey;
 * const one = signPayload("t", Uint8Array.of(1), first);
 * const two = addSignature(one, second);
 * assert.equal(two.signatures.length, 2);
 * assert.throws(() => addSignature(two, first));
 * ```
 */
export function addSignature(envelope: Envelope, key: PrivateKey): Envelope {
  const payload = decodeBase64Strict(envelope.payload);
  if (payload === null) {
    throw new SigningError(
      "Cannot add signature: the envelope payload is not canonical base64",
    );
  }

  const message = pae(envelope.payloadType, payload);
  for (const existing of envelope.signatures) {
    const sig = decodeBase64Strict(existing.sig);
    const same = existing.keyid === key.publicKey.id ||
      (sig !== null &&
        verifyEd25519(sig, message, key.publicKey.bytes) === "valid");
    if (same) {
      throw new SigningError(
        `Cannot add signature: key ${key.publicKey.id} already signed this envelope`,
      );
    }
  }

  return {
    payloadType: envelope.payloadType,
    payload: envelope.payload,
    signatures: [
      ...envelope.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })),
      sign(envelope.payloadType, payload, key),
    ],
  };
}

/** Serialises an envelope the way Palisade writes bundle files. */
export function serializeEnvelope(envelope: Envelope): string {
  const { payloadType, payload, signatures } = envelope;
  const plain = {
    payloadType,
    payload,
    signatures: signatures.map(({ keyid, sig }) => ({ keyid, sig })),
  };
  return JSON.stringify(plain, null, 2) + "\n";
}

function sign(
  payloadType: string,
  payload: Uint8Array,
  key: PrivateKey,
): EnvelopeSignature {
  const sig = signEd25519(pae(payloadType, payload), key.seed);
  return { keyid: key.publicKey.id, sig: encodeBase64(sig) };
}
