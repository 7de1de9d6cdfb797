/**
 * Palisade's benchmark suite (`deno task bench`): the measurements,
 * their results format and the command that runs them.
 *
 * @module
 */
export * from "./bench.ts";
