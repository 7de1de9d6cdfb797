/**
 * Reads policies: JSONC text from an author (comments and trailing
 * commas allowed, duplicate keys refused) or a JSON value from a signed
 * bundle, checks them against the language and normalises them into a
 * {@linkcode NormalPolicy}. Every refusal is a {@linkcode PolicyError}
 * that names the place, the rule and what to do.
 *
 * @module
 */
import {
  type Node as JsonNode,
  parseTree,
  printParseErrorCode,
  visit,
} from "jsonc-parser";
import type { z } from "zod";
import { type AddressFamily, AddressSet, readCidr } from "./address.ts";
import { coversAllPorts, mergePorts, readPortItem } from "./ports.ts";
import {
  NormalPolicySchema,
  PolicySchema,
  type RuleInput,
  RuleSchema,
} from "./schema.ts";
import type { NormalPolicy, NormalRule, PortRange } from "./types.ts";

/** How many rules a policy may hold unless the caller says otherwise. */
export const DEFAULT_MAX_RULES = 10_000;

/** The longest policy text accepted unless the caller says otherwise. */
export const DEFAULT_MAX_POLICY_CHARS = 32 * 1024 * 1024;

/** Bounds for {@linkcode parsePolicyText} and friends. */
export interface PolicyParseOptions {
  /** Most rules a policy may hold (default 10,000). */
  maxRules?: number;
  /** Longest text accepted, in UTF-16 code units (default 32 Mi). */
  maxChars?: number;
}

/** A policy that passed every check. */
export interface PolicyParseResult {
  /** The normalised policy engines compile from. */
  policy: NormalPolicy;
  /** The plain JSON value as written (comments dropped), for bundles. */
  value: unknown;
  /** Things accepted but worth a look, each naming its place. */
  warnings: string[];
}

/**
 * A policy that cannot be used. The message names the source, the line
 * and column where known, the rule ID where there is one, and what to
 * do about it.
 */
export class PolicyError extends Error {
  /** File name or other label of where the policy came from. */
  readonly source: string;
  /** 1-based line, or undefined for a policy read from a JSON value. */
  readonly line: number | undefined;
  /** 1-based column in UTF-16 code units (what editors count for
   * most text), or undefined like `line`. */
  readonly column: number | undefined;
  /** ID of the rule at fault, when the problem is inside a rule. */
  readonly ruleId?: string;
  /** Where in the policy, e.g. `rules[3].remotePorts[1]`; "" for all. */
  readonly path: string;
  /** The problem and the fix, without the location. */
  readonly problem: string;

  constructor(
    problem: string,
    where: {
      source: string;
      line?: number;
      column?: number;
      ruleId?: string;
      path: string;
    },
  ) {
    super(`Cannot use policy: ${describePlace(where)}: ${problem}`);
    this.name = "PolicyError";
    this.source = where.source;
    this.line = where.line;
    this.column = where.column;
    if (where.ruleId !== undefined) this.ruleId = where.ruleId;
    this.path = where.path;
    this.problem = problem;
  }
}

/**
 * Parses and validates a policy written in JSONC.
 *
 * @param text the policy file's content
 * @param source the file name, used in messages
 * @param opts bounds; `maxRules` defaults to 10,000
 * @returns the normalised policy, the plain value and warnings
 * @throws {PolicyError} the first problem found, with file:line:col
 *
 * @example
 * ```ts
 * import { parsePolicyText } from "./parse.ts";
 * const { policy } = parsePolicyText(
 *   `{ "name": "p", "rules": [ // one rule
 *     { "id": "web-in", "action": "permit", "direction": "in",
 *       "protocol": "tcp", "localPorts": [443, 80] }, ] }`,
 *   "p.jsonc",
 * );
 * if (policy.rules[0].localPorts[0].first !== 80) throw new Error();
 * ```
 */
