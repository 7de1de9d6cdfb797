/**
 * The policy manager: the one place that changes what the engine
 * enforces. It accepts signed bundles, applies them as one transaction,
 * arms the commit-window watchdog, promotes a confirmed generation to
 * last known good (LKG), and reverts on expiry, on a signed rollback
 * command and at start after a crash inside a window.
 *
 * API NOTE: beyond the agreed shapes, `ManagerOptions` takes two
 * optional test seams, `fs` (state file operations) and `timers` (the
 * watchdog's timer functions), and `ManagerEvent`, `ManagerTimers`,
 * `CrashPoint` and `ApplyStats` (from backend.ts) are exported types.
 *
 * @module
 */
import {
  DEFAULT_CLOCK_SKEW_SECONDS,
  type TrustStore,
  verifyBundle,
  verifyConfirm,
  VerifyError,
  verifyRollback,
} from "../signing/mod.ts";
import {
  type ApplyStats,
  type Backend,
  EngineError,
  ForeignObjectsError,
  type RuleCounter,
} from "./backend.ts";
import { diffPolicies } from "./diff.ts";
import { PolicyError, validatePolicyValue } from "./parse.ts";
import {
  GenerationStore,
  type StateFs,
  StateWriteError,
  type StoredGeneration,
  type StoreProblem,
  type WithdrawnRecord,
} from "./store.ts";
import type { NormalPolicy } from "./types.ts";

/** Every named step at which `crashPoint` is called, in no set order. */
export const CRASH_POINTS = [
  "push.after-pending-write",
  "push.after-apply",
  "push.after-status-write",
  "confirm.before-write",
  "confirm.after-write",
  "revert.before-apply",
  "revert.after-apply",
  "revert.after-status-write",
  "start.after-load",
  "start.after-recover",
] as const;

/** One of {@linkcode CRASH_POINTS}. */
export type CrashPoint = typeof CRASH_POINTS[number];

/** A structured operational event; the service logs it as one line. */
export interface ManagerEvent {
  event: string;
  level: "info" | "warn" | "error";
  [field: string]: unknown;
}

/** The timer functions the watchdog uses; real timers by default. */
export interface ManagerTimers {
  /** Calls `fn` after `ms` milliseconds; returns a handle for `clear`. */
  set(fn: () => Promise<void>, ms: number): unknown;
  clear(handle: unknown): void;
}

/** Options of {@linkcode PolicyManager.open}. */
export interface ManagerOptions {
  backend: Backend;
  stateDir: string;
  trust: TrustStore;
  /** This host's name; bundles, confirms and rollbacks must name it. */
  host: string;
  /** This host's groups, for `group:NAME` targets. */
  groups: string[];
  /** Commit window in seconds: `default` when a bundle names none,
   * `max` the longest a bundle may ask for. */
  commitWindow: { default: number; max: number };
  /** Generations kept in the state directory (default 20). */
  maxGenerations?: number;
  /** Largest policy accepted, in rules. */
  maxRules?: number;
  /** Wall clock in ms since the epoch; `Date.now` by default. */
  now?: () => number;
  /** Receives every operational event; must not throw. */
  onEvent?: (event: ManagerEvent) => void;
  /** Test hook called at each of {@linkcode CRASH_POINTS}; a throw
   * simulates a crash at that step. */
  crashPoint?: (name: CrashPoint) => void;
  /** Backoff of engine retries (default 3 attempts, 250 ms to 5 s). */
  retry?: { attempts: number; baseMs: number; maxMs: number };
  /** State file operations (test seam); the real file system by default. */
  fs?: StateFs;
  /** Watchdog timers (test seam); `setTimeout` by default. */
  timers?: ManagerTimers;
  /** Seconds between read-backs comparing the live engine with the
   * active policy; 0 or absent: no periodic read-back. */
  driftCheckSeconds?: number;
}

/** What a successful push returns. */
export interface PushResult {
  generation: number;
  serial: number;
  name: string;
  /** End of the commit window, ISO 8601. */
  deadline: string;
  windowSeconds: number;
  /** Single-use nonce the heartbeat must carry (32 hex digits). */
  nonce: string;
  stats: ApplyStats;
}

/** What a successful confirm returns. */
export interface ConfirmResult {
  generation: number;
  serial: number;
}

/** What a rollback did. */
export interface RollbackResult {
  to: "last-known-good" | "empty";
  generation: number | null;
}

/** A snapshot of the manager, cheap enough for every status request. */
export interface ManagerStatus {
  /** `pending` inside a commit window, `drifted` when the live engine
   * no longer holds the active policy, `failed-open` when nothing is
   * enforced after a failure, `withdrawn` after a signed rollback to
   * empty, else `idle`. */
  state: "idle" | "pending" | "drifted" | "failed-open" | "withdrawn";
  active:
    | { generation: number; serial: number; name: string; rules: number }
    | null;
  pending: {
    generation: number;
    serial: number;
    name: string;
    deadline: string;
    secondsLeft: number;
  } | null;
  lastKnownGood: { generation: number; serial: number; name: string } | null;
  lastError: { code: string; message: string; at: string } | null;
  stateWritable: boolean;
  highestSerial: number;
  problems: StoreProblem[];
  /** A signed rollback to empty in force until a push is confirmed. */
  withdrawn: WithdrawnRecord | null;
  /** What the last read-back found when the engine differed. */
  drift: { detail: string; since: string } | null;
  /** Where used rollback nonces are kept: `disk` survives a restart,
   * `memory` (state not writable) does not. */
  rollbackNonces: "disk" | "memory";
}

