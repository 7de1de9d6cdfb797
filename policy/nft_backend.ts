/**
 * The nftables engine: policies become rules in Palisade's own table
 * `inet palisade`, written through libnftables as atomic batches.
 *
 * @module
 */
import { NftContext, NftError } from "../ffi/nft/mod.ts";
import {
  type ApplyStats,
  type Backend,
  type EngineCrashPoint,
  EngineError,
  type ReadBack,
  type RuleCounter,
} from "./backend.ts";
import { diffPolicies, isEmptyDiff, type PolicyDiff } from "./diff.ts";
import type { NormalPolicy } from "./types.ts";
import {
  type CompiledUnit,
  compilePolicy,
  compileRule,
  firstDifference,
  type LiveTable,
  modelOf,
  NFT_FAMILY,
  NFT_MARKER_SET,
  NFT_TABLE,
  readListing,
  readMarker,
} from "./_nft_compile.ts";
import {
  type BatchPlan,
  planFull,
  planIncremental,
} from "./_nft_incremental.ts";

/** Options of {@linkcode NftBackend}. */
export interface NftBackendOptions {
  /** Path of libnftables; default the Debian/Ubuntu x86-64 path. */
  library?: string;
  /**
   * Test hook called with `engine.before-batch` right before the batch
   * of {@linkcode NftBackend.apply} or {@linkcode NftBackend.removeAll}
   * goes to libnftables and with `engine.after-batch` right after it
   * succeeded (see `ENGINE_CRASH_POINTS` in `backend.ts`).
   */
  crashPoint?: (name: string) => void;
}

const TABLE = { family: NFT_FAMILY, name: NFT_TABLE };

/**
 * Enforces policies with nftables. Everything lives in table
 * `inet palisade`, base chains `input` and `output` hooked at priority
 * `filter - 10` with policy `accept`: Palisade never drops what no rule
 * names. Rules keep policy order and the first match decides; `permit`
 * is `accept`, which ends only Palisade's chain. Inbound blocks drop,
 * outbound blocks reject (TCP reset, else ICMP admin-prohibited) so
 * local programs fail fast. Each rule carries its ID as comment and a
 * counter. An address list that merges to two or more ranges becomes
 * a named interval set `<id>.<field><4|6>` (50,000 addresses: one rule,
 * one set); a single address, prefix or range is matched inline. A
 * rule with IPv4 and IPv6 addresses becomes one nft rule per family.
 *
 * Each policy rule has its own regular chain `r-<id>` holding its nft
 * rules; the base chains hold one `jump` per rule, in policy order. A
 * rule that matches ends the evaluation of Palisade's hook with its
 * verdict; one that does not returns, and the next jump runs. So a
 * changed rule is rewritten by flushing its chain and appending to it,
 * which libnftables does without fetching the table's rules (a listing
 * or a positioned command costs a fetch of every rule).
 *
 * The instance remembers what it applied last, the handle of every
 * jump, and the random value it wrote into the marker set `state` in
 * its last batch. An incremental apply first reads that one set: any
 * other value (the table was removed, another process applied, or this
 * is a new instance) means a full apply. Edits made to the table with
 * the nft CLI are not seen by that read.
 *
 * The calls act on the network namespace of the calling thread.
 *
 * @example
 * ```ts ignore
 * using backend = new NftBackend();
 * const stats = backend.apply(policy, null);
 * ```
 */
export class NftBackend implements Backend {
  readonly engine = "nft" as const;
  #nft: NftContext;
  #crashPoint: ((name: string) => void) | undefined;
  // What this instance committed last; null when unknown.
  // Limitation: hand edits to table inet palisade made with the nft CLI
  // between two applies are seen only by a full apply and by readBack().
  #installed: Installed | null = null;

  /**
   * Opens libnftables.
   *
   * @throws {NftError} the context cannot be set up
   */
  constructor(options: NftBackendOptions = {}) {
    this.#nft = new NftContext({ library: options.library });
    this.#crashPoint = options.crashPoint;
  }

  /**
   * Compiles `policy` as {@linkcode apply} would, without touching
   * nftables; see {@linkcode Backend.validate}.
   *
   * @throws {TypeError} a rule cannot be expressed in nftables
   */
  validate(policy: NormalPolicy): void {
    compilePolicy(policy);
  }

