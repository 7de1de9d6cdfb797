/**
 * Plans the small batch that turns the live table (known to hold what
 * the current policy compiles to) into the next policy: only the rules
 * and set elements the diff names.
 *
 * @module
 */
import {
  type ChainName,
  type CompiledSet,
  type CompiledUnit,
  elementOf,
  type LiveTable,
  NFT_FAMILY,
  NFT_TABLE,
  rangesMissing,
  ruleObject,
  setObject,
} from "./_nft_compile.ts";

/** A batch and how many engine objects it writes or deletes. */
export interface IncrementalPlan {
  commands: unknown[];
  objects: number;
}

/**
 * Plans the incremental batch. Rules whose match expressions are
 * unchanged and whose relative order holds stay in place (their counters
 * too); only their set elements are updated. Every other changed, moved
 * or new rule is deleted by handle and inserted before the next rule
 * that stays, or appended.
 *
 * @returns the plan, or null when the live handles do not fit `current`
 */
export function planIncremental(
  live: LiveTable,
  current: CompiledUnit[],
  next: CompiledUnit[],
): IncrementalPlan | null {
  const handles = new Map<string, number[]>();
  for (const chain of ["input", "output"] as const) {
    for (const rule of live.chains[chain].rules) {
      const list = handles.get(rule.id) ?? [];
      list.push(rule.handle);
      handles.set(rule.id, list);
    }
  }
  const before = new Map(
    current.map((unit, index) => [unit.id, { unit, index }]),
  );

  const kept = keptUnits(before, next);
  const deletes: unknown[] = [];
  const setDeletes: unknown[] = [];
  const updates: unknown[] = [];
  const adds: unknown[] = [];
  let objects = 0;

  for (const unit of current) {
    if (kept.has(unit.id)) continue;
    const list = handles.get(unit.id) ?? [];
    if (list.length !== unit.rules.length) return null;
    for (const handle of list) {
      const rule = { ...chainRef(unit.chain), handle };
      deletes.push({ delete: { rule } });
    }
    for (const set of setsOf(unit)) {
      const ref = { family: NFT_FAMILY, table: NFT_TABLE, name: set.name };
      setDeletes.push({ delete: { set: ref } });
    }
    objects += list.length + setsOf(unit).length;
  }

  for (const unit of next) {
    if (!kept.has(unit.id)) continue;
    const oldSets = setsOf(before.get(unit.id)!.unit);
    const old = new Map(oldSets.map((set) => [set.name, set]));
    for (const set of setsOf(unit)) {
      const was = old.get(set.name)!;
      const gone = rangesMissing(was.ranges, set.ranges);
      const fresh = rangesMissing(set.ranges, was.ranges);
      updates.push(...elementCommands("delete", set, gone));
      updates.push(...elementCommands("add", set, fresh));
      objects += gone.length + fresh.length;
    }
  }

  // New rules are inserted before the kept rule that follows them, each
  // before the same one so that a run keeps its order, or appended when
  // none follows. (libnftables 1.0.6 ignores a position on a JSON "add",
  // so "insert before" is the only way to place a rule.)
  for (const [index, unit] of next.entries()) {
    if (kept.has(unit.id)) continue;
    const anchor = nextKept(next, index, unit.chain, kept);
    const anchorHandle = anchor === undefined
      ? undefined
      : handles.get(anchor)?.[0];
    if (anchor !== undefined && anchorHandle === undefined) return null;
    for (const set of setsOf(unit)) {
      adds.push(...freshSetCommands(set));
      objects += 1 + set.ranges.length;
    }
    for (const rule of unit.rules) {
      const object = ruleObject(rule);
      adds.push(
        anchorHandle === undefined
          ? { add: { rule: object } }
          : { insert: { rule: { ...object, handle: anchorHandle } } },
      );
      objects += 1;
    }
  }

  const commands = [...deletes, ...setDeletes, ...updates, ...adds];
  return { commands, objects };
}

function chainRef(chain: ChainName) {
  return { family: NFT_FAMILY, table: NFT_TABLE, chain };
}

function setsOf(unit: CompiledUnit): CompiledSet[] {
  return unit.rules.flatMap((rule) => rule.sets);
}

/** Same chain and match expressions: only set elements may differ. */
function sameShape(a: CompiledUnit, b: CompiledUnit): boolean {
  return a.chain === b.chain && a.rules.length === b.rules.length &&
    a.rules.every((rule, i) =>
      JSON.stringify(rule.expr) === JSON.stringify(b.rules[i].expr)
    );
}

/**
 * Units that stay in place: same shape in both policies and on a
 * longest run whose relative order is unchanged, per chain.
 */
function keptUnits(
  before: Map<string, { unit: CompiledUnit; index: number }>,
  next: CompiledUnit[],
): Set<string> {
  const kept = new Set<string>();
  for (const chain of ["input", "output"] as ChainName[]) {
    const candidates: { id: string; from: number }[] = [];
    for (const unit of next) {
      const old = before.get(unit.id);
      if (unit.chain !== chain || old === undefined) continue;
      if (sameShape(old.unit, unit)) {
        candidates.push({ id: unit.id, from: old.index });
      }
    }
    for (const i of longestIncreasing(candidates.map((c) => c.from))) {
      kept.add(candidates[i].id);
    }
  }
  return kept;
}

/** Indexes of one longest strictly increasing subsequence. */
function longestIncreasing(values: number[]): number[] {
  const tails: number[] = [];
  const previous: number[] = new Array(values.length).fill(-1);
  for (let i = 0; i < values.length; i++) {
    let low = 0;
    let high = tails.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (values[tails[mid]] < values[i]) low = mid + 1;
      else high = mid;
    }
    if (low > 0) previous[i] = tails[low - 1];
    tails[low] = i;
  }
  const out: number[] = [];
  for (let i = tails[tails.length - 1] ?? -1; i >= 0; i = previous[i]) {
    out.push(i);
  }
  return out.reverse();
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

/**
 * Commands creating a set from scratch: declare it, flush it in case a
 * stale set of that name lingers, then add the elements.
 */
export function freshSetCommands(set: CompiledSet): unknown[] {
  const declaration = setObject({ ...set, ranges: [] });
  const ref = { family: NFT_FAMILY, table: NFT_TABLE, name: set.name };
  return [
    { add: { set: declaration } },
    { flush: { set: ref } },
    ...elementCommands("add", set, set.ranges),
  ];
}

/** Adds or deletes `ranges` of `set`; nothing when `ranges` is empty. */
export function elementCommands(
  op: "add" | "delete",
  set: CompiledSet,
  ranges: CompiledSet["ranges"],
): unknown[] {
  if (ranges.length === 0) return [];
  const elem = ranges.map((r) => elementOf(r, set.family));
  const ref = { family: NFT_FAMILY, table: NFT_TABLE, name: set.name };
  return [{ [op]: { element: { ...ref, elem } } }];
}