export function parsePolicyText(
  text: string,
  source: string,
  opts: PolicyParseOptions = {},
): PolicyParseResult {
  const locator = new TextLocator(text);
  const maxChars = opts.maxChars ?? DEFAULT_MAX_POLICY_CHARS;
  if (text.length > maxChars) {
    throw new PolicyError(
      `the policy is ${text.length} characters long, more than the ` +
        `limit of ${maxChars}; split it or raise the limit`,
      { source, path: "" },
    );
  }

  const value = readJsonc(text, source, locator);
  return check(value, source, opts, locator);
}

/**
 * Validates a policy that arrived as a JSON value, e.g. inside a signed
 * bundle. Messages name the path instead of a line and column.
 *
 * @param value the parsed JSON of a policy as written
 * @param source a label for messages, e.g. `bundle.json (payload)`
 * @throws {PolicyError} the first problem found
 *
 * @example
 * ```ts
 * import { validatePolicyValue } from "./parse.ts";
 * const { policy } = validatePolicyValue({ name: "empty", rules: [] }, "v");
 * if (policy.rules.length !== 0) throw new Error();
 * ```
 */
export function validatePolicyValue(
  value: unknown,
  source: string,
  opts: PolicyParseOptions = {},
): PolicyParseResult {
  return check(value, source, opts, undefined);
}

/**
 * Validates a policy already in normal form, as a host or a store hands
 * it back (ports as `{ first, last }`, empty lists meaning any), and
 * re-normalises its lists so that it compares equal to a freshly parsed
 * policy with the same meaning.
 *
 * @param value the parsed JSON of a `NormalPolicy`
 * @param source a label for messages, e.g. the host URL
 * @throws {PolicyError} the value is not a normal policy
 *
 * @example
 * ```ts
 * import { validateNormalPolicy } from "./parse.ts";
 * const p = validateNormalPolicy({ name: "n", rules: [] }, "host");
 * if (p.name !== "n") throw new Error();
 * ```
 */
export function validateNormalPolicy(
  value: unknown,
  source: string,
): NormalPolicy {
  const parsed = NormalPolicySchema.safeParse(value);
  if (!parsed.success) {
    const issue = pickIssue(parsed.error.issues, undefined);
    throw new PolicyError(
      `${describeIssue(issue, value)} (expected the normal form)`,
      {
        source,
        path: formatPath(issue.path),
        ruleId: ruleIdAt(value, issue.path),
      },
    );
  }

  const seen = new Set<string>();
  const rules = parsed.data.rules.map((rule, index): NormalRule => {
    const at = (field: string) => ({
      source,
      path: `rules[${index}].${field}`,
      ruleId: rule.id,
    });
    if (seen.has(rule.id)) {
      throw new PolicyError(`rule ID "${rule.id}" appears twice`, at("id"));
    }
    seen.add(rule.id);

    const lists = { remote: [] as string[], local: [] as string[] };
    for (const field of ["remote", "local"] as const) {
      const set = new AddressSet();
      for (const text of rule[field]) {
        const added = set.add(text);
        if (added !== undefined && "error" in added) {
          throw new PolicyError(added.error, at(field));
        }
      }
      lists[field] = set.cidrs();
    }
    for (const field of ["remotePorts", "localPorts"] as const) {
      for (const r of rule[field]) {
        if (r.first > r.last) {
          throw new PolicyError(
            `port range ${r.first}-${r.last} is reversed`,
            at(field),
          );
        }
      }
    }
    return normalRule(rule, lists.remote, lists.local, {
      remotePorts: mergePorts(rule.remotePorts),
      localPorts: mergePorts(rule.localPorts),
    });
  });
  return { name: parsed.data.name, rules };
}

// ---------------------------------------------------------------------
// Checking and normalising

type Path = (string | number)[];

interface Context {
  source: string;
  value: unknown;
  locator?: TextLocator;
  warnings: string[];
}

