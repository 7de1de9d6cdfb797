/**
 * The Windows x64 memory layout of every WFP struct Palisade reads or
 * writes, written once as data. The encoders and decoders take their
 * offsets from here, and `tools/layout_check.ts` turns the same table
 * into C static assertions compiled against the real headers. Unions and
 * padding are explicit, so a mistake cannot hide by shifting later
 * fields.
 *
 * @module
 */

/** How a field is stored. Struct names stand for an inline struct. */
export type FieldType =
  | "UINT8"
  | "UINT16"
  | "UINT32"
  | "INT32"
  | "UINT64"
  | "POINTER"
  | "UINT8[16]"
  | "UINT8[8]"
  | "UNION"
  | "PADDING"
  | StructName;

/** One field (or union member, or padding) of a struct. */
export interface FieldLayout {
  /** Field name as in the C header; padding is named `_padN`. */
  readonly name: string;
  /** Storage type; a struct name means an inline struct. */
  readonly type: FieldType;
  /** Byte offset from the start of the struct. */
  readonly offset: number;
  /** Size in bytes. */
  readonly size: number;
  /** Alignment in bytes. */
  readonly align: number;
  /** C type as the header writes it, for documentation. */
  readonly cType: string;
  /** Members of an anonymous union, all at the union's offset. */
  readonly members?: readonly FieldLayout[];
}

/** One struct: size, alignment and every byte accounted for. */
export interface StructLayout {
  /** Struct name as in the Windows headers. */
  readonly name: StructName;
  /** `sizeof` on Windows x64. */
  readonly size: number;
  /** `_Alignof` on Windows x64. */
  readonly align: number;
  /** Fields, union groups and padding, in memory order. */
  readonly fields: readonly FieldLayout[];
}

/** The structs in the layout table. */
export type StructName =
  | "GUID"
  | "FWP_BYTE_ARRAY16"
  | "FWP_BYTE_BLOB"
  | "FWPM_DISPLAY_DATA0"
  | "FWP_VALUE0"
  | "FWP_CONDITION_VALUE0"
  | "FWP_V4_ADDR_AND_MASK"
  | "FWP_V6_ADDR_AND_MASK"
  | "FWP_RANGE0"
  | "FWPM_ACTION0"
  | "FWPM_SESSION0"
  | "FWPM_PROVIDER0"
  | "FWPM_SUBLAYER0"
  | "FWPM_FILTER_CONDITION0"
  | "FWPM_FILTER_ENUM_TEMPLATE0"
  | "FWPM_FILTER0";

/** The layout table; the type of a table the layout check accepts. */
export type LayoutTable = Readonly<Record<StructName, StructLayout>>;

type Row = [string, FieldType, number, number, number, string];

function f(...[name, type, offset, size, align, cType]: Row): FieldLayout {
  return { name, type, offset, size, align, cType };
}

function pad(n: number, offset: number, size: number): FieldLayout {
  return {
    name: `_pad${n}`,
    type: "PADDING",
    offset,
    size,
    align: 1,
    cType: `(${size} padding bytes)`,
  };
}

function union(offset: number, size: number, align: number, rows: Row[]) {
  return {
    name: rows.map((r) => r[0]).join("|"),
    type: "UNION" as const,
    offset,
    size,
    align,
    cType: "union",
    members: rows.map((r) => f(...r)),
  };
}

function struct(
  name: StructName,
  size: number,
  align: number,
  fields: FieldLayout[],
): StructLayout {
  return { name, size, align, fields };
}

// The value union of FWP_VALUE0; FWP_CONDITION_VALUE0 adds three members.
// 8-byte values (UINT64, arrays, blobs) are held by pointer, so the union
// is one pointer wide.
const VALUE_MEMBERS: Row[] = [
  ["uint8", "UINT8", 8, 1, 1, "UINT8"],
  ["uint16", "UINT16", 8, 2, 2, "UINT16"],
  ["uint32", "UINT32", 8, 4, 4, "UINT32"],
  ["uint64", "POINTER", 8, 8, 8, "UINT64 *"],
  ["byteArray16", "POINTER", 8, 8, 8, "FWP_BYTE_ARRAY16 *"],
  ["byteBlob", "POINTER", 8, 8, 8, "FWP_BYTE_BLOB *"],
  ["unicodeString", "POINTER", 8, 8, 8, "LPWSTR"],
];

