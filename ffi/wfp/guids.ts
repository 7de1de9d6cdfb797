/**
 * GUIDs as WFP sees them: 16 bytes with Data1, Data2 and Data3 stored
 * little-endian and Data4 in order. Keys of different object kinds get
 * distinct branded types so a sublayer key cannot be passed where a
 * provider key is expected.
 *
 * @module
 */

/** A GUID in canonical lowercase text form `xxxxxxxx-xxxx-…`. */
export type Guid = string;

/** Key of a WFP provider (`FWPM_PROVIDER0.providerKey`). */
export type ProviderKey = string & { readonly __wfpKind: "ProviderKey" };
/** Key of a WFP sublayer (`FWPM_SUBLAYER0.subLayerKey`). */
export type SubLayerKey = string & { readonly __wfpKind: "SubLayerKey" };
/** Key of a WFP filter (`FWPM_FILTER0.filterKey`). */
export type FilterKey = string & { readonly __wfpKind: "FilterKey" };
/** Key of a WFP layer (`FWPM_LAYER_*`), where filters are evaluated. */
export type LayerKey = string & { readonly __wfpKind: "LayerKey" };
/** Key of a filtering condition field (`FWPM_CONDITION_*`). */
export type ConditionKey = string & { readonly __wfpKind: "ConditionKey" };
/** Run-time identifier the engine gives a filter (`UINT64 filterId`). */
export type FilterId = bigint & { readonly __wfpKind: "FilterId" };

const GUID_TEXT =
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The all-zero GUID, which WFP reads as "let the engine choose". */
export const ZERO_GUID = "00000000-0000-0000-0000-000000000000";

/**
 * Checks and normalises GUID text (braces and upper case accepted).
 *
 * @throws {SyntaxError} the text is not a GUID
 * @example
 * ```ts
 * import { parseGuid } from "./guids.ts";
 * console.assert(parseGuid("{C38D57D1-05A7-4C33-904F-7FBCEEE60E82}") ===
 *   "c38d57d1-05a7-4c33-904f-7fbceee60e82");
 * ```
 */
export function parseGuid(text: string): Guid {
  const bare = text.replace(/^\{(.*)\}$/, "$1").toLowerCase();
  if (!GUID_TEXT.test(bare)) {
    throw new SyntaxError(`Cannot parse GUID: "${text}" is not a GUID`);
  }
  return bare;
}

/** Brands GUID text as a provider key. @throws {SyntaxError} not a GUID */
export function providerKey(text: string): ProviderKey {
  return parseGuid(text) as ProviderKey;
}

/** Brands GUID text as a sublayer key. @throws {SyntaxError} not a GUID */
export function subLayerKey(text: string): SubLayerKey {
  return parseGuid(text) as SubLayerKey;
}

/** Brands GUID text as a filter key. @throws {SyntaxError} not a GUID */
export function filterKey(text: string): FilterKey {
  return parseGuid(text) as FilterKey;
}

/** Brands GUID text as a layer key. @throws {SyntaxError} not a GUID */
export function layerKey(text: string): LayerKey {
  return parseGuid(text) as LayerKey;
}

/** Brands GUID text as a condition key. @throws {SyntaxError} not a GUID */
export function conditionKey(text: string): ConditionKey {
  return parseGuid(text) as ConditionKey;
}

/**
 * Writes a GUID in Windows memory order into `out` at `offset`.
 *
 * @throws {SyntaxError} `guid` is not a GUID
 * @example
 * ```ts
 * import { guidToBytes } from "./guids.ts";
 * const bytes = guidToBytes("c38d57d1-05a7-4c33-904f-7fbceee60e82");
 * console.assert(bytes[0] === 0xd1 && bytes[8] === 0x90);
 * ```
 */
