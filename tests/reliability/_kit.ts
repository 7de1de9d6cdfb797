/**
 * Shared pieces of the reliability tests: a host folder with a signing
 * key and a trust store, signed bundles and statements, policies, the
 * normalised engine dumps that the tests compare, and a runner for the
 * host process of `_host.ts`.
 *
 * @module
 */
import {
  encodePrivateKeyPem,
  encodePublicKeyPem,
  type Envelope,
  generateKeyPair,
  makeBundleStatement,
  makeConfirmStatement,
  makeRollbackStatement,
  type PrivateKey,
  serializeEnvelope,
  signStatement,
} from "../../signing/mod.ts";

/** The host name every statement here targets. */
export const HOST = "rel-1";

/** Absolute path of the WFP simulator library. */
export const SIM_PATH = new URL(
  "../../tools/wfpsim/libwfpsim.so",
  import.meta.url,
).pathname;

/** Absolute path of the host process script. */
export const HOST_SCRIPT = new URL("./_host.ts", import.meta.url).pathname;

/** A count from the environment (for `deno task assess`), else `fallback`. */
export function countFromEnv(name: string, fallback: number): number {
  const text = Deno.env.get(name);
  if (text === undefined || text === "") return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`Cannot use ${name}=${text}: not a positive count`);
  }
  return value;
}

/** True when the WFP simulator library has been built. */
export function simBuilt(): boolean {
  try {
    return Deno.statSync(SIM_PATH).isFile;
  } catch {
    return false;
  }
}

/**
 * Whether a test that needs `what` can run: true when `ok`; else skips
 * with a message locally and fails when `CI` is set.
 *
 * @throws {Error} `ok` is false and `CI` is set
 */
export function need(t: Deno.TestContext, ok: boolean, what: string): boolean {
  if (ok) return true;
  if (Deno.env.get("CI")) {
    throw new Error(`Cannot run "${t.name}": ${what} (CI is set)`);
  }
  console.warn(`SKIPPED "${t.name}": ${what}`);
  return false;
}

/** A policy value with one inbound TCP block rule per port. */
export function policyFor(name: string, ports: number[]): unknown {
  return {
    name,
    rules: ports.map((port) => ({
      id: `block-${port}`,
      action: "block",
      direction: "in",
      protocol: "tcp",
      remote: ["203.0.113.0/24", `198.51.100.${port % 250}`, "2001:db8::/32"],
      localPorts: [port, `${port + 1000}-${port + 1010}`],
      comment: `rule for ${port}`,
    })),
  };
}

/** A host folder: key, trust store, state and log folders. */
export interface HostDir extends AsyncDisposable {
  dir: string;
  key: PrivateKey;
  keyPath: string;
  trustPath: string;
  stateDir: string;
  logDir: string;
}

/** Makes a host folder under `parent` (the system's temp folder). */
export async function makeHostDir(parent?: string): Promise<HostDir> {
  const dir = await Deno.makeTempDir({ dir: parent, prefix: "palisade-rel-" });
  const { privateKey } = generateKeyPair();
  const keyPath = `${dir}/signer.key`;
  await Deno.writeTextFile(keyPath, encodePrivateKeyPem(privateKey));
  const trustPath = `${dir}/trust.jsonc`;
  await Deno.writeTextFile(trustPath, trustText([privateKey]));
  return {
    dir,
    key: privateKey,
    keyPath,
    trustPath,
    stateDir: `${dir}/state`,
    logDir: `${dir}/logs`,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Trust store text that trusts `keys` for every payload kind. */
export function trustText(keys: PrivateKey[]): string {
  return JSON.stringify({
    keys: keys.map((key) => ({
      id: key.publicKey.id,
      publicKey: encodePublicKeyPem(key.publicKey),
      allow: ["bundle", "confirm", "rollback"],
    })),
    threshold: { bundle: 1, confirm: 1, rollback: 1 },
  });
}

function bytesOf(envelope: Envelope): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(serializeEnvelope(envelope));
}

/** A signed bundle of `policy` for {@linkcode HOST}. */
export function signBundle(
  key: PrivateKey,
  serial: number,
  policy: unknown,
  window = 30,
  now = Date.now(),
): Uint8Array<ArrayBuffer> {
  const statement = makeBundleStatement({
    policy,
    serial,
    targets: [HOST],
    commitWindowSeconds: window,
    issuedAt: new Date(now - 60_000),
    expiresAt: new Date(now + 7 * 86_400_000),
  });
  return bytesOf(signStatement("bundle", statement, [key]));
}

/** A signed heartbeat. */
export function signConfirm(
  key: PrivateKey,
  generation: number,
  nonce: string,
  now = Date.now(),
): Uint8Array<ArrayBuffer> {
  const statement = makeConfirmStatement({
    host: HOST,
    generation,
    nonce,
    now: new Date(now),
  });
  return bytesOf(signStatement("confirm", statement, [key]));
}

/** A signed rollback command to the last known good. */
export function signRollback(
  key: PrivateKey,
  now = Date.now(),
): Uint8Array<ArrayBuffer> {
  const statement = makeRollbackStatement({
    host: HOST,
    nonce: crypto.randomUUID(),
    to: "last-known-good",
    now: new Date(now),
    validSeconds: 600,
  });
  return bytesOf(signStatement("rollback", statement, [key]));
}

function stripKeys(value: unknown, keys: Set<string>): unknown {
  if (Array.isArray(value)) return value.map((v) => stripKeys(v, keys));
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (!keys.has(k)) out[k] = stripKeys(v, keys);
  }
  return out;
}

