/**
 * `palisade diff A B` and `palisade diff A --host URL`: compares two
 * policies or bundles, or one with what a host runs, by rule ID.
 *
 * @module
 */
import {
  decodeEnvelope,
  describeFetchError,
  diffPolicies,
  isEmptyDiff,
  type NormalPolicy,
  parseBundleStatement,
  parsePolicyText,
  parseStrictJson,
  PAYLOAD_TYPES,
  type PolicyDiff,
  policyDigest,
  validateNormalPolicy,
  validatePolicyValue,
} from "../mod.ts";
import {
  EXIT_FAIL,
  EXIT_OK,
  parseFlags,
  printError,
  readInputText,
  UsageError,
} from "./_common.ts";
import { readCaCerts } from "./_signer.ts";

const HELP = `Usage: palisade diff A B [--json]
       palisade diff A --host URL [--json]

Compares policies by rule ID and prints the rules added, removed,
changed (same ID, different content) and moved (same content, new
position among the common rules; order matters: the first match
decides). A and B are policy files (.jsonc, .json) or bundles (DSSE
envelopes). A bundle's payload is read WITHOUT checking its signatures:
the output marks it "unverified"; use 'palisade verify' for trust.

With --host, the old side is the policy the host runs (GET
URL/v1/policy) and the new side is A: "added" lists the rules pushing A
would add.

Flags:
  --host URL       compare with a host (http:// or https://)
  --timeout SECS   how long to wait for the host (default 10)
  --ca FILE        trust this CA certificate for an https:// host
                   (repeatable)
  --json           print the result as JSON
  -h, --help       show this help

Exit codes: 0 the comparison ran, whether or not the policies differ;
1 a side could not be read or is invalid, or the host could not be
reached.`;

/** One side of a comparison. */
interface Side {
  /** File name, or the host's origin. */
  label: string;
  kind: "policy" | "bundle" | "host";
  policy: NormalPolicy | null;
  /** Details for the header: serial, generation, verification. */
  detail: Record<string, string | number | boolean>;
}

/**
 * Runs `diff` with the arguments after the command name.
 *
 * @returns the exit code: 0 when both sides were read (different or
 * not), 1 otherwise
 */
export async function diff(args: string[]): Promise<number> {
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseFlags(args, {
      host: { type: "string" },
      timeout: { type: "string" },
      ca: { type: "string", multiple: true },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    }, { min: 0, max: 2, names: "A and B, or A --host URL" }));
    if (values.help) {
      console.log(HELP);
      return EXIT_OK;
    }
    const want = values.host === undefined ? 2 : 1;
    if (positionals.length !== want) {
      throw new UsageError(
        values.host === undefined
          ? `Expected two policies or bundles, A and B\n${HELP}`
          : `Expected one policy or bundle with --host\n${HELP}`,
      );
    }
  } catch (error) {
    printError("diff", error);
    return EXIT_FAIL;
  }

  try {
    // With --host the host's policy is the old side: the diff reads as
    // what pushing A would change.
    const [a, b] = values.host === undefined
      ? [
        await readFileSide(positionals[0]),
        await readFileSide(positionals[1]),
      ]
      : [
        await readHostSide(
          values.host,
          readSeconds(values.timeout),
          await readCaCerts(values.ca),
        ),
        await readFileSide(positionals[0]),
      ];
    const result = diffPolicies(a.policy, b.policy);
    console.log(
      values.json ? JSON.stringify(asJson(a, b, result), null, 2) : report(
        a,
        b,
        result,
      ).join("\n"),
    );
    return EXIT_OK;
  } catch (error) {
    printError("diff", error);
    return EXIT_FAIL;
  }
}

function readSeconds(value: string | undefined): number {
  if (value === undefined) return 10;
  if (!/^[1-9][0-9]{0,3}$/.test(value)) {
    throw new UsageError(
      `--timeout must be a whole number of seconds from 1 to 9999, not ` +
        `"${value}"`,
    );
  }
  return Number(value);
}

async function readFileSide(file: string): Promise<Side> {
  const text = await readInputText(file, "policy or bundle");

  // A bundle is strict JSON with a payloadType; anything else is read
  // as a policy, whose parser gives the better message.
  let json: unknown;
  try {
    json = parseStrictJson(text, file);
  } catch {
    json = undefined;
  }
  const isEnvelope = typeof json === "object" && json !== null &&
    Object.hasOwn(json, "payloadType");
  if (!isEnvelope) {
    const { policy } = parsePolicyText(text, file);
    return { label: file, kind: "policy", policy, detail: {} };
  }

  // Decoded, never verified: this is a preview for people, and the
  // header says so. Signatures are checked where a bundle is applied.
  const decoded = decodeEnvelope(text);
  const type = decoded.envelope.payloadType;
  if (type !== PAYLOAD_TYPES.bundle) {
    throw new Error(
      `Cannot compare ${file}: its payload type is ${type}, not a ` +
        `bundle (${PAYLOAD_TYPES.bundle})`,
    );
  }
  const payload = new TextDecoder("utf-8", { fatal: true }).decode(
    decoded.payload,
  );
  const statement = parseBundleStatement(
    parseStrictJson(payload, `${file} (payload)`),
  );
  const { policy } = validatePolicyValue(
    statement.policy,
    `${file} (bundle payload)`,
  );
  return {
    label: file,
    kind: "bundle",
    policy,
    detail: {
      serial: statement.serial,
      expiresAt: statement.expiresAt,
      verified: false,
    },
  };
}

