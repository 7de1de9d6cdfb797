/**
 * Test fixtures for the store and the manager: signing keys and a trust
 * store, signed bundles, heartbeats and rollback commands, a fake clock
 * with fake timers, temporary state directories and a state file layer
 * whose writes can be made to fail.
 *
 * @module
 */
import {
  encodePublicKeyPem,
  type Envelope,
  generateKeyPair,
  makeBundleStatement,
  makeConfirmStatement,
  makeRollbackStatement,
  parseTrustStore,
  type PrivateKey,
  serializeEnvelope,
  signStatement,
  type TrustStore,
} from "../signing/mod.ts";
import {
  denoStateFs,
  type StateFs,
  type StateWriteCode,
  toStateWriteError,
} from "./_atomic.ts";
import type { ManagerTimers } from "./manager.ts";

/** The host name every fixture statement targets. */
export const HOST = "web-1";

/** The clock fixtures start at. */
export const T0 = Date.parse("2026-06-01T12:00:00.000Z");

/** One key trusted for every payload kind, and its trust store. */
export interface Keys {
  key: PrivateKey;
  trust: TrustStore;
}

/** Makes a fresh signer and a trust store that trusts it for all kinds. */
export function makeKeys(): Keys {
  const { privateKey } = generateKeyPair();
  const text = JSON.stringify({
    keys: [{
      id: privateKey.publicKey.id,
      publicKey: encodePublicKeyPem(privateKey.publicKey),
      allow: ["bundle", "confirm", "rollback"],
    }],
    threshold: { bundle: 1, confirm: 1, rollback: 1 },
  });
  return { key: privateKey, trust: parseTrustStore(text, "trust.jsonc") };
}

/** A policy value with one inbound TCP block rule per port given. */
export function policyValue(name: string, ports: number[]): unknown {
  return {
    name,
    rules: ports.map((port) => ({
      id: `block-${port}`,
      action: "block",
      direction: "in",
      protocol: "tcp",
      localPorts: [port],
    })),
  };
}

function bytesOf(envelope: Envelope): Uint8Array {
  return new TextEncoder().encode(serializeEnvelope(envelope));
}

/** Options of {@linkcode bundle}. */
export interface BundleInit {
  serial: number;
  name?: string;
  ports?: number[];
  policy?: unknown;
  window?: number;
  targets?: string[];
  issuedAt?: number;
  expiresAt?: number;
  key?: PrivateKey;
}

/** A signed bundle as envelope bytes. */
export function bundle(keys: Keys, init: BundleInit): Uint8Array {
  const name = init.name ?? `policy-${init.serial}`;
  const statement = makeBundleStatement({
    policy: init.policy ?? policyValue(name, init.ports ?? [8080]),
    serial: init.serial,
    targets: init.targets ?? [HOST],
    issuedAt: new Date(init.issuedAt ?? T0 - 60_000),
    expiresAt: new Date(init.expiresAt ?? T0 + 86_400_000),
    commitWindowSeconds: init.window ?? 30,
  });
  return bytesOf(signStatement("bundle", statement, [init.key ?? keys.key]));
}

/** A signed heartbeat for `generation` with `nonce`. */
export function heartbeat(
  keys: Keys,
  generation: number,
  nonce: string,
  opts: { host?: string; now?: number } = {},
): Uint8Array {
  const statement = makeConfirmStatement({
    host: opts.host ?? HOST,
    generation,
    nonce,
    now: new Date(opts.now ?? T0),
  });
  return bytesOf(signStatement("confirm", statement, [keys.key]));
}

/** A signed rollback command. */
export function rollbackCommand(
  keys: Keys,
  opts: {
    to?: "last-known-good" | "empty";
    nonce?: string;
    host?: string;
    now?: number;
    validSeconds?: number;
  } = {},
): Uint8Array {
  const statement = makeRollbackStatement({
    host: opts.host ?? HOST,
    nonce: opts.nonce ?? crypto.randomUUID(),
    to: opts.to ?? "last-known-good",
    now: new Date(opts.now ?? T0),
    validSeconds: opts.validSeconds ?? 60,
  });
  return bytesOf(signStatement("rollback", statement, [keys.key]));
}

/**
 * A clock that moves only when told, with timers that fire in
 * `advance()`; each fired callback is awaited.
 */
export class FakeClock {
  now = T0;
  #next = 1;
  #timers = new Map<number, { at: number; fn: () => Promise<void> }>();

  readonly timers: ManagerTimers = {
    set: (fn, ms) => {
      const id = this.#next++;
      this.#timers.set(id, { at: this.now + ms, fn });
      return id;
    },
    clear: (id) => {
      this.#timers.delete(id as number);
    },
  };

  /** The clock function to give the manager. */
  readonly clock = (): number => this.now;

  /** Timers armed and not yet fired. */
  get armed(): number {
    return this.#timers.size;
  }

  /** Moves time on by `ms`, firing and awaiting every timer due. */
  async advance(ms: number): Promise<void> {
    this.now += ms;
    for (;;) {
      const due = [...this.#timers].filter(([, t]) => t.at <= this.now);
      if (due.length === 0) return;
      for (const [id, timer] of due) {
        this.#timers.delete(id);
        await timer.fn();
      }
    }
  }
}

/** State file operations whose writes fail on demand. */
export class FaultyFs implements StateFs {
  /** While set, every write, mkdir and remove fails with this code. */
  failWith: StateWriteCode | null = null;
  /** Successful atomic writes so far. */
  writes = 0;
  #once: { after: number; code: StateWriteCode } | null = null;

  /** Lets `after` more writes succeed, then fails one with `code`. */
  failOneWrite(code: StateWriteCode, after = 0): void {
    this.#once = { after, code };
  }

  #check(path: string) {
    if (this.failWith) throw this.#error(this.failWith, path);
    if (this.#once && this.#once.after-- === 0) {
      const { code } = this.#once;
      this.#once = null;
      throw this.#error(code, path);
    }
  }

  #error(code: StateWriteCode, path: string) {
    const os = { "read-only": "EROFS", "disk-full": "ENOSPC", io: "EIO" };
    const error = Object.assign(new Error(`injected ${os[code]}`), {
      code: os[code],
    });
    return toStateWriteError(error, path);
  }

  readFile(path: string) {
    return denoStateFs.readFile(path);
  }

  readDir(path: string) {
    return denoStateFs.readDir(path);
  }

  async ensureDir(path: string) {
    try {
      await Deno.stat(path);
      return;
    } catch {
      if (this.failWith) throw this.#error(this.failWith, path);
    }
    await denoStateFs.ensureDir(path);
  }

  async writeAtomic(path: string, data: Uint8Array) {
    this.#check(path);
    this.writes++;
    await denoStateFs.writeAtomic(path, data);
  }

  async remove(path: string) {
    if (this.failWith) throw this.#error(this.failWith, path);
    await denoStateFs.remove(path);
  }
}

/** A fresh temporary state directory, removed on dispose. */
export async function tempStateDir(): Promise<
  AsyncDisposable & { dir: string }
> {
  const dir = await Deno.makeTempDir({ prefix: "palisade-state-" });
  return {
    dir,
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Awaits `fn`, which must reject with an instance of `type`; returns it. */
export async function rejects<E extends Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  type: new (...args: any[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    if (error instanceof type) return error;
    throw new Error(`Expected ${type.name}, got ${error}`, { cause: error });
  }
  throw new Error(`Expected ${type.name}, but nothing was thrown`);
}
