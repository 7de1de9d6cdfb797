/**
 * The policy language and everything built on it: schema, parsing and
 * validation, address and port helpers, diffs, and the engine interface.
 *
 * @module
 */
export type * from "./types.ts";
export * from "./backend.ts";
export * from "./schema.ts";
export * from "./parse.ts";
export * from "./address.ts";
export * from "./ports.ts";
export * from "./diff.ts";
export * from "./nft_backend.ts";
export * from "./wfp_backend.ts";
export * from "./open_backend.ts";
export * from "./store.ts";
export * from "./manager.ts";
export { writeFileAtomic } from "./_atomic.ts";
