/**
 * Encoders and decoders between plain TypeScript objects and the WFP
 * structs of `layout.ts`. Encoders write into an {@linkcode Arena} that
 * must outlive the native call; decoders copy everything out of native
 * memory, so the engine's buffer can be freed right after.
 *
 * @module
 */
import type { Arena, NativeMemory, StructView } from "./memory.ts";
import { FWP_DATA_TYPE } from "./constants.ts";
import {
  type ConditionKey,
  type FilterId,
  type FilterKey,
  guidFromBytes,
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

function blob(arena: Arena, data: Uint8Array): bigint {
  const view = arena.struct("FWP_BYTE_BLOB");
  view.set("size", data.length).set("data", arena.bytes(data));
  return view.address;
}

function readBlob(memory: NativeMemory, address: bigint): Uint8Array {
  const view = memory.readStruct("FWP_BYTE_BLOB", address);
  const size = view.num("size");
  return size === 0 ? new Uint8Array(0) : memory.read(view.big("data"), size);
}

/** Writes an `FWP_VALUE0` or `FWP_CONDITION_VALUE0` in place. */
function writeValue(
  arena: Arena,
  view: StructView,
  value: WfpConditionValue,
): void {
  view.set("type", TYPE_CODE[value.type]);
  switch (value.type) {
    case "empty":
      return;
    case "uint8":
    case "uint16":
    case "uint32":
      view.set(value.type, value.value);
      return;
    case "uint64": {
      const cell = arena.alloc(8);
      new DataView(cell.buffer, cell.byteOffset).setBigUint64(
        0,
        value.value,
        true,
      );
      view.set("uint64", arena.bytes(cell));
      return;
    }
    case "byteArray16": {
      const array = arena.struct("FWP_BYTE_ARRAY16");
      array.setBytes("byteArray16", value.value);
      view.set("byteArray16", array.address);
      return;
    }
    case "byteBlob":
      view.set("byteBlob", blob(arena, value.value));
      return;
    case "v4AddrMask": {
      const mask = arena.struct("FWP_V4_ADDR_AND_MASK");
      mask.set("addr", value.addr).set("mask", value.mask);
      view.set("v4AddrMask", mask.address);
      return;
    }
    case "v6AddrMask": {
      const mask = arena.struct("FWP_V6_ADDR_AND_MASK");
      mask.setBytes("addr", value.addr).set(
        "prefixLength",
        value.prefixLength,
      );
      view.set("v6AddrMask", mask.address);
      return;
    }
    case "range": {
      const range = arena.struct("FWP_RANGE0");
      writeValue(arena, range.sub("valueLow"), value.low);
      writeValue(arena, range.sub("valueHigh"), value.high);
      view.set("rangeValue", range.address);
      return;
    }
  }
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
 * point to.
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
  const view = arena.struct("FWPM_FILTER0");
  view.setGuid("filterKey", filter.key);
  writeDisplay(arena, view, filter.name, filter.description);
  view.set("flags", filter.flags);
  view.set("providerKey", guidPointer(arena, filter.providerKey));
  view.setGuid("layerKey", filter.layerKey);
  view.setGuid("subLayerKey", filter.subLayerKey);
  writeValue(arena, view.sub("weight"), filter.weight);

  view.set("numFilterConditions", filter.conditions.length);
  if (filter.conditions.length > 0) {
    const array = arena.struct(
      "FWPM_FILTER_CONDITION0",
      filter.conditions.length,
    );
    filter.conditions.forEach((condition, i) => {
      const item = array.at(i);
      item.setGuid("fieldKey", condition.field);
      item.set("matchType", condition.match);
      writeValue(arena, item.sub("conditionValue"), condition.value);
    });
    view.set("filterCondition", array.address);
  }

  view.sub("action").set("type", filter.action);
  return view;
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
