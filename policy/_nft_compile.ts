/**
 * Compiles a normalised policy to nftables JSON objects, in the exact
 * form `nft -j list` prints them back, so that read-back is a plain
 * comparison. Also reads a live JSON listing into the same shape.
 *
 * @module
 */
import {
  type AddressFamily,
  type AddressRange,
  coversFamily,
  formatAddress,
  mergeRanges,
  rangesOf,
  readCidr,
} from "./address.ts";
import { RULE_ID_PATTERN } from "./schema.ts";
import type { NormalPolicy, NormalRule, PortRange } from "./types.ts";

/** The one table Palisade owns. */
export const NFT_FAMILY = "inet";
export const NFT_TABLE = "palisade";

/**
 * Hook priority of both base chains: `filter - 10`. It runs after
 * conntrack (-200), mangle (-150) and destination NAT (-100), so rules
 * see the addresses a packet is finally delivered to or sent from, and
 * before the common `filter` (0) chains of other tables, so a Palisade
 * block is counted even when another table would drop the packet later.
 * An `accept` here ends only Palisade's chain: every other table still
 * sees the packet and may drop it.
 */
export const NFT_PRIORITY = -10;

/** Base chain per direction. */
export const NFT_CHAINS = { in: "input", out: "output" } as const;

/** A base chain name. */
export type ChainName = (typeof NFT_CHAINS)[keyof typeof NFT_CHAINS];

/**
 * The marker set: one `mark` element, a random value rewritten by every
 * batch Palisade commits, so that a later apply can tell cheaply
 * whether anything else committed to the table since (rule set names
 * always hold a dot, so they cannot collide with it).
 */
export const NFT_MARKER_SET = "state";

/** The regular chain holding a rule's nft rules: `r-<id>`. */
export function ruleChainName(id: string): string {
  return `r-${id}`;
}

/** A named interval set of one family, elements as merged ranges. */
export interface CompiledSet {
  name: string;
  family: AddressFamily;
  ranges: AddressRange[];
}

/** One nft rule: a policy rule becomes one per address family. */
export interface CompiledRule {
  id: string;
  /** The rule's own regular chain, {@linkcode ruleChainName}. */
  chain: string;
  /** Match expressions and verdict, counter as `{ counter: null }`. */
  expr: unknown[];
  /** The sets this rule references. */
  sets: CompiledSet[];
}

/**
 * A policy rule compiled: a `jump` in base chain `chain` to its own
 * regular chain, which holds its nft rules in order.
 */
export interface CompiledUnit {
  id: string;
  /** The base chain holding the jump. */
  chain: ChainName;
  /** The rule's own chain, {@linkcode ruleChainName}. */
  ruleChain: string;
  rules: CompiledRule[];
}

/** What a whole table holds, comparable with a live listing. */
export interface TableModel {
  /** Base chains: one jump per policy rule, in policy order. */
  chains: Record<ChainName, { rules: ModelRule[] }>;
  /** Per-rule chains by name, with their rules. */
  ruleChains: Map<string, { rules: ModelRule[] }>;
  sets: Map<string, CompiledSet>;
}

/** A rule in a listing or a compiled policy. */
export interface ModelRule {
  id: string;
  expr: unknown[];
  /** Kernel handle; 0 for compiled rules. */
  handle: number;
  packets: bigint;
  bytes: bigint;
}

const SET_TYPE = { 4: "ipv4_addr", 6: "ipv6_addr" } as const;
const L3 = { 4: "ip", 6: "ip6" } as const;
const WIDTH = { 4: 32, 6: 128 } as const;

/**
 * Compiles every rule of `policy`, in order.
 *
 * @throws {TypeError} a rule uses what nftables cannot express, could
 *   never match, or is a catch-all block
 */
export function compilePolicy(policy: NormalPolicy): CompiledUnit[] {
  const seen = new Set<string>();
  return policy.rules.map((rule) => {
    if (seen.has(rule.id)) {
      throw new TypeError(
        `Cannot compile rule ${rule.id} for nftables: the ID is used twice`,
      );
    }
    seen.add(rule.id);
    return compileRule(rule);
  });
}

