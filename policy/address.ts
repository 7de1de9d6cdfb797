/**
 * IPv4 and IPv6 addresses and prefixes: strict parsing of CIDR text,
 * conversion to integer ranges, merging of overlapping and adjacent
 * prefixes into the minimal canonical cover, and formatting back to
 * text. Engines use {@linkcode rangesOf} to express merged ranges
 * directly (nft interval sets, WFP range conditions).
 *
 * @module
 */
import {
  formatWords,
  maskWord,
  mergeWords,
  rangeToIpv6Cidrs,
  readIpv6Words,
  type Words,
  wordsToBigint,
} from "./_ipv6.ts";

/** An address family: 4 for IPv4, 6 for IPv6. */
export type AddressFamily = 4 | 6;

/** A prefix as written: address bytes (host bits as given) and length. */
export interface ParsedCidr {
  family: AddressFamily;
  /** 4 bytes for IPv4, 16 for IPv6, network byte order. */
  bytes: Uint8Array;
  /** Prefix length: 0-32 for IPv4, 0-128 for IPv6. */
  prefix: number;
}

/** An inclusive range of addresses as unsigned integers. */
export interface AddressRange {
  first: bigint;
  last: bigint;
}

/** A prefix read as integers, the form the merge works on. */
export interface CidrValue {
  family: AddressFamily;
  /** The address as written, host bits included. */
  value: bigint;
  prefix: number;
}

const WIDTH = { 4: 32, 6: 128 } as const;

// Scratch words for one IPv6 address being read; use is synchronous.
const WORDS = new Uint32Array(4);
// Shared empty stores: an empty set allocates nothing; the first
// entry replaces them.
const NO_NUMBERS = new Float64Array(0);
const NO_WORDS = {
  firsts: new Uint32Array(0),
  lasts: new Uint32Array(0),
  count: 0,
};

// Host-bit masks by prefix length, so the hot paths shift no bigints.
const HOST_MASKS = {
  4: Array.from({ length: 33 }, (_, p) => (1n << BigInt(32 - p)) - 1n),
  6: Array.from({ length: 129 }, (_, p) => (1n << BigInt(128 - p)) - 1n),
};

/**
 * Reads `text` as a prefix and returns why it is not one instead of
 * throwing, so that callers in a hot loop pay no exception cost.
 *
 * @param text an address (`192.0.2.1`, `2001:db8::1`) or CIDR
 * (`192.0.2.0/24`); a bare address is a full-length prefix
 * @returns the prefix, or a sentence saying what is wrong
 */
export function readCidr(text: string): CidrValue | string {
  const prefix6 = readIpv6Words(text, WORDS);
  if (prefix6 >= 0) {
    return { family: 6, value: wordsToBigint(WORDS, 0), prefix: prefix6 };
  }
  const slash = text.indexOf("/");
  const host = slash < 0 ? text : text.slice(0, slash);
  let family: AddressFamily;
  let value: bigint | string;
  if (host.includes(":")) {
    family = 6;
    value = readIpv6(host);
  } else {
    family = 4;
    const v4 = readIpv4(host);
    value = typeof v4 === "string" ? v4 : BigInt(v4);
  }
  if (typeof value === "string") return value;

  const width = WIDTH[family];
  if (slash < 0) return { family, value, prefix: width };
  const digits = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(digits)) {
    return `prefix length "${digits}" is not a number from 0 to ${width}`;
  }
  const prefix = Number(digits);
  if (prefix > width) {
    return `prefix length /${prefix} is longer than ${width} bits ` +
      `for an IPv${family} address`;
  }
  return { family, value, prefix };
}

/**
 * Parses an IPv4 or IPv6 address or CIDR prefix. IPv4 octets must be
 * decimal without leading zeros; IPv6 zone IDs are refused.
 *
 * @param text e.g. `203.0.113.0/24`, `2001:db8::/32` or `192.0.2.7`
 * @returns the family, the address bytes as written and the prefix
 * @throws {SyntaxError} the text is not an address or prefix
 *
 * @example
 * ```ts
 * import { parseCidr } from "./address.ts";
 * const { family, prefix } = parseCidr("2001:db8::/32");
 * if (family !== 6 || prefix !== 32) throw new Error("unexpected");
 * ```
 */