  /**
   * Installs `next` as one batch. When this instance applied `current`
   * last and the marker set still holds the value it wrote then, only
   * the rule chains, jumps and sets the diff names are written;
   * otherwise (or when that small batch is refused, e.g. for a jump
   * handle that no longer exists) the table is replaced whole.
   *
   * @throws {TypeError} a rule cannot be expressed in nftables
   * @throws {EngineError} the batch was refused; nothing changed, and
   *   `ruleId` names the rule that caused it when one alone does
   */
  apply(next: NormalPolicy, current: NormalPolicy | null): ApplyStats {
    const diff = diffPolicies(current, next);
    const stats = {
      added: diff.added,
      removed: diff.removed,
      changed: [...diff.changed, ...diff.moved],
    };
    const installed = current === null ? null : this.#holding(current);
    // Rules the diff does not name compiled as they did last time.
    const units = installed === null
      ? compilePolicy(next)
      : compileReusing(next, diff, installed.units);

    if (installed !== null) {
      const objects = this.#tryIncremental(installed, next, units);
      if (objects !== null) return { ...stats, incremental: true, objects };
    }

    const plan = planFull(units, newMarker());
    this.#installed = null;
    this.#step("engine.before-batch");
    try {
      this.#nft.run({ nftables: plan.commands });
    } catch (error) {
      if (!(error instanceof NftError)) throw error;
      throw engineError("apply nftables batch", error, this.#culprit(units));
    }
    this.#step("engine.after-batch");
    this.#remember(next, units, plan, new Map());
    return { ...stats, incremental: false, objects: plan.objects };
  }

  /**
   * Deletes table `inet palisade` in one batch, if it exists.
   *
   * @returns the objects removed (table, chains, sets, rules); 0 when
   *   there was nothing to remove
   * @throws {EngineError} listing or deleting failed
   */
  removeAll(): number {
    const live = this.#listTable();
    if (live === null) return 0;
    let rules = live.chains.input.rules.length +
      live.chains.output.rules.length;
    for (const chain of live.ruleChains.values()) rules += chain.rules.length;
    const count = 1 + live.chainDecl.size + live.setHandles.size + rules;
    this.#installed = null;
    this.#step("engine.before-batch");
    this.#run(
      { nftables: [{ delete: { table: TABLE } }] },
      "delete table inet palisade",
    );
    this.#step("engine.after-batch");
    return count;
  }

  /**
   * Compares table `inet palisade` with what `expected` compiles to,
   * ignoring handles and counter values.
   *
   * @throws {EngineError} the table cannot be listed
   */
  readBack(expected: NormalPolicy | null): ReadBack {
    const live = this.#listTable();
    if (expected === null) {
      return live === null
        ? { ok: true }
        : { ok: false, detail: "table inet palisade exists, expected none" };
    }
    if (live === null) {
      return { ok: false, detail: "table inet palisade is missing" };
    }

    let units: CompiledUnit[];
    try {
      units = compilePolicy(expected);
    } catch (error) {
      return { ok: false, detail: (error as Error).message };
    }
    const detail = firstDifference(live, modelOf(units));
    return detail === null ? { ok: true } : { ok: false, detail };
  }

  /**
   * Packet and byte counts per rule ID, summed over the nft rules in
   * the rule's own chain (one per address family), in chain order.
   *
   * @throws {EngineError} the chains cannot be listed
   */
  counters(): RuleCounter[] {
    const live = this.#listTable();
    if (live === null) return [];
    const byId = new Map<string, RuleCounter>();
    for (const chain of ["input", "output"] as const) {
      for (const jump of live.chains[chain].rules) {
        byId.set(jump.id, { id: jump.id, packets: 0n, bytes: 0n });
      }
    }
    for (const chain of live.ruleChains.values()) {
      for (const rule of chain.rules) {
        const entry = byId.get(rule.id) ??
          { id: rule.id, packets: 0n, bytes: 0n };
        entry.packets += rule.packets;
        entry.bytes += rule.bytes;
        byId.set(rule.id, entry);
      }
    }
    return [...byId.values()];
  }

  /** Frees the libnftables context; safe to call twice. */
  close(): void {
    this.#nft.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Calls the crash-point test hook, if any, at `name`. */
  #step(name: EngineCrashPoint): void {
    this.#crashPoint?.(name);
  }

