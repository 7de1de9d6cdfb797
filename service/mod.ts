/**
 * The host service and its operator client: config, permission
 * preflight, structured logging, metrics, the control API and the
 * commands that drive it.
 *
 * @module
 */
export * from "./config.ts";
export * from "./preflight.ts";
export * from "./logger.ts";
export * from "./metrics.ts";
export * from "./server.ts";
export * from "./client.ts";
export * from "./service.ts";
export { crashHookFromEnv, CRASHPOINT_ENV } from "./_crash_hook.ts";