/**
 * Compiles one rule into one nft rule per address family it needs.
 *
 * @throws {TypeError} as {@linkcode compilePolicy}
 */
export function compileRule(rule: NormalRule): CompiledUnit {
  const fail = (why: string) =>
    new TypeError(`Cannot compile rule ${rule.id} for nftables: ${why}`);
  // The ID becomes a set name and the rule comment; libnftables aborts
  // the whole process on an oversized comment, so check it here.
  if (!RULE_ID_PATTERN.test(rule.id)) {
    throw fail(`the ID must match ${RULE_ID_PATTERN.source}`);
  }
  if (rule.app !== undefined) {
    throw new TypeError(
      `the nft engine cannot match applications (rule ${rule.id})`,
    );
  }
  const hasPorts = rule.remotePorts.length + rule.localPorts.length > 0;
  if (hasPorts && rule.protocol !== "tcp" && rule.protocol !== "udp") {
    if (rule.protocol !== "any") {
      throw fail(`ports need protocol tcp, udp or any, not ${rule.protocol}`);
    }
  }

  let remote: Ranges;
  let local: Ranges;
  try {
    remote = { 4: rangesOf(rule.remote, 4), 6: rangesOf(rule.remote, 6) };
    local = { 4: rangesOf(rule.local, 4), 6: rangesOf(rule.local, 6) };
  } catch (error) {
    throw fail((error as Error).message);
  }
  if (rule.action === "block" && !hasPorts && isCatchAll(remote, local)) {
    throw fail(
      "a block rule without an address or port condition would block " +
        "all traffic; Palisade never installs a default deny",
    );
  }

  const families = familiesOf(rule, remote, local);
  if (families.length === 0) {
    throw fail(
      "no address family is common to its remote and local addresses " +
        "and its protocol, so it could never match",
    );
  }
  const chain = NFT_CHAINS[rule.direction];
  const ruleChain = ruleChainName(rule.id);
  const rules = families.map((family) =>
    familyRule(rule, ruleChain, family, remote, local)
  );
  return { id: rule.id, chain, ruleChain, rules };
}

type Ranges = Record<AddressFamily, AddressRange[]>;

function isCatchAll(remote: Ranges, local: Ranges): boolean {
  for (const ranges of [remote, local]) {
    for (const family of [4, 6] as const) {
      const list = ranges[family];
      if (list.length > 0 && !coversFamily(list, family)) return false;
    }
  }
  return true;
}

function familiesOf(
  rule: NormalRule,
  remote: Ranges,
  local: Ranges,
): (AddressFamily | null)[] {
  const allowed = (family: AddressFamily) =>
    (rule.protocol !== "icmp" || family === 4) &&
    (rule.protocol !== "icmpv6" || family === 6) &&
    (rule.remote.length === 0 || remote[family].length > 0) &&
    (rule.local.length === 0 || local[family].length > 0);
  if (rule.remote.length + rule.local.length === 0) return [null];
  return ([4, 6] as const).filter(allowed);
}

/** The set name of a rule's field and family: `<id>.remote4`. */
export function setName(
  id: string,
  field: "remote" | "local",
  family: AddressFamily,
): string {
  return `${id}.${field}${family}`;
}