  /** Runs the small batch when possible; null means "do a full one". */
  #tryIncremental(
    installed: Installed,
    next: NormalPolicy,
    units: CompiledUnit[],
  ): number | null {
    // The one cheap read: the marker set. Any other value than the one
    // this instance wrote last means that the table is not what this
    // instance left.
    const marker = this.#readMarker();
    if (marker === null || marker.value !== installed.marker) {
      this.#installed = null;
      return null;
    }
    const jumps = installed.jumps;
    const plan = planIncremental(installed.units, units, jumps, newMarker());
    if (plan === null) {
      this.#installed = null;
      return null;
    }
    if (plan.commands.length === 0) {
      // Nothing to commit: the marker stays as it is.
      this.#installed = { ...installed, policy: next, units };
      return 0;
    }
    this.#installed = null;
    this.#step("engine.before-batch");
    try {
      this.#nft.run({ nftables: plan.commands });
    } catch (error) {
      // The kernel took nothing (a stale handle is refused with
      // ENOENT); the full batch below either works or names the rule.
      if (error instanceof NftError) return null;
      throw error;
    }
    this.#step("engine.after-batch");
    for (const id of plan.deletedJumps) jumps.delete(id);
    this.#remember(next, units, plan, jumps);
    return plan.objects;
  }

  /**
   * Records a committed batch. When it created jumps, reads the marker
   * set back: its handle, allocated last in the batch, fixes the handle
   * of every jump the batch created. (The read also lets libnftables
   * free the batch's cache now rather than in the next apply.)
   */
  #remember(
    policy: NormalPolicy,
    units: CompiledUnit[],
    plan: BatchPlan,
    jumps: Map<string, number>,
  ): void {
    const value = (plan.commands.at(-1) as {
      add: { set: { elem: number[] } };
    }).add.set.elem[0];
    if (plan.newJumps.size > 0) {
      const marker = this.#readMarker();
      // Another writer in between: the handles cannot be known.
      if (marker === null || marker.value !== value) return;
      const first = marker.handle - plan.allocations;
      for (const [id, index] of plan.newJumps) jumps.set(id, first + index);
    }
    this.#installed = { policy, units, marker: value, jumps };
  }

  /** What this instance applied last, when that is `current`. */
  #holding(current: NormalPolicy): Installed | null {
    const installed = this.#installed;
    if (installed === null) return null;
    if (current === installed.policy) return installed;
    return isEmptyDiff(diffPolicies(installed.policy, current))
      ? installed
      : null;
  }

  /** The marker set's value and handle; null when it cannot be read. */
  #readMarker(): { value: number | null; handle: number } | null {
    let listing: unknown;
    try {
      listing = this.#nft.runJson({
        nftables: [{
          list: {
            set: { family: NFT_FAMILY, table: NFT_TABLE, name: NFT_MARKER_SET },
          },
        }],
      });
    } catch (error) {
      if (error instanceof NftError) return null;
      throw error;
    }
    const items =
      (listing as { nftables?: { set?: Record<string, unknown> }[] })
        ?.nftables ?? [];
    const set = items.find((item) => item.set?.name === NFT_MARKER_SET)?.set;
    return set === undefined ? null : readMarker(set);
  }

  /**
   * Finds the rule whose commands alone make a batch fail, by halving
   * the policy and checking each half in dry-run mode (the kernel sees
   * the batch but never commits it).
   */
  #culprit(units: CompiledUnit[]): string | undefined {
    const fails = (subset: CompiledUnit[]) => {
      this.#nft.dryRun = true;
      try {
        this.#nft.run({ nftables: planFull(subset, 1).commands });
        return false;
      } catch (error) {
        if (error instanceof NftError) return true;
        throw error;
      } finally {
        this.#nft.dryRun = false;
      }
    };

    let candidates = units;
    if (candidates.length === 0 || !fails(candidates)) return undefined;
    while (candidates.length > 1) {
      const half = Math.ceil(candidates.length / 2);
      const left = candidates.slice(0, half);
      const right = candidates.slice(half);
      if (fails(left)) candidates = left;
      else if (fails(right)) candidates = right;
      else return undefined; // only a combination of rules fails
    }
    return candidates[0].id;
  }

  #tableExists(): boolean {
    const listing = this.#run("list tables inet", "list nftables tables");
    const items = (listing as { nftables?: { table?: { name?: string } }[] })
      ?.nftables ?? [];
    return items.some((item) => item.table?.name === NFT_TABLE);
  }

  /** Table `inet palisade` as listed, or null when it does not exist. */
  #listTable(): LiveTable | null {
    let listing: unknown;
    try {
      listing = this.#nft.runJson(`list table inet ${NFT_TABLE}`);
    } catch (error) {
      // Only a second look tells "no such table" from other failures.
      if (error instanceof NftError && !this.#tableExists()) return null;
      if (error instanceof NftError) {
        throw engineError("list table inet palisade", error);
      }
      throw error;
    }
    return readListing(listing);
  }

  #run(commands: string | object, action: string): unknown {
    try {
      return this.#nft.runJson(commands);
    } catch (error) {
      if (error instanceof NftError) throw engineError(action, error);
      throw error;
    }
  }
}

