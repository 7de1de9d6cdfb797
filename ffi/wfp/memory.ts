/**
 * Memory helpers for the WFP binding: native reads and addresses through
 * `memcpy` (no pointer API, so a path-scoped `--allow-ffi` suffices), an
 * arena that keeps every buffer a call points into alive until the call
 * returns, and a struct view that reads and writes fields by name
 * through the layout table.
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
import {
  MEMORY_SYMBOLS,
  type MemorySymbols,
  WINDOWS_MEMORY_LIBRARY,
} from "./symbols.ts";

/** Bytes per arena chunk. */
const CHUNK_SIZE = 4096;

/** Longest wide string read back from the engine (characters). */
const MAX_WIDE_CHARS = 32_768;

/**
 * Bytes read per step while looking for a wide string's terminator. Steps
 * never cross a page boundary, so no step touches a page the string does
 * not reach (4 KiB is the smallest page of x86-64 Linux and Windows).
 */
const WIDE_STEP = 256;
const PAGE_SIZE = 4096n;

/** Reads up to this size go through one reused buffer. */
const SCRATCH_SIZE = 4096;

/** Addresses of array buffers, by buffer (backing stores never move). */
const BASES = new WeakMap<ArrayBufferLike, bigint>();

/**
 * The library `memcpy` is bound from for an engine library: on Windows
 * `ntdll.dll` (from the engine library's folder when its path has one,
 * so that a grant of two absolute paths suffices); elsewhere the engine
 * library itself, whose handle reaches the C library it depends on.
 *
 * @example
 * ```ts
 * import { memoryLibraryFor } from "./memory.ts";
 * const path = memoryLibraryFor("tools/wfpsim/libwfpsim.so", "linux");
 * console.assert(path === "tools/wfpsim/libwfpsim.so");
 * ```
 */
export function memoryLibraryFor(
  enginePath: string,
  os: typeof Deno.build.os = Deno.build.os,
): string {
  if (os !== "windows") return enginePath;
  const slash = Math.max(
    enginePath.lastIndexOf("\\"),
    enginePath.lastIndexOf("/"),
  );
  return slash < 0
    ? WINDOWS_MEMORY_LIBRARY
    : enginePath.slice(0, slash + 1) + WINDOWS_MEMORY_LIBRARY;
}

/**
 * Native memory access through `memcpy` (see
 * {@linkcode MEMORY_SYMBOLS}), so the binding needs no pointer API and
 * works under `--allow-ffi` granted for the engine's libraries only.
 * Reads copy; nothing returned aliases native memory.
 */
export class NativeMemory implements Disposable {
  /** Path `memcpy` was bound from. */
  readonly path: string;
  #library: Deno.DynamicLibrary<typeof MEMORY_SYMBOLS> | null;
  readonly #scratch = new Uint8Array(new ArrayBuffer(SCRATCH_SIZE));

  private constructor(
    path: string,
    library: Deno.DynamicLibrary<typeof MEMORY_SYMBOLS>,
  ) {
    this.path = path;
    this.#library = library;
  }