function familyRule(
  rule: NormalRule,
  chain: string,
  family: AddressFamily | null,
  remote: Ranges,
  local: Ranges,
): CompiledRule {
  // Inbound packets come from the remote side; outbound ones go to it.
  const inbound = rule.direction === "in";
  const remoteEnd = inbound ? "s" : "d";
  const localEnd = inbound ? "d" : "s";
  const expr: unknown[] = [];
  const sets: CompiledSet[] = [];

  if (family !== null) {
    const fields = [["remote", remote, remoteEnd], ["local", local, localEnd]];
    for (const [field, ranges, end] of fields as [string, Ranges, string][]) {
      const list = ranges[family];
      if (list.length === 0) continue;
      const left = { payload: { protocol: L3[family], field: `${end}addr` } };
      // One address, prefix or range is matched inline: every named set
      // costs libnftables a kernel round trip on each listing, so 10,000
      // one-address rules as sets make any read of the table take
      // seconds. A whole-family prefix keeps its set, since nft prints
      // an inline /0 match in another form.
      if (list.length === 1 && !coversFamily(list, family)) {
        expr.push(match(left, elementOf(list[0], family)));
        continue;
      }
      const name = setName(rule.id, field as "remote" | "local", family);
      sets.push({ name, family, ranges: list });
      expr.push(match(left, `@${name}`));
    }
  }

  const ports = [
    [rule.remotePorts, `${remoteEnd}port`],
    [rule.localPorts, `${localEnd}port`],
  ] as const;
  if (rule.protocol === "tcp" || rule.protocol === "udp") {
    const withPorts = ports.filter(([list]) => list.length > 0);
    if (withPorts.length === 0) {
      expr.push(match({ meta: { key: "l4proto" } }, rule.protocol));
    }
    for (const [list, field] of withPorts) {
      const left = { payload: { protocol: rule.protocol, field } };
      expr.push(match(left, portValue(list)));
    }
  } else if (rule.protocol === "any") {
    const withPorts = ports.filter(([list]) => list.length > 0);
    if (withPorts.length > 0) {
      expr.push(match({ meta: { key: "l4proto" } }, { set: ["tcp", "udp"] }));
    }
    for (const [list, field] of withPorts) {
      const left = { payload: { protocol: "th", field } };
      expr.push(match(left, portValue(list)));
    }
  } else {
    const name = rule.protocol === "icmp" ? "icmp" : "ipv6-icmp";
    expr.push(match({ meta: { key: "l4proto" } }, name));
  }

  expr.push({ counter: null });
  expr.push(verdict(rule));
  return { id: rule.id, chain, expr, sets };
}

function match(left: unknown, right: unknown): unknown {
  return { match: { op: "==", left, right } };
}

/**
 * Inbound blocks drop silently, so a scan learns nothing. Outbound
 * blocks reject, so the local program fails at once instead of waiting
 * for a timeout: a TCP reset for TCP, an ICMP "administratively
 * prohibited" for everything else.
 */
function verdict(rule: NormalRule): unknown {
  if (rule.action === "permit") return { accept: null };
  if (rule.direction === "in") return { drop: null };
  if (rule.protocol === "tcp") return { reject: { type: "tcp reset" } };
  return { reject: { type: "icmpx", expr: "admin-prohibited" } };
}

function portValue(list: PortRange[]): unknown {
  const merged: PortRange[] = [];
  for (const r of [...list].sort((a, b) => a.first - b.first)) {
    const top = merged[merged.length - 1];
    if (top !== undefined && r.first <= top.last + 1) {
      top.last = Math.max(top.last, r.last);
    } else merged.push({ ...r });
  }
  const items = merged.map((r) =>
    r.first === r.last ? r.first : { range: [r.first, r.last] }
  );
  return items.length === 1 ? items[0] : { set: items };
}

/** A set element as libnftables writes it: address, prefix or range. */
export function elementOf(range: AddressRange, family: AddressFamily): unknown {
  if (range.first === range.last) return formatAddress(range.first, family);
  const size = range.last - range.first + 1n;
  if ((size & (size - 1n)) === 0n && (range.first & (size - 1n)) === 0n) {
    const len = WIDTH[family] - (size.toString(2).length - 1);
    return { prefix: { addr: formatAddress(range.first, family), len } };
  }
  return {
    range: [
      formatAddress(range.first, family),
      formatAddress(range.last, family),
    ],
  };
}

/** The `add set` command object of a compiled set. */
export function setObject(set: CompiledSet): Record<string, unknown> {
  const object: Record<string, unknown> = {
    family: NFT_FAMILY,
    table: NFT_TABLE,
    name: set.name,
    type: SET_TYPE[set.family],
    flags: ["interval"],
  };
  if (set.ranges.length > 0) {
    object.elem = set.ranges.map((r) => elementOf(r, set.family));
  }
  return object;
}

