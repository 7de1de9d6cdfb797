/**
 * Encoders and decoders between plain TypeScript objects and the WFP
 * structs of `layout.ts`. Encoders write into an {@linkcode Arena} that
 * must outlive the native call; decoders copy everything out of native
 * memory, so the engine's buffer can be freed right after.
 *
 * @module
 */
import { type Arena, type NativeMemory, StructView } from "./memory.ts";
import { fieldOf, type StructName, WFP_LAYOUTS } from "./layout.ts";
import { FWP_DATA_TYPE } from "./constants.ts";
import {
  type ConditionKey,
  type FilterId,
  type FilterKey,
  guidFromBytes,
  guidToBytes,
  type LayerKey,
  type ProviderKey,
  type SubLayerKey,
} from "./guids.ts";

/** A WFP value (`FWP_VALUE0`): weights and range ends. */
export type WfpValue =
  | { type: "empty" }
  | { type: "uint8"; value: number }
  | { type: "uint16"; value: number }
  | { type: "uint32"; value: number }
  | { type: "uint64"; value: bigint }
  | { type: "byteArray16"; value: Uint8Array }
  | { type: "byteBlob"; value: Uint8Array };

/** A condition value (`FWP_CONDITION_VALUE0`). */
export type WfpConditionValue =
  | WfpValue
  /** IPv4 address and mask, host byte order (`10.0.0.0` is 0x0A000000). */
  | { type: "v4AddrMask"; addr: number; mask: number }
  /** IPv6 address in network order and a prefix length. */
  | { type: "v6AddrMask"; addr: Uint8Array; prefixLength: number }
  /** Inclusive range; both ends have the same type. */
  | { type: "range"; low: WfpValue; high: WfpValue };

/** One filter condition (`FWPM_FILTER_CONDITION0`). */
export interface WfpCondition {
  /** The packet or socket field tested (`FWPM_CONDITION_*`). */
  field: ConditionKey;
  /** `FWP_MATCH_TYPE`, e.g. `FWP_MATCH_EQUAL`. */
  match: number;
  /** The value compared with the field. */
  value: WfpConditionValue;
}

/** A provider (`FWPM_PROVIDER0`): the owner tag of WFP objects. */
export interface WfpProvider {
  /** Unique key; filters and sublayers name their provider by it. */
  key: ProviderKey;
  /** Display name; Palisade's is `palisade`. */
  name: string;
  /** Display description. */
  description?: string;
  /** `FWPM_PROVIDER_FLAG_*`; persistent providers survive reboots. */
  flags: number;
  /** Windows service that owns the provider, if any. */
  serviceName?: string;
}

/** A sublayer (`FWPM_SUBLAYER0`): an arbitration group of filters. */
export interface WfpSubLayer {
  /** Unique key; filters name their sublayer by it. */
  key: SubLayerKey;
  /** Display name; Palisade's is `palisade`. */
  name: string;
  /** Display description. */
  description?: string;
  /** `FWPM_SUBLAYER_FLAG_*`. */
  flags: number;
  /** The provider that owns the sublayer. */
  providerKey?: ProviderKey;
  /** Order among sublayers; the highest weight is evaluated first. */
  weight: number;
}

/** A filter (`FWPM_FILTER0`). */
export interface WfpFilter {
  /** Unique key, chosen by the caller (Palisade derives it). */
  key: FilterKey;
  /** Display name; Palisade writes the rule ID. */
  name: string;
  /** Display description. */
  description?: string;
  /** `FWPM_FILTER_FLAG_*`. */
  flags: number;
  /** The provider that owns the filter. */
  providerKey?: ProviderKey;
  /** The layer where the engine evaluates the filter. */
  layerKey: LayerKey;
  /** The sublayer whose arbitration the filter takes part in. */
  subLayerKey: SubLayerKey;
  /** Order inside the sublayer; the highest weight is evaluated first. */
  weight: WfpValue;
  /** All must match, except several on one field, which are ORed. */
  conditions: WfpCondition[];
  /** `FWP_ACTION_TYPE`: block or permit. */
  action: number;
  /** Run-time ID, set by the engine (read back only). */
  filterId?: FilterId;
  /** The weight the engine computed (read back only). */
  effectiveWeight?: WfpValue;
}

