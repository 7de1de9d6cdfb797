import type { NormalPolicy } from "./types.ts";

/**
 * Named steps inside one engine transaction, at which a backend calls
 * its `crashPoint` option (a test hook that SIGKILLs the process). The
 * first seven are WFP's, inside `apply` and `removeAll`; a step that
 * does not happen in a given transaction is not called (e.g. provider
 * and sublayer exist already). The last two are nftables': right
 * before the one batch goes to libnftables, and right after it
 * returned success.
 */
export const ENGINE_CRASH_POINTS = [
  "engine.after-begin",
  "engine.after-provider",
  "engine.after-sublayer",
  "engine.after-deletes",
  "engine.after-adds",
  "engine.before-commit",
  "engine.after-commit",
  "engine.before-batch",
  "engine.after-batch",
] as const;

/** One of {@linkcode ENGINE_CRASH_POINTS}. */
export type EngineCrashPoint = typeof ENGINE_CRASH_POINTS[number];

/** What one apply did, for logs and metrics. */
export interface ApplyStats {
  /** Rule IDs added, removed and changed by this transaction. */
  added: string[];
  removed: string[];
  changed: string[];
  /** True when only the objects the diff names were touched. */
  incremental: boolean;
  /** Engine objects written or deleted in the transaction. */
  objects: number;
}

/** Per-rule hit counters, where the engine keeps them. */
export interface RuleCounter {
  id: string;
  packets: bigint;
  bytes: bigint;
}

/** Result of comparing the live engine with what should be installed. */
export type ReadBack =
  | { ok: true }
  | { ok: false; detail: string };

/**
 * An enforcement engine. Each method is one engine transaction: it
 * succeeds whole or throws with the engine left exactly as before.
 * Implementations own every native handle they open and release it on
 * every path; `close()` is safe to call twice.
 */
export interface Backend extends Disposable {
  /** Engine name as written in the service config: `nft` or `wfp`. */
  readonly engine: "nft" | "wfp";

  /**
   * Installs `next` as one transaction. `current` is the policy the
   * caller believes is installed (null: none); when the live engine does
   * not hold exactly `current`, the backend replaces everything it owns.
   *
   * @throws {EngineError} the engine refused; nothing changed
   * @throws {TypeError} the policy uses something this engine cannot do
   */
  apply(next: NormalPolicy, current: NormalPolicy | null): ApplyStats;

  /**
   * Checks, without touching the engine, that `policy` can be installed:
   * compiles it as {@linkcode Backend.apply} would. Optional; callers
   * skip the check when an engine has none.
   *
   * @throws {TypeError} the policy uses something this engine cannot do
   */
  validate?(policy: NormalPolicy): void;

  /**
   * Removes every object Palisade owns, found by reading the engine, not
   * by a remembered list. Idempotent.
   *
   * @returns how many objects were removed (0: nothing to remove)
   */
  removeAll(): number;

  /** Compares the live engine with `expected` (null: nothing installed). */
  readBack(expected: NormalPolicy | null): ReadBack;

  /** Hit counters per rule ID; empty when the engine keeps none. */
  counters(): RuleCounter[];

  close(): void;
}

/**
 * A failed engine call. `call` names the native function, `code` is the
 * engine's status (unsigned 32-bit for WFP, errno-like for nftables),
 * `ruleId` the rule being written when it failed, if any, and `transient`
 * whether retrying the same call may succeed.
 */
export class EngineError extends Error {
  readonly call: string;
  readonly code: number;
  readonly codeName: string;
  readonly ruleId?: string;
  readonly transient: boolean;

  constructor(
    message: string,
    opts: {
      call: string;
      code: number;
      codeName: string;
      ruleId?: string;
      transient?: boolean;
      cause?: unknown;
    },
  ) {
    super(message, { cause: opts.cause });
    this.name = "EngineError";
    this.call = opts.call;
    this.code = opts.code;
    this.codeName = opts.codeName;
    this.ruleId = opts.ruleId;
    this.transient = opts.transient ?? false;
  }
}

/** WFP's status for an object still referenced by another. */
const FWP_E_IN_USE = 0x8032000a;

/**
 * Palisade's own filters were removed (nothing of Palisade's is
 * enforced any more), but its sublayer or provider had to stay because
 * an object of another product references it. `foreign` names each such
 * object found (ID, name, provider, layer); Palisade never deletes them.
 * Fail-open callers treat this as done, with a warning.
 *
 * @example
 * ```ts
 * import { ForeignObjectsError } from "./backend.ts";
 *
 * const error = new ForeignObjectsError(
 *   "Cannot delete WFP sublayer: FWP_E_IN_USE (0x8032000A) — …",
 *   "FwpmSubLayerDeleteByKey0",
 *   7,
 *   ['filter 9 "theirs"'],
 * );
 * console.assert(error.codeName === "FWP_E_IN_USE" && error.removed === 7);
 * ```
 */
export class ForeignObjectsError extends EngineError {
  /** How many of Palisade's objects were removed before stopping. */
  readonly removed: number;
  /** The foreign objects that keep the sublayer or provider in use. */
  readonly foreign: readonly string[];

  /**
   * @param message what was kept and why
   * @param call `FwpmSubLayerDeleteByKey0` or `FwpmProviderDeleteByKey0`
   * @param removed Palisade's objects removed before stopping
   * @param foreign descriptions of the blocking objects
   */
  constructor(
    message: string,
    call: string,
    removed: number,
    foreign: readonly string[],
    cause?: unknown,
  ) {
    super(message, {
      call,
      code: FWP_E_IN_USE,
      codeName: "FWP_E_IN_USE",
      cause,
    });
    this.name = "ForeignObjectsError";
    this.removed = removed;
    this.foreign = foreign;
  }
}
