/**
 * Input generators of the bad-input properties: random bytes and text,
 * and inputs mutated from a valid one, at the byte level and at the
 * JSON level (one value replaced or removed).
 *
 * @module
 */
import fc from "fast-check";
import { countFromEnv } from "./_kit.ts";

/** Cases per target: `PALISADE_FUZZ_RUNS`, 200 by default. */
export function fuzzRuns(): number {
  return countFromEnv("PALISADE_FUZZ_RUNS", 200);
}

/** Seed from `PALISADE_FUZZ_SEED`, else fast-check's own. */
export function fuzzSeed(): number | undefined {
  const text = Deno.env.get("PALISADE_FUZZ_SEED");
  return text ? Number(text) : undefined;
}

/** Byte edits of `base`: flip, delete, insert, truncate, duplicate. */
export function mutatedBytes(base: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc.tuple(
    fc.constantFrom("flip", "delete", "insert", "truncate", "duplicate"),
    fc.nat({ max: Math.max(0, base.length - 1) }),
    fc.integer({ min: 1, max: 255 }),
    fc.integer({ min: 1, max: 64 }),
  ).map(([kind, at, byte, span]) => {
    const out = Array.from(base);
    switch (kind) {
      case "flip":
        out[at] ^= byte;
        break;
      case "delete":
        out.splice(at, span);
        break;
      case "insert":
        out.splice(at, 0, ...new Array(span).fill(byte));
        break;
      case "truncate":
        out.length = at;
        break;
      case "duplicate":
        out.splice(at, 0, ...out.slice(at, at + span));
        break;
    }
    return new Uint8Array(out);
  });
}

/** Text edits of `base`, as text. */
export function mutatedText(base: string): fc.Arbitrary<string> {
  const bytes = new TextEncoder().encode(base);
  return mutatedBytes(bytes).map((b) => new TextDecoder().decode(b));
}

function paths(value: unknown, prefix: (string | number)[] = []) {
  const out: (string | number)[][] = [prefix];
  if (Array.isArray(value)) {
    value.forEach((v, i) => out.push(...paths(v, [...prefix, i])));
  } else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      out.push(...paths(v, [...prefix, k]));
    }
  }
  return out;
}

/** Odd JSON values a mutation puts in place of a valid one. */
export function oddValue(): fc.Arbitrary<unknown> {
  return fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom(
      "",
      "0.0.0.0/0",
      "::/0",
      "999.1.1.1/33",
      "65536",
      "1-0",
      -1,
      0,
      2 ** 53,
      1e308,
      "\u0000",
      "é".repeat(300),
      "__proto__",
      [],
      {},
      null,
    ),
  );
}

/**
 * `base` with one value (any depth) replaced by an odd one, or removed
 * (object keys) — a JSON value that is almost valid.
 */
export function mutatedJson(base: unknown): fc.Arbitrary<unknown> {
  const all = paths(base).filter((p) => p.length > 0);
  return fc.tuple(
    fc.constantFrom(...all),
    fc.boolean(),
    oddValue(),
  ).map(([path, remove, value]) => {
    const copy = structuredClone(base) as Record<string | number, unknown>;
    let node = copy;
    for (const key of path.slice(0, -1)) {
      node = node[key] as Record<string | number, unknown>;
    }
    const last = path[path.length - 1];
    if (remove && !Array.isArray(node)) delete node[last];
    else node[last] = value;
    return copy;
  });
}

/** Random input of any shape: bytes, text, JSON text. */
export function randomText(): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: "binary", maxLength: 200 }),
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? "null"),
  );
}
