/**
 * A stand-in for the policy manager in the control API and client
 * tests: it keeps one pending generation with a deadline and takes
 * unsigned `{ kind, statement }` envelopes, so the HTTP plumbing can be
 * tested without keys or an engine.
 *
 * @module
 */
import type { ControlManager } from "./server.ts";

/** A refusal in the manager's shape (`code`, `httpStatus`). */
export class FakeRefusal extends Error {
  constructor(readonly code: string, readonly httpStatus: number) {
    super(`Cannot accept request: ${code}`);
  }
}

/** Reads `{ kind, statement }`, or the statement inside a DSSE envelope. */
function statementOf(body: Uint8Array): Record<string, unknown> {
  const value = JSON.parse(new TextDecoder().decode(body));
  if (typeof value.payload === "string") {
    const bytes = Uint8Array.from(atob(value.payload), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  }
  return value.statement;
}

/** In-memory manager with a lazily expiring commit window. */
export class FakeManager implements ControlManager {
  generation = 0;
  active: number | null = null;
  pending: { generation: number; deadline: number; nonce: string } | null =
    null;
  pushConnection: string | undefined;
  confirmConnection: string | undefined;
  pushes = 0;
  confirms = 0;
  refuseNext: string | null = null;

  constructor(readonly windowMs: number) {}

  #expire(): void {
    if (this.pending !== null && Date.now() >= this.pending.deadline) {
      this.pending = null;
    }
  }

  push(_body: Uint8Array, meta?: { connection?: string }) {
    this.#expire();
    this.pushes++;
    if (this.refuseNext !== null) {
      const code = this.refuseNext;
      this.refuseNext = null;
      return Promise.reject(new FakeRefusal(code, 403));
    }
    if (this.pending !== null) {
      return Promise.reject(new FakeRefusal("pending", 409));
    }
    this.pushConnection = meta?.connection;
    const generation = ++this.generation;
    const deadline = Date.now() + this.windowMs;
    this.pending = { generation, deadline, nonce: `n${generation}` };
    return Promise.resolve({
      generation,
      serial: generation,
      name: "p",
      deadline: new Date(deadline).toISOString(),
      windowSeconds: this.windowMs / 1000,
      nonce: `n${generation}`,
    });
  }

  confirm(body: Uint8Array, meta?: { connection?: string }) {
    this.#expire();
    const statement = statementOf(body);
    if (this.pending === null) {
      return Promise.reject(new FakeRefusal("window-closed", 409));
    }
    if (meta?.connection === this.pushConnection) {
      return Promise.reject(new FakeRefusal("same-connection", 409));
    }
    if (statement.nonce !== this.pending.nonce) {
      return Promise.reject(new FakeRefusal("wrong-nonce", 403));
    }
    this.confirmConnection = meta?.connection;
    this.active = this.pending.generation;
    this.pending = null;
    this.confirms++;
    return Promise.resolve({ generation: this.active, serial: this.active });
  }

  rollback(body: Uint8Array) {
    const statement = statementOf(body);
    this.pending = null;
    if (statement.to === "empty") this.active = null;
    return Promise.resolve({
      to: String(statement.to),
      generation: this.active,
    });
  }

  status() {
    this.#expire();
    const shown = this.pending?.generation ?? this.active;
    return {
      state: this.pending === null ? "idle" : "pending",
      active: shown === null
        ? null
        : { generation: shown, serial: shown, name: "p", rules: 1 },
      pending: this.pending === null ? null : {
        generation: this.pending.generation,
        serial: this.pending.generation,
        name: "p",
        deadline: new Date(this.pending.deadline).toISOString(),
        secondsLeft: Math.ceil((this.pending.deadline - Date.now()) / 1000),
      },
      lastKnownGood: this.active === null
        ? null
        : { generation: this.active, serial: this.active, name: "p" },
      lastError: null,
      stateWritable: true,
    };
  }

  current() {
    return this.active === null ? null : {
      generation: this.active,
      serial: this.active,
      name: "p",
      policy: { name: "p", rules: [] },
    };
  }

  counters() {
    return [{ id: "r1", packets: 1n, bytes: 60n }];
  }
}
