/**
 * The reference side of the apply benchmark: the same policy written as
 * an `nft -f` script by hand (same table, chains, priority, sets, rules,
 * jumps, comments and verdicts as Palisade's engine documents), so that `nft`
 * loads exactly what Palisade loads. The benchmark checks the claim by
 * reading back the table `nft -f` made with Palisade's own read-back.
 *
 * @module
 */
import {
  type AddressFamily as Family,
  type AddressRange,
  coversFamily,
  formatAddress,
  rangesOf,
} from "../policy/address.ts";
import type { NormalPolicy, NormalRule, PortRange } from "../policy/types.ts";

const WIDTH = { 4: 32n, 6: 128n } as const;

/**
 * The `nft -f` script that installs `policy` in table `inet palisade`,
 * replacing whatever the table held, in one transaction.
 *
 * @throws {TypeError} a rule names an application (nft cannot match it)
 *
 * @example
 * ```ts
 * import { nftScript } from "./_nft_text.ts";
 * import assert from "node:assert/strict";
 *
 * const text = nftScript({ name: "empty", rules: [] });
 * assert.match(text, /^add table inet palisade\n/);
 * ```
 */
export function nftScript(policy: NormalPolicy): string {
  const sets: string[] = [];
  const chains: Record<"in" | "out", string[]> = { in: [], out: [] };
  const ruleChains: string[] = [];
  for (const rule of policy.rules) {
    if (rule.app !== undefined) {
      throw new TypeError(
        `Cannot write rule ${rule.id} for nft: it names an application`,
      );
    }
    // Like Palisade: each rule's nft rules in its own chain, and a jump
    // to it from the base chain of its direction.
    const lines = familiesOf(rule).map((family) =>
      ruleLine(rule, family, sets)
    );
    ruleChains.push(chain(`r-${rule.id}`, null, lines));
    chains[rule.direction].push(`jump r-${rule.id} comment "${rule.id}"`);
  }
  // Create, delete and create again: a replace that works whether or
  // not the table exists, as one transaction. The marker set Palisade
  // writes in every batch is part of what it loads.
  return "add table inet palisade\n" +
    "delete table inet palisade\n" +
    "table inet palisade {\n" +
    "  set state { type mark; elements = { 1 } }\n" +
    sets.join("") +
    chain("input", "input", chains.in) +
    chain("output", "output", chains.out) +
    ruleChains.join("") +
    "}\n";
}

function chain(name: string, hook: string | null, lines: string[]): string {
  const base = hook === null
    ? ""
    : `    type filter hook ${hook} priority filter - 10; policy accept;\n`;
  return `  chain ${name} {\n` + base +
    lines.map((line) => `    ${line}\n`).join("") +
    "  }\n";
}

function familyOf(cidr: string): Family {
  return cidr.includes(":") ? 6 : 4;
}

/** The families a rule needs one nft rule for; null: no address match. */
function familiesOf(rule: NormalRule): (Family | null)[] {
  if (rule.remote.length + rule.local.length === 0) return [null];
  const has = (list: string[], family: Family) =>
    list.length === 0 || list.some((c) => familyOf(c) === family);
  return ([4, 6] as const).filter((family) =>
    (rule.protocol !== "icmp" || family === 4) &&
    (rule.protocol !== "icmpv6" || family === 6) &&
    has(rule.remote, family) && has(rule.local, family)
  );
}

function ruleLine(
  rule: NormalRule,
  family: Family | null,
  sets: string[],
): string {
  const inbound = rule.direction === "in";
  const remoteEnd = inbound ? "s" : "d";
  const localEnd = inbound ? "d" : "s";
  const parts: string[] = [];

  if (family !== null) {
    const fields = [
      ["remote", rule.remote, remoteEnd],
      ["local", rule.local, localEnd],
    ] as const;
    for (const [field, list, end] of fields) {
      const ranges = rangesOf(list, family);
      if (ranges.length === 0) continue;
      const left = `${family === 4 ? "ip" : "ip6"} ${end}addr`;
      // Palisade matches one address, prefix or range inline and keeps
      // sets for lists (and for a whole-family prefix).
      if (ranges.length === 1 && !coversFamily(ranges, family)) {
        parts.push(`${left} ${elementText(ranges[0], family)}`);
        continue;
      }
      const name = `${rule.id}.${field}${family}`;
      const type = family === 4 ? "ipv4_addr" : "ipv6_addr";
      const elements = ranges.map((r) => elementText(r, family));
      sets.push(
        `  set ${name} {\n    type ${type}; flags interval;\n` +
          `    elements = { ${elements.join(", ")} }\n  }\n`,
      );
      parts.push(`${left} @${name}`);
    }
  }

  const ports = [
    [rule.remotePorts, `${remoteEnd}port`],
    [rule.localPorts, `${localEnd}port`],
  ] as const;
  const withPorts = ports.filter(([list]) => list.length > 0);
  if (rule.protocol === "tcp" || rule.protocol === "udp") {
    if (withPorts.length === 0) parts.push(`meta l4proto ${rule.protocol}`);
    for (const [list, field] of withPorts) {
      parts.push(`${rule.protocol} ${field} ${portText(list)}`);
    }
  } else if (rule.protocol === "any") {
    if (withPorts.length > 0) parts.push("meta l4proto { tcp, udp }");
    for (const [list, field] of withPorts) {
      parts.push(`th ${field} ${portText(list)}`);
    }
  } else {
    const name = rule.protocol === "icmp" ? "icmp" : "ipv6-icmp";
    parts.push(`meta l4proto ${name}`);
  }

  parts.push("counter");
  if (rule.action === "permit") parts.push("accept");
  else if (inbound) parts.push("drop");
  else if (rule.protocol === "tcp") parts.push("reject with tcp reset");
  else parts.push("reject with icmpx admin-prohibited");
  parts.push(`comment "${rule.id}"`);
  return parts.join(" ");
}

/** An address, a prefix when the range is one, else `first-last`. */
function elementText(range: AddressRange, family: Family): string {
  const first = formatAddress(range.first, family);
  if (range.first === range.last) return first;
  const size = range.last - range.first + 1n;
  if ((size & (size - 1n)) === 0n && (range.first & (size - 1n)) === 0n) {
    return `${first}/${WIDTH[family] - BigInt(size.toString(2).length - 1)}`;
  }
  return `${first}-${formatAddress(range.last, family)}`;
}

function portText(list: PortRange[]): string {
  const items = list.map((r) =>
    r.first === r.last ? `${r.first}` : `${r.first}-${r.last}`
  );
  return items.length === 1 ? items[0] : `{ ${items.join(", ")} }`;
}
