/**
 * The generation store: every bundle a host accepted, as received, with
 * a small status record, kept in a state directory that survives
 * restarts and is re-verified whenever it is loaded.
 *
 * Layout of the state directory:
 *
 * ```
 * <stateDir>/
 *   floor.json              { highestSerial, highestGeneration }
 *   withdrawn.json          { since, reason }: a signed rollback to empty
 *                           is in force (absent otherwise)
 *   rollback-nonces.json    { nonces: { NONCE: expiresAt } }: used
 *                           rollback nonces, pruned once expired
 *   lock                    single-instance lock of the service
 *   probe                   written and removed to test writability
 *   generations/
 *     00000007.bundle.json  the DSSE envelope, bytes as received
 *     00000007.status.json  { generation, serial, name, status,
 *                             receivedAt, deadline?, confirmedAt?,
 *                             revertedAt?, reason? }
 *     .tmp-*                leftovers of an interrupted atomic write
 * ```
 *
 * `status` is `pending` (applied, inside its commit window), `confirmed`
 * (a heartbeat arrived; the newest confirmed one is the last known good)
 * or `reverted` (never confirmed, or its apply failed). `floor.json`
 * keeps the highest serial ever accepted so that pruning old generations
 * never re-opens a serial to replay.
 *
 * Every write is atomic (temporary file, fsync, rename, fsync of the
 * directory). Loading never writes and never throws for bad state: a
 * missing directory, an unreadable, corrupt or truncated file and an
 * envelope that no longer verifies are each skipped and listed in
 * {@linkcode GenerationStore.problems}.
 *
 * Envelopes are re-verified on load (trust store, host and groups) with
 * the time check done as of the record's `receivedAt`: expiry limits
 * when a bundle may be pushed, not how long a confirmed policy may stay
 * the last known good.
 *
 * Limitation: `receivedAt` is not signed, so someone who can write the
 * state directory can revive an expired bundle signed for this host as
 * the last known good (they could also delete the state and fail open).
 *
 * @module
 */
import {
  type BundleStatement,
  parseStrictJson,
  type TrustStore,
  verifyBundle,
} from "../signing/mod.ts";
import { validatePolicyValue } from "./parse.ts";
import type { NormalPolicy } from "./types.ts";
import {
  denoStateFs,
  type StateFs,
  StateWriteError,
  TEMP_PREFIX,
  toStateWriteError,
} from "./_atomic.ts";

export { StateWriteError };
export type { StateFs };
export type { StateWriteCode } from "./_atomic.ts";

/** Where a generation stands in its commit window. */
export type GenerationStatus = "pending" | "confirmed" | "reverted";

/** The status record written beside each bundle (`<n>.status.json`). */
export interface GenerationRecord {
  generation: number;
  serial: number;
  name: string;
  status: GenerationStatus;
  /** ISO 8601 time the host accepted the bundle. */
  receivedAt: string;
  /** ISO 8601 end of the commit window, once the policy is enforced. */
  deadline?: string;
  confirmedAt?: string;
  revertedAt?: string;
  /** Why the generation was reverted. */
  reason?: string;
}

/** A generation that loaded, verified and validated. */
export interface StoredGeneration {
  readonly generation: number;
  readonly serial: number;
  readonly name: string;
  /** The status record as last written. */
  readonly record: Readonly<GenerationRecord>;
  readonly statement: BundleStatement;
  readonly policy: NormalPolicy;
}

/** A file of the state directory that was skipped, and why. */
export interface StoreProblem {
  file: string;
  reason: string;
}

/** Options of {@linkcode GenerationStore.load}. */
export interface StoreOptions {
  /** Keys that must have signed every stored envelope. */
  trust: TrustStore;
  /** This host's name; stored bundles must target it. */
  host?: string;
  /** This host's groups (without the `group:` prefix). */
  groups?: string[];
  /** How many generations to keep (default 20, at least 2). */
  maxGenerations?: number;
  /** Policy size bound passed to the validator. */
  maxRules?: number;
  /** File operations; the real file system by default. */
  fs?: StateFs;
}

/** A signed rollback to empty that stays in force across restarts. */
export interface WithdrawnRecord {
  /** ISO 8601 time of the rollback. */
  since: string;
  reason: string;
}

/** Default bound on the number of generations kept. */
export const DEFAULT_MAX_GENERATIONS = 20;

