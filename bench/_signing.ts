/**
 * A throw-away signing key and trust store for the benchmarks that go
 * through the policy manager or the service.
 *
 * @module
 */
import {
  encodePublicKeyPem,
  generateKeyPair,
  makeBundleStatement,
  makeConfirmStatement,
  parseTrustStore,
  type PrivateKey,
  serializeEnvelope,
  signStatement,
  type TrustStore,
} from "../signing/mod.ts";

/** A key, the trust store that trusts it, and signed statements. */
export interface BenchSigner {
  key: PrivateKey;
  trust: TrustStore;
  /** The trust store as file text. */
  trustText: string;
  /** A bundle of `policy` for `host`, as envelope bytes. */
  bundle(
    policy: unknown,
    serial: number,
    host: string,
    windowSeconds: number,
  ): Uint8Array<ArrayBuffer>;
  /** A heartbeat confirming `generation` with the push's `nonce`. */
  confirm(
    host: string,
    generation: number,
    nonce: string,
  ): Uint8Array<ArrayBuffer>;
}

/** Makes a fresh key trusted for every payload type. */
export function benchSigner(): BenchSigner {
  const { privateKey } = generateKeyPair();
  const trustText = JSON.stringify({
    keys: [{
      id: privateKey.publicKey.id,
      publicKey: encodePublicKeyPem(privateKey.publicKey),
      allow: ["bundle", "confirm", "rollback"],
    }],
    threshold: { bundle: 1, confirm: 1, rollback: 1 },
  });
  const encoder = new TextEncoder();
  return {
    key: privateKey,
    trust: parseTrustStore(trustText, "bench-trust.json"),
    trustText,
    bundle(policy, serial, host, windowSeconds) {
      const statement = makeBundleStatement({
        policy,
        serial,
        targets: [host],
        commitWindowSeconds: windowSeconds,
        issuedAt: new Date(Date.now() - 60_000),
      });
      return encoder.encode(
        serializeEnvelope(signStatement("bundle", statement, [privateKey])),
      );
    },
    confirm(host, generation, nonce) {
      const statement = makeConfirmStatement({ host, generation, nonce });
      return encoder.encode(
        serializeEnvelope(signStatement("confirm", statement, [privateKey])),
      );
    },
  };
}
