/**
 * `palisade sign`: signs a policy into a bundle, or adds a signature to
 * an existing bundle (k of n).
 *
 * @module
 */
import {
  addSignature,
  type BundleStatement,
  decodeEnvelope,
  DEFAULT_MAX_ENVELOPE_BYTES,
  type Envelope,
  makeBundleStatement,
  parseBundleStatement,
  parsePolicyText,
  parsePrivateKeyPem,
  parseStrictJson,
  PAYLOAD_TYPES,
  serializeEnvelope,
  signStatement,
  validatePolicyValue,
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

const HELP = `Usage:
  palisade sign --key KEY --policy POLICY.jsonc --serial N
                [--target NAME]... [--expires DURATION|ISO-8601]
                [--window SECONDS] [--name NAME] --out BUNDLE.json [--force]
  palisade sign --key KEY --bundle BUNDLE.json --out OUT.json [--force]

The first form validates the policy (a bad one is refused with its
error), then writes a signed bundle: a DSSE envelope of type
${PAYLOAD_TYPES.bundle}.
The second form checks an existing bundle and adds a signature by KEY,
for bundles that need more than one signer (k of n).

Flags:
  --key KEY         private key, PKCS#8 PEM (palisade keygen or
                    openssl genpkey -algorithm ed25519) (required)
  --policy FILE     policy to sign
  --serial N        release number; hosts accept only serials above
                    the highest they have accepted
  --target NAME     host name or group:NAME, repeatable (default: every
                    host)
  --expires WHEN    duration from now (30m, 12h, 7d, 2w) or ISO 8601
                    time (default 7d)
  --window SECONDS  commit window the host waits for a confirm
                    (default 120, at least 2)
  --name NAME       bundle name (default: the policy's name)
  --bundle FILE     existing bundle to add a signature to
  --out FILE        where to write the bundle (required)
  --force           overwrite --out if it exists (refused otherwise)
  -h, --help        show this help

Exit codes: 0 written, 1 refused or failed.`;

const MAX_INPUT_BYTES = DEFAULT_MAX_ENVELOPE_BYTES;
const UNITS: Record<string, number> = {
  s: 1,
  m: 60,
  h: 3600,
  d: 86_400,
  w: 604_800,
};

/**
 * Runs `sign` with the arguments after the command name.
 *
 * @returns the exit code: 0 written, 1 refused or failed
 */
export async function sign(args: string[]): Promise<number> {
  let values;
  try {
    values = parseFlags(args, {
      key: { type: "string" },
      policy: { type: "string" },
      serial: { type: "string" },
      target: { type: "string", multiple: true },
      expires: { type: "string" },
      window: { type: "string" },
      name: { type: "string" },
      bundle: { type: "string" },
      out: { type: "string" },
      force: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    }, { min: 0, max: 0, names: "no arguments" }).values;
    if (values.help) {
      console.log(HELP);
      return EXIT_OK;
    }
    required(values.key, "key");
    required(values.out, "out");
    if ((values.policy === undefined) === (values.bundle === undefined)) {
      throw new UsageError(
        `Give exactly one of --policy (new bundle) or --bundle (add a signature)\n${HELP}`,
      );
    }
    if (values.bundle !== undefined) {
      for (const flag of ["serial", "target", "expires", "window", "name"]) {
        if (values[flag as keyof typeof values] !== undefined) {
          throw new UsageError(
            `--${flag} cannot be used with --bundle: the signed statement cannot change`,
          );
        }
      }
    }
  } catch (error) {
    printError("sign", error);
    return EXIT_FAIL;
  }

  try {
    const out = values.out!;
    if (!values.force && await exists(out)) {
      throw new Error(
        `Cannot write bundle: ${out} already exists (use --force to overwrite)`,
      );
    }
    const key = parsePrivateKeyPem(
      await readInputText(values.key!, "private key"),
      values.key!,
    );

    let envelope: Envelope;
    let statement: BundleStatement;
    if (values.policy !== undefined) {
      const now = new Date();
      const text = await readInputText(values.policy, "policy");
      const { value, warnings } = parsePolicyText(text, values.policy);
      for (const warning of warnings) console.error(`warning: ${warning}`);
      const serial = serialOf(required(values.serial, "serial"));
      if ((values.target ?? []).length === 0) {
        console.error("note: no --target: valid for every host");
      }
      statement = makeBundleStatement({
        policy: value,
        serial,
        name: values.name,
        targets: values.target ?? [],
        issuedAt: now,
        expiresAt: expiryOf(values.expires ?? "7d", now),
        commitWindowSeconds: windowOf(values.window ?? "120"),
      });
      envelope = signStatement("bundle", statement, [key]);
    } else {
      ({ envelope, statement } = await existingBundle(values.bundle!));
      envelope = addSignature(envelope, key);
    }

    await Deno.writeTextFile(out, serializeEnvelope(envelope), {
      createNew: !values.force,
    });
    console.log(
      `Signed bundle "${statement.name}" serial ${statement.serial} with key ${key.publicKey.id} (${envelope.signatures.length} signature(s)), expires ${statement.expiresAt}: ${out}`,
    );
    return EXIT_OK;
  } catch (error) {
    printError("sign", error);
    return EXIT_FAIL;
  }
}

// Limitation: without a trust store, the signatures already on the
// bundle are not verified before another is added; `verify` does that.
async function existingBundle(
  path: string,
): Promise<{ envelope: Envelope; statement: BundleStatement }> {
  const { envelope, payload } = decodeEnvelope(
    await readInput(path, "bundle", MAX_INPUT_BYTES),
  );
  if (envelope.payloadType !== PAYLOAD_TYPES.bundle) {
    throw new Error(
      `Cannot add signature: ${path} is not a bundle (payload type ${envelope.payloadType})`,
    );
  }
  const text = new TextDecoder("utf-8", { fatal: true }).decode(payload);
  const statement = parseBundleStatement(
    parseStrictJson(text, `${path} (payload)`),
  );
  validatePolicyValue(statement.policy, `${path} (policy)`);
  if (Date.parse(statement.expiresAt) <= Date.now()) {
    throw new Error(
      `Cannot add signature: ${path} expired at ${statement.expiresAt}`,
    );
  }
  return { envelope, statement };
}

function serialOf(text: string): number {
  const serial = Number(text);
  if (!/^[0-9]+$/.test(text)) {
    throw new UsageError(
      `--serial must be a whole number from 1 to ${Number.MAX_SAFE_INTEGER}, not "${text}"`,
    );
  }
  if (serial < 1) {
    throw new UsageError(
      `--serial must be at least 1, not "${text}": a host accepts only ` +
        `serials above the highest it has accepted, which starts at 0`,
    );
  }
  if (!Number.isSafeInteger(serial)) {
    throw new UsageError(
      `--serial ${text} is above ${Number.MAX_SAFE_INTEGER}, the largest ` +
        `serial every JSON reader keeps exactly`,
    );
  }
  return serial;
}

function windowOf(text: string): number {
  const seconds = Number(text);
  if (!/^[0-9]{1,9}$/.test(text) || seconds < 2) {
    throw new UsageError(
      `--window must be a whole number of seconds of at least 2, not "${text}"`,
    );
  }
  return seconds;
}

function expiryOf(text: string, now: Date): Date {
  const duration = /^([1-9][0-9]{0,5})([smhdw])$/.exec(text);
  if (duration !== null) {
    return new Date(
      now.getTime() + Number(duration[1]) * UNITS[duration[2]] * 1000,
    );
  }
  const time = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(text) || Number.isNaN(time)) {
    throw new UsageError(
      `--expires must be a duration such as 12h or 7d, or an ISO 8601 time such as 2026-07-01T00:00:00Z, not "${text}"`,
    );
  }
  if (time <= now.getTime()) {
    throw new UsageError(`--expires ${text} is not in the future`);
  }
  return new Date(time);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