/** The `add rule` object of a unit's jump in its base chain. */
export function jumpObject(unit: CompiledUnit): Record<string, unknown> {
  return {
    family: NFT_FAMILY,
    table: NFT_TABLE,
    chain: unit.chain,
    comment: unit.id,
    expr: jumpExpr(unit),
  };
}

function jumpExpr(unit: CompiledUnit): unknown[] {
  return [{ jump: { target: unit.ruleChain } }];
}

/** The `add chain` object of a unit's own regular chain. */
export function ruleChainObject(unit: CompiledUnit): Record<string, unknown> {
  return { family: NFT_FAMILY, table: NFT_TABLE, name: unit.ruleChain };
}

/** The `add set` object of the marker set holding `value`. */
export function markerObject(value: number): Record<string, unknown> {
  return {
    family: NFT_FAMILY,
    table: NFT_TABLE,
    name: NFT_MARKER_SET,
    type: "mark",
    elem: [value],
  };
}

/**
 * How many kernel handles libnftables makes the kernel allocate for
 * one `add`/`insert rule` of `expr`: the rule, plus one anonymous set
 * per inline set (`{ set: [...] }`) it declares before the rule.
 */
export function ruleAllocations(expr: unknown[]): number {
  let count = 1;
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      value.forEach(visit);
    } else if (value !== null && typeof value === "object") {
      for (const [key, inner] of Object.entries(value)) {
        if (key === "set" && Array.isArray(inner)) count += 1;
        else visit(inner);
      }
    }
  };
  visit(expr);
  return count;
}

/** The `add rule` object of a compiled rule (no position). */
export function ruleObject(rule: CompiledRule): Record<string, unknown> {
  return {
    family: NFT_FAMILY,
    table: NFT_TABLE,
    chain: rule.chain,
    comment: rule.id,
    expr: rule.expr,
  };
}

/** The `add chain` object of a base chain. */
export function chainObject(chain: ChainName): Record<string, unknown> {
  return {
    family: NFT_FAMILY,
    table: NFT_TABLE,
    name: chain,
    type: "filter",
    hook: chain,
    prio: NFT_PRIORITY,
    policy: "accept",
  };
}

/** The model a compiled policy should leave in the kernel. */
export function modelOf(units: CompiledUnit[]): TableModel {
  const model: TableModel = {
    chains: { input: { rules: [] }, output: { rules: [] } },
    ruleChains: new Map(),
    sets: new Map(),
  };
  const entry = (id: string, expr: unknown[]): ModelRule => ({
    id,
    expr,
    handle: 0,
    packets: 0n,
    bytes: 0n,
  });
  for (const unit of units) {
    model.chains[unit.chain].rules.push(entry(unit.id, jumpExpr(unit)));
    const rules = unit.rules.map((rule) => entry(rule.id, rule.expr));
    model.ruleChains.set(unit.ruleChain, { rules });
    for (const rule of unit.rules) {
      for (const set of rule.sets) model.sets.set(set.name, set);
    }
  }
  return model;
}

/** A listing read into a model, plus what does not fit it. */
export interface LiveTable extends TableModel {
  /** Chain declarations as listed, by name. */
  chainDecl: Map<string, Record<string, unknown>>;
  /** Set handles, by name. */
  setHandles: Map<string, number>;
  /** Set declarations that are not Palisade interval sets. */
  oddSets: string[];
  /** The marker set's element and handle, when it exists. */
  marker: { value: number | null; handle: number } | null;
}

/**
 * Reads the JSON listing of Palisade's table (or of its chains) into a
 * model. Rule comments give the rule IDs; counters are read, not
 * compared.
 *
 * @throws {TypeError} the listing is not the JSON libnftables writes
 */
