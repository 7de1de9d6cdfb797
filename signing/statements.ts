/**
 * The statements Palisade signs (bundle, confirm, rollback): their exact
 * shapes, the checks that decide whether a parsed payload is one, and
 * the builders that make and sign them.
 *
 * @module
 */
import {
  addSignature,
  type Envelope,
  PAYLOAD_TYPES,
  type PayloadKind,
  signPayload,
} from "./dsse.ts";
import { VerifyError } from "./errors.ts";
import type { PrivateKey } from "./keys.ts";

/** The payload of a bundle: one signed policy and where it may run. */
export interface BundleStatement {
  /** Policy name, copied from the policy. */
  name: string;
  /** Monotonic release number; hosts refuse one not above their floor. */
  serial: number;
  /** ISO 8601 time of signing. */
  issuedAt: string;
  /** ISO 8601 time after which hosts refuse the bundle. */
  expiresAt: string;
  /** Host names or `group:NAME`; empty means every host. */
  targets: string[];
  /** Seconds the host waits for a confirm before it reverts (≥ 2). */
  commitWindowSeconds: number;
  /** The policy as its author wrote it (JSON value, comments removed). */
  policy: unknown;
}

/** A heartbeat that confirms one applied generation on one host. */
export interface ConfirmStatement {
  /** The host that applied the generation. */
  host: string;
  /** The generation the host applied and now holds pending. */
  generation: number;
  /** The nonce the host issued with that apply; usable once. */
  nonce: string;
  /** ISO 8601 time the heartbeat was signed. */
  issuedAt: string;
}

/** A signed order to one host to revert. */
export interface RollbackStatement {
  /** The one host this order is for. */
  host: string;
  /** A nonce the host issued; usable once. */
  nonce: string;
  /** ISO 8601 time of signing. */
  issuedAt: string;
  /** ISO 8601 time after which the host refuses the order. */
  expiresAt: string;
  /** Restore the last known good, or remove every Palisade rule. */
  to: "last-known-good" | "empty";
}

/** Statement type of each payload kind. */
export interface StatementOf {
  /** Statement of `application/vnd.palisade.bundle+json`. */
  bundle: BundleStatement;
  /** Statement of `application/vnd.palisade.confirm+json`. */
  confirm: ConfirmStatement;
  /** Statement of `application/vnd.palisade.rollback+json`. */
  rollback: RollbackStatement;
}

const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;
const HOST = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})$/;
const GROUP = /^group:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})$/;
const DAY_MS = 86_400_000;

/**
 * Checks that a parsed payload is exactly a bundle statement.
 *
 * @throws {VerifyError} `missing-field` or `bad-statement` naming the
 *   field and what is wrong with it
 *
 * @example
 * ```ts
 * import { parseBundleStatement } from "./statements.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(
 *   () => parseBundleStatement({ name: "x" }),
 *   /has no 'serial' field/,
 * );
 * ```
 */
export function parseBundleStatement(value: unknown): BundleStatement {
  const fields = exactFields(value, "bundle", [
    "name",
    "serial",
    "issuedAt",
    "expiresAt",
    "targets",
    "commitWindowSeconds",
    "policy",
  ]);
  const statement: BundleStatement = {
    name: text(fields, "name", "bundle"),
    serial: integer(fields, "serial", "bundle", 0),
    issuedAt: time(fields, "issuedAt", "bundle"),
    expiresAt: time(fields, "expiresAt", "bundle"),
    targets: targets(fields.targets),
    commitWindowSeconds: integer(fields, "commitWindowSeconds", "bundle", 2),
    policy: fields.policy,
  };
  const policy = fields.policy;
  if (typeof policy !== "object" || policy === null || Array.isArray(policy)) {
    bad("bundle field 'policy' must be a JSON object");
  }
  order(statement.issuedAt, statement.expiresAt, "bundle");
  return statement;
}

/**
 * Checks that a parsed payload is exactly a confirm statement.
 *
 * @throws {VerifyError} `missing-field` or `bad-statement`
 */
export function parseConfirmStatement(value: unknown): ConfirmStatement {
  const fields = exactFields(value, "confirm", [
    "host",
    "generation",
    "nonce",
    "issuedAt",
  ]);
  return {
    host: text(fields, "host", "confirm"),
    generation: integer(fields, "generation", "confirm", 0),
    nonce: text(fields, "nonce", "confirm"),
    issuedAt: time(fields, "issuedAt", "confirm"),
  };
}

/**
 * Checks that a parsed payload is exactly a rollback statement.
 *
 * @throws {VerifyError} `missing-field` or `bad-statement`
 */
