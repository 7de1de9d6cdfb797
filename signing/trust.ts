/**
 * The trust store: which public keys a host trusts, which payload types
 * each may sign, and how many distinct signers each type needs.
 *
 * ```jsonc
 * {
 *   "keys": [
 *     { "id": "<hex SHA-256 of the SPKI DER>",
 *       "publicKey": "-----BEGIN PUBLIC KEY-----\n…",
 *       "allow": ["bundle", "confirm", "rollback"] }
 *   ],
 *   "threshold": { "bundle": 1, "confirm": 1, "rollback": 1 }
 * }
 * ```
 *
 * @module
 */
import {
  type Node,
  type ParseError,
  parseTree,
  printParseErrorCode,
} from "jsonc-parser";
import { PAYLOAD_TYPES, type PayloadKind } from "./dsse.ts";
import { KeyError, parsePublicKeyPem, type PublicKey } from "./keys.ts";

/** One trusted signer. */
export interface TrustedKey {
  /** Key ID: lowercase hex SHA-256 of the SPKI DER. */
  id: string;
  /** The checked Ed25519 public key. */
  publicKey: PublicKey;
  /** Payload kinds this key may sign. */
  allow: PayloadKind[];
}

/** A parsed, checked trust store. */
export interface TrustStore {
  /** Where it was read from, for messages. */
  source: string;
  /** Trusted keys, each listed once. */
  keys: TrustedKey[];
  /** Distinct signers required per payload kind (k of n). */
  threshold: Record<PayloadKind, number>;
}

/** A trust store that cannot be used, with where the problem is. */
export class TrustStoreError extends Error {
  /** Path or label of the trust store. */
  readonly source: string;
  /** 1-based line, when the problem has a place in the file. */
  readonly line?: number;
  /** 1-based column, when the problem has a place in the file. */
  readonly column?: number;

  /** Makes a refusal of `source`, at a line and column when known. */
  constructor(source: string, why: string, line?: number, column?: number) {
    const where = line === undefined ? source : `${source}:${line}:${column}`;
    super(`Cannot load trust store: ${where}: ${why}`);
    this.name = "TrustStoreError";
    this.source = source;
    this.line = line;
    this.column = column;
  }
}

const KINDS = Object.keys(PAYLOAD_TYPES) as PayloadKind[];
const KEY_ID = /^[0-9a-f]{64}$/;

/**
 * Parses and checks a trust store written in JSONC.
 *
 * Refused, with file:line:column: syntax errors, duplicate or unknown
 * fields, a key ID that is not the SHA-256 of its key, a key that is not
 * a usable Ed25519 public key, a key listed twice, unknown `allow`
 * names, and thresholds below 1 or above the number of keys allowed to
 * sign that payload type.
 *
 * @param text the JSONC text
 * @param source names the file in messages
 * @throws {TrustStoreError} naming the place and the problem
 *
 * @example
 * ```ts
 * import { parseTrustStore } from "./trust.ts";
 * import { encodePublicKeyPem, generateKeyPair } from "./keys.ts";
 * import assert from "node:assert/strict";
 *
 * const { publicKey } = generateKeyPair();
 * const store = parseTrustStore(
 *   JSON.stringify({
 *     keys: [{
 *       id: publicKey.id,
 *       publicKey: encodePublicKeyPem(publicKey),
 *       allow: ["bundle", "confirm", "rollback"],
 *     }],
 *     threshold: { bundle: 1, confirm: 1, rollback: 1 },
 *   }),
 *   "trust.jsonc",
 * );
 * assert.deepEqual(store.keys[0].id, publicKey.id);
 * ```
 */
export function parseTrustStore(text: string, source: string): TrustStore {
  const reader: Reader = new Reader(text, source);
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, {
    allowTrailingComma: true,
    disallowComments: false,
  });
  if (errors.length > 0) {
    const first = errors[0];
    reader.fail(
      first.offset,
      `syntax error (${printParseErrorCode(first.error)})`,
    );
  }
  if (root === undefined) reader.fail(0, "empty file");

  const fields = reader.object(root, "trust store", {
    keys: true,
    threshold: true,
    $schema: false,
  });
  const keysNode = fields.get("keys")!;
  if (keysNode.type !== "array" || (keysNode.children ?? []).length === 0) {
    reader.fail(keysNode.offset, "'keys' must be a non-empty array");
  }

  const keys: TrustedKey[] = [];
  const seen = new Map<string, number>();
  for (const [index, node] of (keysNode.children ?? []).entries()) {
    const key = reader.key(node, index);
    const earlier = seen.get(key.id);
    if (earlier !== undefined) {
      reader.fail(
        node.offset,
        `key ${key.id} is listed twice (also keys[${earlier}]); list each key once with all its 'allow' names`,
      );
    }
    seen.set(key.id, index);
    keys.push(key);
  }

  const thresholdNode = fields.get("threshold")!;
  const limits = reader.object(thresholdNode, "threshold", {
    bundle: true,
    confirm: true,
    rollback: true,
  });
  const threshold = {} as Record<PayloadKind, number>;
  for (const kind of KINDS) {
    const node = limits.get(kind)!;
    const allowed = keys.filter((k) => k.allow.includes(kind)).length;
    if (
      node.type !== "number" || !Number.isSafeInteger(node.value) ||
      node.value < 1
    ) {
      reader.fail(
        node.offset,
        `threshold.${kind} must be an integer of at least 1`,
      );
    }
    if (node.value > allowed) {
      reader.fail(
        node.offset,
        `threshold.${kind} is ${node.value} but only ${allowed} key(s) may sign ${kind}`,
      );
    }
    threshold[kind] = node.value;
  }

  return { source, keys, threshold };
}

