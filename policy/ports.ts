/**
 * Ports and port ranges as a policy writes them (`443`, `"137-139"`),
 * read into inclusive ranges and merged.
 *
 * @module
 */
import type { PortRange } from "./types.ts";

/** The lowest and highest port a rule may name; port 0 is never valid. */
export const PORT_MIN = 1;
export const PORT_MAX = 65535;

/**
 * Reads one port entry and returns why it is not one instead of
 * throwing.
 *
 * @param item a whole number 1-65535 or a string `"FIRST-LAST"`
 * @returns the range, or a sentence saying what is wrong and what to
 * write instead
 */
export function readPortItem(item: unknown): PortRange | string {
  if (typeof item === "number") {
    if (!Number.isInteger(item)) {
      return `port ${item} is not a whole number; write a port from ` +
        `${PORT_MIN} to ${PORT_MAX}`;
    }
    if (item < PORT_MIN || item > PORT_MAX) {
      return `port ${item} is outside ${PORT_MIN}-${PORT_MAX}; write a ` +
        `port from ${PORT_MIN} to ${PORT_MAX}`;
    }
    return { first: item, last: item };
  }
  if (typeof item !== "string") {
    return `a port must be a number or a "FIRST-LAST" string, not ` +
      `${describe(item)}`;
  }

  const match = /^([0-9]{1,5})-([0-9]{1,5})$/.exec(item);
  if (match === null) {
    const hint = /^[0-9]+$/.test(item)
      ? `; write a single port as a number (${Number(item)})`
      : `; write a range as "FIRST-LAST", e.g. "137-139"`;
    return `"${item}" is not a port range${hint}`;
  }
  const first = Number(match[1]);
  const last = Number(match[2]);
  for (const port of [first, last]) {
    if (port < PORT_MIN || port > PORT_MAX) {
      return `port ${port} in "${item}" is outside ` +
        `${PORT_MIN}-${PORT_MAX}; use ports from ${PORT_MIN} to ${PORT_MAX}`;
    }
  }
  if (first > last) {
    return `range "${item}" is reversed; write "${last}-${first}"`;
  }
  return { first, last };
}

/**
 * Parses one port entry.
 *
 * @throws {RangeError} the entry is not a port or a valid range
 *
 * @example
 * ```ts
 * import { parsePortItem } from "./ports.ts";
 * const r = parsePortItem("137-139");
 * if (r.first !== 137 || r.last !== 139) throw new Error();
 * ```
 */
export function parsePortItem(item: number | string): PortRange {
  const read = readPortItem(item);
  if (typeof read === "string") {
    throw new RangeError(`Cannot parse port: ${read}`);
  }
  return read;
}

/**
 * Sorts ranges and joins overlapping and adjacent ones (`80`, `81-90`
 * become `80-90`). Returns new objects; the input is not changed.
 *
 * @example
 * ```ts
 * import { mergePorts } from "./ports.ts";
 * const merged = mergePorts([
 *   { first: 81, last: 90 },
 *   { first: 80, last: 80 },
 * ]);
 * if (merged.length !== 1 || merged[0].last !== 90) throw new Error();
 * ```
 */
export function mergePorts(ranges: readonly PortRange[]): PortRange[] {
  const sorted = [...ranges].sort((a, b) => a.first - b.first);
  const out: PortRange[] = [];
  for (const r of sorted) {
    const top = out[out.length - 1];
    if (top !== undefined && r.first <= top.last + 1) {
      top.last = Math.max(top.last, r.last);
    } else {
      out.push({ first: r.first, last: r.last });
    }
  }
  return out;
}

/**
 * Formats a range as a policy would write it: `443` or `"137-139"`.
 *
 * @example
 * ```ts
 * import { formatPortRange } from "./ports.ts";
 * if (formatPortRange({ first: 1, last: 2 }) !== "1-2") throw new Error();
 * ```
 */
export function formatPortRange(range: PortRange): number | string {
  return range.first === range.last
    ? range.first
    : `${range.first}-${range.last}`;
}

/** True when merged ranges cover every port, i.e. name no condition. */
export function coversAllPorts(ranges: readonly PortRange[]): boolean {
  return ranges.length === 1 && ranges[0].first <= PORT_MIN &&
    ranges[0].last >= PORT_MAX;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  return `a ${typeof value}`;
}
