/**
 * Binding of libnftables through `Deno.dlopen`: a disposable context
 * that runs JSON command batches and returns JSON listings.
 *
 * @module
 */
export * from "./context.ts";