export function parseCidr(text: string): ParsedCidr {
  const read = readCidr(text);
  if (typeof read === "string") {
    throw new SyntaxError(`Cannot parse address "${text}": ${read}`);
  }
  return {
    family: read.family,
    bytes: toBytes(read.value, read.family),
    prefix: read.prefix,
  };
}

/**
 * The first and last address a prefix covers (host bits ignored).
 *
 * @param cidr a parsed prefix or its text
 * @throws {SyntaxError} `cidr` is text that is not a prefix
 *
 * @example
 * ```ts
 * import { cidrToRange } from "./address.ts";
 * const r = cidrToRange("10.0.0.0/8");
 * if (r.first !== 0x0a000000n || r.last !== 0x0affffffn) {
 *   throw new Error("unexpected");
 * }
 * ```
 */
export function cidrToRange(
  cidr: ParsedCidr | string,
): AddressRange & { family: AddressFamily } {
  const parsed = typeof cidr === "string" ? parseCidr(cidr) : cidr;
  const value = fromBytes(parsed.bytes);
  return { family: parsed.family, ...valueRange(value, parsed) };
}

/** The range of a prefix value, host bits cleared. */
export function valueRange(
  value: bigint,
  cidr: { family: AddressFamily; prefix: number },
): AddressRange {
  const mask = HOST_MASKS[cidr.family][cidr.prefix];
  const first = value & ~mask;
  return { first, last: first | mask };
}

/** True when a prefix has bits set after its length (`10.1.0.0/8`). */
export function hasHostBits(cidr: CidrValue): boolean {
  return (cidr.value & HOST_MASKS[cidr.family][cidr.prefix]) !== 0n;
}

/**
 * Formats a prefix in canonical text: host bits cleared, IPv6 in the
 * RFC 5952 form, the length always written (`192.0.2.7/32`).
 *
 * @example
 * ```ts
 * import { formatCidr, parseCidr } from "./address.ts";
 * const text = formatCidr(parseCidr("10.1.2.3/8"));
 * if (text !== "10.0.0.0/8") throw new Error(text);
 * ```
 */
export function formatCidr(cidr: ParsedCidr | CidrValue): string {
  const value = "value" in cidr ? cidr.value : fromBytes(cidr.bytes);
  const { first } = valueRange(value, cidr);
  return `${formatAddress(first, cidr.family)}/${cidr.prefix}`;
}

/**
 * Formats an address given as an unsigned integer.
 *
 * @throws {RangeError} the value does not fit the family
 *
 * @example
 * ```ts
 * import { formatAddress } from "./address.ts";
 * const text = formatAddress(0x20010db8000000000000000000000001n, 6);
 * if (text !== "2001:db8::1") throw new Error(text);
 * ```
 */
export function formatAddress(value: bigint, family: AddressFamily): string {
  if (value < 0n || value >> BigInt(WIDTH[family]) !== 0n) {
    throw new RangeError(
      `Cannot format address: ${value} does not fit IPv${family}`,
    );
  }
  if (family === 4) return formatIpv4(Number(value));

  const groups: number[] = [];
  for (let shift = 96n; shift >= 0n; shift -= 32n) {
    const word = Number((value >> shift) & 0xffffffffn);
    groups.push(word >>> 16, word & 0xffff);
  }
  // RFC 5952: compress the longest run of two or more zero groups, the
  // first one when runs tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  const head = hex.slice(0, bestStart).join(":");
  const tail = hex.slice(bestStart + bestLength).join(":");
  return `${head}::${tail}`;
}