/**
 * Opens the nftables engine.
 *
 * @throws {NftError} libnftables cannot be loaded or set up
 */
export function openNftBackend(options: NftBackendOptions = {}): NftBackend {
  return new NftBackend(options);
}

/** What an instance committed last. */
interface Installed {
  /** The policy applied last, and what it compiled to. */
  policy: NormalPolicy;
  units: CompiledUnit[];
  /** The marker value of the last batch. */
  marker: number;
  /** The handle of every jump, by rule ID. */
  jumps: Map<string, number>;
}

/**
 * Compiles `next`, taking the units of rules `diff` finds unchanged
 * from `previous` (the policy `diff` compares with, as compiled then).
 *
 * @throws {TypeError} as {@linkcode compilePolicy}
 */
function compileReusing(
  next: NormalPolicy,
  diff: PolicyDiff,
  previous: CompiledUnit[],
): CompiledUnit[] {
  const fresh = new Set([...diff.added, ...diff.changed]);
  const byId = new Map(previous.map((unit) => [unit.id, unit]));
  const units = next.rules.map((rule) =>
    fresh.has(rule.id) ? compileRule(rule) : byId.get(rule.id)
  );
  const ids = new Set(next.rules.map((rule) => rule.id));
  if (ids.size !== next.rules.length || units.includes(undefined)) {
    return compilePolicy(next); // throws on the duplicate ID
  }
  return units as CompiledUnit[];
}

/** A random non-zero marker value (31 bits: printed as a plain number). */
function newMarker(): number {
  const [value] = crypto.getRandomValues(new Uint32Array(1));
  return (value >>> 1) || 1;
}

/** errno names of the messages the kernel's refusals come with. */
const ERRNO: Record<string, [number, string]> = {
  "Operation not permitted": [1, "EPERM"],
  "No such file or directory": [2, "ENOENT"],
  "Interrupted system call": [4, "EINTR"],
  "Argument list too long": [7, "E2BIG"],
  "Resource temporarily unavailable": [11, "EAGAIN"],
  "Cannot allocate memory": [12, "ENOMEM"],
  "Permission denied": [13, "EACCES"],
  "Device or resource busy": [16, "EBUSY"],
  "File exists": [17, "EEXIST"],
  "Invalid argument": [22, "EINVAL"],
  "Too many open files in system": [23, "ENFILE"],
  "No space left on device": [28, "ENOSPC"],
  "Numerical result out of range": [34, "ERANGE"],
  "Directory not empty": [39, "ENOTEMPTY"],
  "Operation not supported": [95, "EOPNOTSUPP"],
  "No buffer space available": [105, "ENOBUFS"],
};

const TRANSIENT = new Set(["EINTR", "EAGAIN", "ENOMEM", "EBUSY", "ENOBUFS"]);

function engineError(
  action: string,
  error: NftError,
  ruleId?: string,
): EngineError {
  const text = error.errorText.trim();
  const known = Object.entries(ERRNO).find(([message]) =>
    text.includes(`: ${message}`)
  );
  // Errors found by libnftables itself (before the kernel) carry no
  // errno; the library's return code stands for them.
  const [code, codeName] = known?.[1] ?? [error.code, "NFT_REFUSED"];
  const where = ruleId === undefined ? "" : ` (rule ${ruleId})`;
  return new EngineError(
    `Cannot ${action}: ${text || `libnftables returned ${error.code}`}` +
      where,
    {
      call: error.call,
      code,
      codeName,
      ruleId,
      transient: TRANSIENT.has(codeName),
      cause: error,
    },
  );
}