function check(
  value: unknown,
  source: string,
  opts: PolicyParseOptions,
  locator: TextLocator | undefined,
): PolicyParseResult {
  const ctx: Context = { source, value, locator, warnings: [] };
  const maxRules = opts.maxRules ?? DEFAULT_MAX_RULES;

  // The bound comes before the structural check so that an oversized
  // policy costs no more than counting its rules.
  const rules = isObject(value) ? value.rules : undefined;
  if (Array.isArray(rules) && rules.length > maxRules) {
    fail(
      ctx,
      ["rules"],
      `the policy has ${rules.length} rules, more than the bound of ` +
        `${maxRules}; split it or raise the bound (--max-rules)`,
    );
  }

  const parsed = PolicySchema.safeParse(value);
  if (!parsed.success) {
    const issue = pickIssue(parsed.error.issues, ctx);
    const path = issue.code === "unrecognized_keys"
      ? [...issue.path, issue.keys[0]] as Path
      : issue.path as Path;
    fail(ctx, path, describeIssue(issue, value), {
      keyNode: issue.code === "unrecognized_keys",
    });
  }

  const input = parsed.data;
  if (input.rules.length === 0) {
    warn(
      ctx,
      ["rules"],
      "the policy has no rules; applying it removes every Palisade rule",
    );
  }
  const ids = new Map<string, number>();
  const normal = input.rules.map((rule, index) => {
    const first = ids.get(rule.id);
    if (first !== undefined) {
      const firstAt = ctx.locator?.find(["rules", first, "id"], false);
      const where = firstAt ? ` (line ${firstAt.line})` : "";
      fail(
        ctx,
        ["rules", index, "id"],
        `rule ID "${rule.id}" is already used by rules[${first}]${where}; ` +
          `give each rule a unique ID`,
      );
    }
    ids.set(rule.id, index);
    return checkRule(ctx, rule, index);
  });

  return {
    policy: { name: input.name, rules: normal },
    value,
    warnings: ctx.warnings,
  };
}

/** How many host-bit warnings one list gets before they are summed up. */
const HOST_BIT_WARNINGS = 3;

function checkRule(ctx: Context, rule: RuleInput, index: number): NormalRule {
  const base: Path = ["rules", index];
  const here = (...rest: Path): Path => [...base, ...rest];

  const sets = { remote: new AddressSet(), local: new AddressSet() };
  for (const field of ["remote", "local"] as const) {
    const list = rule[field];
    if (list === undefined) continue;
    const set = sets[field];
    let hostBitCount = 0;
    for (let i = 0; i < list.length; i++) {
      const added = set.add(list[i]);
      if (added === undefined) continue;
      if ("error" in added) {
        fail(ctx, here(field, i), `${added.error}; ${ADDRESS_HINT}`);
      }
      hostBitCount++;
      if (hostBitCount <= HOST_BIT_WARNINGS) {
        warn(
          ctx,
          here(field, i),
          `${list[i]} has host bits set; using ${added.hostBits}`,
        );
      }
    }
    if (hostBitCount > HOST_BIT_WARNINGS) {
      warn(
        ctx,
        here(field),
        `${hostBitCount - HOST_BIT_WARNINGS} more entries of ${field} ` +
          `have host bits set; their network prefixes are used`,
      );
    }
  }

  const ports: Record<"remotePorts" | "localPorts", PortRange[]> = {
    remotePorts: [],
    localPorts: [],
  };
  for (const field of ["remotePorts", "localPorts"] as const) {
    const list = rule[field];
    if (list === undefined) continue;
    if (rule.protocol !== "tcp" && rule.protocol !== "udp") {
      const fix = rule.protocol === "any"
        ? `write one rule with "tcp" and one with "udp"`
        : `use protocol "tcp" or "udp", or remove ${field}`;
      fail(
        ctx,
        here(field),
        `ports need protocol "tcp" or "udp", but the rule's protocol is ` +
          `"${rule.protocol}"; ${fix}`,
      );
    }
    const read: PortRange[] = [];
    for (let i = 0; i < list.length; i++) {
      const item = readPortItem(list[i]);
      if (typeof item === "string") fail(ctx, here(field, i), item);
      read.push(item);
    }
    ports[field] = mergePorts(read);
  }

  checkFamilies(ctx, rule, here, sets);
  if (rule.app !== undefined) {
    warn(
      ctx,
      here("app"),
      `app applies only with the Windows (WFP) engine; the nftables ` +
        `engine refuses this rule`,
    );
  }
  checkCatchAll(ctx, rule, here, sets, ports);

  return normalRule(rule, sets.remote.cidrs(), sets.local.cidrs(), ports);
}

