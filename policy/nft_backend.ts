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
  EngineError,
  type ReadBack,
  type RuleCounter,
} from "./backend.ts";
import { diffPolicies } from "./diff.ts";
import type { NormalPolicy } from "./types.ts";
import {
  chainObject,
  type CompiledUnit,
  compilePolicy,
  firstDifference,
  type LiveTable,
  modelOf,
  NFT_FAMILY,
  NFT_TABLE,
  readListing,
  ruleObject,
  setObject,
} from "./_nft_compile.ts";
import { planIncremental } from "./_nft_incremental.ts";

/** Options of {@linkcode NftBackend}. */
export interface NftBackendOptions {
  /** Path of libnftables; default the Debian/Ubuntu x86-64 path. */
  library?: string;
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
  // What each policy applied as `next` compiled to: the object passed
  // as `current` later is usually the same one, and what was applied is
  // what the live table must hold, even if the object changed since.
  #compiled = new WeakMap<NormalPolicy, CompiledUnit[]>();

  /**
   * Opens libnftables.
   *
   * @throws {NftError} the context cannot be set up
   */
  constructor(options: NftBackendOptions = {}) {
    this.#nft = new NftContext({ library: options.library });
  }

  /**
   * Installs `next` as one batch. When the live rules equal what
   * `current` compiles to, only the rules and set elements the diff
   * names are written; otherwise the table is replaced whole.
   *
   * @throws {TypeError} a rule cannot be expressed in nftables
   * @throws {EngineError} the batch was refused; nothing changed, and
   *   `ruleId` names the rule that caused it when one alone does
   */
  apply(next: NormalPolicy, current: NormalPolicy | null): ApplyStats {
    const units = compilePolicy(next);
    const diff = diffPolicies(current, next);
    const stats = {
      added: diff.added,
      removed: diff.removed,
      changed: [...diff.changed, ...diff.moved],
    };

    if (current !== null) {
      const objects = this.#tryIncremental(units, current);
      if (objects !== null) {
        this.#compiled.set(next, units);
        return { ...stats, incremental: true, objects };
      }
    }

    const commands = fullBatch(units);
    try {
      this.#nft.run({ nftables: commands });
    } catch (error) {
      if (!(error instanceof NftError)) throw error;
      throw engineError("apply nftables batch", error, this.#culprit(units));
    }
    this.#compiled.set(next, units);
    // The table, chains, sets and rules written, and the set elements.
    const elements = units.flatMap((u) => u.rules)
      .flatMap((r) => r.sets)
      .reduce((sum, set) => sum + set.ranges.length, 0);
    const objects = commands.length - 2 + elements;
    return { ...stats, incremental: false, objects };
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
    const rules = live.chains.input.rules.length +
      live.chains.output.rules.length;
    const count = 1 + live.chainDecl.size + live.setHandles.size + rules;
    this.#run(
      { nftables: [{ delete: { table: TABLE } }] },
      "delete table inet palisade",
    );
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
   * Packet and byte counts per rule ID, summed over the rule's nft rules
   * (one per address family), in chain order.
   *
   * @throws {EngineError} the chains cannot be listed
   */
  counters(): RuleCounter[] {
    const live = this.#listTable();
    if (live === null) return [];
    const byId = new Map<string, RuleCounter>();
    for (const chain of ["input", "output"] as const) {
      for (const rule of live.chains[chain].rules) {
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

  /** Runs the small batch when possible; null means "do a full one". */
  #tryIncremental(
    units: CompiledUnit[],
    current: NormalPolicy,
  ): number | null {
    let currentUnits: CompiledUnit[];
    try {
      currentUnits = this.#compileCurrent(current);
    } catch {
      return null;
    }
    // One listing (libnftables fetches its whole cache for any list
    // command, so one is as cheap as it gets) compared in full: chains,
    // rules in order and set elements.
    const live = this.#listTable();
    if (live === null) return null;
    if (firstDifference(live, modelOf(currentUnits)) !== null) return null;
    const plan = planIncremental(live, currentUnits, units);
    if (plan === null) return null;
    if (plan.commands.length === 0) return 0;
    try {
      this.#nft.run({ nftables: plan.commands });
    } catch (error) {
      // The kernel took nothing; the full batch below either works
      // (the live table had drifted) or names the rule at fault.
      if (error instanceof NftError) return null;
      throw error;
    }
    return plan.objects;
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
        this.#nft.run({ nftables: fullBatch(subset) });
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

  #compileCurrent(policy: NormalPolicy): CompiledUnit[] {
    let units = this.#compiled.get(policy);
    if (units === undefined) {
      units = compilePolicy(policy);
    }
    return units;
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

/** Replace everything: create (so delete cannot fail), delete, rebuild. */
function fullBatch(units: CompiledUnit[]): unknown[] {
  const commands: unknown[] = [
    { add: { table: TABLE } },
    { delete: { table: TABLE } },
    { add: { table: TABLE } },
    { add: { chain: chainObject("input") } },
    { add: { chain: chainObject("output") } },
  ];
  for (const unit of units) {
    for (const rule of unit.rules) {
      for (const set of rule.sets) {
        commands.push({ add: { set: setObject(set) } });
      }
      commands.push({ add: { rule: ruleObject(rule) } });
    }
  }
  return commands;
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
