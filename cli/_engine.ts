/**
 * Engine choice and panic output shared by `panic` and `uninstall`.
 *
 * @module
 */
import { defaultEngine } from "../mod.ts";
import { UsageError } from "./_common.ts";

/** Parses the engine flags shared by `panic` and `uninstall`. */
export function engineFlag(value: string | undefined): "nft" | "wfp" {
  const engine = value ?? defaultEngine();
  if (engine !== "nft" && engine !== "wfp") {
    throw new UsageError(`Unknown engine '${engine}': use nft or wfp`);
  }
  return engine;
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
