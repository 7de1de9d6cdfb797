/**
 * Engine choice and panic output shared by `panic` and `uninstall`.
 *
 * @module
 */
import { defaultEngine } from "../mod.ts";
import { UsageError } from "./_common.ts";

/** The engine flags of `panic` and `uninstall`. */
export interface EngineFlags {
  engine?: string;
  wfpLibrary?: string;
  nftLibrary?: string;
}

/**
 * Chooses the engine: `--engine` if given, else the one a library flag
 * names (`--wfp-library` means wfp, `--nft-library` nft), else
 * `fallback` (the config's), else this OS's own.
 *
 * @throws {UsageError} an unknown engine, or flags that contradict
 */
export function chooseEngine(
  flags: EngineFlags,
  fallback?: string,
): "nft" | "wfp" {
  if (flags.wfpLibrary !== undefined && flags.nftLibrary !== undefined) {
    throw new UsageError(
      "Cannot choose an engine: --wfp-library and --nft-library name " +
        "different engines; give one of them",
    );
  }
  const implied = flags.wfpLibrary !== undefined
    ? { engine: "wfp", flag: `--wfp-library ${flags.wfpLibrary}` }
    : flags.nftLibrary !== undefined
    ? { engine: "nft", flag: `--nft-library ${flags.nftLibrary}` }
    : undefined;
  if (
    flags.engine !== undefined && implied !== undefined &&
    flags.engine !== implied.engine
  ) {
    throw new UsageError(
      `Cannot choose an engine: --engine ${flags.engine} contradicts ` +
        `${implied.flag}, a library of the ${implied.engine} engine`,
    );
  }
  return engineFlag(flags.engine ?? implied?.engine ?? fallback);
}

/** Checks an engine name, defaulting to this OS's own engine. */
export function engineFlag(value: string | undefined): "nft" | "wfp" {
  const engine = value ?? defaultEngine();
  if (engine !== "nft" && engine !== "wfp") {
    throw new UsageError(`Unknown engine '${engine}': use nft or wfp`);
  }
  return engine;
}

/**
 * Checks a library named on the command line before it is loaded, so
 * that a typo reads "no such file" and not as a missing grant.
 *
 * @throws {Error} the file is missing, is a folder, or cannot be loaded
 *   under this command's permissions (naming the grant it needs)
 */
export function checkLibrary(flag: string, path: string | undefined): void {
  // A bare name (fwpuclnt.dll) is found by the system loader.
  if (path === undefined || !/[\\/]/.test(path)) return;
  const readable =
    Deno.permissions.querySync({ name: "read", path }).state === "granted";
  if (readable) {
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(path);
    } catch (error) {
      const why = error instanceof Deno.errors.NotFound
        ? "no such file"
        : (error as Error).message;
      throw new Error(`Cannot use ${flag} ${path}: ${why}`);
    }
    if (info.isDirectory) {
      throw new Error(`Cannot use ${flag} ${path}: is a folder, not a library`);
    }
  }
  const loadable =
    Deno.permissions.querySync({ name: "ffi", path }).state === "granted";
  if (!loadable) {
    throw new Error(
      `Cannot use ${flag} ${path}: ${
        readable ? "" : "it may not exist, and "
      }this command's permissions do not allow loading it; check the ` +
        `path, or run 'deno run --allow-read=${path} --allow-ffi=${path} ` +
        `main.ts …' for a library outside the task's grant`,
    );
  }
}

/** Describes what a panic removed, for people. */
export function describeRemoved(
  removed: { engine: "nft" | "wfp"; count: number },
): string {
  if (removed.count === 0) return "nothing to remove";
  return removed.engine === "nft"
    ? `removed table inet palisade (${removed.count} objects: the ` +
      `table, its chains, sets and rules)`
    : `removed ${removed.count} WFP objects under Palisade's provider`;
}
