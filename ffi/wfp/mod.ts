/**
 * Binding to the Windows Filtering Platform user-mode API
 * (`fwpuclnt.dll`) through `Deno.dlopen`: symbol table, struct layouts,
 * encoders, GUIDs, status codes, and disposable engine objects.
 *
 * @module
 */
export * from "./codec.ts";
export * from "./constants.ts";
export * from "./engine.ts";
export * from "./errors.ts";
export * from "./guids.ts";
export * from "./layout.ts";
export * from "./memory.ts";
export * from "./simulator.ts";
export * from "./symbols.ts";