const NO_GENERATIONS =
  "no generations stored yet (state directory missing or empty)";

const NAME_RE = /^(\d{8})\.(bundle|status)\.json$/;
const STATUSES: readonly GenerationStatus[] = [
  "pending",
  "confirmed",
  "reverted",
];
const RECORD_KEYS = new Set([
  "generation",
  "serial",
  "name",
  "status",
  "receivedAt",
  "deadline",
  "confirmedAt",
  "revertedAt",
  "reason",
]);

function pad(generation: number): string {
  return String(generation).padStart(8, "0");
}

function isIso(value: unknown): value is string {
  return typeof value === "string" && !Number.isNaN(Date.parse(value));
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Checks a parsed status record; returns the reason it is unusable, or
 * null.
 */
function recordProblem(value: unknown, generation: number): string | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "the status record is not a JSON object";
  }
  const r = value as Record<string, unknown>;
  for (const key of Object.keys(r)) {
    if (!RECORD_KEYS.has(key)) return `unknown field '${key}'`;
  }
  if (r.generation !== generation) {
    return `field 'generation' is ${
      JSON.stringify(r.generation)
    }, the file name says ${generation}`;
  }
  if (!Number.isSafeInteger(r.serial) || (r.serial as number) < 0) {
    return "field 'serial' is not a non-negative integer";
  }
  if (typeof r.name !== "string") return "field 'name' is not a string";
  if (!STATUSES.includes(r.status as GenerationStatus)) {
    return `field 'status' is ${
      JSON.stringify(r.status)
    }, expected pending, confirmed or reverted`;
  }
  if (!isIso(r.receivedAt)) return "field 'receivedAt' is not a date";
  for (const key of ["deadline", "confirmedAt", "revertedAt"]) {
    if (r[key] !== undefined && !isIso(r[key])) {
      return `field '${key}' is not a date`;
    }
  }
  if (r.reason !== undefined && typeof r.reason !== "string") {
    return "field 'reason' is not a string";
  }
  return null;
}

function encode(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value, null, 2) + "\n");
}

/**
 * The generations of one state directory. Create it with
 * {@linkcode GenerationStore.load}; every later change goes through its
 * methods, which write to disk first and update memory only on success.
 */
export class GenerationStore {
  /** The state directory. */
  readonly dir: string;
  /** Files skipped at load, with the reason; never cleared. */
  readonly problems: StoreProblem[];
  readonly maxGenerations: number;

  #fs: StateFs;
  #generations = new Map<number, StoredGeneration>();
  #highestSerial = 0;
  #highestGeneration = 0;
  #onDisk = new Set<number>();
  #withdrawn: WithdrawnRecord | null = null;
  #rollbackNonces = new Map<string, number>();

  private constructor(dir: string, fs: StateFs, maxGenerations: number) {
    this.dir = dir;
    this.problems = [];
    this.#fs = fs;
    this.maxGenerations = maxGenerations;
  }

  /**
   * Loads and re-verifies the state directory `dir`. Never writes and
   * never throws for bad state: what cannot be used is skipped and
   * listed in `problems`.
   *
   * @param dir the state directory (need not exist)
   * @param opts trust store, host identity and bounds
   * @example
   * ```ts ignore
   * const store = await GenerationStore.load("/var/lib/palisade", { trust });
   * store.lastKnownGood()?.policy;
   * ```
   */
  static async load(
    dir: string,
    opts: StoreOptions,
  ): Promise<GenerationStore> {
    const max = Math.max(2, opts.maxGenerations ?? DEFAULT_MAX_GENERATIONS);
    const store = new GenerationStore(dir, opts.fs ?? denoStateFs, max);
    await store.#load(opts);
    return store;
  }

  async #load(opts: StoreOptions): Promise<void> {
    await this.#loadFloor();
    await this.#loadWithdrawn();
    await this.#loadRollbackNonces();