function checkFamilies(
  ctx: Context,
  rule: RuleInput,
  here: (...rest: Path) => Path,
  sets: Record<"remote" | "local", AddressSet>,
): void {
  const only = (field: "remote" | "local", family: AddressFamily) =>
    sets[field].count[family] > 0 &&
    sets[field].count[family === 4 ? 6 : 4] === 0;

  // ICMP is IPv4's, ICMPv6 is IPv6's: the other family never carries it.
  const icmp = { icmp: 4, icmpv6: 6 } as Record<string, AddressFamily>;
  const own = icmp[rule.protocol];
  if (own !== undefined) {
    const other: AddressFamily = own === 4 ? 6 : 4;
    for (const field of ["remote", "local"] as const) {
      if (only(field, other)) {
        fail(
          ctx,
          here(field),
          `protocol "${rule.protocol}" is IPv${own} only, but ${field} ` +
            `lists only IPv${other} addresses, so the rule can never ` +
            `match; use "${own === 4 ? "icmpv6" : "icmp"}" or IPv${own} ` +
            `addresses`,
        );
      }
      if (sets[field].count[own] > 0 && sets[field].count[other] > 0) {
        warn(
          ctx,
          here(field),
          `protocol "${rule.protocol}" never matches the IPv${other} ` +
            `addresses in ${field}; move them to a rule with protocol ` +
            `"${own === 4 ? "icmpv6" : "icmp"}"`,
        );
      }
    }
  }

  // Limitation: a family present on one side only (remote IPv4 and
  // IPv6, local IPv4) draws no warning that its other half never
  // matches.
  for (const family of [4, 6] as const) {
    const other: AddressFamily = family === 4 ? 6 : 4;
    if (only("remote", family) && only("local", other)) {
      fail(
        ctx,
        here("local"),
        `remote lists only IPv${family} addresses and local only ` +
          `IPv${other} ones; a packet has one family, so the rule can ` +
          `never match; write one rule per family`,
      );
    }
  }
}

function checkCatchAll(
  ctx: Context,
  rule: RuleInput,
  here: (...rest: Path) => Path,
  sets: Record<"remote" | "local", AddressSet>,
  ports: Record<"remotePorts" | "localPorts", PortRange[]>,
): void {
  if (rule.action !== "block" || rule.app !== undefined) return;
  for (const field of ["remotePorts", "localPorts"] as const) {
    if (ports[field].length > 0 && !coversAllPorts(ports[field])) return;
  }

  for (const family of [4, 6] as const) {
    if (rule.protocol === "icmp" && family === 6) continue;
    if (rule.protocol === "icmpv6" && family === 4) continue;
    const free = (field: "remote" | "local") =>
      rule[field] === undefined || sets[field].covers(family);
    if (!free("remote") || !free("local")) continue;

    const everything = family === 4 ? "0.0.0.0/0" : "::/0";
    const widened = ["remote", "local"].some((f) =>
        rule[f as "remote" | "local"] !== undefined
      )
      ? ` (its addresses merge to ${everything}, which counts as no ` +
        `condition)`
      : "";
    const what = rule.protocol === "any" ? "" : `${rule.protocol} `;
    // With no address at all, both families are caught, not just the
    // first one checked.
    const familyOnly = rule.protocol === "icmp" ||
      rule.protocol === "icmpv6" ||
      rule.remote !== undefined || rule.local !== undefined;
    const traffic = familyOnly
      ? `${what}IPv${family} traffic`
      : `${what}traffic`;
    fail(
      ctx,
      here(),
      `block rule "${rule.id}" matches all ${traffic} ` +
        `${rule.direction === "in" ? "to" : "from"} this host${widened}: ` +
        `it has no address, port or application condition. Palisade ` +
        `never installs a default-deny (it fails open by design), so a ` +
        `catch-all block rule is refused; add remote or local ` +
        `addresses, ports or an app, or remove the rule`,
    );
  }
}

