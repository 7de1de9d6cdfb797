/**
 * The operator side of the control API: push a bundle, check health over
 * new connections, confirm with one signed heartbeat, or watch the host
 * revert. Every request opens its own HTTP client, so no request ever
 * rides on a connection opened before the policy changed.
 *
 * @module
 */

/** Signs a confirm or rollback statement into a DSSE envelope. */
export type StatementSigner = (
  kind: "confirm" | "rollback",
  statement: Record<string, unknown>,
) => unknown | Promise<unknown>;

/** Exit codes of `apply`, as the Contract fixes them. */
export const APPLY_EXIT = {
  confirmed: 0,
  failed: 1,
  refused: 2,
  reverted: 3,
} as const;

/** How an apply ended. */
export type ApplyOutcomeKind = keyof typeof APPLY_EXIT;

/** One line of the apply timeline. */
export interface TimelineStep {
  /** Milliseconds since the apply started. */
  atMs: number;
  step: string;
  message: string;
}

/** Options of {@linkcode applyBundle}. */
export interface ApplyOptions {
  /** The signed bundle, bytes as signed. */
  bundle: Uint8Array<ArrayBuffer>;
  /** Base URL of the host's control API (`http://10.0.0.1:7443`). */
  to: string;
  /** Signs the heartbeat; not called with `confirm: false`. */
  signer?: StatementSigner;
  /** Extra health checks: `http(s)://…` (2xx) or `tcp://host:port`. */
  checks?: string[];
  /** False: send no heartbeat and wait for the window's outcome. */
  confirm?: boolean;
  /** Time allowed for one request, seconds (default 10). */
  requestTimeoutSeconds?: number;
  /** How long after the deadline to wait for the host to report the
   * revert, seconds (default 30). */
  settleSeconds?: number;
  /** CA certificates (PEM) for an HTTPS host with a private CA. */
  caCerts?: string[];
  onStep?: (step: TimelineStep) => void;
}

/** What {@linkcode applyBundle} returns. */
export interface ApplyOutcome {
  result: ApplyOutcomeKind;
  exitCode: number;
  /** Generation the host assigned, when the push was accepted. */
  generation: number | null;
  /** Why, for every result other than `confirmed`. */
  message: string;
  /** The host's error code when it refused. */
  code?: string;
}

/** A reply of the host that is not 2xx. */
export class HostError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "HostError";
    this.status = status;
    this.code = code;
  }
}

/** A host that could not be reached or did not answer in time. */
export class UnreachableError extends Error {
  /** The URL requested. */
  readonly url: string;
  /** Why, for people: "connection refused", "no answer within 10 s", … */
  readonly reason: string;

  constructor(url: string, reason: string, options?: ErrorOptions) {
    super(`Cannot reach ${url}: ${reason}`, options);
    this.name = "UnreachableError";
    this.url = url;
    this.reason = reason;
  }
}

/**
 * Says why a `fetch` or a connect to `url` failed, in words a person can
 * act on: timeout, connection refused, name not found, or a TLS
 * certificate problem (with the hint to pass `--ca`).
 *
 * @param url the URL requested
 * @param error what `fetch` or `Deno.connect` threw
 * @param timeoutMs the time allowed, for the timeout message
 * @param target "host" (the control API: a refused connection hints at
 *   `palisade serve`) or "check" (a health check target: no such hint)
 * @returns an {@linkcode UnreachableError} naming the URL and the cause
 *
 * @example
 * ```ts
 * import { describeFetchError } from "./client.ts";
 * import assert from "node:assert/strict";
 *
 * const error = describeFetchError(
 *   "http://127.0.0.1:7443/v1/status",
 *   new DOMException("aborted", "TimeoutError"),
 *   10_000,
 * );
 * assert.match(error.message, /127\.0\.0\.1:7443.*no answer within 10 s/);
 * ```
 */