// Limitation: --host takes http(s) URLs only, not the service's local
// Unix socket.
async function readHostSide(
  host: string,
  seconds: number,
  caCerts: string[] | undefined,
): Promise<Side> {
  let base: URL;
  try {
    base = new URL(host);
  } catch {
    throw new UsageError(`--host must be a URL such as http://host:7443`);
  }
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    throw new UsageError(
      `--host must be an http:// or https:// URL, not ${base.protocol}`,
    );
  }
  const url = new URL(`${base.pathname.replace(/\/+$/, "")}/v1/policy`, base);

  let response: Response;
  using client = Deno.createHttpClient({ caCerts });
  try {
    response = await fetch(url, {
      client,
      headers: { accept: "application/json" },
      signal: AbortSignal.timeout(seconds * 1000),
    });
  } catch (error) {
    throw describeFetchError(url.href, error, seconds * 1000);
  }

  const body = await response.text();
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    value = undefined;
  }
  const error = (value as { error?: { code?: unknown; message?: unknown } })
    ?.error;
  if (response.status === 404 && error?.code === "no-policy") {
    // The host runs nothing: every rule of A would be added.
    return { label: base.origin, kind: "host", policy: null, detail: {} };
  }
  if (!response.ok) {
    const why = typeof error?.message === "string"
      ? error.message
      : body.slice(0, 200);
    throw new Error(
      `Cannot read the policy of ${base.origin}: GET ${url.pathname} ` +
        `answered ${response.status}: ${why}`,
    );
  }
  if (typeof value !== "object" || value === null) {
    throw new Error(
      `Cannot read the policy of ${base.origin}: expected a JSON object ` +
        `with generation, serial, name and policy`,
    );
  }
  const answer = value as Record<string, unknown>;
  const policy = answer.policy === null || answer.policy === undefined
    ? null
    : validateNormalPolicy(answer.policy, `${base.origin}/v1/policy`);
  const detail: Side["detail"] = {};
  for (const key of ["generation", "serial", "name"]) {
    const field = answer[key];
    if (typeof field === "number" || typeof field === "string") {
      detail[key] = field;
    }
  }
  return { label: base.origin, kind: "host", policy, detail };
}

function header(mark: string, side: Side): string {
  const parts: string[] = [];
  if (side.policy === null) parts.push("no policy");
  else parts.push(`policy "${side.policy.name}"`);
  if (side.kind === "bundle") {
    parts.push(`bundle serial ${side.detail.serial}`);
    parts.push("unverified: signatures not checked");
  }
  if (side.kind === "host") {
    if (side.detail.generation !== undefined) {
      parts.push(`generation ${side.detail.generation}`);
    }
    if (side.detail.serial !== undefined) {
      parts.push(`serial ${side.detail.serial}`);
    }
  }
  const digest = side.policy === null
    ? ""
    : `, sha256:${policyDigest(side.policy).slice(0, 16)}`;
  const what = side.kind === "host" ? "host " : "";
  return `${mark} ${what}${side.label}: ${parts.join(", ")}${digest}`;
}

function report(a: Side, b: Side, d: PolicyDiff): string[] {
  const lines = [header("---", a), header("+++", b)];
  if (isEmptyDiff(d)) {
    lines.push(`no differences (${d.unchanged.length} rule(s) unchanged)`);
    return lines;
  }
  for (const key of ["added", "removed", "changed", "moved"] as const) {
    const ids = d[key];
    lines.push(`${key} (${ids.length})${ids.length > 0 ? ":" : ""}`);
    for (const id of ids) lines.push(`  ${id}`);
  }
  lines.push(`unchanged: ${d.unchanged.length} rule(s)`);
  return lines;
}

function asJson(a: Side, b: Side, d: PolicyDiff): unknown {
  const side = (s: Side) => ({
    source: s.label,
    kind: s.kind,
    name: s.policy?.name ?? null,
    digest: s.policy === null ? null : policyDigest(s.policy),
    ...s.detail,
  });
  return { a: side(a), b: side(b), ...d };
}
