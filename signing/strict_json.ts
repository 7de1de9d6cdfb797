/**
 * A strict RFC 8259 JSON parser. Unlike `JSON.parse` it refuses
 * duplicate object keys (two readers of the same bytes must never see
 * different values), a byte order mark, lone UTF-16 surrogates and
 * nesting deeper than a fixed bound, and every refusal names the line
 * and column where it happened.
 *
 * @module
 */

/** Deepest nesting of arrays and objects the parser accepts. */
export const MAX_JSON_DEPTH = 256;

/** A JSON text that {@linkcode parseStrictJson} refuses. */
export class StrictJsonError extends SyntaxError {
  /** Name of the input, as given by the caller (a path or a label). */
  readonly source: string;
  /** 1-based line of the offending character. */
  readonly line: number;
  /** 1-based column (UTF-16 code units) of the offending character. */
  readonly column: number;

  /** Makes a refusal at a 1-based line and column of `source`. */
  constructor(source: string, line: number, column: number, why: string) {
    super(`Cannot parse ${source}: ${why} at line ${line}, column ${column}`);
    this.name = "StrictJsonError";
    this.source = source;
    this.line = line;
    this.column = column;
  }
}

/**
 * Parses `text` as strict JSON (RFC 8259) and returns its value.
 *
 * Objects come back as plain objects whose own properties are the keys
 * as written (a key named `__proto__` stays an ordinary property).
 *
 * @param text the JSON text; no byte order mark, no comments
 * @param source names the input in error messages (a path or a label)
 * @returns the parsed value
 * @throws {StrictJsonError} on any syntax error, duplicate key, lone
 *   surrogate, byte order mark, integer outside the safe range
 *   that a double cannot hold exactly, or nesting deeper than
 *   {@linkcode MAX_JSON_DEPTH}
 *
 * @example
 * ```ts
 * import { parseStrictJson } from "./strict_json.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseStrictJson('{"a": [1, true]}', "example"), {
 *   a: [1, true],
 * });
 * assert.throws(() => parseStrictJson('{"a": 1, "a": 2}', "example"));
 * ```
 */