export function describeFetchError(
  url: string,
  error: unknown,
  timeoutMs: number,
  target: "host" | "check" = "host",
): UnreachableError {
  const name = (error as Error)?.name;
  if (name === "TimeoutError") {
    const seconds = Math.round(timeoutMs / 100) / 10;
    return new UnreachableError(url, `no answer within ${seconds} s`, {
      cause: error,
    });
  }
  const cause = (error as Error)?.cause as Error | undefined;
  const detail = [(error as Error)?.message, cause?.message]
    .filter((m) => typeof m === "string" && m !== "").join(": ");
  return new UnreachableError(url, reasonOf(detail, target), {
    cause: error,
  });
}

function reasonOf(detail: string, target: "host" | "check"): string {
  const tail = detail.replace(/^.*client error \(Connect\): /s, "");
  if (
    /certificate|UnknownIssuer|CaUsedAsEndEntity|NotValidForName/i.test(tail)
  ) {
    return `TLS certificate problem (${tail}); if the host uses a private ` +
      `CA, pass its certificate with --ca CA.pem`;
  }
  if (/corrupt message|InvalidContentType|handshake|tls/i.test(tail)) {
    return `TLS handshake failed (${tail}); check that the host serves ` +
      `https on that port, or use http://`;
  }
  if (/connection refused/i.test(tail)) {
    return target === "host"
      ? `connection refused: nothing listens there (is ` +
        `'palisade serve' running, and is the port right?)`
      : `connection refused: nothing listens there`;
  }
  if (/invalid HTTP version|HTTP version parsed/i.test(tail)) {
    return `the reply is not plain HTTP (${tail}); the host may speak ` +
      `HTTPS; use https://`;
  }
  if (/dns error|lookup address|Name or service not known/i.test(tail)) {
    return `cannot resolve the host name (${tail})`;
  }
  if (/connection reset/i.test(tail)) {
    return `connection reset by the host or a firewall on the way`;
  }
  if (/unreachable|No route to host/i.test(tail)) {
    return `network unreachable (${tail})`;
  }
  return tail === "" ? "unknown network error" : tail;
}

/** Push reply fields the client relies on. */
interface PushReply {
  host: string;
  generation: number;
  serial: number;
  name: string;
  deadline: string;
  windowSeconds: number;
  nonce: string;
}

/** Status fields the client relies on (see `GET /v1/status`). */
export interface HostStatus {
  host: string;
  state: string;
  active:
    | { generation: number; serial: number; name: string; rules: number }
    | null;
  pending:
    | {
      generation: number;
      serial: number;
      name: string;
      deadline: string;
      secondsLeft: number;
    }
    | null;
  lastKnownGood: { generation: number; serial: number; name: string } | null;
  lastError: { code: string; message: string; at: string } | null;
  [field: string]: unknown;
}

/**
 * Checks that `to` is a usable control API base URL: `http://` or
 * `https://` with a host.
 *
 * @returns null when usable, else why not, for people
 */
export function hostUrlProblem(to: string): string | null {
  let url: URL;
  try {
    url = new URL(to);
  } catch {
    return "give a URL such as http://HOST:PORT";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return "give a URL such as http://HOST:PORT";
  }
  if (url.hostname === "") return "the URL names no host";
  return null;
}

function endpoint(base: string, path: string): string {
  const problem = hostUrlProblem(base);
  if (problem !== null) {
    throw new TypeError(`Cannot use host URL ${base}: ${problem}`);
  }
  return new URL(path, base.endsWith("/") ? base : base + "/").href;
}

/**
 * Sends one request over a new connection (a fresh HTTP client, closed
 * afterwards) and returns the parsed JSON reply.
 *
 * @throws {HostError} on a reply that is not 2xx
 * @throws {UnreachableError} when the host cannot be reached in
 *   `timeoutMs`, naming the URL and the cause
 */
