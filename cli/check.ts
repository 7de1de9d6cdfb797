/**
 * `palisade check POLICY [--max-rules N]`: validates a policy file and
 * prints a summary, or the first problem with its file:line:col.
 *
 * @module
 */
import {
  DEFAULT_MAX_RULES,
  type NormalPolicy,
  parsePolicyText,
  policyDigest,
} from "../mod.ts";
import {
  EXIT_FAIL,
  EXIT_OK,
  parseFlags,
  printError,
  readInputText,
  UsageError,
} from "./_common.ts";

const HELP = `Usage: palisade check POLICY [--max-rules N]

Validates a policy (JSONC: comments and trailing commas allowed) and
prints a summary: name, rules by action and direction, address and port
totals, the policy digest and any warnings.

Flags:
  --max-rules N  refuse more than N rules (default ${DEFAULT_MAX_RULES})
  -h, --help     show this help

Exit codes: 0 valid (warnings do not fail), 1 invalid or unreadable.`;

/**
 * Runs `check` with the arguments after the command name.
 *
 * @returns the exit code: 0 valid, 1 invalid or unreadable
 */
export async function check(args: string[]): Promise<number> {
  let file: string;
  let maxRules: number;
  try {
    const { values, positionals } = parseFlags(args, {
      "max-rules": { type: "string" },
      help: { type: "boolean", short: "h" },
    }, { min: 0, max: 1, names: "POLICY" });
    if (values.help) {
      console.log(HELP);
      return EXIT_OK;
    }
    if (positionals.length !== 1) {
      throw new UsageError(`Expected POLICY\n${HELP}`);
    }
    file = positionals[0];
    maxRules = readCount(values["max-rules"], DEFAULT_MAX_RULES);
  } catch (error) {
    printError("check", error);
    return EXIT_FAIL;
  }

  try {
    const text = await readPolicyFile(file);
    const { policy, warnings } = parsePolicyText(text, file, { maxRules });
    console.log(summary(policy, file, warnings).join("\n"));
    return EXIT_OK;
  } catch (error) {
    printError("check", error);
    return EXIT_FAIL;
  }
}

function readCount(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^[1-9][0-9]{0,8}$/.test(value)) {
    throw new UsageError(
      `--max-rules must be a whole number from 1 to 999999999, not ` +
        `"${value}"`,
    );
  }
  return Number(value);
}

async function readPolicyFile(file: string): Promise<string> {
  return await readInputText(file, "policy");
}

function summary(
  policy: NormalPolicy,
  file: string,
  warnings: string[],
): string[] {
  const rules = policy.rules;
  const count = (test: (r: NormalPolicy["rules"][0]) => boolean) =>
    rules.filter(test).length;

  let v4 = 0;
  let v6 = 0;
  let portRanges = 0;
  for (const rule of rules) {
    for (const cidr of [...rule.remote, ...rule.local]) {
      if (cidr.includes(":")) v6++;
      else v4++;
    }
    portRanges += rule.remotePorts.length + rule.localPorts.length;
  }
  const withAddresses = count((r) => r.remote.length + r.local.length > 0);
  const withPorts = count((r) =>
    r.remotePorts.length + r.localPorts.length > 0
  );

  const lines = [
    `${policy.name}: valid (${file})`,
    `  rules      ${rules.length}: ` +
    `${count((r) => r.action === "block")} block, ` +
    `${count((r) => r.action === "permit")} permit; ` +
    `${count((r) => r.direction === "in")} in, ` +
    `${count((r) => r.direction === "out")} out`,
    `  addresses  ${v4 + v6} prefixes after merging (${v4} IPv4, ` +
    `${v6} IPv6) in ${withAddresses} rule(s)`,
    `  ports      ${portRanges} range(s) in ${withPorts} rule(s)`,
    `  digest     sha256:${policyDigest(policy)}`,
    `  warnings   ${warnings.length}`,
  ];
  for (const warning of warnings) lines.push(`warning: ${warning}`);
  return lines;
}