/** Windows x64 layouts of the WFP structs Palisade uses. */
export const WFP_LAYOUTS: LayoutTable = {
  GUID: struct("GUID", 16, 4, [
    f("Data1", "UINT32", 0, 4, 4, "unsigned long"),
    f("Data2", "UINT16", 4, 2, 2, "unsigned short"),
    f("Data3", "UINT16", 6, 2, 2, "unsigned short"),
    f("Data4", "UINT8[8]", 8, 8, 1, "unsigned char[8]"),
  ]),
  FWP_BYTE_ARRAY16: struct("FWP_BYTE_ARRAY16", 16, 1, [
    f("byteArray16", "UINT8[16]", 0, 16, 1, "UINT8[16]"),
  ]),
  FWP_BYTE_BLOB: struct("FWP_BYTE_BLOB", 16, 8, [
    f("size", "UINT32", 0, 4, 4, "UINT32"),
    pad(0, 4, 4),
    f("data", "POINTER", 8, 8, 8, "UINT8 *"),
  ]),
  FWPM_DISPLAY_DATA0: struct("FWPM_DISPLAY_DATA0", 16, 8, [
    f("name", "POINTER", 0, 8, 8, "wchar_t *"),
    f("description", "POINTER", 8, 8, 8, "wchar_t *"),
  ]),
  FWP_VALUE0: struct("FWP_VALUE0", 16, 8, [
    f("type", "UINT32", 0, 4, 4, "FWP_DATA_TYPE"),
    pad(0, 4, 4),
    union(8, 8, 8, VALUE_MEMBERS),
  ]),
  FWP_CONDITION_VALUE0: struct("FWP_CONDITION_VALUE0", 16, 8, [
    f("type", "UINT32", 0, 4, 4, "FWP_DATA_TYPE"),
    pad(0, 4, 4),
    union(8, 8, 8, [
      ...VALUE_MEMBERS,
      ["v4AddrMask", "POINTER", 8, 8, 8, "FWP_V4_ADDR_AND_MASK *"],
      ["v6AddrMask", "POINTER", 8, 8, 8, "FWP_V6_ADDR_AND_MASK *"],
      ["rangeValue", "POINTER", 8, 8, 8, "FWP_RANGE0 *"],
    ]),
  ]),
  FWP_V4_ADDR_AND_MASK: struct("FWP_V4_ADDR_AND_MASK", 8, 4, [
    f("addr", "UINT32", 0, 4, 4, "UINT32"),
    f("mask", "UINT32", 4, 4, 4, "UINT32"),
  ]),
  FWP_V6_ADDR_AND_MASK: struct("FWP_V6_ADDR_AND_MASK", 17, 1, [
    f("addr", "UINT8[16]", 0, 16, 1, "UINT8[16]"),
    f("prefixLength", "UINT8", 16, 1, 1, "UINT8"),
  ]),
  FWP_RANGE0: struct("FWP_RANGE0", 32, 8, [
    f("valueLow", "FWP_VALUE0", 0, 16, 8, "FWP_VALUE0"),
    f("valueHigh", "FWP_VALUE0", 16, 16, 8, "FWP_VALUE0"),
  ]),
  FWPM_ACTION0: struct("FWPM_ACTION0", 20, 4, [
    f("type", "UINT32", 0, 4, 4, "FWP_ACTION_TYPE"),
    union(4, 16, 4, [
      ["filterType", "GUID", 4, 16, 4, "GUID"],
      ["calloutKey", "GUID", 4, 16, 4, "GUID"],
    ]),
  ]),
  FWPM_SESSION0: struct("FWPM_SESSION0", 72, 8, [
    f("sessionKey", "GUID", 0, 16, 4, "GUID"),
    f("displayData", "FWPM_DISPLAY_DATA0", 16, 16, 8, "FWPM_DISPLAY_DATA0"),
    f("flags", "UINT32", 32, 4, 4, "UINT32"),
    f("txnWaitTimeoutInMSec", "UINT32", 36, 4, 4, "UINT32"),
    f("processId", "UINT32", 40, 4, 4, "DWORD"),
    pad(0, 44, 4),
    f("sid", "POINTER", 48, 8, 8, "SID *"),
    f("username", "POINTER", 56, 8, 8, "wchar_t *"),
    f("kernelMode", "INT32", 64, 4, 4, "WINBOOL"),
    pad(1, 68, 4),
  ]),
  FWPM_PROVIDER0: struct("FWPM_PROVIDER0", 64, 8, [
    f("providerKey", "GUID", 0, 16, 4, "GUID"),
    f("displayData", "FWPM_DISPLAY_DATA0", 16, 16, 8, "FWPM_DISPLAY_DATA0"),
    f("flags", "UINT32", 32, 4, 4, "UINT32"),
    pad(0, 36, 4),
    f("providerData", "FWP_BYTE_BLOB", 40, 16, 8, "FWP_BYTE_BLOB"),
    f("serviceName", "POINTER", 56, 8, 8, "wchar_t *"),
  ]),
  FWPM_SUBLAYER0: struct("FWPM_SUBLAYER0", 72, 8, [
    f("subLayerKey", "GUID", 0, 16, 4, "GUID"),
    f("displayData", "FWPM_DISPLAY_DATA0", 16, 16, 8, "FWPM_DISPLAY_DATA0"),
    f("flags", "UINT16", 32, 2, 2, "UINT16"),
    pad(0, 34, 6),
    f("providerKey", "POINTER", 40, 8, 8, "GUID *"),
    f("providerData", "FWP_BYTE_BLOB", 48, 16, 8, "FWP_BYTE_BLOB"),
    f("weight", "UINT16", 64, 2, 2, "UINT16"),
    pad(1, 66, 6),
  ]),
  FWPM_FILTER_CONDITION0: struct("FWPM_FILTER_CONDITION0", 40, 8, [
    f("fieldKey", "GUID", 0, 16, 4, "GUID"),
    f("matchType", "UINT32", 16, 4, 4, "FWP_MATCH_TYPE"),
    pad(0, 20, 4),
    f(
      "conditionValue",
      "FWP_CONDITION_VALUE0",
      24,
      16,
      8,
      "FWP_CONDITION_VALUE0",
    ),
  ]),
  FWPM_FILTER_ENUM_TEMPLATE0: struct("FWPM_FILTER_ENUM_TEMPLATE0", 72, 8, [
    f("providerKey", "POINTER", 0, 8, 8, "GUID *"),
    f("layerKey", "GUID", 8, 16, 4, "GUID"),
    f("enumType", "UINT32", 24, 4, 4, "FWP_FILTER_ENUM_TYPE"),
    f("flags", "UINT32", 28, 4, 4, "UINT32"),
    f(
      "providerContextTemplate",
      "POINTER",
      32,
      8,
      8,
      "FWPM_PROVIDER_CONTEXT_ENUM_TEMPLATE0 *",
    ),
    f("numFilterConditions", "UINT32", 40, 4, 4, "UINT32"),
    pad(0, 44, 4),
    f("filterCondition", "POINTER", 48, 8, 8, "FWPM_FILTER_CONDITION0 *"),
    f("actionMask", "UINT32", 56, 4, 4, "UINT32"),
    pad(1, 60, 4),
    f("calloutKey", "POINTER", 64, 8, 8, "GUID *"),
  ]),
  FWPM_FILTER0: struct("FWPM_FILTER0", 200, 8, [
    f("filterKey", "GUID", 0, 16, 4, "GUID"),
    f("displayData", "FWPM_DISPLAY_DATA0", 16, 16, 8, "FWPM_DISPLAY_DATA0"),
    f("flags", "UINT32", 32, 4, 4, "UINT32"),
    pad(0, 36, 4),
    f("providerKey", "POINTER", 40, 8, 8, "GUID *"),
    f("providerData", "FWP_BYTE_BLOB", 48, 16, 8, "FWP_BYTE_BLOB"),
    f("layerKey", "GUID", 64, 16, 4, "GUID"),
    f("subLayerKey", "GUID", 80, 16, 4, "GUID"),
    f("weight", "FWP_VALUE0", 96, 16, 8, "FWP_VALUE0"),
    f("numFilterConditions", "UINT32", 112, 4, 4, "UINT32"),
    pad(1, 116, 4),
    f("filterCondition", "POINTER", 120, 8, 8, "FWPM_FILTER_CONDITION0 *"),
    f("action", "FWPM_ACTION0", 128, 20, 4, "FWPM_ACTION0"),
    pad(2, 148, 4),
    union(152, 16, 8, [
      ["rawContext", "UINT64", 152, 8, 8, "UINT64"],
      ["providerContextKey", "GUID", 152, 16, 4, "GUID"],
    ]),
    f("reserved", "POINTER", 168, 8, 8, "GUID *"),
    f("filterId", "UINT64", 176, 8, 8, "UINT64"),
    f("effectiveWeight", "FWP_VALUE0", 184, 16, 8, "FWP_VALUE0"),
  ]),
};