/** Which filters an enumeration returns (`FWPM_FILTER_ENUM_TEMPLATE0`). */
export interface WfpFilterTemplate {
  /** Only filters of this provider; all providers when absent. */
  providerKey?: ProviderKey;
  /** The layer to enumerate; WFP enumerates one layer at a time. */
  layerKey: LayerKey;
}

/** Session options (`FWPM_SESSION0`). */
export interface WfpSessionOptions {
  /** Session display name. */
  name: string;
  /** `FWPM_SESSION_FLAG_*`. */
  flags: number;
  /** How long a transaction waits for the engine's lock (ms). */
  txnWaitTimeoutMs: number;
}

/** Most conditions a decoded filter may claim (guards a corrupt count). */
const MAX_CONDITIONS = 65_536;

const TYPE_CODE = {
  empty: FWP_DATA_TYPE.FWP_EMPTY,
  uint8: FWP_DATA_TYPE.FWP_UINT8,
  uint16: FWP_DATA_TYPE.FWP_UINT16,
  uint32: FWP_DATA_TYPE.FWP_UINT32,
  uint64: FWP_DATA_TYPE.FWP_UINT64,
  byteArray16: FWP_DATA_TYPE.FWP_BYTE_ARRAY16_TYPE,
  byteBlob: FWP_DATA_TYPE.FWP_BYTE_BLOB_TYPE,
  v4AddrMask: FWP_DATA_TYPE.FWP_V4_ADDR_MASK,
  v6AddrMask: FWP_DATA_TYPE.FWP_V6_ADDR_MASK,
  range: FWP_DATA_TYPE.FWP_RANGE_TYPE,
} as const;

function optionalWide(arena: Arena, text: string | undefined): bigint {
  return text === undefined ? 0n : arena.wide(text);
}

function writeDisplay(
  arena: Arena,
  view: StructView,
  name: string,
  description?: string,
) {
  view.sub("displayData")
    .set("name", arena.wide(name))
    .set("description", optionalWide(arena, description));
}

function readDisplay(memory: NativeMemory, view: StructView) {
  const display = view.sub("displayData");
  const name = memory.readWide(display.big("name")) ?? "";
  const description = memory.readWide(display.big("description"));
  return description === undefined ? { name } : { name, description };
}

function guidPointer(arena: Arena, key: string | undefined): bigint {
  if (key === undefined) return 0n;
  return arena.bytes(arena.guid(key));
}

function readGuidPointer(
  memory: NativeMemory,
  address: bigint,
): string | undefined {
  if (address === 0n) return undefined;
  return guidFromBytes(memory.read(address, 16));
}

function readBlob(memory: NativeMemory, address: bigint): Uint8Array {
  const view = memory.readStruct("FWP_BYTE_BLOB", address);
  const size = view.num("size");
  return size === 0 ? new Uint8Array(0) : memory.read(view.big("data"), size);
}