export function readListing(listing: unknown): LiveTable {
  const items = (listing as { nftables?: unknown[] })?.nftables;
  if (!Array.isArray(items)) {
    throw new TypeError("Cannot read nftables listing: no nftables array");
  }
  const live: LiveTable = {
    chains: { input: { rules: [] }, output: { rules: [] } },
    ruleChains: new Map(),
    sets: new Map(),
    chainDecl: new Map(),
    setHandles: new Map(),
    oddSets: [],
    marker: null,
  };
  const ruleChain = (name: string) => {
    let chain = live.ruleChains.get(name);
    if (chain === undefined) {
      chain = { rules: [] };
      live.ruleChains.set(name, chain);
    }
    return chain;
  };
  for (const item of items as Record<string, Record<string, unknown>>[]) {
    if (item.chain && item.chain.table === NFT_TABLE) {
      const name = String(item.chain.name);
      live.chainDecl.set(name, item.chain);
      if (name !== "input" && name !== "output") ruleChain(name);
    } else if (item.set && item.set.table === NFT_TABLE) {
      readSet(item.set, live);
    } else if (item.rule && item.rule.table === NFT_TABLE) {
      const rule = item.rule;
      const chain = String(rule.chain);
      const entry = readRule(rule);
      if (chain === "input" || chain === "output") {
        live.chains[chain].rules.push(entry);
      } else {
        ruleChain(chain).rules.push(entry);
      }
    }
  }
  return live;
}

function readRule(rule: Record<string, unknown>): ModelRule {
  let packets = 0n;
  let bytes = 0n;
  const expr = (rule.expr as Record<string, unknown>[] ?? []).map((e) => {
    if (e !== null && typeof e === "object" && "counter" in e) {
      const c = e.counter as { packets?: number; bytes?: number } | null;
      packets += BigInt(c?.packets ?? 0);
      bytes += BigInt(c?.bytes ?? 0);
      return { counter: null };
    }
    return e;
  });
  return {
    id: typeof rule.comment === "string" ? rule.comment : "",
    expr,
    handle: Number(rule.handle ?? 0),
    packets,
    bytes,
  };
}

function readSet(set: Record<string, unknown>, live: LiveTable): void {
  const name = String(set.name);
  live.setHandles.set(name, Number(set.handle ?? 0));
  if (name === NFT_MARKER_SET && set.type === "mark") {
    live.marker = readMarker(set);
    return;
  }
  const family = set.type === "ipv4_addr"
    ? 4
    : set.type === "ipv6_addr"
    ? 6
    : null;
  const flags = Array.isArray(set.flags) ? set.flags : [];
  if (family === null || flags.length !== 1 || flags[0] !== "interval") {
    live.oddSets.push(name);
    return;
  }
  const ranges: AddressRange[] = [];
  for (const element of (set.elem as unknown[]) ?? []) {
    const range = readElement(element);
    if (range === null) {
      live.oddSets.push(name);
      return;
    }
    ranges.push(range);
  }
  live.sets.set(name, { name, family, ranges: mergeRanges(ranges) });
}

/** The marker set's value and handle from its listing. */
export function readMarker(
  set: Record<string, unknown>,
): { value: number | null; handle: number } {
  const elem = Array.isArray(set.elem) ? set.elem : [];
  const value = elem.length === 1 && typeof elem[0] === "number"
    ? elem[0]
    : null;
  return { value, handle: Number(set.handle ?? 0) };
}

function readElement(element: unknown): AddressRange | null {
  if (element !== null && typeof element === "object" && "elem" in element) {
    return readElement((element.elem as { val?: unknown }).val);
  }
  if (typeof element === "string") {
    const value = readCidr(element);
    return typeof value === "string"
      ? null
      : { first: value.value, last: value.value };
  }
  const object = element as {
    prefix?: { addr: string; len: number };
    range?: [string, string];
  };
  if (object?.prefix) {
    const value = readCidr(`${object.prefix.addr}/${object.prefix.len}`);
    if (typeof value === "string") return null;
    const host = BigInt(WIDTH[value.family] - value.prefix);
    const first = (value.value >> host) << host;
    return { first, last: first + (1n << host) - 1n };
  }
  if (object?.range) {
    const first = readCidr(object.range[0]);
    const last = readCidr(object.range[1]);
    if (typeof first === "string" || typeof last === "string") return null;
    return { first: first.value, last: last.value };
  }
  return null;
}