export async function requestJson(
  url: string,
  init: {
    method?: string;
    body?: Uint8Array<ArrayBuffer> | string;
    timeoutMs: number;
    caCerts?: string[];
  },
): Promise<unknown> {
  using client = Deno.createHttpClient({
    caCerts: init.caCerts,
    poolMaxIdlePerHost: 0,
  });
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      method: init.method ?? "GET",
      body: init.body,
      client,
      headers: {
        "content-type": "application/json",
        connection: "close",
      },
      signal: AbortSignal.timeout(init.timeoutMs),
    });
    text = await response.text();
  } catch (error) {
    throw describeFetchError(url, error, init.timeoutMs);
  }
  let value: unknown = null;
  try {
    value = JSON.parse(text);
  } catch {
    value = null;
  }
  if (!response.ok) {
    const error = (value as { error?: { code?: string; message?: string } })
      ?.error;
    throw new HostError(
      response.status,
      error?.code ?? `http-${response.status}`,
      error?.message ?? `HTTP ${response.status} from ${url}`,
    );
  }
  if (value === null) {
    throw new Error(`Cannot read reply of ${url}: not JSON`);
  }
  return value;
}

/** Reads the host's status over a new connection. */
export async function fetchStatus(
  to: string,
  opts: { timeoutMs?: number; caCerts?: string[] } = {},
): Promise<HostStatus> {
  return await requestJson(endpoint(to, "v1/status"), {
    timeoutMs: opts.timeoutMs ?? 10_000,
    caCerts: opts.caCerts,
  }) as HostStatus;
}

/**
 * Runs one health check: an `http(s)` URL must answer 2xx, a
 * `tcp://host:port` must accept a connection.
 *
 * @throws {Error} naming the check and why it failed
 */