/** Reads an `FWP_VALUE0` or `FWP_CONDITION_VALUE0`. */
function readValue(
  memory: NativeMemory,
  view: StructView,
): WfpConditionValue {
  const type = view.num("type");
  switch (type) {
    case FWP_DATA_TYPE.FWP_EMPTY:
      return { type: "empty" };
    case FWP_DATA_TYPE.FWP_UINT8:
      return { type: "uint8", value: view.num("uint8") };
    case FWP_DATA_TYPE.FWP_UINT16:
      return { type: "uint16", value: view.num("uint16") };
    case FWP_DATA_TYPE.FWP_UINT32:
      return { type: "uint32", value: view.num("uint32") };
    case FWP_DATA_TYPE.FWP_UINT64: {
      const cell = memory.read(view.big("uint64"), 8);
      return {
        type: "uint64",
        value: new DataView(cell.buffer).getBigUint64(0, true),
      };
    }
    case FWP_DATA_TYPE.FWP_BYTE_ARRAY16_TYPE:
      return {
        type: "byteArray16",
        value: memory.read(view.big("byteArray16"), 16),
      };
    case FWP_DATA_TYPE.FWP_BYTE_BLOB_TYPE:
      return {
        type: "byteBlob",
        value: readBlob(memory, view.big("byteBlob")),
      };
    case FWP_DATA_TYPE.FWP_V4_ADDR_MASK: {
      const mask = memory.readStruct(
        "FWP_V4_ADDR_AND_MASK",
        view.big("v4AddrMask"),
      );
      return {
        type: "v4AddrMask",
        addr: mask.num("addr"),
        mask: mask.num("mask"),
      };
    }
    case FWP_DATA_TYPE.FWP_V6_ADDR_MASK: {
      const mask = memory.readStruct(
        "FWP_V6_ADDR_AND_MASK",
        view.big("v6AddrMask"),
      );
      return {
        type: "v6AddrMask",
        addr: mask.getBytes("addr"),
        prefixLength: mask.num("prefixLength"),
      };
    }
    case FWP_DATA_TYPE.FWP_RANGE_TYPE: {
      const range = memory.readStruct("FWP_RANGE0", view.big("rangeValue"));
      return {
        type: "range",
        low: readValue(memory, range.sub("valueLow")) as WfpValue,
        high: readValue(memory, range.sub("valueHigh")) as WfpValue,
      };
    }
    default:
      throw new RangeError(
        `Cannot decode WFP value: data type ${type} is not supported`,
      );
  }
}

/**
 * Lays out an `FWPM_SESSION0`.
 *
 * @example
 * ```ts
 * import { Arena, NativeMemory } from "./memory.ts";
 * import { encodeSession } from "./codec.ts";
 * using memory = NativeMemory.open("libc.so.6");
 * using arena = new Arena(memory);
 * const session = encodeSession(arena, {
 *   name: "palisade", flags: 0, txnWaitTimeoutMs: 5000,
 * });
 * console.assert(session.num("txnWaitTimeoutInMSec") === 5000);
 * ```
 */
export function encodeSession(
  arena: Arena,
  options: WfpSessionOptions,
): StructView {
  const view = arena.struct("FWPM_SESSION0");
  writeDisplay(arena, view, options.name);
  view.set("flags", options.flags);
  view.set("txnWaitTimeoutInMSec", options.txnWaitTimeoutMs);
  return view;
}

/** Lays out an `FWPM_PROVIDER0`. */
export function encodeProvider(
  arena: Arena,
  provider: WfpProvider,
): StructView {
  const view = arena.struct("FWPM_PROVIDER0");
  view.setGuid("providerKey", provider.key);
  writeDisplay(arena, view, provider.name, provider.description);
  view.set("flags", provider.flags);
  view.set("serviceName", optionalWide(arena, provider.serviceName));
  return view;
}

/** Reads an `FWPM_PROVIDER0` from native memory. */
export function decodeProvider(
  memory: NativeMemory,
  address: bigint,
): WfpProvider {
  const view = memory.readStruct("FWPM_PROVIDER0", address);
  const provider: WfpProvider = {
    key: view.guid("providerKey") as ProviderKey,
    ...readDisplay(memory, view),
    flags: view.num("flags"),
  };
  const serviceName = memory.readWide(view.big("serviceName"));
  if (serviceName !== undefined) provider.serviceName = serviceName;
  return provider;
}

/** Lays out an `FWPM_SUBLAYER0`. */
export function encodeSubLayer(
  arena: Arena,
  subLayer: WfpSubLayer,
): StructView {
  const view = arena.struct("FWPM_SUBLAYER0");
  view.setGuid("subLayerKey", subLayer.key);
  writeDisplay(arena, view, subLayer.name, subLayer.description);
  view.set("flags", subLayer.flags);
  view.set("providerKey", guidPointer(arena, subLayer.providerKey));
  view.set("weight", subLayer.weight);
  return view;
}

