/**
 * Palisade's public library API: signing and verification of policy
 * bundles, the policy language and its engines, and the host service.
 *
 * @module
 */
export * from "./signing/mod.ts";
export * from "./policy/mod.ts";
export * from "./service/mod.ts";