  /**
   * Binds `memcpy` from `path`.
   *
   * @throws {Error} the library cannot be loaded or has no `memcpy`
   */
  static open(path: string): NativeMemory {
    try {
      return new NativeMemory(path, Deno.dlopen(path, MEMORY_SYMBOLS));
    } catch (error) {
      throw new Error(
        `Cannot bind memcpy from "${path}": ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  get #fn(): MemorySymbols {
    if (this.#library === null) {
      throw new TypeError(
        `Cannot access native memory through "${this.path}": it is closed`,
      );
    }
    return this.#library.symbols;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#library === null;
  }

  /**
   * The address of a buffer's first byte, as the C side sees it. The
   * buffer must stay referenced for as long as the address is used.
   */
  addressOf(buffer: Uint8Array): bigint {
    // One native call per array buffer serves every view into it.
    let base = BASES.get(buffer.buffer);
    if (base === undefined) {
      const whole = new Uint8Array(buffer.buffer as ArrayBuffer);
      if (whole.length === 0) {
        throw new RangeError(
          "Cannot take the address of an empty buffer: it has no storage",
        );
      }
      base = BigInt(this.#fn.MemoryAddressOf(whole, whole, 0n));
      BASES.set(buffer.buffer, base);
    }
    return base + BigInt(buffer.byteOffset);
  }

  /** An opaque pointer for an address (null for 0), e.g. a handle. */
  pointerAt(address: bigint): Deno.PointerValue {
    if (address === 0n) return null;
    return this.#fn.MemoryPointerAt(address, address, 0n);
  }

  /**
   * Copies `size` bytes from native memory at `address`.
   *
   * @throws {TypeError} the address is null and `size` is not 0
   */
  read(address: bigint, size: number): Uint8Array {
    if (size > 0 && size <= SCRATCH_SIZE) {
      // Through one long-lived buffer: a fresh small typed array would
      // have to be moved off the V8 heap for every native call.
      if (address === 0n) {
        throw new TypeError("Cannot read native memory: the pointer is null");
      }
      this.#fn.MemoryRead(this.#scratch, address, BigInt(size));
      return this.#scratch.slice(0, size);
    }
    const out = new Uint8Array(size);
    this.readInto(address, out);
    return out;
  }

  /** Copies `out.length` bytes from native memory at `address` into `out`. */
  readInto(address: bigint, out: Uint8Array): void {
    if (out.length === 0) return;
    if (address === 0n) {
      throw new TypeError("Cannot read native memory: the pointer is null");
    }
    this.#fn.MemoryRead(out, address, BigInt(out.length));
  }

  /**
   * Reads a NUL-terminated UTF-16 string (null pointer: undefined).
   *
   * @throws {RangeError} no terminator within 32768 characters
   */
  readWide(address: bigint): string | undefined {
    if (address === 0n) return undefined;
    const limit = MAX_WIDE_CHARS * 2;
    let bytes = new Uint8Array(0);
    let at = address;
    let scanned = 0;
    while (bytes.length < limit) {
      const toPage = Number(PAGE_SIZE - at % PAGE_SIZE);
      const step = this.read(at, Math.min(WIDE_STEP, toPage));
      const joined = new Uint8Array(bytes.length + step.length);
      joined.set(bytes);
      joined.set(step, bytes.length);
      bytes = joined;
      at += BigInt(step.length);
      for (; scanned + 1 < bytes.length; scanned += 2) {
        if (bytes[scanned] === 0 && bytes[scanned + 1] === 0) {
          return decodeWide(bytes, scanned / 2);
        }
      }
    }
    throw new RangeError(
      `Cannot read wide string: no terminator within ${MAX_WIDE_CHARS} characters`,
    );
  }

  /** Copies `count` structs from native memory into a view. */
  readStruct(name: StructName, address: bigint, count = 1): StructView {
    const size = WFP_LAYOUTS[name].size;
    return new StructView(name, this.read(address, size * count), 0);
  }

  /** Unbinds `memcpy`; safe to call twice. */
  close(): void {
    const library = this.#library;
    this.#library = null;
    library?.close();
  }

  /** Same as {@linkcode NativeMemory.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function decodeWide(bytes: Uint8Array, units: number): string {
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  const chars: number[] = [];
  for (let i = 0; i < units; i++) chars.push(view.getUint16(i * 2, true));
  return String.fromCharCode(...chars);
}

/**
 * Buffers for one native call. Everything a struct points to is
 * allocated here and stays referenced until the arena is disposed, after
 * the call has returned. Each buffer's address is known from the moment
 * it is allocated.
 */
export class Arena implements Disposable {
  /** The memory functions that give this arena's addresses. */
  readonly memory: NativeMemory;
  #keep: Uint8Array[] = [];
  #chunk: Uint8Array | null = null;
  #used = 0;

  /** An empty arena whose addresses come from `memory`. */
  constructor(memory: NativeMemory) {
    this.memory = memory;
  }

  /** A zeroed, 8-byte aligned buffer of `size` bytes (at least 1). */
  alloc(size: number): Uint8Array {
    // Small buffers are carved out of shared chunks: one allocation
    // (and one address lookup) for the many small structs and strings
    // of one call.
    const rounded = Math.max(8, Math.ceil(size / 8) * 8);
    if (rounded > CHUNK_SIZE / 4) {
      const words = new BigUint64Array(rounded / 8);
      const bytes = new Uint8Array(words.buffer, 0, Math.max(1, size));
      this.memory.addressOf(bytes);
      this.#keep.push(bytes);
      return bytes;
    }
    if (this.#chunk === null || this.#used + rounded > CHUNK_SIZE) {
      this.#chunk = new Uint8Array(new BigUint64Array(CHUNK_SIZE / 8).buffer);
      this.memory.addressOf(this.#chunk);
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

  /**
   * Keeps a buffer allocated elsewhere referenced until the arena is
   * disposed, e.g. one a {@linkcode NativeMemory.addressOf} call saw.
   */
  hold(buffer: Uint8Array): void {
    this.#keep.push(buffer);
  }

  /** Copies `data` into the arena and returns its address. */
  bytes(data: Uint8Array): bigint {
    const copy = this.alloc(data.length);
    copy.set(data);
    return addressOf(copy);
  }

  /** A NUL-terminated UTF-16 copy of `text`; its address. */
  wide(text: string): bigint {
    return addressOf(this.wideBuffer(text));
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

/**
 * The address of a buffer an {@linkcode Arena} allocated (or one
 * {@linkcode NativeMemory.addressOf} has seen).
 *
 * @throws {TypeError} the buffer's address was never taken
 */
export function addressOf(buffer: Uint8Array): bigint {
  const base = BASES.get(buffer.buffer);
  if (base === undefined) {
    throw new TypeError(
      "Cannot take the address of a buffer no arena allocated",
    );
  }
  return base + BigInt(buffer.byteOffset);
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
