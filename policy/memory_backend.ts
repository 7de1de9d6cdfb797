/**
 * An in-memory enforcement engine with fault injection, for tests of
 * everything above the {@linkcode Backend} interface without root or a
 * native library.
 *
 * @module
 */
import {
  type ApplyStats,
  type Backend,
  EngineError,
  type ReadBack,
  type RuleCounter,
} from "./backend.ts";
import { diffPolicies } from "./diff.ts";
import type { NormalPolicy } from "./types.ts";

/** Which backend call a fault is aimed at. */
export type MemoryOp = "apply" | "removeAll" | "readBack";

/** One injected fault. */
export interface MemoryFault {
  /** Fail the nth call of this kind from now (1 = the next one). */
  nth?: number;
  /** How many calls in a row fail from there (default 1). */
  times?: number;
  /** What `apply` or `removeAll` throws; an EngineError by default. */
  error?: Error;
  /** Marks the default EngineError as transient. */
  transient?: boolean;
}

interface ArmedFault {
  from: number;
  to: number;
  error?: Error;
  transient: boolean;
}

/** A call the backend received, in order. */
export interface MemoryCall {
  op: MemoryOp | "counters";
  /** For `apply`: the names of the policies given. */
  next?: string;
  current?: string | null;
  failed?: boolean;
}

function same(a: NormalPolicy | null, b: NormalPolicy | null): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * A {@linkcode Backend} that keeps the installed policy in memory. Each
 * call is one transaction: a failed call leaves the policy as it was.
 * Faults make the nth `apply` or `removeAll` throw, or the nth
 * `readBack` report a mismatch.
 *
 * @example
 * ```ts
 * import { MemoryBackend } from "./memory_backend.ts";
 *
 * const backend = new MemoryBackend();
 * backend.inject("apply", { nth: 1, transient: true });
 * const policy = { name: "p", rules: [] };
 * try {
 *   backend.apply(policy, null);
 * } catch {
 *   // The first apply fails; the engine is as before.
 * }
 * backend.apply(policy, null);
 * if (!backend.readBack(policy).ok) throw new Error("not installed");
 * ```
 */
export class MemoryBackend implements Backend {
  readonly engine: "nft" | "wfp";
  /** Every call received, oldest first. */
  readonly calls: MemoryCall[] = [];