export function guidToBytes(
  guid: string,
  out: Uint8Array = new Uint8Array(16),
  offset = 0,
): Uint8Array {
  let bytes = GUID_BYTES.get(guid);
  if (bytes === undefined) {
    const hex = parseGuid(guid).replaceAll("-", "");
    const raw = new Uint8Array(16);
    for (let i = 0; i < 16; i++) {
      raw[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
    }

    // Data1 (4 bytes), Data2 and Data3 (2 bytes each) are little-endian
    // integers on every Windows architecture; Data4 is a byte array.
    bytes = new Uint8Array(16);
    for (let i = 0; i < 16; i++) bytes[i] = raw[MEMORY_ORDER[i]];
    if (GUID_BYTES.size >= GUID_CACHE_MAX) GUID_BYTES.clear();
    GUID_BYTES.set(guid, bytes);
  }
  out.set(bytes, offset);
  return out;
}

const MEMORY_ORDER = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
const GUID_CACHE_MAX = 8192;
const GUID_BYTES = new Map<string, Uint8Array>();

/**
 * Reads a GUID stored in Windows memory order.
 *
 * @example
 * ```ts
 * import { guidFromBytes, guidToBytes } from "./guids.ts";
 * const text = "4a72393b-319f-44bc-84c3-ba54dcb3b6b4";
 * console.assert(guidFromBytes(guidToBytes(text)) === text);
 * ```
 */
export function guidFromBytes(bytes: Uint8Array, offset = 0): Guid {
  const h = (i: number) => HEX[bytes[offset + i]];
  return h(3) + h(2) + h(1) + h(0) + "-" + h(5) + h(4) + "-" + h(7) +
    h(6) + "-" + h(8) + h(9) + "-" + h(10) + h(11) + h(12) + h(13) +
    h(14) + h(15);
}

const HEX = Array.from(
  { length: 256 },
  (_, i) => i.toString(16).padStart(2, "0"),
);

/** Splits a GUID into the Data1..Data4 fields of the C struct. */
export function guidFields(
  guid: string,
): { data1: number; data2: number; data3: number; data4: number[] } {
  const hex = parseGuid(guid).replaceAll("-", "");
  const data4 = [];
  for (let i = 16; i < 32; i += 2) {
    data4.push(parseInt(hex.slice(i, i + 2), 16));
  }
  return {
    data1: parseInt(hex.slice(0, 8), 16),
    data2: parseInt(hex.slice(8, 12), 16),
    data3: parseInt(hex.slice(12, 16), 16),
    data4,
  };
}

/** True for the all-zero GUID. */
export function isZeroGuid(guid: string): boolean {
  return parseGuid(guid) === ZERO_GUID;
}

/**
 * Palisade's provider key, chosen once at random and never changed: every
 * object Palisade creates names it, and panic removes what carries it.
 */
export const PALISADE_PROVIDER_KEY: ProviderKey = providerKey(
  "7651e430-8824-4e00-9ac1-cf48f89c8402",
);

/** Palisade's sublayer key, chosen once at random and never changed. */
export const PALISADE_SUBLAYER_KEY: SubLayerKey = subLayerKey(
  "b3cb5d87-799b-4fad-b1fc-477d9392b47b",
);

/** Name of Palisade's provider and sublayer; anything else is foreign. */
export const PALISADE_OBJECT_NAME = "palisade";

/**
 * Built-in layers Palisade filters at, with the values the Windows SDK's
 * `fwpmu.h` defines. ALE connect sees a socket's outbound connection or
 * first datagram; ALE receive/accept sees an inbound one. Each is split
 * by IP version.
 */
export const WFP_LAYERS = {
  FWPM_LAYER_ALE_AUTH_CONNECT_V4: layerKey(
    "c38d57d1-05a7-4c33-904f-7fbceee60e82",
  ),
  FWPM_LAYER_ALE_AUTH_CONNECT_V6: layerKey(
    "4a72393b-319f-44bc-84c3-ba54dcb3b6b4",
  ),
  FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4: layerKey(
    "e1cd9fe7-f4b5-4273-96c0-592e487b8650",
  ),
  FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6: layerKey(
    "a3b42c97-9f04-4672-b87e-cee9c483257f",
  ),
} as const;

/** Symbolic name of a layer Palisade uses. */
export type WfpLayerName = keyof typeof WFP_LAYERS;

/**
 * Condition fields Palisade matches on, with the SDK's values. At the ALE
 * layers "remote" is the peer and "local" this host, in both directions.
 */
export const WFP_CONDITIONS = {
  FWPM_CONDITION_IP_LOCAL_ADDRESS: conditionKey(
    "d9ee00de-c1ef-4617-bfe3-ffd8f5a08957",
  ),
  FWPM_CONDITION_IP_REMOTE_ADDRESS: conditionKey(
    "b235ae9a-1d64-49b8-a44c-5ff3d9095045",
  ),
  FWPM_CONDITION_IP_LOCAL_PORT: conditionKey(
    "0c1ba1af-5765-453f-af22-a8f791ac775b",
  ),
  FWPM_CONDITION_IP_REMOTE_PORT: conditionKey(
    "c35a604d-d22b-4e1a-91b4-68f674ee674b",
  ),
  FWPM_CONDITION_IP_PROTOCOL: conditionKey(
    "3971ef2b-623e-4f9a-8cb1-6e79b806b9a7",
  ),
  FWPM_CONDITION_ALE_APP_ID: conditionKey(
    "d78e1e87-8644-4ea5-9437-d809ecefc971",
  ),
} as const;

/** Symbolic name of a condition field Palisade uses. */
export type WfpConditionName = keyof typeof WFP_CONDITIONS;