export function parseRollbackStatement(value: unknown): RollbackStatement {
  const fields = exactFields(value, "rollback", [
    "host",
    "nonce",
    "issuedAt",
    "expiresAt",
    "to",
  ]);
  const to = fields.to;
  if (to !== "last-known-good" && to !== "empty") {
    bad('rollback field \'to\' must be "last-known-good" or "empty"');
  }
  const statement: RollbackStatement = {
    host: text(fields, "host", "rollback"),
    nonce: text(fields, "nonce", "rollback"),
    issuedAt: time(fields, "issuedAt", "rollback"),
    expiresAt: time(fields, "expiresAt", "rollback"),
    to,
  };
  order(statement.issuedAt, statement.expiresAt, "rollback");
  return statement;
}

/** Inputs of {@linkcode makeBundleStatement}. */
export interface BundleStatementInit {
  /** The policy as written (parsed JSON value, comments removed). */
  policy: unknown;
  /** Release number, a safe non-negative integer. */
  serial: number;
  /** Defaults to the policy's own `name`. */
  name?: string;
  /** Defaults to `[]`: every host. */
  targets?: string[];
  /** Defaults to now. */
  issuedAt?: Date;
  /** Defaults to seven days after `issuedAt`. */
  expiresAt?: Date;
  /** Defaults to 120. */
  commitWindowSeconds?: number;
}

/**
 * Builds a bundle statement and checks it the way a host will.
 *
 * @throws {TypeError} when the result would not be a valid statement
 *   (e.g. no name, negative serial, expiry before issue)
 *
 * @example
 * ```ts
 * import { makeBundleStatement } from "./statements.ts";
 * import assert from "node:assert/strict";
 *
 * const statement = makeBundleStatement({
 *   policy: { name: "edge", rules: [] },
 *   serial: 1,
 *   issuedAt: new Date("2026-01-01T00:00:00Z"),
 * });
 * assert.deepEqual(statement.expiresAt, "2026-01-08T00:00:00.000Z");
 * ```
 */
export function makeBundleStatement(
  init: BundleStatementInit,
): BundleStatement {
  const issuedAt = init.issuedAt ?? new Date();
  const expiresAt = init.expiresAt ??
    new Date(issuedAt.getTime() + 7 * DAY_MS);
  const policyName = (init.policy as { name?: unknown } | null)?.name;
  const statement = {
    name: init.name ?? (typeof policyName === "string" ? policyName : ""),
    serial: init.serial,
    issuedAt: isoString(issuedAt),
    expiresAt: isoString(expiresAt),
    targets: [...(init.targets ?? [])],
    commitWindowSeconds: init.commitWindowSeconds ?? 120,
    policy: init.policy,
  };
  return build(() => parseBundleStatement(statement), "bundle");
}

/**
 * Builds a confirm statement for the generation a host just applied.
 *
 * @throws {TypeError} when a field is invalid
 *
 * @example
 * ```ts
 * import { makeConfirmStatement } from "./statements.ts";
 * import assert from "node:assert/strict";
 *
 * const statement = makeConfirmStatement({
 *   host: "web-1",
 *   generation: 4,
 *   nonce: "9f2c",
 *   now: new Date("2026-01-01T00:00:00Z"),
 * });
 * assert.equal(statement.issuedAt, "2026-01-01T00:00:00.000Z");
 * ```
 */
export function makeConfirmStatement(init: {
  host: string;
  generation: number;
  nonce: string;
  now?: Date;
}): ConfirmStatement {
  const statement = {
    host: init.host,
    generation: init.generation,
    nonce: init.nonce,
    issuedAt: isoString(init.now ?? new Date()),
  };
  return build(() => parseConfirmStatement(statement), "confirm");
}

/**
 * Builds a rollback statement, valid from `now` for `validSeconds`
 * (default 300). Hosts refuse a validity above 600 seconds
 * (`MAX_ROLLBACK_VALIDITY_SECONDS` of verify.ts) as `bad-statement`.
 *
 * @throws {TypeError} when a field is invalid
 */
export function makeRollbackStatement(init: {
  host: string;
  nonce: string;
  to?: "last-known-good" | "empty";
  now?: Date;
  validSeconds?: number;
}): RollbackStatement {
  const now = init.now ?? new Date();
  const statement = {
    host: init.host,
    nonce: init.nonce,
    issuedAt: isoString(now),
    expiresAt: isoString(
      new Date(now.getTime() + (init.validSeconds ?? 300) * 1000),
    ),
    to: init.to ?? "last-known-good",
  };
  return build(() => parseRollbackStatement(statement), "rollback");
}

