/**
 * The validated, normalised form of a policy: what every engine compiles
 * from, what the generation store diffs and what read-back compares.
 *
 * @module
 */

/** What a matching packet meets: `block` drops it, `permit` stops
 * Palisade's later rules from blocking it. */
export type Action = "permit" | "block";

/** `in` filters traffic to the host, `out` traffic the host sends. */
export type Direction = "in" | "out";

/** Transport protocol a rule matches; `any` adds no protocol condition. */
export type Protocol = "tcp" | "udp" | "icmp" | "icmpv6" | "any";

/** An inclusive port range; a single port has `first === last`. */
export interface PortRange {
  first: number;
  last: number;
}

/** One rule after validation: lists merged, sorted and normalised. */
export interface NormalRule {
  /** Stable identifier, `[a-z0-9][a-z0-9-]{0,62}`, unique in its policy. */
  id: string;
  action: Action;
  direction: Direction;
  protocol: Protocol;
  /** Remote prefixes in canonical CIDR text (`203.0.113.0/24`,
   * `2001:db8::/32`), overlaps merged, IPv4 first; empty means any. */
  remote: string[];
  /** Local prefixes, same form as `remote`; empty means any. */
  local: string[];
  /** Remote port ranges, merged and sorted; empty means any. */
  remotePorts: PortRange[];
  /** Local port ranges, merged and sorted; empty means any. */
  localPorts: PortRange[];
  /** Windows application path; only the WFP engine accepts it. */
  app?: string;
  comment?: string;
}

/** A validated policy, rules in evaluation order (first match decides). */
export interface NormalPolicy {
  name: string;
  rules: NormalRule[];
}