/**
 * The first difference between a live table and the expected model, or
 * null when they hold the same chains, rules (in order) and sets.
 * Handles and counter values are ignored; set elements are compared as
 * merged address ranges, however libnftables chose to print them.
 */
export function firstDifference(
  live: LiveTable,
  expected: TableModel,
): string | null {
  for (const chain of ["input", "output"] as const) {
    const decl = live.chainDecl.get(chain);
    if (decl === undefined) return `chain ${chain} is missing`;
    const want = chainObject(chain);
    for (const key of ["type", "hook", "prio", "policy"]) {
      if (decl[key] !== want[key]) {
        return `chain ${chain} has ${key} ${JSON.stringify(decl[key])}, ` +
          `expected ${JSON.stringify(want[key])}`;
      }
    }
  }
  for (const name of live.ruleChains.keys()) {
    if (!expected.ruleChains.has(name)) return `unexpected chain ${name}`;
  }
  for (const name of expected.ruleChains.keys()) {
    if (!live.ruleChains.has(name)) return `chain ${name} is missing`;
  }

  const chains: [string, ModelRule[], ModelRule[]][] = [];
  for (const chain of ["input", "output"] as const) {
    chains.push([
      chain,
      live.chains[chain].rules,
      expected.chains[chain].rules,
    ]);
  }
  for (const [name, want] of expected.ruleChains) {
    chains.push([name, live.ruleChains.get(name)!.rules, want.rules]);
  }
  for (const [chain, have, want] of chains) {
    const count = Math.max(have.length, want.length);
    for (let i = 0; i < count; i++) {
      const h = have[i];
      const w = want[i];
      if (h === undefined) {
        return `chain ${chain} lacks rule ${w.id} at position ${i + 1}`;
      }
      if (w === undefined) {
        return `chain ${chain} has an extra rule "${h.id}" at position ` +
          `${i + 1}`;
      }
      if (h.id !== w.id) {
        return `chain ${chain} has rule "${h.id}" at position ${i + 1}, ` +
          `expected ${w.id}`;
      }
      const hText = JSON.stringify(h.expr);
      const wText = JSON.stringify(w.expr);
      if (hText !== wText) {
        return `rule ${w.id} in chain ${chain} differs: found ${hText}, ` +
          `expected ${wText}`;
      }
    }
  }
  if (live.oddSets.length > 0) {
    return `set ${live.oddSets[0]} is not an address interval set`;
  }
  for (const [name, want] of expected.sets) {
    const have = live.sets.get(name);
    if (have === undefined) return `set ${name} is missing`;
    if (have.family !== want.family) {
      return `set ${name} holds IPv${have.family}, expected IPv${want.family}`;
    }
    const diff = firstRangeDifference(have.ranges, want.ranges, want.family);
    if (diff !== null) return `set ${name} differs: ${diff}`;
  }
  for (const name of live.sets.keys()) {
    if (!expected.sets.has(name)) return `unexpected set ${name}`;
  }
  return null;
}

function firstRangeDifference(
  have: AddressRange[],
  want: AddressRange[],
  family: AddressFamily,
): string | null {
  const text = (r: AddressRange | undefined) =>
    r === undefined
      ? "nothing"
      : `${formatAddress(r.first, family)}-${formatAddress(r.last, family)}`;
  const count = Math.max(have.length, want.length);
  for (let i = 0; i < count; i++) {
    const h = have[i];
    const w = want[i];
    if (h?.first !== w?.first || h?.last !== w?.last) {
      return `element ${i + 1} is ${text(h)}, expected ${text(w)} ` +
        `(${have.length} ranges, expected ${want.length})`;
    }
  }
  return null;
}

/** Exact ranges in `a` that `b` lacks (both merged and sorted). */
export function rangesMissing(
  a: AddressRange[],
  b: AddressRange[],
): AddressRange[] {
  const keys = new Set(b.map((r) => `${r.first}-${r.last}`));
  return a.filter((r) => !keys.has(`${r.first}-${r.last}`));
}
