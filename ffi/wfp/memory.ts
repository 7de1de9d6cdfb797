/**
 * Memory helpers for the WFP binding: an arena that keeps every buffer a
 * call points into alive until the call returns, and a struct view that
 * reads and writes fields by name through the layout table.
 *
 * @module
 */
import {
  type FieldLayout,
  fieldOf,
  type LayoutTable,
  type StructName,
  WFP_LAYOUTS,
} from "./layout.ts";
import { type Guid, guidFromBytes, guidToBytes } from "./guids.ts";

/** Bytes per arena chunk. */
const CHUNK_SIZE = 4096;

/** Longest wide string read back from the engine (characters). */
const MAX_WIDE_CHARS = 32_768;

/**
 * Buffers for one native call. Everything a struct points to is
 * allocated here and stays referenced until the arena is disposed, after
 * the call has returned.
 */
export class Arena implements Disposable {
  #keep: Uint8Array[] = [];
  #chunk: Uint8Array | null = null;
  #used = 0;

  /** A zeroed, 8-byte aligned buffer of `size` bytes (at least 1). */
  alloc(size: number): Uint8Array {
    // Small buffers are carved out of shared chunks: one allocation
    // for the many small structs and strings of one call.
    const rounded = Math.max(8, Math.ceil(size / 8) * 8);
    if (rounded > CHUNK_SIZE / 4) {
      const words = new BigUint64Array(rounded / 8);
      const bytes = new Uint8Array(words.buffer, 0, Math.max(1, size));
      this.#keep.push(bytes);
      return bytes;
    }
    if (this.#chunk === null || this.#used + rounded > CHUNK_SIZE) {
      this.#chunk = new Uint8Array(new BigUint64Array(CHUNK_SIZE / 8).buffer);
      this.#keep.push(this.#chunk);
      this.#used = 0;
    }
    const bytes = this.#chunk.subarray(
      this.#used,
      this.#used + Math.max(1, size),
    );
    this.#used += rounded;
    return bytes;
  }

  /** Copies `data` into the arena and returns its address. */
  bytes(data: Uint8Array): bigint {
    const copy = this.alloc(data.length);
    copy.set(data);
    return addressOf(copy);
  }

  /** A NUL-terminated UTF-16 copy of `text`; its address. */
  wide(text: string): bigint {
    const buffer = this.alloc((text.length + 1) * 2);
    const view = new DataView(buffer.buffer, buffer.byteOffset);
    for (let i = 0; i < text.length; i++) {
      view.setUint16(i * 2, text.charCodeAt(i), true);
    }
    return addressOf(buffer);
  }

  /** A NUL-terminated UTF-16 copy of `text` as a buffer. */
  wideBuffer(text: string): Uint8Array {
    const buffer = this.alloc((text.length + 1) * 2);
    const view = new DataView(buffer.buffer, buffer.byteOffset);
    for (let i = 0; i < text.length; i++) {
      view.setUint16(i * 2, text.charCodeAt(i), true);
    }
    return buffer;
  }

  /** A 16-byte GUID buffer. */
  guid(guid: Guid): Uint8Array {
    return guidToBytes(guid, this.alloc(16));
  }

  /** A zeroed struct of the given layout. */
  struct(name: StructName, count = 1): StructView {
    const layout = WFP_LAYOUTS[name];
    return new StructView(name, this.alloc(layout.size * count), 0);
  }

  /** Drops the arena's buffers; call only after the native call returned. */
  [Symbol.dispose](): void {
    this.#keep = [];
    this.#chunk = null;
  }
}

/** The address of a buffer's first byte, as the C side sees it. */
export function addressOf(buffer: Uint8Array): bigint {
  // Backing stores of array buffers never move, so one lookup per
  // buffer serves every view into it.
  let base = BASES.get(buffer.buffer);
  if (base === undefined) {
    const whole = new Uint8Array(buffer.buffer as ArrayBuffer);
    base = Deno.UnsafePointer.value(Deno.UnsafePointer.of(whole));
    BASES.set(buffer.buffer, base);
  }
  return base + BigInt(buffer.byteOffset);
}

const BASES = new WeakMap<ArrayBufferLike, bigint>();

/** A pointer object for an address (null for 0). */
export function pointerAt(address: bigint): Deno.PointerValue {
  return Deno.UnsafePointer.create(address);
}

/** Copies `size` bytes from native memory at `address`. */
export function readMemory(address: bigint, size: number): Uint8Array {
  const out = new Uint8Array(size);
  if (size === 0) return out;
  const pointer = Deno.UnsafePointer.create(address);
  if (pointer === null) {
    throw new TypeError("Cannot read native memory: the pointer is null");
  }
  new Deno.UnsafePointerView(pointer).copyInto(out);
  return out;
}

/** Reads a NUL-terminated UTF-16 string (null pointer: undefined). */
export function readWide(address: bigint): string | undefined {
  const pointer = Deno.UnsafePointer.create(address);
  if (pointer === null) return undefined;
  const view = new Deno.UnsafePointerView(pointer);
  const units: number[] = [];
  for (let i = 0; i < MAX_WIDE_CHARS; i++) {
    const unit = view.getUint16(i * 2);
    if (unit === 0) return String.fromCharCode(...units);
    units.push(unit);
  }
  throw new RangeError(
    `Cannot read wide string: no terminator within ${MAX_WIDE_CHARS} characters`,
  );
}