    const genDir = this.#genDir();
    let names: string[];
    try {
      names = await this.#fs.readDir(genDir);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        if (this.#highestSerial > 0) {
          this.#problem(genDir, "the generations directory is missing");
        } else {
          this.#problem(this.dir, NO_GENERATIONS);
        }
      } else {
        this.#problem(genDir, `cannot list: ${messageOf(error)}`);
      }
      return;
    }

    const numbers = new Set<number>();
    for (const name of names.sort()) {
      const match = NAME_RE.exec(name);
      if (match) {
        numbers.add(Number(match[1]));
      } else if (name.startsWith(TEMP_PREFIX)) {
        this.#problem(
          `${genDir}/${name}`,
          "leftover of an interrupted write; ignored",
        );
      } else {
        this.#problem(`${genDir}/${name}`, "unexpected file; ignored");
      }
    }

    for (const n of [...numbers].sort((a, b) => a - b)) {
      this.#onDisk.add(n);
      this.#highestGeneration = Math.max(this.#highestGeneration, n);
      await this.#loadGeneration(n, opts);
    }
  }

  async #loadFloor(): Promise<void> {
    const path = `${this.dir}/floor.json`;
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(
        await this.#fs.readFile(path),
      );
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) {
        this.#problem(path, `cannot read: ${messageOf(error)}`);
      }
      return;
    }
    try {
      const value = parseStrictJson(text, path) as Record<string, unknown>;
      const serial = value?.highestSerial;
      if (!Number.isSafeInteger(serial) || (serial as number) < 0) {
        throw new Error("field 'highestSerial' is not a non-negative integer");
      }
      this.#highestSerial = serial as number;
      const gen = value.highestGeneration;
      if (Number.isSafeInteger(gen) && (gen as number) > 0) {
        this.#highestGeneration = gen as number;
      }
    } catch (error) {
      this.#problem(
        path,
        `corrupt, serial floor taken from the generations: ${messageOf(error)}`,
      );
    }
  }

  /** A small JSON file: undefined when missing, null when unusable. */
  async #readJson(path: string): Promise<unknown> {
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(
        await this.#fs.readFile(path),
      );
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      this.#problem(path, `cannot read: ${messageOf(error)}`);
      return null;
    }
    try {
      return parseStrictJson(text, path) ?? null;
    } catch (error) {
      this.#problem(path, `corrupt: ${messageOf(error)}`);
      return null;
    }
  }

  async #loadWithdrawn(): Promise<void> {
    const path = `${this.dir}/withdrawn.json`;
    const value = await this.#readJson(path) as Record<string, unknown>;
    if (value === undefined) return;
    if (
      typeof value !== "object" || value === null || !isIso(value.since) ||
      typeof value.reason !== "string"
    ) {
      // Safer to keep the withdrawal than to re-apply what it removed.
      this.#problem(path, "unusable content; the withdrawal is kept");
      this.#withdrawn = {
        since: new Date(0).toISOString(),
        reason: "unreadable withdrawn.json",
      };
      return;
    }
    this.#withdrawn = { since: value.since, reason: value.reason };
  }

  async #loadRollbackNonces(): Promise<void> {
    const path = `${this.dir}/rollback-nonces.json`;
    const value = await this.#readJson(path) as Record<string, unknown>;
    if (value === undefined) return;
    if (value === null) return;
    const nonces = value?.nonces;
    if (typeof nonces !== "object" || nonces === null) {
      this.#problem(path, "field 'nonces' is not an object; ignored");
      return;
    }
    for (const [nonce, expires] of Object.entries(nonces)) {
      if (isIso(expires)) {
        this.#rollbackNonces.set(nonce, Date.parse(expires));
      }
    }
  }

  async #loadGeneration(n: number, opts: StoreOptions): Promise<void> {
    const bundlePath = this.#bundlePath(n);
    const statusPath = this.#statusPath(n);
    const decoder = new TextDecoder("utf-8", { fatal: true });

    let bytes: Uint8Array;
    try {
      bytes = await this.#fs.readFile(bundlePath);
    } catch (error) {
      this.#problem(bundlePath, `cannot read: ${messageOf(error)}`);
      return;
    }

    let record: GenerationRecord;
    try {
      const text = decoder.decode(await this.#fs.readFile(statusPath));
      const value = parseStrictJson(text, statusPath);
      const why = recordProblem(value, n);
      if (why) throw new Error(why);
      record = value as GenerationRecord;
    } catch (error) {
      this.#problem(statusPath, `unusable status record: ${messageOf(error)}`);
      // A verified envelope still raises the serial floor: it was accepted.
      await this.#raiseFloorFrom(bytes, opts);
      return;
    }

    let statement: BundleStatement;
    try {
      const verified = await verifyBundle(bytes, {
        trust: opts.trust,
        host: opts.host,
        groups: opts.groups,
        now: new Date(record.receivedAt),
      });
      statement = verified.statement;
    } catch (error) {
      this.#problem(
        bundlePath,
        `envelope does not verify: ${messageOf(error)}`,
      );
      return;
    }
    this.#highestSerial = Math.max(this.#highestSerial, statement.serial);

    if (statement.serial !== record.serial || statement.name !== record.name) {
      this.#problem(
        statusPath,
        `status record names serial ${record.serial} '${record.name}', ` +
          `the envelope serial ${statement.serial} '${statement.name}'`,
      );
      return;
    }

    let policy: NormalPolicy;
    try {
      policy = validatePolicyValue(statement.policy, bundlePath, {
        maxRules: opts.maxRules,
      }).policy;
    } catch (error) {
      this.#problem(bundlePath, `policy is invalid: ${messageOf(error)}`);
      return;
    }

    this.#generations.set(n, {
      generation: n,
      serial: statement.serial,
      name: statement.name,
      record,
      statement,
      policy,
    });
  }

  async #raiseFloorFrom(bytes: Uint8Array, opts: StoreOptions) {
    try {
      const { statement } = await verifyBundle(bytes, {
        trust: opts.trust,
        host: opts.host,
        groups: opts.groups,
      });
      this.#highestSerial = Math.max(this.#highestSerial, statement.serial);
    } catch {
      // Unverified bytes never move the floor.
    }
  }

  #problem(file: string, reason: string) {
    this.problems.push({ file, reason });
  }

  #genDir() {
    return `${this.dir}/generations`;
  }

  #bundlePath(n: number) {
    return `${this.#genDir()}/${pad(n)}.bundle.json`;
  }

  #statusPath(n: number) {
    return `${this.#genDir()}/${pad(n)}.status.json`;
  }

  /** The highest serial ever accepted; pushes must go above it. */
  get highestSerial(): number {
    return this.#highestSerial;
  }

  /** The usable generations, oldest first. */
  list(): StoredGeneration[] {
    return [...this.#generations.values()].sort((a, b) =>
      a.generation - b.generation
    );
  }

  /** One usable generation by number. */
  get(generation: number): StoredGeneration | undefined {
    return this.#generations.get(generation);
  }

  /** The newest confirmed generation: the last known good. */
  lastKnownGood(): StoredGeneration | null {
    const confirmed = this.list().filter((g) =>
      g.record.status === "confirmed"
    );
    return confirmed.at(-1) ?? null;
  }

  /** Generations still marked pending, oldest first. */
  pending(): StoredGeneration[] {
    return this.list().filter((g) => g.record.status === "pending");
  }

  /**
   * Checks that the state directory can be written now by writing and
   * removing a probe file.
   *
   * @throws {StateWriteError} the directory is read-only, full or failing
   */
  async probe(): Promise<void> {
    await this.#fs.ensureDir(this.#genDir());
    const path = `${this.dir}/probe`;
    await this.#fs.writeAtomic(path, new Uint8Array([0x0a]));
    await this.#fs.remove(path);
  }

  /**
   * Records a newly accepted bundle as the next pending generation:
   * writes the envelope, its status record and the raised serial floor.
   * On failure nothing is kept in memory and what was written is
   * removed where possible.
   *
   * @param envelope the envelope bytes exactly as received
   * @param statement its verified statement
   * @param policy its validated policy
   * @param receivedAt when the host accepted it
   * @throws {StateWriteError} the state directory cannot be written
   */
  async addPending(
    envelope: Uint8Array,
    statement: BundleStatement,
    policy: NormalPolicy,
    receivedAt: Date,
  ): Promise<StoredGeneration> {
    const n = this.#highestGeneration + 1;
    const record: GenerationRecord = {
      generation: n,
      serial: statement.serial,
      name: statement.name,
      status: "pending",
      receivedAt: receivedAt.toISOString(),
    };
    const floor = Math.max(this.#highestSerial, statement.serial);

    try {
      await this.#fs.ensureDir(this.#genDir());
      await this.#fs.writeAtomic(this.#bundlePath(n), envelope);
      await this.#fs.writeAtomic(this.#statusPath(n), encode(record));
      await this.#writeFloor(floor, n);
    } catch (error) {
      await this.#fs.remove(this.#statusPath(n)).catch(() => {});
      await this.#fs.remove(this.#bundlePath(n)).catch(() => {});
      throw toStateWriteError(error, this.#statusPath(n));
    }

    this.#highestGeneration = n;
    this.#highestSerial = floor;
    this.#onDisk.add(n);
    const stale = this.problems.findIndex((p) => p.reason === NO_GENERATIONS);
    if (stale >= 0) this.problems.splice(stale, 1);
    const stored: StoredGeneration = {
      generation: n,
      serial: statement.serial,
      name: statement.name,
      record,
      statement,
      policy,
    };
    this.#generations.set(n, stored);
    return stored;
  }

  async #writeFloor(highestSerial: number, highestGeneration: number) {
    await this.#fs.writeAtomic(
      `${this.dir}/floor.json`,
      encode({ highestSerial, highestGeneration }),
    );
  }

  /**
   * Rewrites the status record of `generation` with `patch` applied;
   * memory changes only once the write succeeded.
   *
   * @throws {StateWriteError} the state directory cannot be written
   * @throws {RangeError} no such usable generation
   */
  async update(
    generation: number,
    patch: Partial<Omit<GenerationRecord, "generation" | "serial" | "name">>,
  ): Promise<StoredGeneration> {
    const current = this.#generations.get(generation);
    if (!current) {
      throw new RangeError(
        `Cannot update generation ${generation}: it is not in the store`,
      );
    }
    const record = { ...current.record, ...patch };
    await this.#fs.writeAtomic(this.#statusPath(generation), encode(record));
    const next = { ...current, record };
    this.#generations.set(generation, next);
    return next;
  }

  /**
   * Removes the oldest generations (usable or not) beyond the bound,
   * never the last known good nor a pending one.
   *
   * @returns the generation numbers removed
   * @throws {StateWriteError} a file could not be removed
   */
  async prune(): Promise<number[]> {
    const keep = new Set<number>(this.pending().map((g) => g.generation));
    const lkg = this.lastKnownGood();
    if (lkg) keep.add(lkg.generation);

    const all = [...this.#onDisk].sort((a, b) => a - b);
    let excess = all.length - this.maxGenerations;
    const removed: number[] = [];
    for (const n of all) {
      if (excess <= 0) break;
      if (keep.has(n)) continue;
      // The status goes first: a bundle without status is never used.
      await this.#fs.remove(this.#statusPath(n));
      await this.#fs.remove(this.#bundlePath(n));
      this.#onDisk.delete(n);
      this.#generations.delete(n);
      removed.push(n);
      excess--;
    }
    return removed;
  }

  /** The rollback to empty in force, or null. */
  get withdrawn(): WithdrawnRecord | null {
    return this.#withdrawn ? { ...this.#withdrawn } : null;
  }

  /**
   * Records (or with null clears) a rollback to empty, so that a restart
   * fails open instead of re-applying the last known good. Memory
   * changes only once the write succeeded.
   *
   * @throws {StateWriteError} the state directory cannot be written
   */
  async setWithdrawn(record: WithdrawnRecord | null): Promise<void> {
    const path = `${this.dir}/withdrawn.json`;
    try {
      if (record === null) {
        await this.#fs.remove(path);
      } else {
        await this.#fs.ensureDir(this.dir);
        await this.#fs.writeAtomic(path, encode(record));
      }
    } catch (error) {
      throw toStateWriteError(error, path);
    }
    this.#withdrawn = record === null ? null : { ...record };
  }

  /** Used rollback nonces and when each expires (ms since the epoch). */
  rollbackNonces(): Map<string, number> {
    return new Map(this.#rollbackNonces);
  }

  /**
   * Replaces the stored used rollback nonces with `nonces` (nonce →
   * expiry in ms since the epoch), written atomically.
   *
   * @throws {StateWriteError} the state directory cannot be written
   */
  async saveRollbackNonces(nonces: Map<string, number>): Promise<void> {
    const path = `${this.dir}/rollback-nonces.json`;
    const out: Record<string, string> = {};
    for (const [nonce, expires] of nonces) {
      out[nonce] = new Date(expires).toISOString();
    }
    try {
      await this.#fs.ensureDir(this.dir);
      await this.#fs.writeAtomic(path, encode({ nonces: out }));
    } catch (error) {
      throw toStateWriteError(error, path);
    }
    this.#rollbackNonces = new Map(nonces);
  }

  /** Generation numbers that have files on disk, oldest first. */
  onDisk(): number[] {
    return [...this.#onDisk].sort((a, b) => a - b);
  }
}