function normalRule(
  rule: {
    id: string;
    action: NormalRule["action"];
    direction: NormalRule["direction"];
    protocol: NormalRule["protocol"];
    app?: string;
    comment?: string;
  },
  remote: string[],
  local: string[],
  ports: { remotePorts: PortRange[]; localPorts: PortRange[] },
): NormalRule {
  const out: NormalRule = {
    id: rule.id,
    action: rule.action,
    direction: rule.direction,
    protocol: rule.protocol,
    remote,
    local,
    remotePorts: ports.remotePorts,
    localPorts: ports.localPorts,
  };
  if (rule.app !== undefined) out.app = rule.app;
  if (rule.comment !== undefined) out.comment = rule.comment;
  return out;
}

function fail(
  ctx: Context,
  path: Path,
  problem: string,
  opts: { keyNode?: boolean } = {},
): never {
  const at = ctx.locator?.find(path, opts.keyNode ?? false);
  throw new PolicyError(problem, {
    source: ctx.source,
    line: at?.line,
    column: at?.column,
    ruleId: ruleIdAt(ctx.value, path),
    path: formatPath(path),
  });
}

function warn(ctx: Context, path: Path, problem: string): void {
  const at = ctx.locator?.find(path, false);
  const place = describePlace({
    source: ctx.source,
    line: at?.line,
    column: at?.column,
    ruleId: ruleIdAt(ctx.value, path),
    path: formatPath(path),
  });
  ctx.warnings.push(`${place}: ${problem}`);
}

// ---------------------------------------------------------------------
// Messages

const ADDRESS_HINT =
  `write an IPv4 or IPv6 address or CIDR prefix, e.g. "203.0.113.0/24" ` +
  `or "2001:db8::/32"`;

const FIELD_HELP: Record<string, string> = {
  $schema: "the path or URL of the policy schema",
  name: "1-63 lowercase letters, digits and hyphens, starting with a " +
    "letter or digit",
  rules: "a list of rule objects",
  id: "1-63 lowercase letters, digits and hyphens, starting with a " +
    `letter or digit (e.g. "block-smb-out")`,
  action: `"permit" or "block"`,
  direction: `"in" or "out"`,
  protocol: `"tcp", "udp", "icmp", "icmpv6" or "any"`,
  remote: "a list of IPv4 or IPv6 addresses or CIDR prefixes",
  local: "a list of IPv4 or IPv6 addresses or CIDR prefixes",
  remotePorts: `a list of ports (1-65535) or ranges ("FIRST-LAST")`,
  localPorts: `a list of ports (1-65535) or ranges ("FIRST-LAST")`,
  app: "the full path of a Windows program",
  comment: "a string",
};

type Issue = z.core.$ZodIssue;

// Limitation: only the first problem is reported; fixing it may reveal
// the next one.

/** Unknown fields first (a misspelt field also looks missing), then
 * the problem earliest in the document. */
function pickIssue(issues: Issue[], ctx: Context | undefined): Issue {
  const unknown = issues.filter((i) => i.code === "unrecognized_keys");
  const pool = unknown.length > 0 ? unknown : issues;
  if (ctx?.locator === undefined) return pool[0];
  let best = pool[0];
  let bestOffset = Infinity;
  for (const issue of pool) {
    const offset = ctx.locator.offsetOf(issue.path as Path) ?? Infinity;
    if (offset < bestOffset) {
      best = issue;
      bestOffset = offset;
    }
  }
  return best;
}

