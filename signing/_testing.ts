/**
 * Fixtures for the signing tests: keys, trust stores and signed
 * statements at a fixed clock.
 *
 * @module
 */
import { encodeBase64 } from "./_base64.ts";
import { type Envelope, type PayloadKind, serializeEnvelope } from "./dsse.ts";
import {
  encodePublicKeyPem,
  generateKeyPair,
  type PrivateKey,
} from "./keys.ts";
import {
  type BundleStatement,
  makeBundleStatement,
  signStatement,
} from "./statements.ts";
import { parseTrustStore, type TrustStore } from "./trust.ts";

/** The clock every fixture is issued against. */
export const NOW = new Date("2026-06-01T12:00:00.000Z");

/** The host name fixtures target. */
export const HOST = "web-1";

const ALL: PayloadKind[] = ["bundle", "confirm", "rollback"];

/** A fresh private key. */
export function newKey(): PrivateKey {
  return generateKeyPair().privateKey;
}

/** Trust store JSONC text for `keys`, each with its `allow` list. */
export function trustText(
  keys: { key: PrivateKey; allow?: PayloadKind[] }[],
  threshold: Partial<Record<PayloadKind, number>> = {},
): string {
  const entries = keys.map(({ key, allow }) => ({
    id: key.publicKey.id,
    publicKey: encodePublicKeyPem(key.publicKey),
    allow: allow ?? ALL,
  }));
  return "// trusted release keys\n" + JSON.stringify(
    {
      keys: entries,
      threshold: { bundle: 1, confirm: 1, rollback: 1, ...threshold },
    },
    null,
    2,
  );
}

/** A parsed trust store for `keys` (see {@linkcode trustText}). */
export function trustFor(
  keys: { key: PrivateKey; allow?: PayloadKind[] }[],
  threshold: Partial<Record<PayloadKind, number>> = {},
): TrustStore {
  return parseTrustStore(trustText(keys, threshold), "trust.jsonc");
}

/** A bundle statement valid at {@linkcode NOW}, with overrides. */
export function statement(
  overrides: Partial<BundleStatement> = {},
): BundleStatement {
  return {
    ...makeBundleStatement({
      policy: { name: "edge-baseline", rules: [] },
      serial: 5,
      targets: [HOST],
      issuedAt: new Date(NOW.getTime() - 60_000),
      expiresAt: new Date(NOW.getTime() + 86_400_000),
    }),
    ...overrides,
  };
}

/** A signed bundle as file text. */
export function bundleText(
  keys: PrivateKey[],
  overrides: Partial<BundleStatement> = {},
): string {
  return serializeEnvelope(signStatement("bundle", statement(overrides), keys));
}

/** An envelope whose payload is `payload` bytes, signed as given. */
export function withPayload(envelope: Envelope, payload: Uint8Array): Envelope {
  return { ...envelope, payload: encodeBase64(payload) };
}

/** The 8 points of small order, canonically encoded. */
export const SMALL_ORDER = [
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0000000000000000000000000000000000000000000000000000000000000080",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
];

/** Non-canonical encodings of small-order points (y ≥ p, or x = 0 with
 * the sign bit set). */
export const SMALL_ORDER_NON_CANONICAL = [
  "0100000000000000000000000000000000000000000000000000000000000080",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
];
