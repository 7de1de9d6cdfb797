/**
 * IPv6 prefixes as four 32-bit words (most significant first), so that
 * large lists parse, sort, merge and print without a `bigint` per
 * address. Used by `AddressSet`; the public helpers in `address.ts`
 * speak `bigint`.
 *
 * @module
 */

/** A 128-bit value as four unsigned 32-bit words, most significant
 * first. */
export type Words = Uint32Array;

// Scratch space for the hot paths; every use is synchronous.
const SCRATCH = new Uint16Array(8);
const GROUPS = new Uint16Array(8);
const TEMP = new Uint32Array(4);

// Hex text of a 16-bit group from two table lookups: the high byte
// without leading zeros ("" for 0), then the low byte padded to two
// digits, or unpadded when the high byte is 0.
const HEX = Array.from({ length: 256 }, (_, i) => (i ? i.toString(16) : ""));
const HEX_TAIL = Array.from({ length: 256 }, (_, i) => [
  i.toString(16).padStart(2, "0"),
  i.toString(16),
]);

/**
 * Reads well-formed IPv6 text (no embedded IPv4, no zone) into `out`.
 *
 * @returns the prefix length (128 for a bare address), or -1 when the
 * text is anything else; the caller's full reader then says why
 */
export function readIpv6Words(text: string, out: Words): number {
  let end = text.indexOf("/");
  if (end < 0) end = text.length;
  let count = 0;
  let gap = -1;
  let i = 0;
  if (text.charCodeAt(0) === 58 && text.charCodeAt(1) === 58) {
    gap = 0;
    i = 2;
  }
  while (i < end) {
    const start = i;
    let group = 0;
    while (i < end && i - start < 4) {
      const digit = hexDigit(text.charCodeAt(i));
      if (digit < 0) break;
      group = group * 16 + digit;
      i++;
    }
    if (i === start || count === 8) return -1;
    SCRATCH[count++] = group;
    if (i === end) break;
    if (text.charCodeAt(i) !== 58) return -1; // not ":"
    i++;
    if (text.charCodeAt(i) === 58) {
      if (gap >= 0) return -1;
      gap = count;
      i++;
    } else if (i === end) return -1;
  }
  if (gap < 0 ? count !== 8 : count > 7) return -1;

  let prefix = 128;
  if (end < text.length) {
    prefix = readPrefix(text, end + 1);
    if (prefix < 0 || prefix > 128) return -1;
  }

  // Spread the groups around the "::" gap into eight slots.
  const zeros = gap < 0 ? 0 : 8 - count;
  let slot = 0;
  let word = 0;
  for (let g = 0; g <= count; g++) {
    if (g === gap) {
      for (let z = 0; z < zeros; z++) {
        word = (word << 16) >>> 0;
        if (++slot % 2 === 0) out[slot / 2 - 1] = word;
      }
    }
    if (g === count) break;
    word = ((word << 16) | SCRATCH[g]) >>> 0;
    if (++slot % 2 === 0) out[slot / 2 - 1] = word;
  }
  return prefix;
}

/** Network mask word `k` (0-3) of a prefix length. */
export function maskWord(prefix: number, k: number): number {
  const bits = Math.min(32, Math.max(0, prefix - 32 * k));
  return bits === 0 ? 0 : bits === 32 ? 0xffffffff : (~0 << (32 - bits)) >>> 0;
}

/** Compares two 4-word values at word offsets `a` and `b`. */
export function compareAt(x: Words, a: number, y: Words, b: number): number {
  for (let k = 0; k < 4; k++) {
    const d = x[a + k] - y[b + k];
    if (d !== 0) return d;
  }
  return 0;
}

/** True when `x` at `a` is all ones (the last address). */
function isMax(x: Words, a: number): boolean {
  return x[a] === 0xffffffff && x[a + 1] === 0xffffffff &&
    x[a + 2] === 0xffffffff && x[a + 3] === 0xffffffff;
}

/**
 * Sorts prefixes (first and last address of each, 4 words apiece) and
 * merges overlapping and adjacent ones.
 *
 * @returns merged firsts and lasts, 4 words per range
 */
export function mergeWords(
  firsts: Words,
  lasts: Words,
  count: number,
): { firsts: Words; lasts: Words; count: number } {
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  order.sort((p, q) => compareAt(firsts, p * 4, firsts, q * 4));

  const outFirst = new Uint32Array(count * 4);
  const outLast = new Uint32Array(count * 4);
  let n = 0;
  for (let j = 0; j < count; j++) {
    const i = order[j] * 4;
    if (n > 0 && touches(outLast, (n - 1) * 4, firsts, i)) {
      if (compareAt(lasts, i, outLast, (n - 1) * 4) > 0) {
        outLast.set(lasts.subarray(i, i + 4), (n - 1) * 4);
      }
      continue;
    }
    outFirst.set(firsts.subarray(i, i + 4), n * 4);
    outLast.set(lasts.subarray(i, i + 4), n * 4);
    n++;
  }
  return {
    firsts: outFirst.subarray(0, n * 4),
    lasts: outLast.subarray(0, n * 4),
    count: n,
  };
}