/**
 * A complete `nft -j -s list ruleset` dump with the kernel's object
 * handles taken out (they count every object ever made, so two equal
 * rulesets reached by different histories differ only in them), and
 * the random value of Palisade's marker set `state` (rewritten by every
 * batch so that the backend can tell its own last write) replaced by a
 * placeholder.
 */
export function normalizeNft(text: string): string {
  const parsed = JSON.parse(text) as { nftables: Record<string, unknown>[] };
  const items = parsed.nftables.filter((item) => !("metainfo" in item));
  for (const item of items) {
    const set = item.set as Record<string, unknown> | undefined;
    if (set?.table === "palisade" && set.name === "state") {
      set.elem = ["marker"];
    }
  }
  return JSON.stringify(stripKeys(items, new Set(["handle"])));
}

/**
 * A complete simulator dump with run-time filter IDs taken out and each
 * filter's weight replaced by its rank inside its layer, so that the
 * comparison keeps the evaluation order but not the gaps between
 * weights, which depend on the history of incremental changes.
 */
export function normalizeWfp(text: string): string {
  const dump = JSON.parse(text) as {
    providers: unknown[];
    sublayers: unknown[];
    filters: Record<string, unknown>[];
  };
  const byLayer = new Map<string, Record<string, unknown>[]>();
  for (const filter of dump.filters) {
    const layer = String(filter.layerKey);
    byLayer.set(layer, [...(byLayer.get(layer) ?? []), filter]);
  }
  const filters: Record<string, unknown>[] = [];
  for (const [, list] of [...byLayer].sort(([a], [b]) => a < b ? -1 : 1)) {
    list.sort((a, b) => {
      const d = BigInt(String(b.weight)) - BigInt(String(a.weight));
      return d > 0n ? 1 : d < 0n ? -1 : 0;
    });
    list.forEach((filter, rank) => {
      const { id: _id, weight: _weight, ...rest } = filter;
      filters.push({ ...rest, rank });
    });
  }
  return JSON.stringify({
    providers: dump.providers,
    sublayers: dump.sublayers,
    filters,
  });
}

/** One step the host process runs. */
export type HostStep =
  | { op: "push"; serial: number; ports: number[]; window?: number }
  | { op: "confirm" }
  | { op: "expire" }
  | { op: "rollback" }
  | { op: "expect"; ports: number[] | null }
  | { op: "soak"; cycles: number; warmup: number };

/** What the host process is told to do. */
export interface HostJob {
  /** `memory` runs without a native engine, to tell its share apart. */
  engine: "wfp" | "nft" | "memory";
  stateDir: string;
  logDir: string;
  keyPath: string;
  trustPath: string;
  steps: HostStep[];
  /** Only print the complete engine dump; run no manager. */
  dumpOnly?: boolean;
  /**
   * Index of the first step during which the engine's crash points are
   * live; not given: from the start, the manager's start-up included.
   */
  engineFrom?: number;
  /** Print `{ engineStep, armed }` at each engine crash point passed. */
  traceEngine?: boolean;
}

/** What a host process printed and how it ended. */
export interface HostRun {
  code: number;
  signal: Deno.Signal | null;
  /** Every JSON line it printed. */
  lines: Record<string, unknown>[];
  stderr: string;
  /** The final line: status and normalised dump, when it got there. */
  final?: { status: Record<string, unknown>; dump: string };
}

/** Time bound of one host process. */
const HOST_TIMEOUT_MS = 900_000;

/**
 * Runs `_host.ts` with `job` as a separate process, with a crash point
 * and extra environment when given, and collects what it printed.
 */
export async function runHost(
  job: HostJob,
  opts: { crashPoint?: string; env?: Record<string, string> } = {},
): Promise<HostRun> {
  const env: Record<string, string> = { NO_COLOR: "1", ...opts.env };
  if (opts.crashPoint) env.PALISADE_CRASHPOINT = opts.crashPoint;
  const output = await new Deno.Command("deno", {
    args: [
      "run",
      "--no-prompt",
      "--v8-flags=--expose-gc",
      "--allow-read",
      "--allow-write",
      "--allow-ffi",
      "--allow-env",
      "--allow-run=ip,nft,sh",
      HOST_SCRIPT,
      JSON.stringify(job),
    ],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(HOST_TIMEOUT_MS),
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  const lines: Record<string, unknown>[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      lines.push(JSON.parse(line));
    } catch {
      lines.push({ event: "non-json", text: line });
    }
  }
  const last = lines.findLast((l) => "final" in l);
  return {
    code: output.code,
    signal: output.signal,
    lines,
    stderr: new TextDecoder().decode(output.stderr),
    final: last?.final as HostRun["final"],
  };
}

/** Throws with the host's output unless it ended normally. */
export function hostOk(run: HostRun, what: string): HostRun {
  if (run.code !== 0 || run.final === undefined) {
    throw new Error(
      `Cannot ${what}: host exited ${run.code} (${run.signal}):\n` +
        `${run.stderr}\n${run.lines.map((l) => JSON.stringify(l)).join("\n")}`,
    );
  }
  return run;
}