function describeIssue(issue: Issue, root: unknown): string {
  const path = issue.path as Path;
  const input = valueAt(root, path);
  const last = path[path.length - 1];
  const field = typeof last === "number"
    ? String(path[path.length - 2])
    : String(last ?? "policy");
  const help = FIELD_HELP[field] ?? "a valid value";

  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0];
    const allowed = Object.keys(
      path.length === 0 ? PolicySchema.shape : RuleSchema.shape,
    );
    const near = closest(key, allowed);
    const guess = near === undefined ? "" : ` (did you mean "${near}"?)`;
    return `unknown field "${key}"${guess}; remove it or fix its ` +
      `spelling (allowed here: ${allowed.join(", ")})`;
  }

  // Addresses and ports: say exactly what is wrong with the entry.
  if (typeof last === "number" && (field === "remote" || field === "local")) {
    if (typeof input !== "string") {
      return `an address must be a string, not ${describe(input)}; ` +
        ADDRESS_HINT;
    }
    const read = readCidr(input);
    const why = typeof read === "string" ? read : `"${input}" is malformed`;
    return `${why}; ${ADDRESS_HINT}`;
  }
  if (typeof last === "number" && field.endsWith("Ports")) {
    const read = readPortItem(input);
    return typeof read === "string" ? read : `port entry is not valid`;
  }
  if (typeof last === "number" && field === "rules") {
    return `each rule must be an object with id, action, direction and ` +
      `protocol, not ${describe(input)}`;
  }

  if (input === undefined && typeof last === "string") {
    return `${field} is missing; add "${field}": ${help}`;
  }
  switch (issue.code) {
    case "invalid_type":
      if (path.length === 0) {
        return `a policy must be a JSON object with "name" and "rules", ` +
          `not ${describe(input)}`;
      }
      return `${field} must be ${help}, not ${describe(input)}`;
    case "invalid_value":
      return `${JSON.stringify(input)} is not a valid ${field}; use ${help}`;
    case "invalid_format": {
      const what = field === "name"
        ? "policy name"
        : field === "id"
        ? "rule ID"
        : field;
      return `${JSON.stringify(input)} is not a valid ${what}; use ${help}`;
    }
    case "too_small":
      if (Array.isArray(input)) {
        return `${field} is an empty list, which would match nothing; ` +
          `list at least one entry, or remove the field to match any`;
      }
      return `${field} is empty; write ${help}, or remove the field`;
    case "too_big":
      if (Array.isArray(input)) {
        return `${field} has ${input.length} entries, more than ` +
          `${issue.maximum}; split the rule`;
      }
      return `${field} is longer than ${issue.maximum} characters; ` +
        `shorten it`;
    default:
      return `${field}: ${issue.message}`;
  }
}

function describePlace(where: {
  source: string;
  line?: number;
  column?: number;
  ruleId?: string;
  path: string;
}): string {
  let place = where.source;
  if (where.line !== undefined) {
    place += `:${where.line}:${where.column ?? 1}`;
  }
  if (where.ruleId !== undefined) {
    place += ` rule ${JSON.stringify(where.ruleId)}`;
  }
  if (where.path !== "") place += ` at ${where.path}`;
  return place;
}

/** Formats a path as `rules[3].remotePorts[1]`. */
function formatPath(path: PropertyKey[]): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(String(segment))) {
      out += out === "" ? String(segment) : `.${String(segment)}`;
    } else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out;
}

function ruleIdAt(root: unknown, path: PropertyKey[]): string | undefined {
  if (path[0] !== "rules" || typeof path[1] !== "number") return undefined;
  const rule = valueAt(root, ["rules", path[1]]);
  return isObject(rule) && typeof rule.id === "string" ? rule.id : undefined;
}

