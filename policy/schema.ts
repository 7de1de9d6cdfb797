/**
 * The policy language's structure, as zod schemas: the single source of
 * truth for both the validator and the published JSON Schema
 * (`schema/policy.schema.json`, made by `tools/gen_schema.ts`). Rules
 * the JSON Schema cannot express (reversed ranges, duplicate IDs,
 * catch-all block rules, …) are checked by `parse.ts`.
 *
 * @module
 */
import { z } from "zod";

/** Rule IDs and policy names: lowercase letters, digits and hyphens. */
export const RULE_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** The longest address or port list one rule field may hold. */
export const MAX_LIST_ENTRIES = 100_000;

/** The published schema's `$id`; policies point at the file itself
 * (`"$schema": "./schema/policy.schema.json"`). */
export const POLICY_SCHEMA_ID = "urn:palisade:schema:policy:v1";

// A loose shape so that editors flag obvious typos; parse.ts reads each
// address strictly and says exactly what is wrong.
const ADDRESS_PATTERN = /^[0-9A-Fa-f:.]{2,45}(\/[0-9]{1,3})?$/;
const PORT_RANGE_PATTERN = /^[0-9]{1,5}-[0-9]{1,5}$/;

const addressList = (side: string) =>
  z.array(
    z.string().regex(ADDRESS_PATTERN).meta({
      description: "An IPv4 or IPv6 address or CIDR prefix",
      examples: ["203.0.113.0/24", "2001:db8::/32", "192.0.2.7"],
    }),
  ).min(1).max(MAX_LIST_ENTRIES).meta({
    description: `${side} addresses the rule matches: IPv4 and IPv6 ` +
      `addresses and CIDR prefixes. Omit the field to match any; an ` +
      `empty list is refused.`,
  });

const portList = (side: string) =>
  z.array(
    z.union([
      z.int().min(1).max(65535),
      z.string().regex(PORT_RANGE_PATTERN),
    ]).meta({
      description: 'A port (1-65535) or an inclusive range "FIRST-LAST"',
      examples: [443, "137-139"],
    }),
  ).min(1).max(65535).meta({
    description: `${side} ports; needs protocol tcp or udp. Omit the ` +
      `field to match any; an empty list is refused.`,
  });

/** One rule as a policy author writes it. */
export const RuleSchema = z.strictObject({
  id: z.string().regex(RULE_ID_PATTERN).meta({
    description: "Stable, unique rule ID; engines name their objects " +
      "and counters after it",
  }),
  action: z.enum(["permit", "block"]).meta({
    description: "block drops matching traffic; permit exempts it from " +
      "Palisade's later rules (first match decides)",
  }),
  direction: z.enum(["in", "out"]).meta({
    description: "in: traffic to this host; out: traffic it sends",
  }),
  protocol: z.enum(["tcp", "udp", "icmp", "icmpv6", "any"]).meta({
    description: "Required; any adds no protocol condition",
  }),
  remote: addressList("Remote").optional(),
  local: addressList("Local").optional(),
  remotePorts: portList("Remote").optional(),
  localPorts: portList("Local").optional(),
  app: z.string().min(1).max(32767).meta({
    description: "Windows only: full path of the application; the " +
      "nftables engine refuses rules that use it",
  }).optional(),
  comment: z.string().max(1024).meta({
    description: "Free text for people; engines ignore it",
  }).optional(),
}).meta({ description: "One firewall rule" });

/** A policy as written: a name and rules in evaluation order. */
export const PolicySchema = z.strictObject({
  $schema: z.string().meta({
    description: "Path or URL of this JSON Schema, for editors",
  }).optional(),
  name: z.string().regex(RULE_ID_PATTERN).meta({
    description: "Policy name: lowercase letters, digits and hyphens",
  }),
  rules: z.array(RuleSchema).meta({
    description: "Rules in evaluation order: the first match decides. " +
      "Traffic that matches none is left to the rest of the system.",
  }),
}).meta({
  title: "Palisade policy",
  description: "A Palisade host-firewall policy. Palisade never adds a " +
    "default-deny: a block rule with no address, port or application " +
    "condition is refused.",
});

/** A policy as written, once its structure is valid. */
export type PolicyInput = z.infer<typeof PolicySchema>;

/** A rule as written, once its structure is valid. */
export type RuleInput = z.infer<typeof RuleSchema>;

const portRange = z.strictObject({
  first: z.int().min(1).max(65535),
  last: z.int().min(1).max(65535),
});

/**
 * The normalised form (`NormalPolicy` in `types.ts`) as JSON, for
 * policies read back from a host or a store: lists may be empty (any).
 */
export const NormalPolicySchema = z.strictObject({
  name: z.string().regex(RULE_ID_PATTERN),
  rules: z.array(z.strictObject({
    id: z.string().regex(RULE_ID_PATTERN),
    action: z.enum(["permit", "block"]),
    direction: z.enum(["in", "out"]),
    protocol: z.enum(["tcp", "udp", "icmp", "icmpv6", "any"]),
    remote: z.array(z.string().regex(ADDRESS_PATTERN)),
    local: z.array(z.string().regex(ADDRESS_PATTERN)),
    remotePorts: z.array(portRange),
    localPorts: z.array(portRange),
    app: z.string().min(1).max(32767).optional(),
    comment: z.string().max(1024).optional(),
  })),
});

/**
 * The published JSON Schema (draft 2020-12) of policies, generated from
 * {@linkcode PolicySchema}.
 *
 * @example
 * ```ts
 * import { policyJsonSchema } from "./schema.ts";
 * const schema = policyJsonSchema();
 * if (schema.title !== "Palisade policy") throw new Error();
 * ```
 */
export function policyJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(PolicySchema, {
    target: "draft-2020-12",
    io: "input",
  }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  return { $schema, $id: POLICY_SCHEMA_ID, ...rest };
}
