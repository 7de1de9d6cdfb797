/**
 * The control API: a small JSON-over-HTTP(S) server in front of the
 * policy manager. Bodies are bounded in size and in time, every error is
 * `{ "error": { "code", "message" } }`, and each request carries the
 * identity of the TCP connection it came over so that the manager can
 * insist on a heartbeat arriving over a connection opened after the push.
 *
 * @module
 */
import type { ListenAddress } from "./config.ts";
import type { Logger } from "./logger.ts";
import { Metrics } from "./metrics.ts";

/** Default bound on a request body: 16 MiB. */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Default time a client has to send a request body: 10 s. */
export const BODY_TIMEOUT_MS = 10_000;

/** The part of the policy manager the control API drives. */
export interface ControlManager {
  push(
    envelope: Uint8Array,
    meta?: { connection?: string },
  ): Promise<object>;
  confirm(
    envelope: Uint8Array,
    meta?: { connection?: string },
  ): Promise<object>;
  rollback(envelope: Uint8Array): Promise<object>;
  status(): {
    state: string;
    active: { generation: number; rules: number } | null;
    pending: { secondsLeft: number } | null;
    stateWritable: boolean;
  };
  current(): object | null;
  counters(): { id: string; packets: bigint; bytes: bigint }[];
}

/** Options of {@linkcode createHandler} and {@linkcode startControlServer}. */
export interface ControlOptions {
  manager: ControlManager;
  /** This host's name, returned with status and push replies. */
  host: string;
  logger?: Logger;
  metrics?: Metrics;
  /** Bound on a request body in bytes; {@linkcode MAX_BODY_BYTES}. */
  maxBodyBytes?: number;
  /** Time allowed for a body in ms; {@linkcode BODY_TIMEOUT_MS}. */
  bodyTimeoutMs?: number;
}

/** An HTTP error reply with a machine code and a message for people. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail?: object;

  constructor(status: number, code: string, message: string, detail?: object) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

const JSON_HEADERS = { "content-type": "application/json" };

function json(status: number, body: unknown, headers = {}): Response {
  return new Response(JSON.stringify(body, bigintReplacer), {
    status,
    headers: { ...JSON_HEADERS, ...headers },
  });
}

function bigintReplacer(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}

/**
 * Reads a request body of at most `maxBytes` within `timeoutMs`.
 *
 * @throws {HttpError} 413 when too large, 408 when too slow, 400 when
 * the body is missing or the stream fails
 */
export async function readBoundedBody(
  request: Request,
  maxBytes: number,
  timeoutMs: number,
): Promise<Uint8Array> {
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) {
    throw new HttpError(
      413,
      "body-too-large",
      `Cannot read request: body of ${declared} bytes exceeds the limit of ${maxBytes} bytes`,
    );
  }
  if (request.body === null) {
    throw new HttpError(400, "empty-body", "Cannot read request: no body");
  }

  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new HttpError(
          408,
          "body-timeout",
          `Cannot read request: body not received within ${timeoutMs / 1000} s`,
        ),
      );
    }, timeoutMs);
  });
  try {
    while (true) {
      const { done, value } = await Promise.race([reader.read(), timeout]);
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        throw new HttpError(
          413,
          "body-too-large",
          `Cannot read request: body exceeds the limit of ${maxBytes} bytes`,
        );
      }
      chunks.push(value);
    }
  } catch (error) {
    reader.cancel().catch(() => {});
    if (error instanceof HttpError) throw error;
    throw new HttpError(
      400,
      "body-unreadable",
      `Cannot read request: ${(error as Error).message}`,
    );
  } finally {
    clearTimeout(timer);
  }

  if (total === 0) {
    throw new HttpError(400, "empty-body", "Cannot read request: no body");
  }
  const body = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

/**
 * Identity of the connection a request came over: the peer's
 * `address:port`, unique among open TCP connections. Null over a Unix
 * socket, where Deno exposes no per-connection identity.
 */
export function connectionId(info: Deno.ServeHandlerInfo): string | null {
  const addr = info.remoteAddr as Deno.Addr;
  if (addr.transport === "tcp" || addr.transport === "udp") {
    // Limitation: the identity is the peer's address and port, so a client that reuses its source port for a new connection looks like the same connection.
    return addr.hostname.includes(":")
      ? `[${addr.hostname}]:${addr.port}`
      : `${addr.hostname}:${addr.port}`;
  }
  // Limitation: over a Unix socket every connection looks the same, so the same-connection check of heartbeats is off there.
  return null;
}

/**
 * A stand-in for the policy manager while the service starts: every
 * route answers 503 `starting` until {@linkcode ManagerGate.ready}
 * hands over the real manager. It lets the service bind its address
 * before it touches the engine.
 */
