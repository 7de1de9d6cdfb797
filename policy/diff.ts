/**
 * Comparing normalised policies by rule ID, and content digests that
 * identify a policy or a rule independent of how it was written.
 *
 * @module
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { longestIncreasing } from "./_sequence.ts";
import type { NormalPolicy, NormalRule, PortRange } from "./types.ts";

/** What changed between two policies, as rule IDs in `b`'s order
 * (`removed` in `a`'s order). */
export interface PolicyDiff {
  /** In `b` only. */
  added: string[];
  /** In `a` only. */
  removed: string[];
  /** In both, with different content (position aside). */
  changed: string[];
  /** Same content, but their order relative to the other common rules
   * changed: the fewest rules that must move to restore `b`'s order. */
  moved: string[];
  /** Same content, same relative order. */
  unchanged: string[];
}

/**
 * Compares two policies by rule ID. A rule both changed and moved is
 * listed as changed only. A null policy has no rules.
 *
 * @example
 * ```ts
 * import { diffPolicies } from "./diff.ts";
 * import type { NormalRule } from "./types.ts";
 * const rule: NormalRule = {
 *   id: "r", action: "permit", direction: "in", protocol: "tcp",
 *   remote: [], local: [], remotePorts: [], localPorts: [],
 * };
 * const d = diffPolicies(null, { name: "p", rules: [rule] });
 * if (d.added[0] !== "r") throw new Error();
 * ```
 */
export function diffPolicies(
  a: NormalPolicy | null,
  b: NormalPolicy | null,
): PolicyDiff {
  const before = new Map<string, { rule: NormalRule; index: number }>();
  (a?.rules ?? []).forEach((rule, index) =>
    before.set(rule.id, { rule, index })
  );
  const after = new Set((b?.rules ?? []).map((r) => r.id));

  // Common rules in b's order, mapped to their position in a; those on a
  // longest increasing run kept their relative order.
  const common: { rule: NormalRule; from: number }[] = [];
  const added: string[] = [];
  for (const rule of b?.rules ?? []) {
    const old = before.get(rule.id);
    if (old === undefined) added.push(rule.id);
    else common.push({ rule, from: old.index });
  }
  const inOrder = longestIncreasing(common.map((c) => c.from));

  const diff: PolicyDiff = {
    added,
    removed: (a?.rules ?? []).filter((r) => !after.has(r.id)).map((r) => r.id),
    changed: [],
    moved: [],
    unchanged: [],
  };
  common.forEach(({ rule }, i) => {
    if (!sameRule(before.get(rule.id)!.rule, rule)) {
      diff.changed.push(rule.id);
    } else if (!inOrder.has(i)) diff.moved.push(rule.id);
    else diff.unchanged.push(rule.id);
  });
  return diff;
}

/**
 * True when two normalised rules are identical, field by field: the
 * same verdict as comparing their canonical JSON, at a fraction of the
 * cost for large policies.
 */
export function sameRule(a: NormalRule, b: NormalRule): boolean {
  if (a === b) return true;
  return a.id === b.id && a.action === b.action &&
    a.direction === b.direction && a.protocol === b.protocol &&
    a.app === b.app && a.comment === b.comment &&
    sameStrings(a.remote, b.remote) && sameStrings(a.local, b.local) &&
    samePorts(a.remotePorts, b.remotePorts) &&
    samePorts(a.localPorts, b.localPorts);
}

function sameStrings(x: string[], y: string[]): boolean {
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function samePorts(x: PortRange[], y: PortRange[]): boolean {
  return x.length === y.length &&
    x.every((v, i) => v.first === y[i].first && v.last === y[i].last);
}

/** True when the diff names no difference. */
export function isEmptyDiff(diff: PolicyDiff): boolean {
  return diff.added.length + diff.removed.length + diff.changed.length +
      diff.moved.length === 0;
}

/**
 * A rule as canonical JSON: fixed key order, optional fields only when
 * set. Two rules with the same meaning give the same text.
 */
export function canonicalRuleJson(rule: NormalRule): string {
  return JSON.stringify(canonicalRule(rule));
}

/**
 * A policy as canonical JSON (name, then rules in order, each as
 * {@linkcode canonicalRuleJson}).
 */
export function canonicalPolicyJson(policy: NormalPolicy): string {
  return JSON.stringify({
    name: policy.name,
    rules: policy.rules.map(canonicalRule),
  });
}

/**
 * Hex SHA-256 of {@linkcode canonicalPolicyJson}: equal digests mean
 * the same rules in the same order.
 *
 * @example
 * ```ts
 * import { policyDigest } from "./diff.ts";
 * const d = policyDigest({ name: "p", rules: [] });
 * if (!/^[0-9a-f]{64}$/.test(d)) throw new Error(d);
 * ```
 */
export function policyDigest(policy: NormalPolicy): string {
  return hexDigest(canonicalPolicyJson(policy));
}

/**
 * Hex SHA-256 of {@linkcode canonicalRuleJson}: equal digests mean the
 * same rule content (ID included).
 */
export function ruleDigest(rule: NormalRule): string {
  return hexDigest(canonicalRuleJson(rule));
}

function canonicalRule(rule: NormalRule): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: rule.id,
    action: rule.action,
    direction: rule.direction,
    protocol: rule.protocol,
    remote: rule.remote,
    local: rule.local,
    remotePorts: rule.remotePorts.map((r) => ({
      first: r.first,
      last: r.last,
    })),
    localPorts: rule.localPorts.map((r) => ({
      first: r.first,
      last: r.last,
    })),
  };
  if (rule.app !== undefined) out.app = rule.app;
  if (rule.comment !== undefined) out.comment = rule.comment;
  return out;
}

function hexDigest(text: string): string {
  return bytesToHex(sha256(new TextEncoder().encode(text)));
}