/**
 * Reads and parses the trust store at `path`.
 *
 * @throws {TrustStoreError} when the file is unreadable or refused
 *
 * @example
 * ```ts
 * import { loadTrustStore, TrustStoreError } from "./trust.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(
 *   () => loadTrustStore("/nonexistent/trust.jsonc"),
 *   TrustStoreError,
 * );
 * ```
 */
export async function loadTrustStore(path: string): Promise<TrustStore> {
  let text;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new TrustStoreError(path, (error as Error).message);
  }
  return parseTrustStore(text, path);
}

class Reader {
  constructor(readonly text: string, readonly source: string) {}

  fail(offset: number, why: string): never {
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < offset && i < this.text.length; i++) {
      if (this.text.charCodeAt(i) === 0x0a) {
        line++;
        lineStart = i + 1;
      }
    }
    throw new TrustStoreError(this.source, why, line, offset - lineStart + 1);
  }

  /** Checks an object's field set; `true` marks required fields. */
  object(
    node: Node,
    what: string,
    known: Record<string, boolean>,
  ): Map<string, Node> {
    if (node.type !== "object") {
      this.fail(node.offset, `${what} must be an object`);
    }
    const fields = new Map<string, Node>();
    for (const property of node.children ?? []) {
      const [name, value] = property.children ?? [];
      const key = String(name.value);
      if (!Object.hasOwn(known, key)) {
        this.fail(name.offset, `unknown field '${key}' in ${what}`);
      }
      if (fields.has(key)) {
        this.fail(name.offset, `duplicate field '${key}' in ${what}`);
      }
      if (value === undefined) this.fail(name.offset, `'${key}' has no value`);
      fields.set(key, value);
    }
    for (const [key, required] of Object.entries(known)) {
      if (required && !fields.has(key)) {
        this.fail(node.offset, `missing field '${key}' in ${what}`);
      }
    }
    return fields;
  }

  key(node: Node, index: number): TrustedKey {
    const what = `keys[${index}]`;
    const fields = this.object(node, what, {
      id: true,
      publicKey: true,
      allow: true,
    });

    const pemNode = fields.get("publicKey")!;
    if (pemNode.type !== "string") {
      this.fail(pemNode.offset, `${what}.publicKey must be a PEM string`);
    }
    let publicKey: PublicKey;
    try {
      publicKey = parsePublicKeyPem(pemNode.value, `${what}.publicKey`);
    } catch (error) {
      if (!(error instanceof KeyError)) throw error;
      this.fail(pemNode.offset, error.message);
    }

    const idNode = fields.get("id")!;
    if (idNode.type !== "string" || !KEY_ID.test(idNode.value)) {
      this.fail(
        idNode.offset,
        `${what}.id must be 64 lowercase hex digits (SHA-256 of the SPKI DER)`,
      );
    }
    if (idNode.value !== publicKey.id) {
      this.fail(
        idNode.offset,
        `${what}.id does not match its public key (the key's ID is ${publicKey.id})`,
      );
    }

    const allowNode = fields.get("allow")!;
    if (allowNode.type !== "array" || (allowNode.children ?? []).length === 0) {
      this.fail(allowNode.offset, `${what}.allow must be a non-empty array`);
    }
    const allow: PayloadKind[] = [];
    for (const item of allowNode.children ?? []) {
      const name = item.value;
      if (item.type !== "string" || !KINDS.includes(name)) {
        this.fail(
          item.offset,
          `unknown name ${JSON.stringify(name)} in ${what}.allow (expected ${
            KINDS.join(", ")
          })`,
        );
      }
      if (allow.includes(name)) {
        this.fail(item.offset, `'${name}' is listed twice in ${what}.allow`);
      }
      allow.push(name);
    }

    return { id: publicKey.id, publicKey, allow };
  }
}
