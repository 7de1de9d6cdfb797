/**
 * Plans the batches of the nftables engine: the full batch that
 * rebuilds table `inet palisade`, and the small batch that turns the
 * policy last applied into the next one touching only what the diff
 * names, without any command that makes libnftables fetch the rules.
 *
 * Each batch also tells which kernel handles it makes the kernel
 * allocate: within one table, the kernel numbers chains, sets
 * (anonymous ones too) and rules from one counter, in the order of the
 * batch, and never reuses a number. The marker set is created last, so
 * its handle, read back later, fixes every number of the batch.
 *
 * @module
 */
import {
  type ChainName,
  chainObject,
  type CompiledSet,
  type CompiledUnit,
  jumpObject,
  markerObject,
  NFT_FAMILY,
  NFT_MARKER_SET,
  NFT_TABLE,
  ruleAllocations,
  ruleChainObject,
  ruleObject,
  setObject,
} from "./_nft_compile.ts";
import { longestIncreasing } from "./_sequence.ts";

/** A batch, what it writes and the handles it allocates. */
export interface BatchPlan {
  commands: unknown[];
  /** Engine objects written or deleted (set elements counted). */
  objects: number;
  /** Handles the kernel allocates in this batch; the marker set's is
   * the last. */
  allocations: number;
  /** Jumps the batch creates: rule ID → 1-based allocation index. */
  newJumps: Map<string, number>;
  /** Rule IDs whose old jump the batch deletes. */
  deletedJumps: string[];
}

const TABLE = { family: NFT_FAMILY, name: NFT_TABLE };

/** Commands in order, counting handle allocations as they go. */
class Builder {
  commands: unknown[] = [];
  objects = 0;
  allocations = 0;
  newJumps = new Map<string, number>();
  deletedJumps: string[] = [];

  /** Appends `command`, which allocates `count` handles. */
  push(command: unknown, objects: number, count = 0): void {
    this.commands.push(command);
    this.objects += objects;
    this.allocations += count;
  }

  /** Declares a new set with its elements. */
  addSet(set: CompiledSet): void {
    this.push({ add: { set: setObject(set) } }, 1 + set.ranges.length, 1);
  }

  /** Creates a unit's chain, its sets and its rules. */
  addUnitChain(unit: CompiledUnit): void {
    this.push({ add: { chain: ruleChainObject(unit) } }, 1, 1);
    this.addUnitRules(unit, new Set());
  }

  /** Adds a unit's sets (except `existing`) and its rules. */
  addUnitRules(unit: CompiledUnit, existing: Set<string>): void {
    for (const rule of unit.rules) {
      for (const set of rule.sets) {
        if (!existing.has(set.name)) this.addSet(set);
      }
      this.push(
        { add: { rule: ruleObject(rule) } },
        1,
        ruleAllocations(rule.expr),
      );
    }
  }

  /** Appends a unit's jump, or inserts it before rule `before`. */
  addJump(unit: CompiledUnit, before?: number): void {
    const object = jumpObject(unit);
    this.push(
      before === undefined
        ? { add: { rule: object } }
        : { insert: { rule: { ...object, handle: before } } },
      1,
      1,
    );
    this.newJumps.set(unit.id, this.allocations);
  }

  /** Ends the batch by writing the marker set afresh. */
  finish(marker: number, replace: boolean): BatchPlan {
    if (replace) {
      const ref = {
        family: NFT_FAMILY,
        table: NFT_TABLE,
        name: NFT_MARKER_SET,
      };
      this.push({ delete: { set: ref } }, 0);
    }
    this.push({ add: { set: markerObject(marker) } }, 1, 1);
    return {
      commands: this.commands,
      objects: this.objects,
      allocations: this.allocations,
      newJumps: this.newJumps,
      deletedJumps: this.deletedJumps,
    };
  }
}

/**
 * The full batch: create the table (so that deleting it cannot fail),
 * delete it, and build it again with `units` and the marker `marker`.
 * The new table numbers its objects from 1.
 */
export function planFull(units: CompiledUnit[], marker: number): BatchPlan {
  const b = new Builder();
  b.push({ add: { table: TABLE } }, 0);
  b.push({ delete: { table: TABLE } }, 0);
  b.push({ add: { table: TABLE } }, 1);
  b.push({ add: { chain: chainObject("input") } }, 1, 1);
  b.push({ add: { chain: chainObject("output") } }, 1, 1);
  for (const unit of units) {
    b.addUnitChain(unit);
    b.addJump(unit);
  }
  return b.finish(marker, false);
}

/**
 * Plans the small batch from `previous` (what the table holds) to
 * `next`:
 * - a changed rule: its chain flushed and its rules added again, its
 *   sets rewritten (flush and add) where their elements changed;
 * - a removed rule: its jump deleted by handle, its chain flushed and
 *   deleted, its sets deleted;
 * - an added rule: its chain, sets and rules, then its jump appended,
 *   or inserted before the next jump that stays when one follows;
 * - a moved rule (or one that changed direction): its jump deleted
 *   and placed again like an added one. Jumps on a longest run whose
 *   relative order holds stay.
 *
 * Only inserting a jump before another makes libnftables fetch the
 * rules; appending, flushing and deleting by handle do not.
 *
 * @param jumps the handle of every jump in `previous`, by rule ID
 * @returns the plan, or null when a needed handle is unknown
 */
