/**
 * Signing and verification of Palisade's signed statements: Ed25519
 * keys (PKCS#8 / SPKI PEM), DSSE envelopes, the trust store, and the
 * verifier for bundles, confirms and rollbacks.
 *
 * @module
 */
export * from "./strict_json.ts";
export * from "./errors.ts";
export * from "./ed25519.ts";
export * from "./keys.ts";
export * from "./dsse.ts";
export * from "./trust.ts";
export * from "./statements.ts";
export * from "./verify.ts";
