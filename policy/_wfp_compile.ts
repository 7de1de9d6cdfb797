/**
 * Compiles normalised rules to WFP filters: which layers, which
 * conditions, which key and which weight. Pure: no native calls (the
 * caller resolves application IDs first).
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  type ConditionKey,
  type FilterKey,
  filterKey,
  FWP_ACTION,
  FWP_MATCH_TYPE,
  guidToBytes,
  IP_PROTOCOL,
  type LayerKey,
  PALISADE_PROVIDER_KEY,
  WFP_CONDITIONS,
  WFP_LAYERS,
  type WfpCondition,
  type WfpConditionValue,
  type WfpLayerName,
} from "../ffi/wfp/mod.ts";
import type { NormalPolicy, NormalRule, PortRange } from "./types.ts";

/** One filter a rule needs, before its weight is chosen. */
export interface CompiledFilter {
  ruleId: string;
  /** Position of the rule in its policy (0: evaluated first). */
  ruleIndex: number;
  key: FilterKey;
  layer: WfpLayerName;
  layerKey: LayerKey;
  action: number;
  conditions: WfpCondition[];
}

/**
 * Weights: rule `i` of a fresh policy gets `WEIGHT_TOP - i * WEIGHT_GAP`
 * (the first rule weighs most, so WFP evaluates it first). An
 * incremental apply keeps the weights of rules that stay in order and
 * gives new or moved rules weights inside the gaps of their neighbours,
 * so inserting a rule touches only that rule's filters. When a gap is
 * used up, every rule is renumbered (a full apply).
 */
export const WEIGHT_TOP = 0xf000_0000_0000_0000n;
/** Distance between neighbouring rules in a fresh numbering (2^40). */
export const WEIGHT_GAP = 1n << 40n;
const WEIGHT_MAX = 0xffff_ffff_ffff_ffffn;

/**
 * The filter key of a rule at a layer: a name-based UUID (RFC 9562
 * version 8) from SHA-256 over Palisade's provider key, the rule ID and
 * the layer name. The same rule at the same layer always gets the same
 * key, so diffs and logs map filters back to rules.
 */
export function filterKeyFor(ruleId: string, layer: WfpLayerName): FilterKey {
  const digest = createHash("sha256")
    .update(guidToBytes(PALISADE_PROVIDER_KEY))
    .update(`${ruleId}\0${layer}`)
    .digest();
  const bytes = Uint8Array.from(digest.subarray(0, 16));
  bytes[6] = (bytes[6] & 0x0f) | 0x80;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return filterKey(
    `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${
      hex.slice(16, 20)
    }-${hex.slice(20)}`,
  );
}

type Family = 4 | 6;

interface Prefix {
  family: Family;
  bytes: Uint8Array;
  length: number;
}

function parseV4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^\d{1,3}$/.test(parts[i]) || Number(parts[i]) > 255) return null;
    bytes[i] = Number(parts[i]);
  }
  return bytes;
}