/** True when the range ending at `last` reaches `first` or the
 * address just before it (first <= last + 1). */
function touches(last: Words, a: number, first: Words, b: number): boolean {
  if (isMax(last, a)) return true;
  // first - 1 <= last, computed without overflow: first is not zero
  // here unless it sorts first, and then first <= last holds anyway.
  if (compareAt(first, b, last, a) <= 0) return true;
  const before = TEMP;
  let borrow = 1;
  for (let k = 3; k >= 0; k--) {
    const v = first[b + k] - borrow;
    borrow = v < 0 ? 1 : 0;
    before[k] = v >>> 0;
  }
  return compareAt(before, 0, last, a) <= 0;
}

/**
 * Appends the fewest prefixes covering `first..last` (4 words each, at
 * offset `a`) to `out` as canonical text.
 */
export function rangeToIpv6Cidrs(
  firsts: Words,
  lasts: Words,
  a: number,
  out: string[],
): void {
  if (compareAt(firsts, a, lasts, a) === 0) {
    out.push(formatWords(firsts, a) + "/128");
    return;
  }
  const f = firsts.slice(a, a + 4);
  const l = lasts.subarray(a, a + 4);
  for (;;) {
    // The block: as large as f's alignment allows and no larger than
    // what is left (l - f + 1).
    const fit = log2Floor1(l, f);
    const k = Math.min(trailingZeros(f), fit);
    out.push(`${formatWords(f, 0)}/${128 - k}`);
    if (!addPow2(f, k)) return; // wrapped past the last address
    if (compareAt(f, 0, l, 0) > 0) return;
  }
}

/** floor(log2(l - f + 1)), 128 when the range is the whole space. */
function log2Floor1(l: Words, f: Words): number {
  const d = TEMP;
  let borrow = 0;
  for (let k = 3; k >= 0; k--) {
    const v = l[k] - f[k] - borrow;
    borrow = v < 0 ? 1 : 0;
    d[k] = v >>> 0;
  }
  // d + 1
  let carry = 1;
  for (let k = 3; k >= 0 && carry; k--) {
    const v = d[k] + carry;
    carry = v > 0xffffffff ? 1 : 0;
    d[k] = v >>> 0;
  }
  if (carry) return 128;
  for (let k = 0; k < 4; k++) {
    if (d[k] !== 0) return (3 - k) * 32 + (31 - Math.clz32(d[k]));
  }
  return 0;
}

function trailingZeros(f: Words): number {
  for (let k = 3; k >= 0; k--) {
    const w = f[k];
    if (w !== 0) return (3 - k) * 32 + 31 - Math.clz32(w & -w);
  }
  return 128;
}

/** f += 2^k in place; false when it wraps past the top. */
function addPow2(f: Words, k: number): boolean {
  if (k >= 128) return false;
  let word = 3 - Math.floor(k / 32);
  let carry = 2 ** (k % 32);
  while (word >= 0 && carry) {
    const v = f[word] + carry;
    carry = v > 0xffffffff ? 1 : 0;
    f[word] = v >>> 0;
    word--;
  }
  return carry === 0;
}

/** Formats 4 words at offset `a` in the RFC 5952 form. */
export function formatWords(x: Words, a: number): string {
  const g = GROUPS;
  for (let k = 0; k < 4; k++) {
    g[2 * k] = x[a + k] >>> 16;
    g[2 * k + 1] = x[a + k] & 0xffff;
  }
  // Compress the longest run of two or more zero groups, the first one
  // when runs tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  let text = "";
  let colon = false;
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      text += "::";
      i += bestLength - 1;
      colon = false;
      continue;
    }
    if (colon) text += ":";
    text += HEX[g[i] >> 8] + HEX_TAIL[g[i] & 255][g[i] >> 8 === 0 ? 1 : 0];
    colon = true;
  }
  return text;
}

/** 4 words at offset `a` as a `bigint`. */
export function wordsToBigint(x: Words, a: number): bigint {
  return (BigInt(x[a]) << 96n) | (BigInt(x[a + 1]) << 64n) |
    (BigInt(x[a + 2]) << 32n) | BigInt(x[a + 3]);
}

function readPrefix(text: string, start: number): number {
  const digits = text.length - start;
  if (digits < 1 || digits > 3) return -1;
  if (digits > 1 && text.charCodeAt(start) === 48) return -1;
  let n = 0;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 97 && c <= 102) return c - 87; // a-f
  if (c >= 65 && c <= 70) return c - 55; // A-F
  return -1;
}
