/**
 * `palisade verify --trust TRUST.jsonc [--host NAME] [--groups a,b]
 * [--serial-floor N] BUNDLE.json`: checks a bundle the way a host would
 * and prints one summary line, or one precise reason it is refused.
 *
 * @module
 */
import {
  DEFAULT_MAX_ENVELOPE_BYTES,
  parseTrustStore,
  PolicyError,
  validatePolicyValue,
  verifyBundle,
  VerifyError,
} from "../mod.ts";
import {
  EXIT_FAIL,
  EXIT_OK,
  parseFlags,
  printError,
  readInput,
  readInputText,
  required,
  UsageError,
} from "./_common.ts";

const HELP =
  `Usage: palisade verify --trust TRUST.jsonc [--host NAME] [--groups a,b]
                       [--serial-floor N] BUNDLE.json

Checks a signed bundle as a host would: size, envelope, signatures
against the trust store (k of n distinct keys allowed to sign bundles),
validity period, targets, serial, and the policy inside. Prints one
summary line when it is valid, else one reason with its code, e.g.
"refused (too-few-signers): ...", or "refused (bad-policy): ..." when
the signed policy itself is invalid.

Flags:
  --trust FILE        trust store, JSONC (required)
  --host NAME         check that the bundle targets this host
  --groups a,b        this host's groups, for group:NAME targets
  --serial-floor N    refuse serials not above N (the host's highest)
  -h, --help          show this help

Exit codes: 0 valid, 1 refused or failed.`;

/**
 * Runs `verify` with the arguments after the command name.
 *
 * @returns the exit code: 0 valid, 1 refused or failed
 */
export async function verify(args: string[]): Promise<number> {
  let file: string;
  let trustPath: string;
  let host: string | undefined;
  let groups: string[];
  let serialFloor: number | undefined;
  try {
    const { values, positionals } = parseFlags(args, {
      trust: { type: "string" },
      host: { type: "string" },
      groups: { type: "string" },
      "serial-floor": { type: "string" },
      help: { type: "boolean", short: "h" },
    }, { min: 0, max: 1, names: "BUNDLE" });
    if (values.help) {
      console.log(HELP);
      return EXIT_OK;
    }
    if (positionals.length !== 1) {
      throw new UsageError(`Expected BUNDLE\n${HELP}`);
    }
    file = positionals[0];
    trustPath = required(values.trust, "trust");
    host = values.host;
    groups = (values.groups ?? "").split(",").map((g) => g.trim())
      .filter((g) => g !== "");
    serialFloor = floorOf(values["serial-floor"]);
  } catch (error) {
    printError("verify", error);
    return EXIT_FAIL;
  }

  try {
    const trust = parseTrustStore(
      await readInputText(trustPath, "trust store"),
      trustPath,
    );
    const bytes = await readBundle(file);
    const { statement, signers } = verifyBundle(bytes, {
      trust,
      host,
      groups,
      serialFloor,
    });
    const { policy } = validatePolicyValue(
      statement.policy,
      `${file} (policy)`,
    );

    const targets = statement.targets.length === 0
      ? "every host"
      : statement.targets.join(",");
    console.log(
      `Valid bundle "${statement.name}" serial ${statement.serial}: ` +
        `${policy.rules.length} rule(s), signed by ${signers.length} of ` +
        `${trust.threshold.bundle} required (${signers.join(", ")}), ` +
        `targets ${targets}, window ${statement.commitWindowSeconds}s, ` +
        `expires ${statement.expiresAt}`,
    );
    return EXIT_OK;
  } catch (error) {
    if (error instanceof VerifyError) {
      console.error(
        `palisade verify: refused (${error.reason}): ${error.message}`,
      );
    } else if (error instanceof PolicyError) {
      // Signed and valid as a bundle, but no host could install it.
      console.error(`palisade verify: refused (bad-policy): ${error.message}`);
    } else {
      printError("verify", error);
    }
    return EXIT_FAIL;
  }
}

/** Reads the bundle, refusing an oversized one before reading it. */
async function readBundle(file: string): Promise<Uint8Array<ArrayBuffer>> {
  let size: number;
  try {
    size = (await Deno.stat(file)).size;
  } catch {
    size = 0; // readInput names the problem
  }
  if (size > DEFAULT_MAX_ENVELOPE_BYTES) {
    throw new VerifyError(
      "oversize",
      `Cannot verify bundle: ${file} has ${size} bytes, more than the ${DEFAULT_MAX_ENVELOPE_BYTES}-byte limit`,
    );
  }
  return await readInput(file, "bundle", DEFAULT_MAX_ENVELOPE_BYTES);
}

function floorOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const floor = Number(text);
  if (!/^(0|[1-9][0-9]*)$/.test(text) || !Number.isSafeInteger(floor)) {
    throw new UsageError(
      `--serial-floor must be a whole number, not "${text}"`,
    );
  }
  return floor;
}