function parseV6(text: string): Uint8Array | null {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === "") return [];
    const out: number[] = [];
    const items = part.split(":");
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      if (i === items.length - 1 && item.includes(".")) {
        const v4 = parseV4(item);
        if (!v4) return null;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(item)) {
        out.push(parseInt(item, 16));
      } else return null;
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const all = [...head, ...new Array(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  return bytes;
}

/**
 * Parses canonical CIDR text (`203.0.113.0/24`, `2001:db8::/32`).
 *
 * @throws {SyntaxError} not a CIDR prefix
 */
export function parsePrefix(text: string, ruleId: string): Prefix {
  const [address, length, extra] = text.split("/");
  const fail = () =>
    new SyntaxError(
      `Cannot compile rule "${ruleId}" for WFP: "${text}" is not a CIDR prefix`,
    );
  if (extra !== undefined || length === undefined || !/^\d+$/.test(length)) {
    throw fail();
  }
  const v4 = parseV4(address);
  const bytes = v4 ?? parseV6(address);
  if (!bytes) throw fail();
  const family: Family = v4 ? 4 : 6;
  const bits = Number(length);
  if (bits > (family === 4 ? 32 : 128)) throw fail();
  return { family, bytes, length: bits };
}

function addressCondition(field: ConditionKey, prefix: Prefix): WfpCondition {
  let value: WfpConditionValue;
  if (prefix.family === 4) {
    const b = prefix.bytes;
    const addr = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
    const mask = prefix.length === 0
      ? 0
      : (0xffffffff << (32 - prefix.length)) >>> 0;
    value = { type: "v4AddrMask", addr: (addr & mask) >>> 0, mask };
  } else {
    value = {
      type: "v6AddrMask",
      addr: prefix.bytes,
      prefixLength: prefix.length,
    };
  }
  return { field, match: FWP_MATCH_TYPE.FWP_MATCH_EQUAL, value };
}

function portConditions(
  field: ConditionKey,
  ranges: PortRange[],
  ruleId: string,
): WfpCondition[] {
  for (const { first, last } of ranges) {
    const ok = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffff;
    if (!ok(first) || !ok(last) || first > last) {
      throw new RangeError(
        `Cannot compile rule "${ruleId}" for WFP: port range ${first}-${last} is outside 0-65535`,
      );
    }
  }
  return ranges.map((range) =>
    range.first === range.last
      ? {
        field,
        match: FWP_MATCH_TYPE.FWP_MATCH_EQUAL,
        value: { type: "uint16", value: range.first },
      }
      : {
        field,
        match: FWP_MATCH_TYPE.FWP_MATCH_RANGE,
        value: {
          type: "range",
          low: { type: "uint16", value: range.first },
          high: { type: "uint16", value: range.last },
        },
      }
  );
}

/** Families an address list allows (empty: both) and its prefixes. */
function addressScope(list: string[], ruleId: string) {
  const prefixes = list.map((text) => parsePrefix(text, ruleId));
  if (prefixes.length === 0) {
    return {
      families: new Set<Family>([4, 6]),
      any: new Set<Family>([4, 6]),
      prefixes,
    };
  }
  const families = new Set(prefixes.map((p) => p.family));
  // A /0 prefix is "any address of that family": no condition there.
  const any = new Set(
    prefixes.filter((p) => p.length === 0).map((p) => p.family),
  );
  return { families, any, prefixes };
}

const LAYERS: Record<"in" | "out", Record<Family, WfpLayerName>> = {
  out: {
    4: "FWPM_LAYER_ALE_AUTH_CONNECT_V4",
    6: "FWPM_LAYER_ALE_AUTH_CONNECT_V6",
  },
  in: {
    4: "FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4",
    6: "FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6",
  },
};

/**
 * The filters of one rule: one per layer it applies at (connect for
 * `out`, receive/accept for `in`; v4 and/or v6 as its addresses and
 * protocol allow), each carrying the rule's whole address lists.
 *
 * @param appId the rule's application ID, when it has `app`
 * @throws {TypeError} the rule cannot be expressed safely on WFP
 */
export function compileRule(
  rule: NormalRule,
  ruleIndex: number,
  appId?: Uint8Array,
): CompiledFilter[] {
  const why = (reason: string) =>
    new TypeError(`Cannot compile rule "${rule.id}" for WFP: ${reason}`);
  const remote = addressScope(rule.remote, rule.id);
  const local = addressScope(rule.local, rule.id);
  const hasPorts = rule.remotePorts.length + rule.localPorts.length > 0;
  if (hasPorts && rule.protocol !== "tcp" && rule.protocol !== "udp") {
    throw why("ports need protocol tcp or udp");
  }
  if (rule.app !== undefined && appId === undefined) {
    throw why("the application ID was not resolved");
  }

  let families: Family[] = [4, 6];
  if (rule.protocol === "icmp") families = [4];
  if (rule.protocol === "icmpv6") families = [6];
  families = families.filter((f) =>
    remote.families.has(f) && local.families.has(f)
  );
  if (families.length === 0) {
    throw why("its addresses and protocol leave no IP version to match");
  }

  const filters: CompiledFilter[] = [];
  for (const family of families) {
    const conditions: WfpCondition[] = [];
    if (rule.protocol !== "any") {
      conditions.push({
        field: WFP_CONDITIONS.FWPM_CONDITION_IP_PROTOCOL,
        match: FWP_MATCH_TYPE.FWP_MATCH_EQUAL,
        value: { type: "uint8", value: IP_PROTOCOL[rule.protocol] },
      });
    }
    let narrowing = 0;
    for (
      const [scope, field] of [
        [remote, WFP_CONDITIONS.FWPM_CONDITION_IP_REMOTE_ADDRESS],
        [local, WFP_CONDITIONS.FWPM_CONDITION_IP_LOCAL_ADDRESS],
      ] as const
    ) {
      if (scope.any.has(family)) continue;
      const mine = scope.prefixes.filter((p) => p.family === family);
      conditions.push(...mine.map((p) => addressCondition(field, p)));
      narrowing += mine.length;
    }
    const ports = [
      ...portConditions(
        WFP_CONDITIONS.FWPM_CONDITION_IP_REMOTE_PORT,
        rule.remotePorts,
        rule.id,
      ),
      ...portConditions(
        WFP_CONDITIONS.FWPM_CONDITION_IP_LOCAL_PORT,
        rule.localPorts,
        rule.id,
      ),
    ];
    conditions.push(...ports);
    narrowing += ports.length;
    if (appId !== undefined) {
      conditions.push({
        field: WFP_CONDITIONS.FWPM_CONDITION_ALE_APP_ID,
        match: FWP_MATCH_TYPE.FWP_MATCH_EQUAL,
        value: { type: "byteBlob", value: appId },
      });
      narrowing++;
    }

    // Fail-open by construction: a block without an address, port or
    // application condition would be a default-deny.
    if (rule.action === "block" && narrowing === 0) {
      throw why("a block rule needs an address, port or application");
    }

    const layer = LAYERS[rule.direction][family];
    filters.push({
      ruleId: rule.id,
      ruleIndex,
      key: filterKeyFor(rule.id, layer),
      layer,
      layerKey: WFP_LAYERS[layer],
      action: rule.action === "block"
        ? FWP_ACTION.FWP_ACTION_BLOCK
        : FWP_ACTION.FWP_ACTION_PERMIT,
      conditions,
    });
  }
  return filters;
}

/** Compiles a whole policy; `appIds` maps `app` paths to IDs. */
export function compilePolicy(
  policy: NormalPolicy,
  appIds: ReadonlyMap<string, Uint8Array>,
): CompiledFilter[] {
  return policy.rules.flatMap((rule, i) =>
    compileRule(
      rule,
      i,
      rule.app === undefined ? undefined : appIds.get(rule.app),
    )
  );
}

function valueText(value: WfpConditionValue): string {
  switch (value.type) {
    case "empty":
      return "empty";
    case "uint8":
    case "uint16":
    case "uint32":
      return `${value.type}:${value.value}`;
    case "uint64":
      return `uint64:${value.value}`;
    case "byteArray16":
    case "byteBlob":
      return `${value.type}:${[...value.value].join(",")}`;
    case "v4AddrMask":
      return `v4:${value.addr}/${value.mask}`;
    case "v6AddrMask":
      return `v6:${[...value.addr].join(",")}/${value.prefixLength}`;
    case "range":
      return `range:${valueText(value.low)}-${valueText(value.high)}`;
  }
}

/**
 * A canonical text of what a filter matches and does, without its
 * weight: equal texts mean the same filter.
 */
export function filterSignature(filter: {
  key: string;
  name: string;
  layerKey: string;
  action: number;
  conditions: WfpCondition[];
}): string {
  const conditions = filter.conditions
    .map((c) => `${c.field} ${c.match} ${valueText(c.value)}`)
    .sort();
  return JSON.stringify([
    filter.key,
    filter.name,
    filter.layerKey,
    filter.action,
    conditions,
  ]);
}

/**
 * Chooses a weight per rule of `ruleIds` (in evaluation order), keeping
 * the weights in `kept` where the order allows. Returns null when a gap
 * is too small, so the caller renumbers everything.
 */
export function planWeights(
  ruleIds: string[],
  kept: ReadonlyMap<string, bigint>,
): bigint[] | null {
  // Anchors: the longest run of kept rules whose weights already fall
  // in rule order (longest decreasing subsequence).
  const candidates = ruleIds
    .map((id, index) => ({ index, weight: kept.get(id) }))
    .filter((c): c is { index: number; weight: bigint } =>
      c.weight !== undefined
    );
  const anchors = longestDecreasing(candidates);

  const weights: (bigint | undefined)[] = new Array(ruleIds.length);
  for (const a of anchors) weights[a.index] = a.weight;

  let start = 0;
  while (start < ruleIds.length) {
    if (weights[start] !== undefined) {
      start++;
      continue;
    }
    let end = start;
    while (end < ruleIds.length && weights[end] === undefined) end++;
    const count = BigInt(end - start);
    const above = start > 0 ? weights[start - 1] : undefined;
    const below = end < ruleIds.length ? weights[end] : undefined;
    let first: bigint;
    let step: bigint;
    if (above === undefined && below === undefined) {
      first = WEIGHT_TOP;
      step = WEIGHT_GAP;
    } else if (above === undefined) {
      // New rules before the first kept one: climb by full gaps.
      if (below! + count * WEIGHT_GAP > WEIGHT_MAX) return null;
      first = below! + count * WEIGHT_GAP;
      step = WEIGHT_GAP;
    } else if (below === undefined) {
      if (above < (count + 1n) * WEIGHT_GAP) return null;
      first = above - WEIGHT_GAP;
      step = WEIGHT_GAP;
    } else {
      step = (above - below) / (count + 1n);
      if (step < 1n) return null;
      first = above - step;
    }
    for (let i = 0n; i < count; i++) {
      weights[start + Number(i)] = first - i * step;
    }
    start = end;
  }
  return weights as bigint[];
}

function longestDecreasing<T extends { weight: bigint }>(items: T[]): T[] {
  // Patience sorting on strictly decreasing weights.
  const tails: number[] = [];
  const previous: number[] = new Array(items.length).fill(-1);
  for (let i = 0; i < items.length; i++) {
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (items[tails[mid]].weight > items[i].weight) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) previous[i] = tails[lo - 1];
    tails[lo] = i;
  }
  const out: T[] = [];
  for (
    let i = tails.length ? tails[tails.length - 1] : -1;
    i !== -1;
    i = previous[i]
  ) {
    out.push(items[i]);
  }
  return out.reverse();
}

/** Fresh weights for `count` rules. */
export function freshWeights(count: number): bigint[] {
  if (BigInt(count) > WEIGHT_TOP / WEIGHT_GAP) {
    throw new RangeError(
      `Cannot number ${count} rules: at most ${WEIGHT_TOP / WEIGHT_GAP} fit`,
    );
  }
  return Array.from(
    { length: count },
    (_, i) => WEIGHT_TOP - BigInt(i) * WEIGHT_GAP,
  );
}