/**
 * Serialises `statement` once with `JSON.stringify` and signs those
 * bytes with every key (k of n).
 *
 * @param kind payload kind; chooses the payload type
 * @param statement the statement to sign
 * @param keys one or more distinct private keys
 * @throws {SigningError} when a key appears twice
 * @throws {TypeError} when `keys` is empty
 *
 * @example
 * ```ts
 * import { makeBundleStatement, signStatement } from "./statements.ts";
 * import { generateKeyPair } from "./keys.ts";
 * import assert from "node:assert/strict";
 *
 * const { privateKey } = generateKeyPair();
 * const statement = makeBundleStatement({
 *   policy: { name: "edge", rules: [] },
 *   serial: 1,
 * });
 * const envelope = signStatement("bundle", statement, [privateKey]);
 * assert.deepEqual(envelope.payloadType, "application/vnd.palisade.bundle+json");
 * ```
 */
export function signStatement<K extends PayloadKind>(
  kind: K,
  statement: StatementOf[K],
  keys: PrivateKey[],
): Envelope {
  if (keys.length === 0) {
    throw new TypeError("Cannot sign statement: no signing key given");
  }
  const payload = new TextEncoder().encode(JSON.stringify(statement));
  let envelope = signPayload(PAYLOAD_TYPES[kind], payload, keys[0]);
  for (const key of keys.slice(1)) {
    envelope = addSignature(envelope, key);
  }
  return envelope;
}

function build<T>(parse: () => T, kind: PayloadKind): T {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof VerifyError)) throw error;
    const why = error.message.replace(/^Cannot accept statement: /, "");
    throw new TypeError(`Cannot make ${kind} statement: ${why}`);
  }
}

function isoString(date: Date): string {
  if (Number.isNaN(date.getTime())) {
    throw new TypeError("Cannot make statement: invalid date");
  }
  return date.toISOString();
}

function bad(message: string): never {
  throw new VerifyError("bad-statement", `Cannot accept statement: ${message}`);
}

function exactFields(
  value: unknown,
  kind: string,
  names: string[],
): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    bad(`${kind} statement must be a JSON object`);
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!names.includes(key)) {
      bad(`unknown field '${key}' in ${kind} statement`);
    }
  }
  for (const name of names) {
    if (!Object.hasOwn(record, name)) {
      throw new VerifyError(
        "missing-field",
        `Cannot accept statement: ${kind} statement has no '${name}' field`,
      );
    }
  }
  return record;
}

function text(
  fields: Record<string, unknown>,
  name: string,
  kind: string,
): string {
  const value = fields[name];
  if (typeof value !== "string" || value.length === 0) {
    bad(`${kind} field '${name}' must be a non-empty string`);
  }
  return value;
}

function integer(
  fields: Record<string, unknown>,
  name: string,
  kind: string,
  min: number,
): number {
  const value = fields[name];
  if (
    typeof value !== "number" || !Number.isSafeInteger(value) || value < min
  ) {
    bad(
      `${kind} field '${name}' must be an integer of at least ${min}, got ${
        JSON.stringify(value)
      }`,
    );
  }
  return value;
}

function time(
  fields: Record<string, unknown>,
  name: string,
  kind: string,
): string {
  const value = fields[name];
  const match = typeof value === "string" ? ISO_8601.exec(value) : null;
  if (match === null || Number.isNaN(Date.parse(value as string))) {
    bad(
      `${kind} field '${name}' must be an ISO 8601 time such as 2026-01-31T12:00:00Z, got ${
        JSON.stringify(value)
      }`,
    );
  }
  const [, y, m, d, hh, mm, ss] = match.map(Number);
  const day = new Date(Date.UTC(y, m - 1, d));
  if (
    day.getUTCMonth() !== m - 1 || day.getUTCDate() !== d || hh > 23 ||
    mm > 59 || ss > 59
  ) {
    bad(`${kind} field '${name}' is not a real date and time: ${value}`);
  }
  return value as string;
}

function targets(value: unknown): string[] {
  if (!Array.isArray(value)) {
    bad("bundle field 'targets' must be an array of host names or group:NAME");
  }
  for (const target of value) {
    if (
      typeof target !== "string" ||
      (!GROUP.test(target) && (target.includes(":") || !HOST.test(target)))
    ) {
      bad(
        `bundle target ${
          JSON.stringify(target)
        } is not a host name or group:NAME`,
      );
    }
  }
  return value as string[];
}

function order(issuedAt: string, expiresAt: string, kind: string): void {
  if (Date.parse(expiresAt) <= Date.parse(issuedAt)) {
    bad(`${kind} expiresAt ${expiresAt} is not after issuedAt ${issuedAt}`);
  }
}