function valueAt(root: unknown, path: PropertyKey[]): unknown {
  let node = root;
  for (const segment of path) {
    if (Array.isArray(node) && typeof segment === "number") {
      node = node[segment];
    } else if (isObject(node) && typeof segment === "string") {
      node = Object.hasOwn(node, segment) ? node[segment] : undefined;
    } else return undefined;
  }
  return node;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  if (typeof value === "number" || typeof value === "boolean") {
    return `${typeof value} ${value}`;
  }
  return `a ${typeof value}`;
}

/** The allowed name nearest to a misspelt one, if it is close. */
function closest(key: string, allowed: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const name of allowed) {
    const d = distance(key.toLowerCase(), name.toLowerCase());
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  return best;
}

function distance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return 99;
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(
        row[j] + 1,
        next[j - 1] + 1,
        row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    row = next;
  }
  return row[b.length];
}

// ---------------------------------------------------------------------
// JSONC text

const SYNTAX: Record<string, string> = {
  InvalidSymbol: "unexpected character; check quotes, commas and brackets",
  InvalidNumberFormat: "malformed number",
  PropertyNameExpected: `expected a field name in double quotes`,
  ValueExpected: "expected a value",
  ColonExpected: `expected ":" after the field name`,
  CommaExpected: `expected "," between entries`,
  CloseBraceExpected: `expected "}" to close the object`,
  CloseBracketExpected: `expected "]" to close the list`,
  EndOfFileExpected: "unexpected text after the policy's closing brace",
  InvalidCommentToken: "malformed comment",
  UnexpectedEndOfComment: `comment not closed; add "*/"`,
  UnexpectedEndOfString: "string not closed; add the closing quote",
  UnexpectedEndOfNumber: "number cut short",
  InvalidUnicode: "malformed \\u escape",
  InvalidEscapeCharacter: "invalid escape after a backslash",
  InvalidCharacter: "control character inside a string; escape it",
};

const JSONC_OPTIONS = {
  allowTrailingComma: true,
  disallowComments: false,
  allowEmptyContent: false,
};

/** One open object or list while the value is built. */
interface Frame {
  value: Record<string, unknown> | unknown[];
  /** Where this container sits in its parent. */
  segment: string | number | undefined;
  /** The key whose value comes next (objects only). */
  key?: string;
}

/**
 * Builds the plain value in one pass with the JSONC visitor, refusing
 * syntax errors, duplicate keys and deep nesting. No syntax tree is
 * built: the locator builds one only when a message needs a place.
 * Keys become own properties even when named `__proto__`, so they meet
 * the unknown-field check instead of changing a prototype.
 */