/**
 * A request the manager refused; nothing changed. `code` is stable
 * (a verification reason such as `serial-too-low`, or `pending`,
 * `bad-policy`, `bad-window`, `state-read-only`, `state-disk-full`,
 * `state-io`, `engine-failed`, `unsupported-rule`, `no-pending`,
 * `wrong-generation`, `wrong-nonce`, `replayed`, `window-closed`,
 * `issued-before-push`, `same-connection`, `closed`, `internal`),
 * `httpStatus` the status an HTTP front end should answer with.
 * `message` is safe to send to a remote client; `logMessage` may name
 * local paths and is for the log only.
 */
export class RefusedError extends Error {
  readonly code: string;
  readonly httpStatus: number;
  readonly detail?: Record<string, unknown>;
  readonly logMessage: string;

  constructor(
    code: string,
    httpStatus: number,
    message: string,
    detail?: Record<string, unknown>,
    logMessage?: string,
  ) {
    super(message);
    this.name = "RefusedError";
    this.code = code;
    this.httpStatus = httpStatus;
    this.detail = detail;
    this.logMessage = logMessage ?? message;
  }
}

const VERIFY_STATUS: Record<string, number> = {
  "oversize": 413,
  "unknown-key": 403,
  "key-not-allowed": 403,
  "bad-signature": 403,
  "non-canonical-signature": 403,
  "small-order-key": 403,
  "too-few-signers": 403,
  "expired": 403,
  "not-yet-valid": 403,
  "wrong-host": 403,
  "serial-too-low": 409,
};

const STATE_STATUS = { "read-only": 503, "disk-full": 507, "io": 500 };

const DEFAULT_RETRY = { attempts: 3, baseMs: 250, maxMs: 5_000 };

/** Confirm nonces remembered to name a replay as such. */
const MAX_CONFIRM_NONCES = 1_000;

/** How long past its expiry a rollback nonce is remembered. */
const NONCE_MARGIN_MS = 3_600_000;

/** Most rollback nonces remembered; they expire with their statement. */
const MAX_ROLLBACK_NONCES = 10_000;