const LIMITS: Partial<Record<string, [number | bigint, number | bigint]>> = {
  UINT8: [0, 0xff],
  UINT16: [0, 0xffff],
  UINT32: [0, 0xffffffff],
  INT32: [-0x80000000, 0x7fffffff],
  UINT64: [0n, 0xffff_ffff_ffff_ffffn],
  POINTER: [0n, 0xffff_ffff_ffff_ffffn],
};

/**
 * Typed access to one struct inside a byte buffer, by field name, using
 * the offsets and types of the layout table.
 */
export class StructView {
  /** The struct's layout name. */
  readonly name: StructName;
  /** The buffer holding the struct. */
  readonly bytes: Uint8Array;
  /** Offset of the struct in `bytes`. */
  readonly base: number;
  readonly #view: DataView;
  readonly #table: LayoutTable;

  /** A view of struct `name` at `base` in `bytes`. */
  constructor(
    name: StructName,
    bytes: Uint8Array,
    base: number,
    table: LayoutTable = WFP_LAYOUTS,
  ) {
    this.name = name;
    this.bytes = bytes;
    this.base = base;
    this.#table = table;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset);
  }

  /** Size in bytes of this struct. */
  get size(): number {
    return this.#table[this.name].size;
  }

  /** The address of this struct (the buffer must be arena-held). */
  get address(): bigint {
    return addressOf(this.bytes) + BigInt(this.base);
  }

  /** The `index`-th element of an array of this struct. */
  at(index: number): StructView {
    return new StructView(
      this.name,
      this.bytes,
      this.base + index * this.size,
      this.#table,
    );
  }

  #field(name: string): FieldLayout {
    return fieldOf(this.#table, this.name, name);
  }

  /**
   * Writes an integer or pointer field.
   *
   * @throws {RangeError} the value does not fit the field
   */
  set(name: string, value: number | bigint): this {
    const field = this.#field(name);
    const at = this.base + field.offset;
    const limit = LIMITS[field.type];
    if (limit && (value < limit[0] || value > limit[1])) {
      throw new RangeError(
        `Cannot write ${this.name}.${name}: ${value} does not fit ${field.type}`,
      );
    }
    switch (field.type) {
      case "UINT8":
        this.#view.setUint8(at, Number(value));
        break;
      case "UINT16":
        this.#view.setUint16(at, Number(value), true);
        break;
      case "UINT32":
        this.#view.setUint32(at, Number(value), true);
        break;
      case "INT32":
        this.#view.setInt32(at, Number(value), true);
        break;
      case "UINT64":
      case "POINTER":
        this.#view.setBigUint64(at, BigInt(value), true);
        break;
      default:
        throw new TypeError(
          `Cannot write ${this.name}.${name}: it is not a scalar field`,
        );
    }
    return this;
  }

  /** Reads an integer field as a number. */
  num(name: string): number {
    const field = this.#field(name);
    const at = this.base + field.offset;
    switch (field.type) {
      case "UINT8":
        return this.#view.getUint8(at);
      case "UINT16":
        return this.#view.getUint16(at, true);
      case "UINT32":
        return this.#view.getUint32(at, true);
      case "INT32":
        return this.#view.getInt32(at, true);
      default:
        throw new TypeError(
          `Cannot read ${this.name}.${name}: it is not a 32-bit field`,
        );
    }
  }

  /** Reads a UINT64 or pointer field. */
  big(name: string): bigint {
    const field = this.#field(name);
    if (field.type !== "UINT64" && field.type !== "POINTER") {
      throw new TypeError(
        `Cannot read ${this.name}.${name}: it is not a 64-bit field`,
      );
    }
    return this.#view.getBigUint64(this.base + field.offset, true);
  }

  /** Writes a GUID field. */
  setGuid(name: string, guid: Guid): this {
    const field = this.#expect(name, "GUID");
    guidToBytes(guid, this.bytes, this.base + field.offset);
    return this;
  }

  /** Reads a GUID field. */
  guid(name: string): Guid {
    const field = this.#expect(name, "GUID");
    return guidFromBytes(this.bytes, this.base + field.offset);
  }

  /** Writes a fixed byte-array field. */
  setBytes(name: string, data: Uint8Array): this {
    const field = this.#field(name);
    if (data.length !== field.size) {
      throw new RangeError(
        `Cannot write ${this.name}.${name}: expected ${field.size} bytes, got ${data.length}`,
      );
    }
    this.bytes.set(data, this.base + field.offset);
    return this;
  }

  /** Reads a fixed byte-array field (a copy). */
  getBytes(name: string): Uint8Array {
    const field = this.#field(name);
    const start = this.base + field.offset;
    return this.bytes.slice(start, start + field.size);
  }

  /** The inline struct held in field `name`. */
  sub(name: string): StructView {
    const field = this.#field(name);
    if (!(field.type in this.#table)) {
      throw new TypeError(
        `Cannot open ${this.name}.${name}: it is not an inline struct`,
      );
    }
    return new StructView(
      field.type as StructName,
      this.bytes,
      this.base + field.offset,
      this.#table,
    );
  }

  #expect(name: string, type: string): FieldLayout {
    const field = this.#field(name);
    if (field.type !== type) {
      throw new TypeError(
        `Cannot access ${this.name}.${name} as ${type}: it is ${field.type}`,
      );
    }
    return field;
  }
}

/** Copies `count` structs from native memory into a view. */
export function readStruct(
  name: StructName,
  address: bigint,
  count = 1,
): StructView {
  const size = WFP_LAYOUTS[name].size;
  return new StructView(name, readMemory(address, size * count), 0);
}