/**
 * Finds a field or union member by name.
 *
 * @throws {RangeError} the struct has no such field
 */
export function fieldOf(
  table: LayoutTable,
  struct: StructName,
  name: string,
): FieldLayout {
  let index = FIELD_INDEX.get(table[struct]);
  if (index === undefined) {
    index = new Map();
    for (const field of table[struct].fields) {
      index.set(field.name, field);
      for (const member of field.members ?? []) index.set(member.name, member);
    }
    FIELD_INDEX.set(table[struct], index);
  }
  const found = index.get(name);
  if (found) return found;
  throw new RangeError(`Cannot find field: ${struct} has no field "${name}"`);
}

// Field lookups by name happen for every field written; index each
// struct layout once. Keyed by layout object, so edited copies of the
// table get their own index.
const FIELD_INDEX = new WeakMap<StructLayout, Map<string, FieldLayout>>();

/**
 * Checks that a table is self-consistent: fields in order, aligned,
 * without overlap, and fields plus padding covering the struct exactly.
 *
 * @returns one message per problem; empty when consistent
 */
export function layoutProblems(table: LayoutTable): string[] {
  const problems: string[] = [];
  for (const layout of Object.values(table)) {
    let next = 0;
    for (const field of layout.fields) {
      const where = `${layout.name}.${field.name}`;
      if (field.offset !== next) {
        problems.push(`${where} starts at ${field.offset}, expected ${next}`);
      }
      if (field.offset % field.align !== 0) {
        problems.push(
          `${where} at ${field.offset} is not ${field.align}-aligned`,
        );
      }
      for (const member of field.members ?? []) {
        if (member.offset !== field.offset || member.size > field.size) {
          problems.push(`${layout.name}.${member.name} does not fit its union`);
        }
      }
      next = field.offset + field.size;
    }
    if (next !== layout.size) {
      problems.push(
        `${layout.name} covers ${next} bytes, size is ${layout.size}`,
      );
    }
  }
  return problems;
}