function readJsonc(
  text: string,
  source: string,
  locator: TextLocator,
): unknown {
  // A byte order mark is not JSON; blank it so offsets stay put.
  const body = text.charCodeAt(0) === 0xfeff ? ` ${text.slice(1)}` : text;
  const stack: Frame[] = [];
  let root: unknown = undefined;
  let problem: { offset: number; text: string; path: Path } | undefined;

  const pathHere = (): Path => {
    const path: Path = [];
    for (const frame of stack.slice(1)) path.push(frame.segment!);
    return path;
  };
  const attach = (value: unknown) => {
    const top = stack[stack.length - 1];
    if (top === undefined) {
      root = value;
    } else if (Array.isArray(top.value)) {
      top.value.push(value);
    } else if (top.key === "__proto__") {
      Object.defineProperty(top.value, top.key, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    } else {
      top.value[top.key!] = value;
    }
  };
  const open = (value: Frame["value"], offset: number) => {
    const top = stack[stack.length - 1];
    const segment = top === undefined
      ? undefined
      : Array.isArray(top.value)
      ? top.value.length
      : top.key;
    attach(value);
    stack.push({ value, segment });
    if (stack.length > MAX_DEPTH && problem === undefined) {
      problem = {
        offset,
        text: `nested more than ${MAX_DEPTH} levels deep; a policy never is`,
        path: [],
      };
    }
  };

  try {
    visit(body, {
      onObjectBegin: (offset) => open({}, offset),
      onArrayBegin: (offset) => open([], offset),
      onObjectEnd: () => void stack.pop(),
      onArrayEnd: () => void stack.pop(),
      onObjectProperty: (name, offset) => {
        const top = stack[stack.length - 1];
        if (Object.hasOwn(top.value, name) && problem === undefined) {
          const path = [...pathHere(), name];
          const first = locator.offsetOf(path, true) ?? offset;
          problem = {
            offset,
            text: `field ${JSON.stringify(name)} appears twice in the ` +
              `same object (first at line ${locator.at(first).line}); ` +
              `remove one`,
            path,
          };
        }
        top.key = name;
      },
      onLiteralValue: (value) => attach(value),
      onError: (error, offset) => {
        if (problem !== undefined) return;
        const name = printParseErrorCode(error);
        problem = {
          offset,
          text: `${SYNTAX[name] ?? name} (JSONC syntax)`,
          path: [],
        };
      },
    }, JSONC_OPTIONS);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new PolicyError("the text is nested too deeply to be a policy", {
      source,
      path: "",
    });
  }

  if (problem === undefined && root === undefined) {
    problem = { offset: 0, text: `${SYNTAX.ValueExpected}`, path: [] };
  }
  if (problem !== undefined) {
    const at = locator.at(problem.offset);
    throw new PolicyError(problem.text, {
      source,
      line: at.line,
      column: at.column,
      path: formatPath(problem.path),
      ruleId: ruleIdAt(root, problem.path),
    });
  }
  return root;
}

const MAX_DEPTH = 64;

/** Turns offsets and JSON paths into 1-based line and column. */
class TextLocator {
  #text: string;
  #root: JsonNode | undefined;
  #lineStarts: number[] | undefined;

  constructor(text: string) {
    this.#text = text;
  }

  /** The syntax tree, parsed on first use: only messages need it. */
  get root(): JsonNode | undefined {
    if (this.#root === undefined) {
      const body = this.#text.charCodeAt(0) === 0xfeff
        ? ` ${this.#text.slice(1)}`
        : this.#text;
      this.#root = parseTree(body, [], JSONC_OPTIONS);
    }
    return this.#root;
  }

  at(offset: number): { line: number; column: number } {
    if (this.#lineStarts === undefined) {
      const starts = [0];
      for (let i = 0; i < this.#text.length; i++) {
        if (this.#text.charCodeAt(i) === 10) starts.push(i + 1);
      }
      this.#lineStarts = starts;
    }
    const starts = this.#lineStarts;
    let low = 0;
    let high = starts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (starts[mid] <= offset) low = mid;
      else high = mid - 1;
    }
    return { line: low + 1, column: offset - starts[low] + 1 };
  }

  /** Offset of the deepest node that exists along `path`. */
  offsetOf(path: Path, keyNode = false): number | undefined {
    let node = this.root;
    if (node === undefined) return undefined;
    for (let i = 0; i < path.length; i++) {
      const segment = path[i];
      let next: JsonNode | undefined;
      if (node.type === "array" && typeof segment === "number") {
        next = node.children?.[segment];
      } else if (node.type === "object") {
        const property = node.children?.find((p) =>
          p.children?.[0]?.value === segment
        );
        if (property !== undefined && keyNode && i === path.length - 1) {
          return property.children![0].offset;
        }
        next = property?.children?.[1];
      }
      if (next === undefined) break;
      node = next;
    }
    return node.offset;
  }

  find(
    path: Path,
    keyNode: boolean,
  ): { line: number; column: number } | undefined {
    const offset = this.offsetOf(path, keyNode);
    return offset === undefined ? undefined : this.at(offset);
  }
}