/**
 * Splits an inclusive range into the fewest prefixes that cover it
 * exactly, in ascending order.
 *
 * @example
 * ```ts
 * import { rangeToCidrs } from "./address.ts";
 * const list = rangeToCidrs({ first: 1n, last: 2n }, 4);
 * if (list.join() !== "0.0.0.1/32,0.0.0.2/32") throw new Error();
 * ```
 */
export function rangeToCidrs(
  range: AddressRange,
  family: AddressFamily,
): string[] {
  const width = WIDTH[family];
  if (range.first === range.last) {
    return [`${formatAddress(range.first, family)}/${width}`];
  }
  const out: string[] = [];
  let first = range.first;
  while (first <= range.last) {
    // Grow the block while it stays aligned on `first` and inside the
    // range; each step doubles it.
    let bits = 0;
    while (bits < width) {
      const size = 1n << BigInt(bits + 1);
      if ((first & (size - 1n)) !== 0n || first + size - 1n > range.last) {
        break;
      }
      bits++;
    }
    out.push(`${formatAddress(first, family)}/${width - bits}`);
    first += 1n << BigInt(bits);
  }
  return out;
}

/**
 * Merges ranges of one family: sorts them and joins overlapping and
 * adjacent ones. The input array is sorted in place.
 */
export function mergeRanges(ranges: AddressRange[]): AddressRange[] {
  ranges.sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  const out: AddressRange[] = [];
  for (const r of ranges) {
    const top = out[out.length - 1];
    if (top !== undefined && r.first <= top.last + 1n) {
      if (r.last > top.last) top.last = r.last;
    } else {
      out.push({ first: r.first, last: r.last });
    }
  }
  return out;
}

/**
 * A set of prefixes of both families, merged on demand. IPv4 works on
 * plain numbers and IPv6 on four 32-bit words, so that 50,000 entries
 * parse and merge without a `bigint` or an object per address.
 *
 * @example
 * ```ts
 * import { AddressSet } from "./address.ts";
 * const set = new AddressSet();
 * set.add("10.0.0.0/25");
 * set.add("10.0.0.128/25");
 * if (set.cidrs().join() !== "10.0.0.0/24") throw new Error();
 * ```
 */
export class AddressSet {
  // IPv4 prefixes packed as address * 64 + prefix length: exact in a
  // double, and a numeric sort orders them by first address.
  #v4 = NO_NUMBERS;
  #n4 = 0;
  // IPv6 prefixes as first and last address, 4 words each.
  #v6first = NO_WORDS.firsts;
  #v6last = NO_WORDS.lasts;
  #n6 = 0;
  // Merged IPv4 ranges as parallel arrays, no object per range.
  #first4: Float64Array | undefined;
  #last4: Float64Array | undefined;
  #merged6: { firsts: Words; lasts: Words; count: number } | undefined;

  /** How many entries of each family were added. */
  readonly count: Record<AddressFamily, number> = { 4: 0, 6: 0 };

  /**
   * Adds one address or prefix.
   *
   * @returns undefined when added cleanly; `{ hostBits }` with the
   * canonical prefix used when host bits were set; `{ error }` with the
   * reason when the text is not an address (nothing added)
   */
  add(
    text: string,
  ): undefined | { hostBits: string } | { error: string } {
    const fast = readIpv4Fast(text);
    if (fast >= 0) {
      const address = Math.floor(fast / 64);
      const prefix = fast % 64;
      const size = POW2[32 - prefix];
      if (address % size === 0) {
        this.#push4(fast);
        return undefined;
      }
      const first = address - (address % size);
      this.#push4(first * 64 + prefix);
      return { hostBits: `${formatIpv4(first)}/${prefix}` };
    }

    const words = WORDS;
    let prefix = readIpv6Words(text, words);
    if (prefix < 0) {
      // Unusual forms (embedded IPv4) and every error.
      const read = readCidr(text);
      if (typeof read === "string") return { error: read };
      if (read.family === 4) {
        const range = valueRange(read.value, read);
        this.#push4(Number(range.first) * 64 + read.prefix);
        return hasHostBits(read) ? { hostBits: formatCidr(read) } : undefined;
      }
      for (let k = 0; k < 4; k++) {
        words[k] = Number((read.value >> BigInt(96 - 32 * k)) & 0xffffffffn);
      }
      prefix = read.prefix;
    }
    return this.#push6(words, prefix);
  }