/** Reads an `FWPM_SUBLAYER0` from native memory. */
export function decodeSubLayer(
  memory: NativeMemory,
  address: bigint,
): WfpSubLayer {
  const view = memory.readStruct("FWPM_SUBLAYER0", address);
  const subLayer: WfpSubLayer = {
    key: view.guid("subLayerKey") as SubLayerKey,
    ...readDisplay(memory, view),
    flags: view.num("flags"),
    weight: view.num("weight"),
  };
  const provider = readGuidPointer(memory, view.big("providerKey"));
  if (provider !== undefined) subLayer.providerKey = provider as ProviderKey;
  return subLayer;
}

/**
 * Lays out an `FWPM_FILTER0` with its conditions and every value they
 * point to, in one buffer the arena holds (see
 * {@linkcode FilterEncoder}).
 *
 * @example
 * ```ts
 * import { Arena, NativeMemory } from "./memory.ts";
 * import { decodeFilter, encodeFilter, type WfpFilter } from "./codec.ts";
 * import { filterKey, WFP_LAYERS, PALISADE_SUBLAYER_KEY } from "./guids.ts";
 * const filter: WfpFilter = {
 *   key: filterKey("0b4b0f4e-54a8-4f1c-8d1a-7e0e2b8f3c11"),
 *   name: "web-in", flags: 0,
 *   layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4,
 *   subLayerKey: PALISADE_SUBLAYER_KEY,
 *   weight: { type: "uint64", value: 5n }, conditions: [], action: 0x1002,
 * };
 * using memory = NativeMemory.open("libc.so.6");
 * using arena = new Arena(memory);
 * const back = decodeFilter(memory, encodeFilter(arena, filter).address);
 * console.assert(back.name === "web-in");
 * ```
 */
export function encodeFilter(arena: Arena, filter: WfpFilter): StructView {
  const encoder = new FilterEncoder(arena.memory, 512);
  const bytes = encoder.encode(filter);
  // The view covers the struct; the arena holds the whole buffer.
  arena.hold(new Uint8Array(bytes.buffer));
  return new StructView("FWPM_FILTER0", bytes, 0);
}

/** Byte offset of a (possibly nested) field, from the layout table. */
function offsetOf(struct: StructName, ...path: string[]): number {
  let offset = 0;
  let current = struct;
  for (const name of path) {
    const field = fieldOf(WFP_LAYOUTS, current, name);
    offset += field.offset;
    current = field.type as StructName;
  }
  return offset;
}

const F_SIZE = WFP_LAYOUTS.FWPM_FILTER0.size;
const F_KEY = offsetOf("FWPM_FILTER0", "filterKey");
const F_NAME = offsetOf("FWPM_FILTER0", "displayData", "name");
const F_DESCRIPTION = offsetOf("FWPM_FILTER0", "displayData", "description");
const F_FLAGS = offsetOf("FWPM_FILTER0", "flags");
const F_PROVIDER = offsetOf("FWPM_FILTER0", "providerKey");
const F_LAYER = offsetOf("FWPM_FILTER0", "layerKey");
const F_SUBLAYER = offsetOf("FWPM_FILTER0", "subLayerKey");
const F_WEIGHT = offsetOf("FWPM_FILTER0", "weight");
const F_COUNT = offsetOf("FWPM_FILTER0", "numFilterConditions");
const F_CONDITIONS = offsetOf("FWPM_FILTER0", "filterCondition");
const F_ACTION = offsetOf("FWPM_FILTER0", "action", "type");
const C_SIZE = WFP_LAYOUTS.FWPM_FILTER_CONDITION0.size;
const C_FIELD = offsetOf("FWPM_FILTER_CONDITION0", "fieldKey");
const C_MATCH = offsetOf("FWPM_FILTER_CONDITION0", "matchType");
const C_VALUE = offsetOf("FWPM_FILTER_CONDITION0", "conditionValue");
const V_TYPE = offsetOf("FWP_VALUE0", "type");
const V_DATA = offsetOf("FWP_VALUE0", "uint64");
const V4_SIZE = WFP_LAYOUTS.FWP_V4_ADDR_AND_MASK.size;
const V4_ADDR = offsetOf("FWP_V4_ADDR_AND_MASK", "addr");
const V4_MASK = offsetOf("FWP_V4_ADDR_AND_MASK", "mask");
const V6_SIZE = WFP_LAYOUTS.FWP_V6_ADDR_AND_MASK.size;
const V6_ADDR = offsetOf("FWP_V6_ADDR_AND_MASK", "addr");
const V6_PREFIX = offsetOf("FWP_V6_ADDR_AND_MASK", "prefixLength");
const BLOB_SIZE = WFP_LAYOUTS.FWP_BYTE_BLOB.size;
const BLOB_LENGTH = offsetOf("FWP_BYTE_BLOB", "size");
const BLOB_DATA = offsetOf("FWP_BYTE_BLOB", "data");
const RANGE_SIZE = WFP_LAYOUTS.FWP_RANGE0.size;
const RANGE_LOW = offsetOf("FWP_RANGE0", "valueLow");
const RANGE_HIGH = offsetOf("FWP_RANGE0", "valueHigh");