export function planIncremental(
  previous: CompiledUnit[],
  next: CompiledUnit[],
  jumps: ReadonlyMap<string, number>,
  marker: number,
): BatchPlan | null {
  const before = new Map(previous.map((unit, index) => [unit.id, index]));
  const old = new Map(previous.map((unit) => [unit.id, unit]));
  const nextIds = new Set(next.map((unit) => unit.id));
  // The common case, rules edited in place, keeps every jump.
  const kept = sameOrder(previous, next)
    ? nextIds
    : keptJumps(before, old, next);
  const b = new Builder();

  // 1. Jumps that go: removed, moved, or now in the other base chain.
  for (const unit of previous) {
    if (kept.has(unit.id)) continue;
    const handle = jumps.get(unit.id);
    if (handle === undefined) return null;
    const rule = { ...chainRef(unit.chain), handle };
    b.push({ delete: { rule } }, 1);
    b.deletedJumps.push(unit.id);
  }

  // 2. Removed rules: their chains and sets.
  for (const unit of previous) {
    if (nextIds.has(unit.id)) continue;
    const chain = {
      family: NFT_FAMILY,
      table: NFT_TABLE,
      name: unit.ruleChain,
    };
    b.push({ flush: { chain } }, unit.rules.length);
    b.push({ delete: { chain } }, 1);
    for (const set of setsOf(unit)) {
      b.push({ delete: { set: setRef(set) } }, 1);
    }
  }

  // 3. Changed rules: same chain, new content.
  for (const unit of next) {
    const was = old.get(unit.id);
    if (was === undefined || sameContent(was, unit)) continue;
    const chain = {
      family: NFT_FAMILY,
      table: NFT_TABLE,
      name: unit.ruleChain,
    };
    b.push({ flush: { chain } }, was.rules.length);
    const oldSets = new Map(setsOf(was).map((set) => [set.name, set]));
    const newSets = new Map(setsOf(unit).map((set) => [set.name, set]));
    for (const set of oldSets.values()) {
      if (!newSets.has(set.name)) {
        b.push({ delete: { set: setRef(set) } }, 1);
      }
    }
    for (const set of newSets.values()) {
      const had = oldSets.get(set.name);
      if (had === undefined || sameRanges(had, set)) continue;
      b.push({ flush: { set: setRef(set) } }, had.ranges.length);
      b.push({ add: { set: setObject(set) } }, set.ranges.length);
    }
    b.addUnitRules(unit, new Set(oldSets.keys()));
  }

  // 4. Added rules: chain, sets, rules.
  for (const unit of next) {
    if (!old.has(unit.id)) b.addUnitChain(unit);
  }

  // 5. Jumps placed again or for the first time, in policy order.
  for (const [index, unit] of next.entries()) {
    if (kept.has(unit.id)) continue;
    const anchor = nextKept(next, index, unit.chain, kept);
    if (anchor === undefined) {
      b.addJump(unit);
      continue;
    }
    const handle = jumps.get(anchor);
    if (handle === undefined) return null;
    b.addJump(unit, handle);
  }

  if (b.commands.length === 0) {
    return {
      commands: [],
      objects: 0,
      allocations: 0,
      newJumps: new Map(),
      deletedJumps: [],
    };
  }
  return b.finish(marker, true);
}

function chainRef(chain: string) {
  return { family: NFT_FAMILY, table: NFT_TABLE, chain };
}

function setRef(set: CompiledSet) {
  return { family: NFT_FAMILY, table: NFT_TABLE, name: set.name };
}

function setsOf(unit: CompiledUnit): CompiledSet[] {
  return unit.rules.flatMap((rule) => rule.sets);
}

function sameRanges(a: CompiledSet, b: CompiledSet): boolean {
  return a.family === b.family && a.ranges.length === b.ranges.length &&
    a.ranges.every((r, i) =>
      r.first === b.ranges[i].first && r.last === b.ranges[i].last
    );
}

/** Same nft rules and set elements: the rule's chain stays as it is. */
export function sameContent(a: CompiledUnit, b: CompiledUnit): boolean {
  if (a === b) return true;
  return a.rules.length === b.rules.length &&
    a.rules.every((rule, i) => {
      const other = b.rules[i];
      return JSON.stringify(rule.expr) === JSON.stringify(other.expr) &&
        rule.sets.length === other.sets.length &&
        rule.sets.every((set, j) =>
          set.name === other.sets[j].name && sameRanges(set, other.sets[j])
        );
    });
}

/** True when both lists hold the same rule IDs in the same base chains,
 * in the same order. */
function sameOrder(previous: CompiledUnit[], next: CompiledUnit[]): boolean {
  return previous.length === next.length &&
    previous.every((unit, i) =>
      unit.id === next[i].id && unit.chain === next[i].chain
    );
}

/**
 * Rules whose jump stays in place: in the same base chain in both
 * policies and on a longest run whose relative order is unchanged.
 */
function keptJumps(
  before: Map<string, number>,
  old: Map<string, CompiledUnit>,
  next: CompiledUnit[],
): Set<string> {
  const kept = new Set<string>();
  for (const chain of ["input", "output"] as ChainName[]) {
    const candidates: { id: string; from: number }[] = [];
    for (const unit of next) {
      const from = before.get(unit.id);
      if (unit.chain !== chain || from === undefined) continue;
      if (old.get(unit.id)!.chain !== chain) continue;
      candidates.push({ id: unit.id, from });
    }
    for (const i of longestIncreasing(candidates.map((c) => c.from))) {
      kept.add(candidates[i].id);
    }
  }
  return kept;
}

function nextKept(
  next: CompiledUnit[],
  index: number,
  chain: ChainName,
  kept: Set<string>,
): string | undefined {
  for (let i = index + 1; i < next.length; i++) {
    if (next[i].chain === chain && kept.has(next[i].id)) return next[i].id;
  }
  return undefined;
}