  /** The merged ranges of one family, ascending. */
  ranges(family: AddressFamily): AddressRange[] {
    if (family === 6) {
      const { firsts, lasts, count } = this.#merged();
      const out: AddressRange[] = [];
      for (let i = 0; i < count; i++) {
        out.push({
          first: wordsToBigint(firsts, i * 4),
          last: wordsToBigint(lasts, i * 4),
        });
      }
      return out;
    }
    const [firsts, lasts] = this.#merged4();
    const out: AddressRange[] = [];
    for (let i = 0; i < firsts.length; i++) {
      out.push({ first: BigInt(firsts[i]), last: BigInt(lasts[i]) });
    }
    return out;
  }

  /** True when the family's ranges cover its whole address space. */
  covers(family: AddressFamily): boolean {
    if (family === 6) {
      const { firsts, lasts, count } = this.#merged();
      return count === 1 && firsts.every((w) => w === 0) &&
        lasts.every((w) => w === 0xffffffff);
    }
    const [firsts, lasts] = this.#merged4();
    return firsts.length === 1 && firsts[0] === 0 &&
      lasts[0] === POW2[32] - 1;
  }

  /** The minimal canonical CIDR cover, IPv4 first, each ascending. */
  cidrs(): string[] {
    const out: string[] = [];
    if (this.#n4 + this.#n6 === 0) return out;
    const [firsts, lasts] = this.#merged4();
    for (let i = 0; i < firsts.length; i++) {
      rangeToIpv4Cidrs(firsts[i], lasts[i], out);
    }
    const v6 = this.#merged();
    for (let i = 0; i < v6.count; i++) {
      rangeToIpv6Cidrs(v6.firsts, v6.lasts, i * 4, out);
    }
    return out;
  }

  #push4(packed: number): void {
    this.#first4 = this.#last4 = undefined;
    this.count[4]++;
    if (this.#n4 === this.#v4.length) {
      const grown = new Float64Array(Math.max(16, this.#v4.length * 2));
      grown.set(this.#v4);
      this.#v4 = grown;
    }
    this.#v4[this.#n4++] = packed;
  }

  #push6(words: Words, prefix: number): undefined | { hostBits: string } {
    this.#merged6 = undefined;
    this.count[6]++;
    if (this.#n6 * 4 === this.#v6first.length) {
      const size = Math.max(64, this.#v6first.length * 2);
      const firsts = new Uint32Array(size);
      const lasts = new Uint32Array(size);
      firsts.set(this.#v6first);
      lasts.set(this.#v6last);
      this.#v6first = firsts;
      this.#v6last = lasts;
    }
    const at = this.#n6++ * 4;
    let hostBits = false;
    for (let k = 0; k < 4; k++) {
      const mask = maskWord(prefix, k);
      if ((words[k] & ~mask) !== 0) hostBits = true;
      this.#v6first[at + k] = (words[k] & mask) >>> 0;
      this.#v6last[at + k] = (words[k] | ~mask) >>> 0;
    }
    return hostBits
      ? { hostBits: `${formatWords(this.#v6first, at)}/${prefix}` }
      : undefined;
  }

  #merged(): { firsts: Words; lasts: Words; count: number } {
    this.#merged6 ??= this.#n6 === 0
      ? NO_WORDS
      : mergeWords(this.#v6first, this.#v6last, this.#n6);
    return this.#merged6;
  }

  #merged4(): [Float64Array, Float64Array] {
    if (this.#first4 === undefined || this.#last4 === undefined) {
      const sorted = this.#v4.subarray(0, this.#n4).sort();
      const firsts = new Float64Array(this.#n4);
      const lasts = new Float64Array(this.#n4);
      let n = 0;
      for (let i = 0; i < sorted.length; i++) {
        const packed = sorted[i];
        const first = Math.floor(packed / 64);
        const last = first + POW2[32 - (packed % 64)] - 1;
        if (n > 0 && first <= lasts[n - 1] + 1) {
          if (last > lasts[n - 1]) lasts[n - 1] = last;
        } else {
          firsts[n] = first;
          lasts[n++] = last;
        }
      }
      this.#first4 = firsts.subarray(0, n);
      this.#last4 = lasts.subarray(0, n);
    }
    return [this.#first4, this.#last4];
  }
}

/**
 * The merged ranges of one family among `cidrs`: overlapping and
 * adjacent prefixes joined, ascending. Engines may install these
 * directly (an nft interval, a WFP range condition).
 *
 * @param cidrs prefixes or addresses as text, either family
 * @param family which family to keep
 * @throws {SyntaxError} an entry is not an address or prefix
 *
 * @example
 * ```ts
 * import { rangesOf } from "./address.ts";
 * const r = rangesOf(["10.0.0.0/25", "10.0.0.128/25", "::1"], 4);
 * if (r.length !== 1 || r[0].last !== 0x0a0000ffn) throw new Error();
 * ```
 */
export function rangesOf(
  cidrs: string[],
  family: AddressFamily,
): AddressRange[] {
  return setOf(cidrs).ranges(family);
}

/**
 * The minimal canonical CIDR cover of `list`: the same set of addresses
 * in the fewest prefixes, IPv4 first then IPv6, each ascending.
 *
 * @throws {SyntaxError} an entry is not an address or prefix
 *
 * @example
 * ```ts
 * import { mergeCidrs } from "./address.ts";
 * const merged = mergeCidrs(["10.0.0.1", "10.0.0.0", "::/0"]);
 * if (merged.join() !== "10.0.0.0/31,::/0") throw new Error();
 * ```
 */
export function mergeCidrs(list: string[]): string[] {
  return setOf(list).cidrs();
}

function setOf(list: string[]): AddressSet {
  const set = new AddressSet();
  for (const text of list) {
    const added = set.add(text);
    if (added !== undefined && "error" in added) {
      throw new SyntaxError(`Cannot parse address "${text}": ${added.error}`);
    }
  }
  return set;
}

/** True when the merged ranges cover the whole address space. */
export function coversFamily(
  ranges: { first: number | bigint; last: number | bigint }[],
  family: AddressFamily,
): boolean {
  const all = (1n << BigInt(WIDTH[family])) - 1n;
  return ranges.length === 1 && BigInt(ranges[0].first) === 0n &&
    BigInt(ranges[0].last) === all;
}

interface NumberRange {
  first: number;
  last: number;
}

const POW2 = Array.from({ length: 33 }, (_, i) => 2 ** i);

/** Reads plain IPv4 text (`a.b.c.d` or `a.b.c.d/n`) without allocating;
 * returns address * 64 + prefix, or -1 to leave it to the full reader
 * (IPv6, or anything malformed, which then gets its reason). */
function readIpv4Fast(text: string): number {
  const length = text.length;
  let i = 0;
  let address = 0;
  for (let part = 0; part < 4; part++) {
    if (part > 0) {
      if (text.charCodeAt(i) !== 46) return -1; // "."
      i++;
    }
    const start = i;
    let n = 0;
    while (i < length && i - start < 4) {
      const c = text.charCodeAt(i) - 48;
      if (c < 0 || c > 9) break;
      n = n * 10 + c;
      i++;
    }
    const digits = i - start;
    if (digits === 0 || digits > 3 || n > 255) return -1;
    if (digits > 1 && text.charCodeAt(start) === 48) return -1;
    address = address * 256 + n;
  }
  if (i === length) return address * 64 + 32;

  if (text.charCodeAt(i) !== 47) return -1; // "/"
  const start = ++i;
  let prefix = 0;
  while (i < length) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9 || i - start > 1) return -1;
    prefix = prefix * 10 + c;
    i++;
  }
  const digits = i - start;
  if (digits === 0 || prefix > 32) return -1;
  if (digits > 1 && text.charCodeAt(start) === 48) return -1;
  return address * 64 + prefix;
}

// Two hex digits per byte value, for building IPv6 values quickly.
const BYTE_HEX = Array.from(
  { length: 256 },
  (_, i) => i.toString(16).padStart(2, "0"),
);

const OCTETS = Array.from({ length: 256 }, (_, i) => String(i));

function formatIpv4(n: number): string {
  return OCTETS[n >>> 24] + "." + OCTETS[(n >>> 16) & 255] + "." +
    OCTETS[(n >>> 8) & 255] + "." + OCTETS[n & 255];
}

/** Appends the fewest IPv4 prefixes covering first..last to `out`. */
function rangeToIpv4Cidrs(first: number, last: number, out: string[]) {
  while (first <= last) {
    let bits = 0;
    while (bits < 32) {
      const size = POW2[bits + 1];
      if (first % size !== 0 || first + size - 1 > last) break;
      bits++;
    }
    out.push(`${formatIpv4(first)}/${32 - bits}`);
    first += POW2[bits];
  }
}

function readIpv4(text: string): number | string {
  const parts = text.split(".");
  if (parts.length !== 4) {
    return `"${text}" is not an IPv4 address (four numbers 0-255 ` +
      `separated by dots) or an IPv6 address`;
  }
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) {
      return `IPv4 part "${part}" is not a decimal number from 0 to 255 ` +
        `without leading zeros`;
    }
    const n = Number(part);
    if (n > 255) return `IPv4 part ${n} is above 255`;
    value = value * 256 + n;
  }
  return value;
}

function readIpv6(text: string): bigint | string {
  if (text.includes("%")) {
    return `zone IDs ("${text.slice(text.indexOf("%"))}") are not ` +
      `allowed; write the address without them`;
  }
  const halves = text.split("::");
  if (halves.length > 2) {
    return `"${text}" uses "::" more than once`;
  }

  const head = readGroups(halves[0], text, halves.length === 1);
  if (typeof head === "string") return head;
  const tail = halves.length === 2 ? readGroups(halves[1], text, true) : [];
  if (typeof tail === "string") return tail;

  const count = head.length + tail.length;
  if (halves.length === 1 && count !== 8) {
    return `"${text}" has ${count} groups; an IPv6 address has ` +
      `8, or "::" for a run of zeros`;
  }
  if (halves.length === 2 && count > 7) {
    return `"${text}" has too many groups around "::"`;
  }

  let hex = "0x";
  for (const g of head) hex += BYTE_HEX[g >> 8] + BYTE_HEX[g & 255];
  hex += "0000".repeat(8 - count);
  for (const g of tail) hex += BYTE_HEX[g >> 8] + BYTE_HEX[g & 255];
  return BigInt(hex);
}

function readGroups(
  part: string,
  text: string,
  v4Last: boolean,
): number[] | string {
  if (part === "") return [];
  const items = part.split(":");
  const groups: number[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (v4Last && i === items.length - 1 && item.includes(".")) {
      const v4 = readIpv4(item);
      if (typeof v4 === "string") return v4;
      groups.push(Math.floor(v4 / 65536), v4 % 65536);
    } else if (/^[0-9a-fA-F]{1,4}$/.test(item)) {
      groups.push(parseInt(item, 16));
    } else {
      return `IPv6 group "${item}" in "${text}" is not 1-4 hex digits`;
    }
  }
  return groups;
}

function toBytes(value: bigint, family: AddressFamily): Uint8Array {
  const length = family === 4 ? 4 : 16;
  const bytes = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) {
    bytes[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return bytes;
}

function fromBytes(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const b of bytes) value = (value << 8n) | BigInt(b);
  return value;
}