  #installed: NormalPolicy | null;
  #counts: Record<MemoryOp, number> = { apply: 0, removeAll: 0, readBack: 0 };
  #faults: Record<MemoryOp, ArmedFault[]> = {
    apply: [],
    removeAll: [],
    readBack: [],
  };
  #hits = new Map<string, { packets: bigint; bytes: bigint }>();
  #closed = false;

  /**
   * @param opts `engine` (default `nft`, which refuses `app` like the
   *   real one) and the policy installed at start (default none)
   */
  constructor(
    opts: { engine?: "nft" | "wfp"; installed?: NormalPolicy | null } = {},
  ) {
    this.engine = opts.engine ?? "nft";
    this.#installed = opts.installed ? structuredClone(opts.installed) : null;
  }

  /** The policy the engine holds now (null: nothing installed). */
  get installed(): NormalPolicy | null {
    return this.#installed ? structuredClone(this.#installed) : null;
  }

  /** Replaces the installed policy behind the caller's back (drift). */
  setInstalled(policy: NormalPolicy | null): void {
    this.#installed = policy ? structuredClone(policy) : null;
  }

  /** How many calls of each kind were made. */
  count(op: MemoryOp): number {
    return this.#counts[op];
  }

  /** Sets the hit counters reported for a rule ID. */
  hit(id: string, packets: bigint, bytes: bigint): void {
    this.#hits.set(id, { packets, bytes });
  }

  /** Arms a fault on the calls of kind `op`. */
  inject(op: MemoryOp, fault: MemoryFault = {}): void {
    const from = this.#counts[op] + (fault.nth ?? 1);
    this.#faults[op].push({
      from,
      to: from + (fault.times ?? 1) - 1,
      error: fault.error,
      transient: fault.transient ?? false,
    });
  }

  #fault(op: MemoryOp): ArmedFault | undefined {
    const n = ++this.#counts[op];
    return this.#faults[op].find((f) => n >= f.from && n <= f.to);
  }

  #open(action: string) {
    if (this.#closed) {
      throw new Error(`Cannot ${action}: the memory backend is closed`);
    }
  }

  #engineError(call: string, fault: ArmedFault, ruleId?: string) {
    return fault.error ?? new EngineError(
      `Cannot ${call}: injected fault${ruleId ? ` at rule ${ruleId}` : ""}`,
      {
        call,
        code: 5,
        codeName: "EIO",
        ruleId,
        transient: fault.transient,
      },
    );
  }

  /**
   * Refuses what the emulated engine cannot do (an `app` rule on nft);
   * see {@linkcode Backend.validate}. Touches nothing.
   *
   * @throws {TypeError} naming the rule
   */
  validate(policy: NormalPolicy): void {
    if (this.engine !== "nft") return;
    const withApp = policy.rules.find((r) => r.app !== undefined);
    if (withApp) {
      throw new TypeError(
        `Cannot apply rule ${withApp.id}: the nft engine cannot match ` +
          "an application path ('app' is Windows only)",
      );
    }
  }

  /** Installs `next`; see {@linkcode Backend.apply}. */
  apply(next: NormalPolicy, current: NormalPolicy | null): ApplyStats {
    this.#open("apply policy");
    const call: MemoryCall = {
      op: "apply",
      next: next.name,
      current: current?.name ?? null,
    };
    this.calls.push(call);

    try {
      this.validate(next);
    } catch (error) {
      call.failed = true;
      throw error;
    }

    const fault = this.#fault("apply");
    if (fault) {
      call.failed = true;
      throw this.#engineError("commit batch", fault, next.rules[0]?.id);
    }

    const incremental = same(this.#installed, current);
    const diff = diffPolicies(this.#installed, next);
    this.#installed = structuredClone(next);
    return {
      added: diff.added,
      removed: diff.removed,
      changed: diff.changed,
      incremental,
      objects: incremental
        ? diff.added.length + diff.removed.length + diff.changed.length
        : next.rules.length + 1,
    };
  }

  /** Removes everything; see {@linkcode Backend.removeAll}. */
  removeAll(): number {
    this.#open("remove policy");
    const call: MemoryCall = { op: "removeAll" };
    this.calls.push(call);
    const fault = this.#fault("removeAll");
    if (fault) {
      call.failed = true;
      throw this.#engineError("delete table", fault);
    }
    const removed = this.#installed ? this.#installed.rules.length + 1 : 0;
    this.#installed = null;
    return removed;
  }

  /** Compares with `expected`; see {@linkcode Backend.readBack}. */
  readBack(expected: NormalPolicy | null): ReadBack {
    this.#open("read back policy");
    this.calls.push({ op: "readBack" });
    if (this.#fault("readBack")) {
      return { ok: false, detail: "injected read-back mismatch" };
    }
    if (same(this.#installed, expected)) return { ok: true };
    return {
      ok: false,
      detail: `engine holds ${this.#installed?.name ?? "nothing"}, ` +
        `expected ${expected?.name ?? "nothing"}`,
    };
  }

  /** Hit counters of the installed rules (zero unless set by `hit`). */
  counters(): RuleCounter[] {
    this.#open("read counters");
    this.calls.push({ op: "counters" });
    return (this.#installed?.rules ?? []).map((r) => ({
      id: r.id,
      packets: this.#hits.get(r.id)?.packets ?? 0n,
      bytes: this.#hits.get(r.id)?.bytes ?? 0n,
    }));
  }

  /** Closes the backend; safe to call twice. */
  close(): void {
    this.#closed = true;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