interface Pending {
  gen: StoredGeneration;
  deadline: number;
  windowSeconds: number;
  nonce: string;
  connection?: string;
  timer?: unknown;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function sameText(a: string, b: string): boolean {
  // Constant time in the contents, so a nonce cannot be guessed bytewise.
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function engineFields(error: unknown): Record<string, unknown> {
  if (error instanceof EngineError) {
    return {
      call: error.call,
      code: error.code,
      codeName: error.codeName,
      ruleId: error.ruleId,
      transient: error.transient,
      message: error.message,
    };
  }
  return { message: messageOf(error) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const realTimers: ManagerTimers = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (handle) => clearTimeout(handle as number),
};

/**
 * Owns the engine's policy for one host: push, confirm, rollback and
 * the commit-window watchdog, one operation at a time.
 *
 * @example
 * ```ts ignore
 * await using manager = await PolicyManager.open({
 *   backend, stateDir: "/var/lib/palisade", trust, host: "web-1",
 *   groups: [], commitWindow: { default: 120, max: 3600 },
 * });
 * const { nonce, deadline } = await manager.push(bundleBytes);
 * ```
 */
export class PolicyManager implements AsyncDisposable {
  #opts: ManagerOptions;
  #backend: Backend;
  #now: () => number;
  #timers: ManagerTimers;
  #retry: { attempts: number; baseMs: number; maxMs: number };
  #store!: GenerationStore;

  /** What the engine holds as far as we know (null: nothing). */
  #active: StoredGeneration | null = null;
  /** False when a failed call left the engine in an unknown state. */
  #trusted = true;
  #failedOpen = false;
  #pending: Pending | null = null;
  #lastError: ManagerStatus["lastError"] = null;
  #stateWritable = false;
  #usedConfirmNonces = new Set<string>();
  #usedRollbackNonces = new Map<string, number>();
  #noncesOnDisk = true;
  #withdrawn: WithdrawnRecord | null = null;
  #drift: ManagerStatus["drift"] = null;
  #driftTimer: unknown = undefined;
  /** The last generation whose window closed, to name late heartbeats. */
  #lastClosed: { generation: number; nonce: string; deadline: number } | null =
    null;

  #queue: Promise<unknown> = Promise.resolve();
  #closing: Promise<void> | null = null;

  private constructor(opts: ManagerOptions) {
    this.#opts = opts;
    this.#backend = opts.backend;
    this.#now = opts.now ?? Date.now;
    this.#timers = opts.timers ?? realTimers;
    this.#retry = opts.retry ?? DEFAULT_RETRY;
  }

  /**
   * Loads the state directory and brings the engine to the last known
   * good: a generation left pending by a crash or restart is marked
   * reverted first, then the LKG is re-applied (kept when the engine
   * already holds exactly it), or everything is removed when there is
   * none. Never throws for bad state or a failing engine: it records
   * `lastError` and fails open.
   *
   * @param opts backend, state directory, trust and host identity
   */
  static async open(opts: ManagerOptions): Promise<PolicyManager> {
    const manager = new PolicyManager(opts);
    await manager.#exclusive(() => manager.#start());
    manager.#armDrift();
    return manager;
  }

  // ---- start-up ----------------------------------------------------

  async #start(): Promise<void> {
    const opts = this.#opts;
    this.#store = await GenerationStore.load(opts.stateDir, {
      trust: opts.trust,
      host: opts.host,
      groups: opts.groups,
      maxGenerations: opts.maxGenerations,
      maxRules: opts.maxRules,
      fs: opts.fs,
    });
    for (const problem of this.#store.problems) {
      this.#emit("state.problem", "warn", { ...problem });
    }
    this.#crash("start.after-load");

    this.#stateWritable = await this.#probe();
    this.#usedRollbackNonces = this.#store.rollbackNonces();
    this.#withdrawn = this.#store.withdrawn;
    if (this.#withdrawn) {
      this.#emit("withdrawn", "warn", {
        since: this.#withdrawn.since,
        reason: this.#withdrawn.reason,
        detail: "a signed rollback to empty is in force: nothing is " +
          "re-applied until a new push is confirmed",
      });
    }
    const storedLkg = this.#store.lastKnownGood();
    const lkg = this.#withdrawn ? null : storedLkg;
    const pending = this.#store.pending();
    let kept = false;

    if (pending.length > 0) {
      const newest = pending.at(-1)!;
      this.#emit("recover.pending", "warn", {
        generation: newest.generation,
        serial: newest.serial,
        name: newest.name,
        lastKnownGood: lkg?.generation ?? null,
      });
      for (const gen of pending) {
        await this.#markReverted(
          gen,
          "the service restarted inside the commit window",
        );
      }
      if (lkg && this.#readBackOk(lkg.policy, true)) {
        // The crash came before the pending policy reached the engine.
        this.#active = lkg;
        kept = true;
      } else {
        await this.#restore(lkg, newest.policy, "recover");
      }
    } else if (lkg && this.#readBackOk(lkg.policy, true)) {
      // The engine kept the LKG across the restart: nothing to apply.
      this.#active = lkg;
      kept = true;
    } else {
      await this.#restore(lkg, null, "start");
    }
    this.#crash("start.after-recover");

    // Stored generations existed but none can be trusted: that is a
    // fall-back to fail-open, not a fresh host.
    if (
      !storedLkg && this.#store.onDisk().length > this.#store.list().length
    ) {
      const why = "Cannot restore a last known good policy: no stored " +
        "generation is usable (see problems); nothing is enforced";
      this.#failedOpen = true;
      this.#fail("no-last-known-good", why);
      this.#emit("failopen", "error", { reason: why });
    }
    this.#emit("start", "info", {
      active: this.#active?.generation ?? null,
      lastKnownGood: storedLkg?.generation ?? null,
      withdrawn: this.#withdrawn !== null,
      kept,
      stateWritable: this.#stateWritable,
      highestSerial: this.#store.highestSerial,
      problems: this.#store.problems.length,
    });
  }

  async #probe(): Promise<boolean> {
    try {
      await this.#store.probe();
      return true;
    } catch (error) {
      this.#emit("state.problem", "warn", {
        file: this.#opts.stateDir,
        reason: `state is not writable; pushes are refused until it is: ${
          messageOf(error)
        }`,
      });
      return false;
    }
  }

  #readBackOk(expected: NormalPolicy | null, quiet = false): boolean {
    try {
      const result = this.#backend.readBack(expected);
      if (result.ok) return true;
      if (quiet) return false;
      this.#emit("readback.mismatch", "warn", {
        expected: expected?.name ?? null,
        detail: result.detail,
      });
    } catch (error) {
      this.#emit("readback.mismatch", "warn", {
        expected: expected?.name ?? null,
        detail: messageOf(error),
      });
    }
    return false;
  }

  // ---- public operations ----------------------------------------------

  /**
   * Accepts a signed bundle: verifies it (trust, host, serial above the
   * floor), validates its policy, writes it as a pending generation,
   * applies it as one engine transaction and arms the watchdog.
   *
   * @param envelope the DSSE envelope bytes as received
   * @param meta `connection` identifies the transport connection, so
   *   that the heartbeat must arrive over another one
   * @throws {RefusedError} refused; the enforced policy is unchanged
   */
  push(
    envelope: Uint8Array,
    meta: { connection?: string } = {},
  ): Promise<PushResult> {
    return this.#operation("push", () => this.#push(envelope, meta));
  }

  /**
   * Confirms the pending generation with a signed heartbeat carrying the
   * nonce its push returned; it becomes the last known good.
   *
   * @throws {RefusedError} refused; the window keeps running
   */
  confirm(
    envelope: Uint8Array,
    meta: { connection?: string } = {},
  ): Promise<ConfirmResult> {
    return this.#operation("confirm", () => this.#confirm(envelope, meta));
  }

  /**
   * Reverts now, on a signed rollback command, to the last known good
   * or to nothing (`to: "empty"`); a pending generation is reverted.
   *
   * @throws {RefusedError} the command was refused; nothing changed
   */
  rollback(envelope: Uint8Array): Promise<RollbackResult> {
    return this.#operation("rollback", () => this.#rollback(envelope));
  }

  /** A snapshot of the manager; synchronous and cheap. */
  status(): ManagerStatus {
    const p = this.#pending;
    const lkg = this.#store.lastKnownGood();
    const a = this.#active;
    return {
      state: p
        ? "pending"
        : this.#drift
        ? "drifted"
        : this.#failedOpen
        ? "failed-open"
        : this.#withdrawn
        ? "withdrawn"
        : "idle",
      active: a
        ? {
          generation: a.generation,
          serial: a.serial,
          name: a.name,
          rules: a.policy.rules.length,
        }
        : null,
      pending: p
        ? {
          generation: p.gen.generation,
          serial: p.gen.serial,
          name: p.gen.name,
          deadline: new Date(p.deadline).toISOString(),
          secondsLeft: Math.max(
            0,
            Math.ceil((p.deadline - this.#now()) / 1000),
          ),
        }
        : null,
      lastKnownGood: lkg
        ? { generation: lkg.generation, serial: lkg.serial, name: lkg.name }
        : null,
      lastError: this.#lastError ? { ...this.#lastError } : null,
      stateWritable: this.#stateWritable,
      highestSerial: this.#store.highestSerial,
      problems: [...this.#store.problems],
      withdrawn: this.#withdrawn ? { ...this.#withdrawn } : null,
      drift: this.#drift ? { ...this.#drift } : null,
      rollbackNonces: this.#noncesOnDisk ? "disk" : "memory",
    };
  }

  /**
   * Reads the live engine back and compares it with the active policy.
   * A mismatch (e.g. an operator's `panic` beside the service) sets
   * state `drifted` and `lastError` code `engine-drift` and emits a
   * `drift` event; nothing is re-applied, so an operator's removal
   * stays. A push or a restart re-applies; a later match clears it.
   *
   * @returns true when the engine holds the active policy
   */
  checkDrift(): Promise<boolean> {
    return this.#exclusive(() => Promise.resolve(this.#checkDrift()));
  }

  #checkDrift(): boolean {
    if (this.#closing) return this.#drift === null;
    const a = this.#active;
    let detail: string | null = null;
    try {
      const result = this.#backend.readBack(a?.policy ?? null);
      if (!result.ok) detail = result.detail;
    } catch (error) {
      detail = `cannot read the engine: ${messageOf(error)}`;
    }
    if (detail === null) {
      if (this.#drift) {
        this.#clearDrift();
        this.#trusted = true;
        this.#emit("drift.cleared", "info", {
          generation: a?.generation ?? null,
        });
      }
      return true;
    }
    const first = this.#drift === null;
    this.#drift = {
      detail,
      since: this.#drift?.since ?? new Date(this.#now()).toISOString(),
    };
    this.#trusted = false;
    if (first) {
      const what = a ? `generation ${a.generation} ('${a.name}')` : "nothing";
      this.#fail(
        "engine-drift",
        `The live engine no longer holds ${what}: ${detail}; it is not ` +
          "re-applied automatically, a push or a restart re-applies it",
      );
      this.#emit("drift", "warn", {
        generation: a?.generation ?? null,
        detail,
      });
    }
    return false;
  }

  #clearDrift() {
    this.#drift = null;
    if (this.#lastError?.code === "engine-drift") this.#lastError = null;
  }

  #armDrift() {
    const seconds = this.#opts.driftCheckSeconds ?? 0;
    if (!(seconds > 0) || this.#closing) return;
    this.#driftTimer = this.#timers.set(async () => {
      this.#driftTimer = undefined;
      await this.checkDrift().catch(() => {});
      this.#armDrift();
    }, seconds * 1000);
  }

  /** The generation in force and its policy, or null when none is. */
  current():
    | { generation: number; serial: number; name: string; policy: NormalPolicy }
    | null {
    const a = this.#active;
    if (!a) return null;
    return {
      generation: a.generation,
      serial: a.serial,
      name: a.name,
      policy: structuredClone(a.policy),
    };
  }

  /** Per-rule hit counters from the engine. */
  counters(): RuleCounter[] {
    return this.#backend.counters();
  }

  /**
   * Waits for the operation in flight, disarms the watchdog and stops
   * accepting requests. The enforced policy stays; a pending generation
   * stays pending on disk and is reverted at the next start. Safe to
   * call twice; does not close the backend.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#driftTimer !== undefined) {
        this.#timers.clear(this.#driftTimer);
        this.#driftTimer = undefined;
      }
      await this.#queue;
      this.#disarm();
      if (this.#driftTimer !== undefined) {
        this.#timers.clear(this.#driftTimer);
        this.#driftTimer = undefined;
      }
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---- plumbing --------------------------------------------------------

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  #operation<T>(op: string, fn: () => Promise<T>): Promise<T> {
    return this.#exclusive(async () => {
      try {
        if (this.#closing) {
          throw new RefusedError(
            "closed",
            503,
            `Cannot ${op}: the service is stopping`,
          );
        }
        return await fn();
      } catch (error) {
        if (error instanceof RefusedError) {
          this.#emit("refused", "warn", {
            op,
            code: error.code,
            reason: error.logMessage,
            detail: error.detail,
          });
        }
        throw error;
      }
    });
  }

  #emit(event: string, level: ManagerEvent["level"], fields = {}) {
    try {
      this.#opts.onEvent?.({ event, level, ...fields });
    } catch {
      // A failing event sink must never change what the manager does.
    }
  }

  #crash(name: CrashPoint) {
    this.#opts.crashPoint?.(name);
  }

  #fail(code: string, message: string) {
    this.#lastError = {
      code,
      message,
      at: new Date(this.#now()).toISOString(),
    };
  }

  #backoff(attempt: number): Promise<void> {
    const { baseMs, maxMs } = this.#retry;
    return sleep(Math.min(maxMs, baseMs * 2 ** (attempt - 1)));
  }

  #refuseVerify(error: unknown, what: string): never {
    if (error instanceof VerifyError) {
      // The trust store's local path stays in the log.
      const source = this.#opts.trust.source;
      const message = source
        ? error.message.split(`trust store ${source}`)
          .join("the host's trust store")
          .split(source).join("the host's trust store")
        : error.message;
      throw new RefusedError(
        error.reason,
        VERIFY_STATUS[error.reason] ?? 400,
        message,
        undefined,
        error.message,
      );
    }
    throw new RefusedError(
      "internal",
      500,
      `Cannot verify ${what}: ${messageOf(error)}`,
    );
  }

  #refuseState(error: unknown, outcome: string): never {
    const code = error instanceof StateWriteError ? error.code : "io";
    this.#stateWritable = false;
    this.#fail(`state-${code}`, messageOf(error));
    this.#emit("state.problem", "error", {
      file: error instanceof StateWriteError ? error.path : this.#opts.stateDir,
      reason: messageOf(error),
    });
    throw new RefusedError(
      `state-${code}`,
      STATE_STATUS[code],
      `${messageOf(error)}; ${outcome}`,
    );
  }

  // ---- push ------------------------------------------------------------

  async #push(
    envelope: Uint8Array,
    meta: { connection?: string },
  ): Promise<PushResult> {
    const p = this.#pending;
    if (p) {
      const pending = {
        generation: p.gen.generation,
        serial: p.gen.serial,
        name: p.gen.name,
        deadline: new Date(p.deadline).toISOString(),
      };
      throw new RefusedError(
        "pending",
        409,
        `Cannot accept a bundle: generation ${p.gen.generation} ` +
          `(serial ${p.gen.serial}) is pending until ${pending.deadline}; ` +
          "confirm it or wait for its window to close",
        { pending },
      );
    }

    let statement;
    try {
      statement = verifyBundle(envelope, {
        trust: this.#opts.trust,
        host: this.#opts.host,
        groups: this.#opts.groups,
        serialFloor: this.#store.highestSerial,
        now: new Date(this.#now()),
      }).statement;
    } catch (error) {
      this.#refuseVerify(error, "bundle");
    }

    let policy: NormalPolicy;
    try {
      policy = validatePolicyValue(
        statement.policy,
        `bundle serial ${statement.serial}`,
        { maxRules: this.#opts.maxRules },
      ).policy;
    } catch (error) {
      if (!(error instanceof PolicyError)) throw error;
      throw new RefusedError("bad-policy", 422, error.message, {
        path: error.path,
        ruleId: error.ruleId,
      });
    }

    const { max } = this.#opts.commitWindow;
    const windowSeconds = statement.commitWindowSeconds ??
      this.#opts.commitWindow.default;
    if (
      !Number.isInteger(windowSeconds) || windowSeconds < 2 ||
      windowSeconds > max
    ) {
      throw new RefusedError(
        "bad-window",
        400,
        `Cannot accept a bundle: commitWindowSeconds is ${windowSeconds}, ` +
          `this host accepts 2 to ${max}`,
        { windowSeconds, max },
      );
    }

    // Refused before anything is written: no pending generation, and
    // the serial floor stays where it was.
    try {
      this.#backend.validate?.(policy);
    } catch (error) {
      if (!(error instanceof TypeError)) throw error;
      throw new RefusedError("unsupported-rule", 422, error.message);
    }

    if (!this.#stateWritable) {
      try {
        await this.#store.probe();
      } catch (error) {
        this.#refuseState(error, "the bundle was not applied");
      }
    }
    let gen: StoredGeneration;
    try {
      gen = await this.#store.addPending(
        envelope,
        statement,
        policy,
        new Date(this.#now()),
      );
    } catch (error) {
      this.#refuseState(error, "the bundle was not applied");
    }
    this.#stateWritable = true;
    this.#crash("push.after-pending-write");

    const stats = await this.#applyPush(gen);
    this.#crash("push.after-apply");

    const deadline = this.#now() + windowSeconds * 1000;
    try {
      gen = await this.#store.update(gen.generation, {
        deadline: new Date(deadline).toISOString(),
      });
    } catch (error) {
      // The record stays pending without a deadline; a restart still
      // reverts it, so the window is safe without it.
      this.#stateWritable = false;
      this.#emit("state.problem", "warn", {
        file: this.#opts.stateDir,
        reason: `cannot record the deadline: ${messageOf(error)}`,
      });
    }
    this.#crash("push.after-status-write");

    const nonce = hex(crypto.getRandomValues(new Uint8Array(16)));
    this.#pending = {
      gen,
      deadline,
      windowSeconds,
      nonce,
      connection: meta.connection,
    };
    this.#active = gen;
    this.#failedOpen = false;
    this.#arm();
    this.#emit("watchdog.armed", "info", {
      generation: gen.generation,
      deadline: new Date(deadline).toISOString(),
      windowSeconds,
    });
    await this.#prune();

    return {
      generation: gen.generation,
      serial: gen.serial,
      name: gen.name,
      deadline: new Date(deadline).toISOString(),
      windowSeconds,
      nonce,
      stats,
    };
  }

  /** Applies a new pending generation, retrying transient failures. */
  async #applyPush(gen: StoredGeneration): Promise<ApplyStats> {
    const ids = { generation: gen.generation, serial: gen.serial };
    const current = this.#trusted ? this.#active?.policy ?? null : null;
    const diff = diffPolicies(this.#active?.policy ?? null, gen.policy);
    this.#emit("apply.diff", "info", {
      ...ids,
      added: diff.added,
      removed: diff.removed,
      changed: diff.changed,
      moved: diff.moved,
    });

    for (let attempt = 1;; attempt++) {
      this.#emit("apply.attempt", "info", {
        ...ids,
        name: gen.name,
        attempt,
        rules: gen.policy.rules.length,
      });
      const started = performance.now();
      try {
        const stats = this.#backend.apply(gen.policy, current);
        this.#trusted = true;
        this.#clearDrift();
        this.#emit("apply.commit", "info", {
          ...ids,
          durationMs: Math.round((performance.now() - started) * 1000) / 1000,
          stats,
        });
        return stats;
      } catch (error) {
        const retry = error instanceof EngineError && error.transient &&
          attempt < this.#retry.attempts;
        this.#emit("apply.abort", retry ? "warn" : "error", {
          ...ids,
          attempt,
          retry,
          ...engineFields(error),
        });
        if (retry) {
          await this.#backoff(attempt);
          continue;
        }
        await this.#markReverted(gen, `apply failed: ${messageOf(error)}`);
        if (error instanceof TypeError) {
          throw new RefusedError("unsupported-rule", 422, error.message);
        }
        this.#fail("engine-failed", messageOf(error));
        throw new RefusedError(
          "engine-failed",
          500,
          `Cannot apply generation ${gen.generation}: ${
            messageOf(error)
          }; the previous policy stays in force`,
          engineFields(error),
        );
      }
    }
  }

  // ---- confirm ---------------------------------------------------------

  async #confirm(
    envelope: Uint8Array,
    meta: { connection?: string },
  ): Promise<ConfirmResult> {
    let statement;
    try {
      statement = verifyConfirm(envelope, {
        trust: this.#opts.trust,
        host: this.#opts.host,
        now: new Date(this.#now()),
      }).statement;
    } catch (error) {
      this.#refuseVerify(error, "heartbeat");
    }
    const { generation, nonce } = statement;

    if (this.#usedConfirmNonces.has(nonce)) {
      throw new RefusedError(
        "replayed",
        409,
        `Cannot confirm generation ${generation}: this heartbeat's nonce ` +
          "was already used",
      );
    }
    const p = this.#pending;
    const closed = this.#lastClosed;
    if (
      !p && closed && closed.generation === generation &&
      sameText(nonce, closed.nonce)
    ) {
      throw new RefusedError(
        "window-closed",
        409,
        `Cannot confirm generation ${generation}: its window closed at ` +
          `${new Date(closed.deadline).toISOString()} and it was reverted`,
        { generation },
      );
    }
    if (!p) {
      throw new RefusedError(
        "no-pending",
        409,
        `Cannot confirm generation ${generation}: no generation is pending`,
      );
    }
    if (generation !== p.gen.generation) {
      throw new RefusedError(
        "wrong-generation",
        409,
        `Cannot confirm generation ${generation}: the pending generation ` +
          `is ${p.gen.generation}`,
        { pending: p.gen.generation },
      );
    }
    if (!sameText(nonce, p.nonce)) {
      throw new RefusedError(
        "wrong-nonce",
        403,
        `Cannot confirm generation ${generation}: the nonce is not the ` +
          "one its push returned",
      );
    }
    const skewMs = DEFAULT_CLOCK_SKEW_SECONDS * 1000;
    const received = Date.parse(p.gen.record.receivedAt);
    if (Date.parse(statement.issuedAt) < received - skewMs) {
      throw new RefusedError(
        "issued-before-push",
        403,
        `Cannot confirm generation ${generation}: the heartbeat was issued ` +
          `at ${statement.issuedAt}, before the push was received at ` +
          `${p.gen.record.receivedAt} (clock skew allowed: ` +
          `${DEFAULT_CLOCK_SKEW_SECONDS} s)`,
      );
    }
    if (this.#now() >= p.deadline) {
      await this.#expire();
      throw new RefusedError(
        "window-closed",
        409,
        `Cannot confirm generation ${generation}: its window closed at ` +
          `${new Date(p.deadline).toISOString()} and it was reverted`,
      );
    }
    if (
      p.connection !== undefined && meta.connection !== undefined &&
      p.connection === meta.connection
    ) {
      throw new RefusedError(
        "same-connection",
        409,
        `Cannot confirm generation ${generation}: the heartbeat came over ` +
          "the connection that pushed it; send it over a new connection " +
          "to prove the path works under the new policy",
      );
    }

    this.#crash("confirm.before-write");
    let gen: StoredGeneration;
    try {
      gen = await this.#store.update(p.gen.generation, {
        status: "confirmed",
        confirmedAt: new Date(this.#now()).toISOString(),
      });
    } catch (error) {
      this.#refuseState(
        error,
        `generation ${generation} is not confirmed and reverts at its ` +
          "deadline unless a later heartbeat can be recorded",
      );
    }
    this.#crash("confirm.after-write");

    this.#usedConfirmNonces.add(nonce);
    if (this.#usedConfirmNonces.size > MAX_CONFIRM_NONCES) {
      // Oldest first; an old nonce can never match a new push anyway.
      const [oldest] = this.#usedConfirmNonces;
      this.#usedConfirmNonces.delete(oldest);
    }
    this.#disarm();
    this.#pending = null;
    this.#active = gen;
    if (this.#withdrawn) await this.#setWithdrawn(null);
    this.#emit("confirm", "info", {
      generation: gen.generation,
      serial: gen.serial,
      name: gen.name,
    });
    await this.#prune();
    return { generation: gen.generation, serial: gen.serial };
  }

  async #prune() {
    try {
      const removed = await this.#store.prune();
      if (removed.length > 0) {
        this.#emit("state.pruned", "info", { generations: removed });
      }
    } catch (error) {
      this.#emit("state.problem", "warn", {
        file: this.#opts.stateDir,
        reason: `cannot prune old generations: ${messageOf(error)}`,
      });
    }
  }

  // ---- watchdog, revert and rollback -----------------------------------

  #arm() {
    const p = this.#pending;
    if (!p) return;
    const ms = Math.min(2 ** 31 - 1, Math.max(0, p.deadline - this.#now()));
    p.timer = this.#timers.set(() => this.#onTimer(), ms);
  }

  #disarm() {
    const p = this.#pending;
    if (p?.timer !== undefined) {
      this.#timers.clear(p.timer);
      p.timer = undefined;
    }
  }

  #onTimer(): Promise<void> {
    return this.#exclusive(async () => {
      const p = this.#pending;
      if (!p || this.#closing) return;
      p.timer = undefined;
      if (this.#now() < p.deadline) {
        this.#arm();
        return;
      }
      await this.#expire();
    }).catch((error) => {
      this.#fail("watchdog-failed", messageOf(error));
      this.#emit("revert.failed", "error", { message: messageOf(error) });
    });
  }

  async #expire(): Promise<void> {
    const p = this.#pending!;
    this.#emit("watchdog.expired", "warn", {
      generation: p.gen.generation,
      serial: p.gen.serial,
      name: p.gen.name,
      deadline: new Date(p.deadline).toISOString(),
    });
    await this.#revert(
      this.#withdrawn ? null : this.#store.lastKnownGood(),
      "the commit window closed without a heartbeat",
    );
  }

  /**
   * Reverts the engine to `target` (null: nothing) and marks a pending
   * generation reverted with `reason`.
   */
  async #revert(target: StoredGeneration | null, reason: string) {
    const p = this.#pending;
    this.#disarm();
    this.#pending = null;
    if (p) {
      this.#lastClosed = {
        generation: p.gen.generation,
        nonce: p.nonce,
        deadline: p.deadline,
      };
    }
    const from = this.#active;

    this.#crash("revert.before-apply");
    await this.#restore(target, from?.policy ?? null, "revert");
    this.#crash("revert.after-apply");

    if (p) await this.#markReverted(p.gen, reason);
    this.#crash("revert.after-status-write");

    const diff = diffPolicies(from?.policy ?? null, target?.policy ?? null);
    this.#emit("revert", "warn", {
      from: from?.generation ?? null,
      to: target?.generation ?? null,
      reverted: p?.gen.generation ?? null,
      reason,
      removed: diff.removed,
      restored: diff.added,
      changed: diff.changed,
      failedOpen: this.#failedOpen,
    });
  }

  /**
   * Brings the engine to `target` as one transaction per attempt and
   * reads it back; retries with backoff and, when every attempt fails,
   * fails open. Never throws for engine failures.
   */
  async #restore(
    target: StoredGeneration | null,
    from: NormalPolicy | null,
    step: string,
  ): Promise<void> {
    const expected = target?.policy ?? null;
    let current = this.#trusted ? from : null;
    for (let attempt = 1; attempt <= this.#retry.attempts; attempt++) {
      try {
        if (expected) this.#backend.apply(expected, current);
        else this.#removeAll(step);
        if (this.#readBackOk(expected)) {
          this.#active = target;
          this.#trusted = true;
          this.#failedOpen = false;
          this.#clearDrift();
          return;
        }
        // The engine holds something else: replace all of it next time.
        current = null;
        this.#trusted = false;
      } catch (error) {
        this.#emit("revert.failed", "error", {
          step,
          attempt,
          to: target?.generation ?? null,
          ...engineFields(error),
        });
      }
      if (attempt < this.#retry.attempts) await this.#backoff(attempt);
    }
    await this.#failOpen(
      `Cannot restore ${
        target ? `generation ${target.generation}` : "an empty policy"
      } after ${this.#retry.attempts} attempts`,
    );
  }

  /**
   * Removes every Palisade object. When only an empty sublayer or
   * provider stays because another product's object uses it, nothing of
   * Palisade's is enforced: that counts as removed, with a warning.
   */
  #removeAll(step: string): number {
    try {
      return this.#backend.removeAll();
    } catch (error) {
      if (!(error instanceof ForeignObjectsError)) throw error;
      this.#emit("remove.kept", "warn", {
        step,
        removed: error.removed,
        foreign: error.foreign,
        ...engineFields(error),
      });
      return error.removed;
    }
  }

  /** Last resort: removes every Palisade object and records why. */
  async #failOpen(why: string): Promise<void> {
    for (let attempt = 1; attempt <= this.#retry.attempts; attempt++) {
      try {
        const removed = this.#removeAll("failopen");
        if (this.#readBackOk(null)) {
          this.#active = null;
          this.#trusted = true;
          this.#failedOpen = true;
          this.#fail("failed-open", `${why}; failed open: nothing enforced`);
          this.#emit("failopen", "error", { reason: why, removed });
          return;
        }
      } catch (error) {
        this.#emit("revert.failed", "error", {
          step: "failopen",
          attempt,
          ...engineFields(error),
        });
      }
      if (attempt < this.#retry.attempts) await this.#backoff(attempt);
    }
    this.#active = null;
    this.#trusted = false;
    this.#failedOpen = true;
    this.#fail(
      "failopen-failed",
      `${why}; removing Palisade's objects failed too; run 'palisade panic'`,
    );
    this.#emit("failopen", "error", { reason: why, removed: null, ok: false });
  }

  async #markReverted(gen: StoredGeneration, reason: string) {
    if (!this.#stateWritable) return;
    try {
      await this.#store.update(gen.generation, {
        status: "reverted",
        revertedAt: new Date(this.#now()).toISOString(),
        reason,
      });
    } catch (error) {
      // Still pending on disk: the next start reverts it again.
      this.#stateWritable = false;
      this.#fail("state-write-failed", messageOf(error));
      this.#emit("state.problem", "error", {
        file: error instanceof StateWriteError
          ? error.path
          : this.#opts.stateDir,
        reason: `cannot mark generation ${gen.generation} reverted: ${
          messageOf(error)
        }`,
      });
    }
  }

  /** Records or clears the withdrawal; memory follows even when the
   * write fails (then a restart re-applies the last known good). */
  async #setWithdrawn(record: WithdrawnRecord | null): Promise<void> {
    this.#withdrawn = record;
    try {
      if ((this.#store.withdrawn === null) !== (record === null) || record) {
        await this.#store.setWithdrawn(record);
      }
    } catch (error) {
      this.#emit("state.problem", "warn", {
        file: error instanceof StateWriteError
          ? error.path
          : this.#opts.stateDir,
        reason: `cannot record the ${
          record ? "rollback to empty" : "end of the rollback to empty"
        }; it holds until the service restarts: ${messageOf(error)}`,
      });
    }
  }

  async #rollback(envelope: Uint8Array): Promise<RollbackResult> {
    let statement;
    try {
      statement = verifyRollback(envelope, {
        trust: this.#opts.trust,
        host: this.#opts.host,
        now: new Date(this.#now()),
      }).statement;
    } catch (error) {
      this.#refuseVerify(error, "rollback command");
    }

    // A nonce is kept until its command can no longer pass verification
    // (expiry plus any clock skew allowance), on disk so that a restart
    // does not re-open it.
    const now = this.#now();
    for (const [nonce, expires] of this.#usedRollbackNonces) {
      if (expires + NONCE_MARGIN_MS < now) {
        this.#usedRollbackNonces.delete(nonce);
      }
    }
    if (this.#usedRollbackNonces.has(statement.nonce)) {
      throw new RefusedError(
        "replayed",
        409,
        "Cannot roll back: this rollback command's nonce was already used",
      );
    }
    if (this.#usedRollbackNonces.size >= MAX_ROLLBACK_NONCES) {
      throw new RefusedError(
        "busy",
        429,
        "Cannot roll back: too many recent rollback commands; retry later",
      );
    }
    this.#usedRollbackNonces.set(
      statement.nonce,
      Date.parse(statement.expiresAt),
    );
    try {
      await this.#store.saveRollbackNonces(this.#usedRollbackNonces);
      this.#noncesOnDisk = true;
    } catch (error) {
      // Refusing would leave the operator without a rollback; the nonce
      // is still refused until the service restarts.
      this.#noncesOnDisk = false;
      this.#emit("state.problem", "warn", {
        file: error instanceof StateWriteError
          ? error.path
          : this.#opts.stateDir,
        reason: "used rollback nonces are kept in memory only until the " +
          `state folder is writable: ${messageOf(error)}`,
      });
    }

    const target = statement.to === "empty"
      ? null
      : this.#store.lastKnownGood();
    await this.#setWithdrawn(
      statement.to === "empty"
        ? {
          since: new Date(now).toISOString(),
          reason: "signed rollback to empty",
        }
        : null,
    );
    this.#emit("rollback", "warn", {
      to: statement.to,
      generation: target?.generation ?? null,
      pending: this.#pending?.gen.generation ?? null,
    });
    await this.#revert(target, "rolled back by a signed rollback command");
    return {
      to: target ? "last-known-good" : "empty",
      generation: target?.generation ?? null,
    };
  }
}
