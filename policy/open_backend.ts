/**
 * Chooses and opens an enforcement engine by the name the service
 * config and the `panic` command use.
 *
 * @module
 */
import type { Backend } from "./backend.ts";
import { NftBackend } from "./nft_backend.ts";
import { openWfpBackend } from "./wfp_backend.ts";

/** Which engine to open and where its native library lives. */
export interface OpenBackendOptions {
  engine: "nft" | "wfp";
  /** Path of fwpuclnt.dll or of the WFP simulator library. */
  wfpLibrary?: string;
  /** Path of libnftables. */
  nftLibrary?: string;
  /** WFP only: objects vanish with the engine session instead of
   * persisting (see the service's `wfpMode`). */
  dynamic?: boolean;
  /**
   * Test hook the backend calls at each of its
   * `ENGINE_CRASH_POINTS` (see `backend.ts`).
   */
  crashPoint?: (name: string) => void;
}

/**
 * Opens the engine named by `opts.engine`.
 *
 * @throws {TypeError} the engine name is unknown
 * @throws {Error} the engine's library cannot be loaded
 *
 * @example
 * ```ts ignore
 * using backend = openBackend({ engine: "nft" });
 * backend.removeAll();
 * ```
 */
export function openBackend(opts: OpenBackendOptions): Backend {
  switch (opts.engine) {
    case "nft":
      return new NftBackend({
        library: opts.nftLibrary,
        crashPoint: opts.crashPoint,
      });
    case "wfp":
      return openWfpBackend({
        library: resolveWfpLibrary(opts.wfpLibrary ?? "fwpuclnt.dll"),
        dynamic: opts.dynamic,
        crashPoint: opts.crashPoint,
      });
    default:
      throw new TypeError(
        `Cannot open engine ${JSON.stringify(opts.engine)}: use nft or wfp`,
      );
  }
}

/** Where Windows keeps the WFP management library. */
export const WINDOWS_WFP_LIBRARY = "C:\\Windows\\System32\\fwpuclnt.dll";

/**
 * Turns the bare name `fwpuclnt.dll` into the System32 path on Windows.
 * A path-scoped `--allow-ffi` makes Deno resolve a bare name against the
 * working directory, which would fail under the service's grant, and
 * would load a planted DLL of that name where it succeeded.
 */
export function resolveWfpLibrary(
  library: string,
  os: typeof Deno.build.os = Deno.build.os,
): string {
  const bare = library.toLowerCase() === "fwpuclnt.dll";
  return bare && os === "windows" ? WINDOWS_WFP_LIBRARY : library;
}

/** The engine of the running OS: nft on Linux, wfp on Windows. */
export function defaultEngine(): "nft" | "wfp" {
  if (Deno.build.os === "linux") return "nft";
  if (Deno.build.os === "windows") return "wfp";
  throw new Error(
    `Cannot choose an engine: ${Deno.build.os} has neither nftables ` +
      `nor WFP; pass --engine`,
  );
}

/** What {@linkcode removeEngineObjects} removed. */
export interface RemovedObjects {
  engine: "nft" | "wfp";
  /** Objects removed; 0 means there was nothing to remove. */
  count: number;
}

/**
 * Opens the engine, removes every object Palisade owns in one
 * transaction and closes it again: the panic path, which needs no
 * config, no state and no running service.
 *
 * @throws {EngineError} the engine refused; nothing changed
 */
export function removeEngineObjects(opts: OpenBackendOptions): RemovedObjects {
  using backend = openBackend(opts);
  return { engine: opts.engine, count: backend.removeAll() };
}