// One writer serves FWP_VALUE0 and FWP_CONDITION_VALUE0: they share the
// type and union offsets.
if (
  offsetOf("FWP_CONDITION_VALUE0", "type") !== V_TYPE ||
  offsetOf("FWP_CONDITION_VALUE0", "v4AddrMask") !== V_DATA
) {
  throw new Error(
    "Cannot load the WFP codec: FWP_VALUE0 and FWP_CONDITION_VALUE0 differ",
  );
}

/** Where the filter ID out-parameter sits in an encoder's buffer. */
const ID_CELL = Math.ceil(F_SIZE / 8) * 8;
/** Where the provider key the filter points to sits. */
const PROVIDER_CELL = ID_CELL + 8;
/** Start of the per-filter allocations; the conditions array comes first. */
const FIRST_FREE = PROVIDER_CELL + 16;
const TWO_32 = 4294967296;

/** Thrown inside the encoder when its buffer is too small. */
const OVERFLOW = Symbol("overflow");

/** Text positions of the 16 GUID bytes, in text order. */
const GUID_TEXT_AT = [
  0,
  2,
  4,
  6,
  9,
  11,
  14,
  16,
  19,
  21,
  24,
  26,
  28,
  30,
  32,
  34,
];
/** Windows memory position of each GUID byte (Data1..3 little-endian). */
const GUID_MEMORY_AT = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
/** Hex digit values by character code; 16 for anything else. */
const HEX_VALUE = new Uint8Array(128).fill(16);
for (let i = 0; i < 10; i++) HEX_VALUE[48 + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[65 + i] = HEX_VALUE[97 + i] = 10 + i;

/** Writes a GUID in Windows memory order; canonical text takes a fast path. */
function writeGuid(out: Uint8Array, at: number, text: string): void {
  if (
    text.length === 36 && text.charCodeAt(8) === 45 &&
    text.charCodeAt(13) === 45 && text.charCodeAt(18) === 45 &&
    text.charCodeAt(23) === 45
  ) {
    let bad = 0;
    for (let i = 0; i < 16; i++) {
      const p = GUID_TEXT_AT[i];
      const c1 = text.charCodeAt(p);
      const c2 = text.charCodeAt(p + 1);
      const hi = c1 < 128 ? HEX_VALUE[c1] : 16;
      const lo = c2 < 128 ? HEX_VALUE[c2] : 16;
      bad |= hi | lo;
      out[at + GUID_MEMORY_AT[i]] = (hi << 4) | lo;
    }
    if ((bad & 16) === 0) return;
  }
  // Braces, or not a GUID: the full parser normalises or throws.
  guidToBytes(text, out, at);
}

function fits(
  value: number,
  max: number,
  struct: string,
  field: string,
  type: string,
): number {
  if (value >= 0 && value <= max) return value;
  throw new RangeError(
    `Cannot write ${struct}.${field}: ${value} does not fit ${type}`,
  );
}

function exactly16(data: Uint8Array, struct: string, field: string): void {
  if (data.length !== 16) {
    throw new RangeError(
      `Cannot write ${struct}.${field}: expected 16 bytes, got ${data.length}`,
    );
  }
}

/**
 * Lays out one `FWPM_FILTER0` after another in a single reused buffer
 * whose native address is taken once (again only when it grows), so
 * adding a filter costs no allocation and no address lookup. Keys that
 * repeat from one filter to the next (layer, sublayer, provider,
 * condition fields) are not re-encoded. What {@linkcode encode} returns
 * stays valid until the next call; keep the encoder referenced until the
 * native call returns.
 */
export class FilterEncoder {
  readonly #memory: NativeMemory;
  #bytes = new Uint8Array(0);
  #view = new DataView(this.#bytes.buffer);
  #id = this.#bytes;
  #struct = this.#bytes;
  #base = 0;
  #used = 0;
  #layer: string | undefined;
  #subLayer: string | undefined;
  #provider: string | undefined;
  #fields: (string | undefined)[] = [];
  /** Condition slots whose field key is still in place. */
  #kept = 0;

  /** An encoder whose addresses come from `memory`. */
  constructor(memory: NativeMemory, capacity = 4096) {
    this.#memory = memory;
    this.#grow(Math.max(capacity, FIRST_FREE + 256));
  }

  #grow(capacity: number): void {
    const bytes = new Uint8Array(new ArrayBuffer(capacity));
    const address = this.#memory.addressOf(bytes);
    if (address > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new RangeError(
        `Cannot encode WFP filters: buffer address ${address} is out of range`,
      );
    }
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer);
    this.#id = bytes.subarray(ID_CELL, ID_CELL + 8);
    this.#struct = bytes.subarray(0, F_SIZE);
    this.#base = Number(address);
    this.#layer = this.#subLayer = this.#provider = undefined;
    this.#fields = [];
    this.#kept = 0;
  }

  /**
   * The 8-byte `UINT64 *id` out-parameter of `FwpmFilterAdd0`, in the
   * same buffer (valid until the next {@linkcode encode}).
   */
  get idCell(): Uint8Array {
    return this.#id;
  }

  /** The filter ID the engine wrote into {@linkcode idCell}. */
  readId(): bigint {
    return this.#view.getBigUint64(ID_CELL, true);
  }

  /**
   * Lays out `filter`; returns the `FWPM_FILTER0`, a view into the
   * encoder's buffer, which also holds everything the struct points to.
   *
   * @throws {RangeError} a value does not fit its field
   * @throws {SyntaxError} a key is not a GUID
   */
  encode(filter: WfpFilter): Uint8Array {
    for (;;) {
      try {
        this.#encode(filter);
        return this.#struct;
      } catch (error) {
        if (error !== OVERFLOW) throw error;
        this.#grow(this.#bytes.length * 2);
      }
    }
  }

  #alloc(size: number, zero: boolean): number {
    const at = this.#used;
    const end = at + Math.ceil(Math.max(size, 1) / 8) * 8;
    if (end > this.#bytes.length) throw OVERFLOW;
    if (zero) this.#bytes.fill(0, at, end);
    this.#used = end;
    return at;
  }

  #pointer(at: number, target: number): void {
    const address = this.#base + target;
    this.#view.setUint32(at, address >>> 0, true);
    this.#view.setUint32(at + 4, (address / TWO_32) >>> 0, true);
  }

  #null(at: number): void {
    this.#view.setUint32(at, 0, true);
    this.#view.setUint32(at + 4, 0, true);
  }

  #wide(text: string): number {
    const at = this.#alloc((text.length + 1) * 2, false);
    const view = this.#view;
    for (let i = 0; i < text.length; i++) {
      view.setUint16(at + i * 2, text.charCodeAt(i), true);
    }
    view.setUint16(at + text.length * 2, 0, true);
    return at;
  }

  #encode(filter: WfpFilter): void {
    const bytes = this.#bytes;
    const view = this.#view;
    const conditions = filter.conditions;
    const count = conditions.length;
    const kept = this.#kept;
    this.#kept = 0;
    this.#used = FIRST_FREE;
    // First, so the array sits at the same place for every filter.
    const array = count > 0 ? this.#alloc(count * C_SIZE, false) : 0;

    writeGuid(bytes, F_KEY, filter.key);
    if (filter.layerKey !== this.#layer) {
      this.#layer = undefined;
      writeGuid(bytes, F_LAYER, filter.layerKey);
      this.#layer = filter.layerKey;
    }
    if (filter.subLayerKey !== this.#subLayer) {
      this.#subLayer = undefined;
      writeGuid(bytes, F_SUBLAYER, filter.subLayerKey);
      this.#subLayer = filter.subLayerKey;
    }
    const provider = filter.providerKey;
    if (provider === undefined) {
      this.#null(F_PROVIDER);
    } else {
      if (provider !== this.#provider) {
        this.#provider = undefined;
        writeGuid(bytes, PROVIDER_CELL, provider);
        this.#provider = provider;
      }
      this.#pointer(F_PROVIDER, PROVIDER_CELL);
    }
    this.#pointer(F_NAME, this.#wide(filter.name));
    if (filter.description === undefined) this.#null(F_DESCRIPTION);
    else this.#pointer(F_DESCRIPTION, this.#wide(filter.description));
    view.setUint32(
      F_FLAGS,
      fits(filter.flags, 0xffffffff, "FWPM_FILTER0", "flags", "UINT32"),
      true,
    );
    this.#value(F_WEIGHT, filter.weight, "FWP_VALUE0");
    view.setUint32(F_COUNT, count, true);

    for (let i = 0; i < count; i++) {
      const condition = conditions[i];
      const at = array + i * C_SIZE;
      const field = condition.field;
      if (i >= kept || this.#fields[i] !== field) {
        this.#fields[i] = undefined;
        writeGuid(bytes, at + C_FIELD, field);
        this.#fields[i] = field;
      }
      view.setUint32(
        at + C_MATCH,
        fits(
          condition.match,
          0xffffffff,
          "FWPM_FILTER_CONDITION0",
          "matchType",
          "UINT32",
        ),
        true,
      );
      view.setUint32(at + C_MATCH + 4, 0, true);
      this.#value(at + C_VALUE, condition.value, "FWP_CONDITION_VALUE0");
    }
    if (count > 0) this.#pointer(F_CONDITIONS, array);
    else this.#null(F_CONDITIONS);

    view.setUint32(
      F_ACTION,
      fits(filter.action, 0xffffffff, "FWPM_ACTION0", "type", "UINT32"),
      true,
    );
    this.#kept = count;
  }

  /** Writes an `FWP_VALUE0` or `FWP_CONDITION_VALUE0` at `at`. */
  #value(at: number, value: WfpConditionValue, struct: string): void {
    const view = this.#view;
    const code: number | undefined = TYPE_CODE[value.type];
    if (code === undefined) {
      throw new TypeError(
        `Cannot write ${struct}: value type "${value.type}" is not supported`,
      );
    }
    view.setUint32(at + V_TYPE, code, true);
    view.setUint32(at + V_TYPE + 4, 0, true);
    const data = at + V_DATA;
    switch (value.type) {
      case "empty":
        this.#null(data);
        return;
      case "uint8":
        this.#null(data);
        view.setUint8(data, fits(value.value, 0xff, struct, "uint8", "UINT8"));
        return;
      case "uint16":
        this.#null(data);
        view.setUint16(
          data,
          fits(value.value, 0xffff, struct, "uint16", "UINT16"),
          true,
        );
        return;
      case "uint32":
        this.#null(data);
        view.setUint32(
          data,
          fits(value.value, 0xffffffff, struct, "uint32", "UINT32"),
          true,
        );
        return;
      case "uint64": {
        const cell = this.#alloc(8, false);
        view.setBigUint64(cell, value.value, true);
        this.#pointer(data, cell);
        return;
      }
      case "byteArray16": {
        exactly16(value.value, "FWP_BYTE_ARRAY16", "byteArray16");
        const cell = this.#alloc(16, false);
        this.#bytes.set(value.value, cell);
        this.#pointer(data, cell);
        return;
      }
      case "byteBlob": {
        const blob = this.#alloc(BLOB_SIZE, true);
        const payload = this.#alloc(value.value.length, true);
        this.#bytes.set(value.value, payload);
        view.setUint32(blob + BLOB_LENGTH, value.value.length, true);
        this.#pointer(blob + BLOB_DATA, payload);
        this.#pointer(data, blob);
        return;
      }
      case "v4AddrMask": {
        const cell = this.#alloc(V4_SIZE, true);
        const name = "FWP_V4_ADDR_AND_MASK";
        view.setUint32(
          cell + V4_ADDR,
          fits(value.addr, 0xffffffff, name, "addr", "UINT32"),
          true,
        );
        view.setUint32(
          cell + V4_MASK,
          fits(value.mask, 0xffffffff, name, "mask", "UINT32"),
          true,
        );
        this.#pointer(data, cell);
        return;
      }
      case "v6AddrMask": {
        const name = "FWP_V6_ADDR_AND_MASK";
        exactly16(value.addr, name, "addr");
        const cell = this.#alloc(V6_SIZE, true);
        this.#bytes.set(value.addr, cell + V6_ADDR);
        view.setUint8(
          cell + V6_PREFIX,
          fits(value.prefixLength, 0xff, name, "prefixLength", "UINT8"),
        );
        this.#pointer(data, cell);
        return;
      }
      case "range": {
        const cell = this.#alloc(RANGE_SIZE, true);
        this.#value(cell + RANGE_LOW, value.low, "FWP_VALUE0");
        this.#value(cell + RANGE_HIGH, value.high, "FWP_VALUE0");
        this.#pointer(data, cell);
        return;
      }
    }
  }
}