export async function runCheck(
  check: string,
  timeoutMs: number,
  caCerts?: string[],
): Promise<void> {
  const url = new URL(check);
  if (url.protocol === "tcp:") {
    const hostname = url.hostname.replace(/^\[|\]$/g, "");
    const port = Number(url.port);
    if (!Number.isInteger(port) || port < 1) {
      throw new Error(`Cannot run check ${check}: no port`);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const connecting = Deno.connect({ hostname, port });
    try {
      const conn = await Promise.race([
        connecting,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new DOMException("timed out", "TimeoutError")),
            timeoutMs,
          );
        }),
      ]);
      conn.close();
    } catch (error) {
      connecting.then((c) => c.close(), () => {});
      const why = describeFetchError(check, error, timeoutMs, "check")
        .reason;
      throw new Error(`Cannot pass check ${check}: ${why}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
    return;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(
      `Cannot run check ${check}: use http://, https:// or tcp://`,
    );
  }
  using client = Deno.createHttpClient({ caCerts, poolMaxIdlePerHost: 0 });
  let response: Response;
  try {
    response = await fetch(url, {
      client,
      headers: { connection: "close" },
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    const why = describeFetchError(check, error, timeoutMs, "check").reason;
    throw new Error(`Cannot pass check ${check}: ${why}`, { cause: error });
  }
  await response.body?.cancel();
  if (response.status < 200 || response.status > 299) {
    throw new Error(`Cannot pass check ${check}: HTTP ${response.status}`);
  }
}

const sleep = (ms: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

function randomNonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Pushes a bundle and sees it through: confirmed (exit 0), refused by
 * the host with nothing changed (2), reverted because the window ran out
 * or health checks failed (3), anything else (1).
 *
 * With `confirm` (the default) it checks the host's status endpoint and
 * every extra check over new connections, retrying until a margin
 * before the deadline, then sends one signed heartbeat over a new
 * connection. Without it, it waits for the window's outcome.
 */
export async function applyBundle(opts: ApplyOptions): Promise<ApplyOutcome> {
  const started = Date.now();
  const step = (name: string, message: string) =>
    opts.onStep?.({ atMs: Date.now() - started, step: name, message });
  const requestMs = (opts.requestTimeoutSeconds ?? 10) * 1000;
  const caCerts = opts.caCerts;
  const confirm = opts.confirm ?? true;
  if (confirm && opts.signer === undefined) {
    throw new TypeError("Cannot apply: confirming needs a signer");
  }

  step("push", `pushing bundle to ${opts.to}`);
  let reply: PushReply;
  try {
    reply = await requestJson(endpoint(opts.to, "v1/bundles"), {
      method: "POST",
      body: opts.bundle,
      timeoutMs: requestMs,
      caCerts,
    }) as PushReply;
  } catch (error) {
    // Every coded refusal of the host means nothing changed there; only
    // an internal error or a reply from something else leaves doubt.
    if (
      error instanceof HostError && error.code !== "internal" &&
      !error.code.startsWith("http-")
    ) {
      step(
        "refused",
        `host refused the bundle: ${error.code}: ${error.message}`,
      );
      return {
        result: "refused",
        exitCode: APPLY_EXIT.refused,
        generation: null,
        code: error.code,
        message: error.message,
      };
    }
    // Limitation: when the push reply is lost, the outcome on the host is not followed up; the operator checks it with `status`.
    const why = error instanceof UnreachableError
      ? `${error.url}: ${error.reason}`
      : (error as Error).message;
    step("failed", `push failed: ${why}`);
    return {
      result: "failed",
      exitCode: APPLY_EXIT.failed,
      generation: null,
      message: `Cannot push bundle to ${opts.to}: ${why}`,
    };
  }
  const deadline = Date.parse(reply.deadline);
  step(
    "applied",
    `host ${reply.host} applied generation ${reply.generation} (serial ${reply.serial}, ${reply.name}); deadline ${reply.deadline} (${reply.windowSeconds} s window)`,
  );

  if (!confirm) {
    step(
      "wait",
      "no heartbeat (--no-confirm); waiting for the window to close",
    );
    return await awaitOutcome(opts, reply, deadline, step);
  }

  // Stop checking early enough that the heartbeat still arrives in time.
  const marginMs = Math.min(3000, reply.windowSeconds * 250);
  const checkUntil = deadline - marginMs;
  const checks = opts.checks ?? [];
  let attempt = 0;
  let lastFailure = "";
  let passed = false;
  while (Date.now() < checkUntil) {
    attempt++;
    const remaining = Math.max(200, checkUntil - Date.now());
    const timeoutMs = Math.min(requestMs, remaining, 3000);
    try {
      const status = await fetchStatus(opts.to, { timeoutMs, caCerts });
      if (status.pending?.generation !== reply.generation) {
        throw new Error(
          `host status shows generation ${
            status.pending?.generation ?? status.active?.generation ?? "none"
          } pending, not ${reply.generation}`,
        );
      }
      for (const check of checks) await runCheck(check, timeoutMs, caCerts);
      passed = true;
      break;
    } catch (error) {
      const message = (error as Error).message;
      if (message !== lastFailure) {
        step("check", `health check attempt ${attempt} failed: ${message}`);
        lastFailure = message;
      }
      await sleep(Math.min(500, checkUntil - Date.now()));
    }
  }
  if (!passed) {
    step(
      "checks-failed",
      `health checks did not pass before the margin; no heartbeat sent`,
    );
    return await awaitOutcome(opts, reply, deadline, step);
  }
  step(
    "checks",
    `health checks passed over new connections (status${
      checks.length > 0 ? ` + ${checks.length} check(s)` : ""
    })`,
  );

  const statement = {
    host: reply.host,
    generation: reply.generation,
    nonce: reply.nonce,
    issuedAt: new Date().toISOString(),
  };
  try {
    const envelope = await (opts.signer as StatementSigner)(
      "confirm",
      statement,
    );
    await requestJson(endpoint(opts.to, "v1/heartbeat"), {
      method: "POST",
      body: JSON.stringify(envelope),
      timeoutMs: Math.max(500, Math.min(requestMs, deadline - Date.now())),
      caCerts,
    });
  } catch (error) {
    step(
      "heartbeat-failed",
      `heartbeat not accepted: ${(error as Error).message}`,
    );
    return await awaitOutcome(opts, reply, deadline, step);
  }
  step("confirmed", `generation ${reply.generation} confirmed`);
  return {
    result: "confirmed",
    exitCode: APPLY_EXIT.confirmed,
    generation: reply.generation,
    message: "confirmed",
  };
}

/**
 * Asks the host, over a new connection every 1.5 s (0.5 s once the
 * deadline has passed), what became of the generation, and reports as
 * soon as it is no longer pending: confirmed, or reverted early (a
 * rollback, failed checks on the host) or at the deadline. Gives up
 * `settleSeconds` after the deadline.
 */
async function awaitOutcome(
  opts: ApplyOptions,
  reply: PushReply,
  deadline: number,
  step: (name: string, message: string) => void,
): Promise<ApplyOutcome> {
  const settleUntil = deadline + 250 + (opts.settleSeconds ?? 30) * 1000;
  let lastError = "";
  while (Date.now() < settleUntil) {
    try {
      const status = await fetchStatus(opts.to, {
        timeoutMs: Math.min(3000, Math.max(200, settleUntil - Date.now())),
        caCerts: opts.caCerts,
      });
      if (status.pending?.generation === reply.generation) {
        throw new Error("the generation is still pending");
      }
      if (status.active?.generation === reply.generation) {
        step("confirmed", `generation ${reply.generation} was confirmed`);
        return {
          result: "confirmed",
          exitCode: APPLY_EXIT.confirmed,
          generation: reply.generation,
          message: "confirmed by another heartbeat",
        };
      }
      const now = status.active === null
        ? "no policy (fail open)"
        : `generation ${status.active.generation} (serial ${status.active.serial})`;
      step(
        "reverted",
        `host reverted generation ${reply.generation}; active: ${now}`,
      );
      return {
        result: "reverted",
        exitCode: APPLY_EXIT.reverted,
        generation: reply.generation,
        message: `the host reverted generation ${reply.generation}`,
      };
    } catch (error) {
      lastError = (error as Error).message;
      const now = Date.now();
      // Before the deadline poll gently; just past it, closely.
      const pause = now < deadline ? Math.min(1500, deadline + 250 - now) : 500;
      await sleep(Math.min(pause, settleUntil - now));
    }
  }
  step("unknown", `cannot tell whether the host reverted: ${lastError}`);
  return {
    result: "failed",
    exitCode: APPLY_EXIT.failed,
    generation: reply.generation,
    message:
      `Cannot confirm the host reverted generation ${reply.generation}: ${lastError}`,
  };
}

/** Options of {@linkcode requestRollback}. */
export interface RollbackOptions {
  to: string;
  signer: StatementSigner;
  /** Revert to no policy at all instead of the last known good. */
  empty?: boolean;
  /** Host name for the statement; read from the host's status if unset. */
  host?: string;
  /** Validity of the statement in seconds (default 60). */
  validSeconds?: number;
  caCerts?: string[];
  timeoutMs?: number;
}

/**
 * Signs a rollback statement (fresh nonce, short validity) and sends it
 * over a new connection.
 *
 * @returns the host's reply (`{ host, to, generation }`)
 * @throws {HostError} when the host refuses it
 */
export async function requestRollback(
  opts: RollbackOptions,
): Promise<Record<string, unknown>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const host = opts.host ??
    (await fetchStatus(opts.to, { timeoutMs, caCerts: opts.caCerts })).host;
  const now = Date.now();
  const statement = {
    host,
    nonce: randomNonce(),
    issuedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + (opts.validSeconds ?? 60) * 1000).toISOString(),
    to: opts.empty ? "empty" : "last-known-good",
  };
  const envelope = await opts.signer("rollback", statement);
  return await requestJson(endpoint(opts.to, "v1/rollback"), {
    method: "POST",
    body: JSON.stringify(envelope),
    timeoutMs,
    caCerts: opts.caCerts,
  }) as Record<string, unknown>;
}
