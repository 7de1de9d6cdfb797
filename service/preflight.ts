/**
 * Permission preflight: before the service touches anything it asks
 * Deno whether every path and address the config names is granted, so
 * that a config pointing outside the permission set fails at start with
 * the exact flag it needs, not later with a bare `NotCapable`.
 *
 * @module
 */
import type { ServiceConfig } from "./config.ts";

/** One grant the service needs, and the config key that asks for it. */
export interface PermissionNeed {
  /** The config key that names the path or address. */
  key: string;
  /** The path or address, as it appears after the `=` of the flag. */
  target: string;
  /** The permission kinds needed for it. */
  kinds: ("read" | "write" | "net" | "ffi")[];
}

/** A grant the service needs but does not have. */
export class PreflightError extends Error {
  /** Every missing grant, not only the first. */
  readonly missing: { need: PermissionNeed; flags: string[] }[];

  constructor(missing: { need: PermissionNeed; flags: string[] }[]) {
    const lines = missing.map(({ need, flags }) =>
      `${need.key} ${need.target} is outside the granted ${
        describe(need)
      }; run with ${flags.join(" ")}`
    );
    super(`Cannot start: ${lines.join("\n  ")}`);
    this.name = "PreflightError";
    this.missing = missing;
  }
}

function describe(need: PermissionNeed): string {
  if (need.kinds.includes("net")) return "addresses";
  if (need.kinds.includes("ffi")) return "libraries";
  return "paths";
}

/**
 * Lists every grant `config` needs: read for the trust store and TLS
 * files, read and write for the state, log folders and a Unix socket,
 * net for the listen address (`unix:PATH` for a socket), ffi for the
 * engine's library.
 */
export function requiredPermissions(config: ServiceConfig): PermissionNeed[] {
  const needs: PermissionNeed[] = [
    { key: "trust", target: config.trust, kinds: ["read"] },
    { key: "stateDir", target: config.stateDir, kinds: ["read", "write"] },
    { key: "logDir", target: config.logDir, kinds: ["read", "write"] },
  ];
  if (config.listen.kind === "tcp") {
    needs.push({ key: "listen", target: config.listen.text, kinds: ["net"] });
  } else {
    needs.push({
      key: "listen",
      target: config.listen.path,
      kinds: ["read", "write"],
    });
    // Deno scopes Unix sockets under net too, as unix:PATH.
    needs.push({
      key: "listen",
      target: `unix:${config.listen.path}`,
      kinds: ["net"],
    });
  }
  if (config.tls !== null) {
    needs.push({ key: "tls.cert", target: config.tls.cert, kinds: ["read"] });
    needs.push({ key: "tls.key", target: config.tls.key, kinds: ["read"] });
  }
  if (config.engine === "nft") {
    needs.push({
      key: "nftLibrary",
      target: config.nftLibrary,
      kinds: ["ffi"],
    });
  } else {
    needs.push({
      key: "wfpLibrary",
      target: config.wfpLibrary,
      kinds: ["ffi"],
    });
  }
  return needs;
}

function descriptor(
  kind: "read" | "write" | "net" | "ffi",
  target: string,
): Deno.PermissionDescriptor {
  switch (kind) {
    case "read":
      return { name: "read", path: target };
    case "write":
      return { name: "write", path: target };
    case "net":
      return { name: "net", host: target };
    case "ffi":
      return { name: "ffi", path: target };
  }
}

/**
 * Checks every grant `config` needs without prompting.
 *
 * @param config the validated config
 * @param query the permission query; Deno's own by default (tests swap it)
 * @throws {PreflightError} listing each missing grant with its flags
 *
 * @example
 * ```ts
 * import { parseConfig } from "./config.ts";
 * import { preflight } from "./preflight.ts";
 * const config = parseConfig(
 *   `{ "host": "h", "listen": "127.0.0.1:7443", "trust": "/srv/t.jsonc",
 *      "stateDir": "/srv/x", "engine": "nft" }`,
 *   "/etc/palisade/config.jsonc",
 * );
 * try {
 *   preflight(config, () => "denied");
 * } catch (error) {
 *   if (!(error as Error).message.includes("--allow-write=/srv/x")) {
 *     throw error;
 *   }
 * }
 * ```
 */
export function preflight(
  config: ServiceConfig,
  query: (d: Deno.PermissionDescriptor) => Deno.PermissionState = (d) =>
    Deno.permissions.querySync(d).state,
): void {
  const missing: { need: PermissionNeed; flags: string[] }[] = [];
  for (const need of requiredPermissions(config)) {
    const lacking = need.kinds.filter((kind) =>
      query(descriptor(kind, need.target)) !== "granted"
    );
    if (lacking.length > 0) {
      // The flags name every kind the target needs, since a flag on the
      // command line replaces that kind's list of the permission set.
      const flags = need.kinds.map((kind) => `--allow-${kind}=${need.target}`);
      missing.push({ need, flags });
    }
  }
  if (missing.length > 0) throw new PreflightError(missing);
}