export function parseStrictJson(text: string, source: string): unknown {
  const parser = new Parser(text, source);
  if (text.charCodeAt(0) === 0xfeff) {
    parser.fail(0, "byte order mark is not allowed");
  }

  parser.skipSpace();
  const value = parser.value(0);
  parser.skipSpace();
  if (parser.pos < text.length) {
    parser.fail(parser.pos, "unexpected data after the JSON value");
  }
  return value;
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
// Characters a string may hold unescaped; control characters and
// surrogates stop the run so that they get their own checks.
// deno-lint-ignore no-control-regex
const PLAIN_RUN = /[^"\\\u0000-\u001f\ud800-\udfff]*/y;
// deno-lint-ignore no-control-regex
const SPECIAL = /[\\\u0000-\u001f\ud800-\udfff]/;

const ESCAPES: Record<string, string> = {
  '"': '"',
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};

class Parser {
  pos = 0;

  constructor(readonly text: string, readonly source: string) {}

  fail(at: number, why: string): never {
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < at && i < this.text.length; i++) {
      if (this.text.charCodeAt(i) === 0x0a) {
        line++;
        lineStart = i + 1;
      }
    }
    throw new StrictJsonError(this.source, line, at - lineStart + 1, why);
  }

  skipSpace(): void {
    const text = this.text;
    let pos = this.pos;
    while (pos < text.length) {
      const c = text.charCodeAt(pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      pos++;
    }
    this.pos = pos;
  }

  value(depth: number): unknown {
    const text = this.text;
    const c = text[this.pos];
    switch (c) {
      case "{":
        return this.object(depth + 1);
      case "[":
        return this.array(depth + 1);
      case '"':
        return this.string();
      case "t":
        return this.literal("true", true);
      case "f":
        return this.literal("false", false);
      case "n":
        return this.literal("null", null);
      case undefined:
        return this.fail(this.pos, "unexpected end of input");
    }

    NUMBER.lastIndex = this.pos;
    const match = NUMBER.exec(text);
    if (match === null) {
      this.fail(this.pos, `unexpected character ${describe(c)}`);
    }
    const number = Number(match[0]);
    if (!Number.isFinite(number)) {
      this.fail(this.pos, "number is out of range");
    }
    // A serial or a generation must read the same to every reader: an
    // integer that a double cannot hold exactly is refused, not rounded.
    if (
      /^-?[0-9]+$/.test(match[0]) && !Number.isSafeInteger(number) &&
      BigInt(match[0]) !== BigInt(number)
    ) {
      this.fail(
        this.pos,
        `integer ${match[0]} is outside the safe range ` +
          `(±${Number.MAX_SAFE_INTEGER}) and would lose precision`,
      );
    }
    this.pos += match[0].length;
    return number;
  }

  literal<T>(word: string, value: T): T {
    if (!this.text.startsWith(word, this.pos)) {
      this.fail(
        this.pos,
        `unexpected character ${describe(this.text[this.pos])}`,
      );
    }
    this.pos += word.length;
    return value;
  }

  object(depth: number): Record<string, unknown> {
    if (depth > MAX_JSON_DEPTH) {
      this.fail(this.pos, `nesting deeper than ${MAX_JSON_DEPTH} levels`);
    }
    const result: Record<string, unknown> = {};
    this.pos++;
    this.skipSpace();
    if (this.text[this.pos] === "}") {
      this.pos++;
      return result;
    }

    for (;;) {
      const keyAt = this.pos;
      if (this.text[keyAt] !== '"') {
        this.fail(keyAt, "expected a string as object key");
      }
      const key = this.string();
      if (Object.hasOwn(result, key)) {
        this.fail(keyAt, `duplicate key ${JSON.stringify(key)}`);
      }
      this.skipSpace();
      this.expect(":");
      this.skipSpace();
      const value = this.value(depth);
      if (key === "__proto__") {
        // Keep "__proto__" an own data property, as JSON.parse does,
        // instead of replacing the prototype.
        Object.defineProperty(result, key, {
          value,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      } else {
        result[key] = value;
      }
      this.skipSpace();
      if (this.text[this.pos] === "}") {
        this.pos++;
        return result;
      }
      this.expect(",");
      this.skipSpace();
    }
  }

  array(depth: number): unknown[] {
    if (depth > MAX_JSON_DEPTH) {
      this.fail(this.pos, `nesting deeper than ${MAX_JSON_DEPTH} levels`);
    }
    const result: unknown[] = [];
    this.pos++;
    this.skipSpace();
    if (this.text[this.pos] === "]") {
      this.pos++;
      return result;
    }

    for (;;) {
      result.push(this.value(depth));
      this.skipSpace();
      if (this.text[this.pos] === "]") {
        this.pos++;
        return result;
      }
      this.expect(",");
      this.skipSpace();
    }
  }

  expect(char: string): void {
    if (this.text[this.pos] !== char) {
      const found = this.pos < this.text.length
        ? describe(this.text[this.pos])
        : "end of input";
      this.fail(this.pos, `expected '${char}' but found ${found}`);
    }
    this.pos++;
  }

  string(): string {
    const text = this.text;
    const start = this.pos;

    // Fast path: no escapes, control characters or surrogates.
    const end = text.indexOf('"', start + 1);
    if (end !== -1) {
      const plain = text.slice(start + 1, end);
      if (!SPECIAL.test(plain)) {
        this.pos = end + 1;
        return plain;
      }
    }

    let pos = start + 1;
    let out = "";
    for (;;) {
      PLAIN_RUN.lastIndex = pos;
      const run = PLAIN_RUN.exec(text)![0];
      out += run;
      pos += run.length;
      if (pos >= text.length) {
        this.fail(start, "unterminated string");
      }

      const c = text.charCodeAt(pos);
      if (c === 0x22) {
        this.pos = pos + 1;
        return out;
      }
      if (c < 0x20) {
        this.fail(pos, "control character in string must be escaped");
      }
      if (c >= 0xd800 && c <= 0xdfff) {
        const next = text.charCodeAt(pos + 1);
        if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          out += text.slice(pos, pos + 2);
          pos += 2;
          continue;
        }
        this.fail(pos, "lone surrogate in string");
      }

      // c is a backslash
      const esc = text[pos + 1];
      if (esc === "u") {
        const unit = this.hex4(pos);
        if (unit >= 0xd800 && unit <= 0xdbff) {
          if (text[pos + 6] !== "\\" || text[pos + 7] !== "u") {
            this.fail(pos, "lone surrogate escape in string");
          }
          const low = this.hex4(pos + 6);
          if (low < 0xdc00 || low > 0xdfff) {
            this.fail(pos, "lone surrogate escape in string");
          }
          out += String.fromCharCode(unit, low);
          pos += 12;
        } else if (unit >= 0xdc00 && unit <= 0xdfff) {
          this.fail(pos, "lone surrogate escape in string");
        } else {
          out += String.fromCharCode(unit);
          pos += 6;
        }
        continue;
      }
      const plain = esc === undefined ? undefined : ESCAPES[esc];
      if (plain === undefined || !Object.hasOwn(ESCAPES, esc)) {
        this.fail(pos, "invalid escape in string");
      }
      out += plain;
      pos += 2;
    }
  }

  hex4(at: number): number {
    const digits = this.text.slice(at + 2, at + 6);
    if (!/^[0-9a-fA-F]{4}$/.test(digits)) {
      this.fail(at, "invalid \\u escape in string");
    }
    return parseInt(digits, 16);
  }
}

function describe(char: string | undefined): string {
  if (char === undefined) return "end of input";
  const code = char.charCodeAt(0);
  if (code < 0x20 || code === 0x7f) {
    return `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
  }
  return `'${char}'`;
}