export interface ManagerGate {
  /** Pass this to {@linkcode startControlServer}. */
  readonly manager: ControlManager;
  /** From now on, requests go to `manager`. */
  ready(manager: ControlManager): void;
}

/**
 * Makes a {@linkcode ManagerGate}.
 *
 * @example
 * ```ts
 * import { createManagerGate } from "./server.ts";
 * const gate = createManagerGate();
 * try {
 *   gate.manager.status();
 *   throw new Error("should answer 503");
 * } catch (error) {
 *   if ((error as { status?: number }).status !== 503) throw error;
 * }
 * ```
 */
export function createManagerGate(): ManagerGate {
  let real: ControlManager | null = null;
  const get = (): ControlManager => {
    if (real !== null) return real;
    throw new HttpError(
      503,
      "starting",
      "Cannot handle request: the service is starting (restoring the last " +
        "known good policy); retry in a few seconds",
    );
  };
  return {
    manager: {
      push: (envelope, meta) => get().push(envelope, meta),
      confirm: (envelope, meta) => get().confirm(envelope, meta),
      rollback: (envelope) => get().rollback(envelope),
      status: () => get().status(),
      current: () => get().current(),
      counters: () => get().counters(),
    },
    ready(manager) {
      real = manager;
    },
  };
}

const POSIX_PATH = /(^|[\s'"(=])\/(?:[^\s'"():,;/]+\/)+[^\s'"():,;]*/g;
const WINDOWS_PATH = /(^|[\s'"(=])[A-Za-z]:\\[^\s'"():,;]*/g;

/**
 * Replaces local file paths in a message sent to a remote client with
 * `<local path>`; the log keeps the full message.
 *
 * @example
 * ```ts
 * import { redactPaths } from "./server.ts";
 * const text = redactPaths("Cannot write state file /var/lib/p/x: full");
 * if (text !== "Cannot write state file <local path>: full") {
 *   throw new Error(text);
 * }
 * ```
 */
export function redactPaths(message: string): string {
  return message
    .replace(POSIX_PATH, "$1<local path>")
    .replace(WINDOWS_PATH, "$1<local path>");
}

function toHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  const e = error as {
    httpStatus?: unknown;
    code?: unknown;
    message?: unknown;
    detail?: unknown;
  };
  if (
    error instanceof Error && typeof e.httpStatus === "number" &&
    typeof e.code === "string"
  ) {
    return new HttpError(
      e.httpStatus,
      e.code,
      redactPaths(error.message),
      typeof e.detail === "object" && e.detail !== null ? e.detail : undefined,
    );
  }
  return new HttpError(
    500,
    "internal",
    `Cannot handle request: ${
      redactPaths(error instanceof Error ? error.message : String(error))
    }`,
  );
}

const ROUTES: Record<string, string> = {
  "/v1/bundles": "POST",
  "/v1/heartbeat": "POST",
  "/v1/rollback": "POST",
  "/v1/status": "GET",
  "/v1/policy": "GET",
  "/healthz": "GET",
  "/metrics": "GET",
};

/**
 * Builds the request handler of the control API.
 *
 * @example
 * ```ts
 * import { createHandler } from "./server.ts";
 * const handler = createHandler({
 *   host: "web-1",
 *   manager: {
 *     push: () => Promise.resolve({}),
 *     confirm: () => Promise.resolve({}),
 *     rollback: () => Promise.resolve({}),
 *     status: () => ({ state: "idle", active: null, pending: null,
 *       stateWritable: true }),
 *     current: () => null,
 *     counters: () => [],
 *   },
 * });
 * const info = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1",
 *   port: 5000 } } as Deno.ServeHandlerInfo;
 * const reply = await handler(new Request("http://h/healthz"), info);
 * if (reply.status !== 200) throw new Error();
 * ```
 */
export function createHandler(
  opts: ControlOptions,
): (request: Request, info: Deno.ServeHandlerInfo) => Promise<Response> {
  const metrics = opts.metrics ?? new Metrics();
  const maxBytes = opts.maxBodyBytes ?? MAX_BODY_BYTES;
  const timeoutMs = opts.bodyTimeoutMs ?? BODY_TIMEOUT_MS;
  const { manager, host, logger } = opts;

  const route = async (
    request: Request,
    info: Deno.ServeHandlerInfo,
    path: string,
  ): Promise<Response> => {
    const connection = connectionId(info) ?? undefined;
    switch (path) {
      case "/v1/bundles": {
        const body = await readBoundedBody(request, maxBytes, timeoutMs);
        const result = await manager.push(body, { connection });
        return json(200, { host, ...result });
      }
      case "/v1/heartbeat": {
        const body = await readBoundedBody(request, maxBytes, timeoutMs);
        const result = await manager.confirm(body, { connection });
        return json(200, { host, status: "confirmed", ...result });
      }
      case "/v1/rollback": {
        const body = await readBoundedBody(request, maxBytes, timeoutMs);
        const result = await manager.rollback(body);
        return json(200, { host, ...result });
      }
      case "/v1/status":
        return json(200, { host, ...manager.status() });
      case "/v1/policy": {
        const current = manager.current();
        if (current === null) {
          throw new HttpError(
            404,
            "no-policy",
            "Cannot show policy: no policy is active on this host",
          );
        }
        return json(200, current);
      }
      case "/healthz": {
        const status = manager.status();
        return json(200, { ok: true, state: status.state });
      }
      default: {
        const status = manager.status();
        let counters: { id: string; packets: bigint; bytes: bigint }[] = [];
        try {
          counters = manager.counters();
        } catch (error) {
          logger?.warn("metrics.counters-failed", {
            message: (error as Error).message,
          });
        }
        const text = metrics.render({
          state: status.state,
          activeGeneration: status.active?.generation ?? null,
          activeRules: status.active?.rules ?? 0,
          pending: status.pending !== null,
          secondsLeft: status.pending?.secondsLeft ?? null,
          stateWritable: status.stateWritable,
          counters,
        });
        return new Response(text, {
          headers: { "content-type": "text/plain; version=0.0.4" },
        });
      }
    }
  };

  return async (request, info) => {
    const path = new URL(request.url).pathname;
    const method = ROUTES[path];
    let response: Response;
    if (method === undefined) {
      response = json(404, {
        error: {
          code: "not-found",
          message: `Cannot route ${path}: no such endpoint`,
        },
      });
    } else if (request.method !== method) {
      response = json(405, {
        error: {
          code: "method-not-allowed",
          message: `Cannot ${request.method} ${path}: use ${method}`,
        },
      }, { allow: method });
    } else {
      try {
        response = await route(request, info, path);
      } catch (caught) {
        const error = toHttpError(caught);
        if (
          (error.status >= 500 || error.status === 408) &&
          error.code !== "starting"
        ) {
          logger?.log({
            level: error.status >= 500 ? "error" : "warn",
            event: "http.error",
            path,
            status: error.status,
            code: error.code,
            message: caught instanceof Error ? caught.message : error.message,
            connection: connectionId(info),
          });
        } else if (error.status === 413 || error.status === 400) {
          logger?.warn("http.refused", {
            path,
            status: error.status,
            code: error.code,
            message: error.message,
          });
        }
        response = json(error.status, {
          error: {
            code: error.code,
            message: error.message,
            ...(error.detail === undefined ? {} : { detail: error.detail }),
          },
        });
      }
    }
    metrics.observeResponse(
      method === undefined ? "other" : path,
      response.status,
    );
    return response;
  };
}

/** A running control API server. */
export interface ControlServer extends AsyncDisposable {
  /** The address it listens on (the real port when 0 was asked). */
  readonly addr: Deno.NetAddr | Deno.UnixAddr;
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;
  /** Stops accepting connections and waits for requests in flight. */
  shutdown(): Promise<void>;
}

/**
 * Starts the control API on `listen`, with TLS when `tls` holds PEM
 * text of a certificate and key.
 *
 * @throws {Deno.errors.AddrInUse} and other listen errors, unchanged
 */
export function startControlServer(
  opts: ControlOptions & {
    listen: ListenAddress;
    tls?: { cert: string; key: string } | null;
  },
): ControlServer {
  const handler = createHandler(opts);
  // Limitation: Deno.serve (2.9) has no header or idle-connection timeout, so a client that sends headers slowly or holds a connection idle is not cut off (only the body has the 10 s bound); restrict the control port to management addresses with a Palisade permit/block rule pair.
  const common = {
    onListen: () => {},
    onError: (error: unknown) => {
      opts.logger?.error("http.error", {
        message: (error as Error)?.message ?? String(error),
      });
      return json(500, {
        error: { code: "internal", message: "Cannot handle request" },
      });
    },
  };
  const tls = opts.tls ?? undefined;
  let server: Deno.HttpServer<Deno.NetAddr | Deno.UnixAddr>;
  if (opts.listen.kind === "unix") {
    try {
      Deno.removeSync(opts.listen.path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    server = Deno.serve({ ...common, path: opts.listen.path }, handler);
  } else {
    server = Deno.serve({
      ...common,
      hostname: opts.listen.hostname,
      port: opts.listen.port,
      ...(tls === undefined ? {} : { cert: tls.cert, key: tls.key }),
    }, handler);
  }
  let stopped: Promise<void> | null = null;
  const shutdown = () => {
    stopped ??= server.shutdown();
    return stopped;
  };
  return {
    addr: server.addr,
    finished: server.finished,
    shutdown,
    [Symbol.asyncDispose]: shutdown,
  };
}