/** Reads an `FWPM_FILTER0` (and its conditions) from native memory. */
export function decodeFilter(
  memory: NativeMemory,
  address: bigint,
): WfpFilter {
  const view = memory.readStruct("FWPM_FILTER0", address);
  const filter: WfpFilter = {
    key: view.guid("filterKey") as FilterKey,
    ...readDisplay(memory, view),
    flags: view.num("flags"),
    layerKey: view.guid("layerKey") as LayerKey,
    subLayerKey: view.guid("subLayerKey") as SubLayerKey,
    weight: readValue(memory, view.sub("weight")) as WfpValue,
    conditions: [],
    action: view.sub("action").num("type"),
    filterId: view.big("filterId") as FilterId,
    effectiveWeight: readValue(
      memory,
      view.sub("effectiveWeight"),
    ) as WfpValue,
  };
  const provider = readGuidPointer(memory, view.big("providerKey"));
  if (provider !== undefined) filter.providerKey = provider as ProviderKey;

  const count = view.num("numFilterConditions");
  if (count > MAX_CONDITIONS) {
    throw new RangeError(
      `Cannot decode WFP filter "${filter.name}": ${count} conditions is more than ${MAX_CONDITIONS}`,
    );
  }
  if (count > 0) {
    const array = memory.readStruct(
      "FWPM_FILTER_CONDITION0",
      view.big("filterCondition"),
      count,
    );
    for (let i = 0; i < count; i++) {
      const item = array.at(i);
      filter.conditions.push({
        field: item.guid("fieldKey") as ConditionKey,
        match: item.num("matchType"),
        value: readValue(memory, item.sub("conditionValue")),
      });
    }
  }
  return filter;
}

/** Lays out an `FWPM_FILTER_ENUM_TEMPLATE0` (fully contained, all actions). */
export function encodeFilterTemplate(
  arena: Arena,
  template: WfpFilterTemplate,
): StructView {
  const view = arena.struct("FWPM_FILTER_ENUM_TEMPLATE0");
  view.set("providerKey", guidPointer(arena, template.providerKey));
  view.setGuid("layerKey", template.layerKey);
  view.set("enumType", 0);
  // Every action type: the mask selects which actions are returned.
  view.set("actionMask", 0xffffffff);
  return view;
}

/** Reads an `FWP_BYTE_BLOB` (e.g. an application ID) from memory. */
export function decodeByteBlob(
  memory: NativeMemory,
  address: bigint,
): Uint8Array {
  return readBlob(memory, address);
}
