/**
 * The policies the suite measures, generated deterministically so that
 * every process of a run (and every run) builds the same ones.
 *
 * @module
 */
import { type NormalPolicy, validatePolicyValue } from "../mod.ts";

/** Rules the address policies carry besides their address list. */
const SIDE_RULES = [
  {
    id: "ssh-in",
    action: "permit",
    direction: "in",
    protocol: "tcp",
    remote: ["10.0.0.0/8"],
    localPorts: [22],
  },
  {
    id: "smb-out",
    action: "block",
    direction: "out",
    protocol: "tcp",
    remotePorts: [445, "137-139"],
  },
];

/**
 * A block list of `count` distinct host addresses (nine in ten IPv4,
 * one in ten IPv6, never adjacent so none merge), blocked outbound, and
 * two small rules: the shape of a fleet's deny list.
 */
export function addressPolicyValue(count: number): unknown {
  const v6 = Math.floor(count / 10);
  const v4 = count - v6;
  const remote: string[] = [];
  // Every other address of 11.0.0.0/8, so no two ever merge.
  for (let i = 0; i < v4; i++) {
    const n = 0x0b000000 + 2 * i;
    remote.push(
      `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`,
    );
  }
  for (let i = 0; i < v6; i++) {
    remote.push(`2001:db8:${(i >> 15).toString(16)}::${(2 * i).toString(16)}`);
  }
  return {
    name: `blocklist-${count}`,
    rules: [
      ...SIDE_RULES,
      {
        id: "blocklist-out",
        action: "block",
        direction: "out",
        protocol: "any",
        remote,
        comment: `${count} addresses`,
      },
    ],
  };
}

/**
 * `count` rules, each blocking TCP port 443 of one /24, alternating
 * inbound and outbound. With `changed`, rule `count / 2` blocks port
 * 8443 instead: the one-rule change.
 */
export function rulesPolicyValue(count: number, changed = false): unknown {
  const rules = Array.from({ length: count }, (_, i) => ({
    id: `rule-${i}`,
    action: "block",
    direction: i % 2 ? "in" : "out",
    protocol: "tcp",
    remote: [`10.${(i >> 8) & 255}.${i & 255}.0/24`],
    remotePorts: [changed && i === Math.floor(count / 2) ? 8443 : 443],
  }));
  return { name: `rules-${count}`, rules };
}

/** The small policy a revert goes back to. */
export function baselinePolicyValue(): unknown {
  return { name: "baseline", rules: SIDE_RULES };
}

/**
 * Validates and normalises a generated policy value.
 *
 * @throws {Error} the generator produced an invalid policy
 */
export function normalize(value: unknown): NormalPolicy {
  const rules = (value as { rules: unknown[] }).rules.length;
  return validatePolicyValue(value, "bench", { maxRules: rules + 1 }).policy;
}
