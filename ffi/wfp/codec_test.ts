import assert from "node:assert/strict";
import { Arena, NativeMemory } from "./memory.ts";
import {
  decodeFilter,
  decodeProvider,
  decodeSubLayer,
  encodeFilter,
  encodeFilterTemplate,
  encodeProvider,
  encodeSession,
  encodeSubLayer,
  FilterEncoder,
  type WfpFilter,
} from "./codec.ts";
import {
  filterKey,
  PALISADE_PROVIDER_KEY,
  PALISADE_SUBLAYER_KEY,
  WFP_CONDITIONS,
  WFP_LAYERS,
} from "./guids.ts";
import { fieldOf, layoutProblems, WFP_LAYOUTS } from "./layout.ts";

/** Where the tests bind `memcpy` from (any library that reaches it). */
const C_LIBRARY = Deno.build.os === "windows" ? "ntdll.dll" : "libc.so.6";

const FILTER: WfpFilter = {
  key: filterKey("0b4b0f4e-54a8-4f1c-8d1a-7e0e2b8f3c11"),
  name: "block-smb-out",
  description: "Palisade ✓ rule",
  flags: 1,
  providerKey: PALISADE_PROVIDER_KEY,
  layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_CONNECT_V6,
  subLayerKey: PALISADE_SUBLAYER_KEY,
  weight: { type: "uint64", value: 0xf000_0000_0000_0001n },
  action: 0x1001,
  conditions: [
    {
      field: WFP_CONDITIONS.FWPM_CONDITION_IP_PROTOCOL,
      match: 0,
      value: { type: "uint8", value: 6 },
    },
    {
      field: WFP_CONDITIONS.FWPM_CONDITION_IP_REMOTE_ADDRESS,
      match: 0,
      value: { type: "v4AddrMask", addr: 0xcb007100, mask: 0xffffff00 },
    },
    {
      field: WFP_CONDITIONS.FWPM_CONDITION_IP_REMOTE_ADDRESS,
      match: 0,
      value: {
        type: "v6AddrMask",
        addr: Uint8Array.from([
          0x20,
          0x01,
          0x0d,
          0xb8,
          ...new Array(12).fill(0),
        ]),
        prefixLength: 32,
      },
    },
    {
      field: WFP_CONDITIONS.FWPM_CONDITION_IP_REMOTE_PORT,
      match: 5,
      value: {
        type: "range",
        low: { type: "uint16", value: 137 },
        high: { type: "uint16", value: 139 },
      },
    },
    {
      field: WFP_CONDITIONS.FWPM_CONDITION_IP_REMOTE_PORT,
      match: 0,
      value: { type: "uint16", value: 445 },
    },
    {
      field: WFP_CONDITIONS.FWPM_CONDITION_ALE_APP_ID,
      match: 0,
      value: {
        type: "byteBlob",
        value: new TextEncoder().encode("\\device\\x"),
      },
    },
    {
      field: WFP_CONDITIONS.FWPM_CONDITION_IP_LOCAL_ADDRESS,
      match: 0,
      value: { type: "byteArray16", value: new Uint8Array(16).fill(7) },
    },
    {
      field: WFP_CONDITIONS.FWPM_CONDITION_IP_LOCAL_PORT,
      match: 0,
      value: { type: "uint32", value: 0xfffffffe },
    },
  ],
};

Deno.test("encodeFilter() and decodeFilter() round-trip every value type", () => {
  using memory = NativeMemory.open(C_LIBRARY);
  using arena = new Arena(memory);
  const view = encodeFilter(arena, FILTER);
  const back = decodeFilter(memory, view.address);
  const { filterId, effectiveWeight, ...rest } = back;
  assert.deepEqual(rest, FILTER);
  assert.equal(filterId, 0n);
  assert.deepEqual(effectiveWeight, { type: "empty" });
});

Deno.test("encodeFilter() writes fields at the table's offsets", () => {
  using memory = NativeMemory.open(C_LIBRARY);
  using arena = new Arena(memory);
  const view = encodeFilter(arena, FILTER);
  const data = new DataView(view.bytes.buffer, view.bytes.byteOffset);
  const at = (name: string) =>
    fieldOf(WFP_LAYOUTS, "FWPM_FILTER0", name).offset;
  assert.equal(view.bytes.length, 200);
  assert.equal(data.getUint32(at("numFilterConditions"), true), 8);
  assert.equal(data.getUint32(at("action"), true), 0x1001);
  assert.equal(data.getUint32(at("weight"), true), 4);
  assert.equal(data.getUint32(at("flags"), true), 1);
  // layerKey Data1 of FWPM_LAYER_ALE_AUTH_CONNECT_V6, little-endian.
  assert.equal(data.getUint32(at("layerKey"), true), 0x4a72393b);
});

/** Decodes what an encoder laid out, without the read-back fields. */
function decodeEncoded(memory: NativeMemory, bytes: Uint8Array): WfpFilter {
  const { filterId: _, effectiveWeight: __, ...rest } = decodeFilter(
    memory,
    memory.addressOf(bytes),
  );
  return rest;
}

Deno.test("FilterEncoder.encode() reused for filters of every shape lays out each one exactly", () => {
  using memory = NativeMemory.open(C_LIBRARY);
  const encoder = new FilterEncoder(memory);
  const bare: WfpFilter = {
    key: filterKey("11111111-2222-4333-8444-555555555555"),
    name: "bare",
    flags: 0,
    layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4,
    subLayerKey: PALISADE_SUBLAYER_KEY,
    weight: { type: "empty" },
    conditions: [],
    action: 0x1002,
  };
  const reordered: WfpFilter = {
    ...FILTER,
    key: filterKey("0b4b0f4e-54a8-4f1c-8d1a-7e0e2b8f3c12"),
    conditions: [...FILTER.conditions].reverse().slice(0, 5),
  };
  // Fewer, then more, then reordered conditions; keys, provider and
  // description that come and go: nothing of one filter may leak into
  // the next.
  for (const filter of [FILTER, bare, FILTER, reordered, bare, FILTER]) {
    assert.deepEqual(decodeEncoded(memory, encoder.encode(filter)), filter);
  }
});

Deno.test("FilterEncoder.encode() grows for a filter larger than its buffer", () => {
  using memory = NativeMemory.open(C_LIBRARY);
  const encoder = new FilterEncoder(memory, 512);
  const big: WfpFilter = {
    ...FILTER,
    name: "n".repeat(5000),
    conditions: [{
      field: WFP_CONDITIONS.FWPM_CONDITION_ALE_APP_ID,
      match: 0,
      value: { type: "byteBlob", value: new Uint8Array(9000).fill(3) },
    }, ...FILTER.conditions],
  };
  assert.deepEqual(decodeEncoded(memory, encoder.encode(FILTER)), FILTER);
  assert.deepEqual(decodeEncoded(memory, encoder.encode(big)), big);
  assert.deepEqual(decodeEncoded(memory, encoder.encode(FILTER)), FILTER);
});

Deno.test("FilterEncoder.encode() refuses bad values and stays exact afterwards", () => {
  using memory = NativeMemory.open(C_LIBRARY);
  const encoder = new FilterEncoder(memory);
  encoder.encode(FILTER);
  const badPort: WfpFilter = {
    ...FILTER,
    conditions: [{
      field: WFP_CONDITIONS.FWPM_CONDITION_IP_LOCAL_PORT,
      match: 0,
      value: { type: "uint8", value: 300 },
    }],
  };
  assert.throws(() => encoder.encode(badPort), {
    name: "RangeError",
    message: "Cannot write FWP_CONDITION_VALUE0.uint8: 300 does not fit UINT8",
  });
  assert.throws(
    () => encoder.encode({ ...FILTER, layerKey: "not-a-guid" as never }),
    { name: "SyntaxError", message: /^Cannot parse GUID: "not-a-guid"/ },
  );
  assert.throws(
    () =>
      encoder.encode({
        ...FILTER,
        subLayerKey: "zzcb5d87-799b-4fad-b1fc-477d9392b47b" as never,
      }),
    SyntaxError,
  );
  assert.throws(
    () =>
      encoder.encode({
        ...FILTER,
        weight: { type: "byteArray16", value: new Uint8Array(15) },
      }),
    /expected 16 bytes, got 15/,
  );
  assert.deepEqual(decodeEncoded(memory, encoder.encode(FILTER)), FILTER);
});

Deno.test("FilterEncoder.encode() accepts upper-case and braced GUID text", () => {
  using memory = NativeMemory.open(C_LIBRARY);
  const encoder = new FilterEncoder(memory);
  const shouted = {
    ...FILTER,
    key: `{${FILTER.key.toUpperCase()}}` as never,
    layerKey: FILTER.layerKey.toUpperCase() as never,
  };
  assert.deepEqual(decodeEncoded(memory, encoder.encode(shouted)), FILTER);
});

Deno.test("encodeProvider() and decodeProvider() round-trip", () => {
  using memory = NativeMemory.open(C_LIBRARY);
  using arena = new Arena(memory);
  const provider = {
    key: PALISADE_PROVIDER_KEY,
    name: "palisade",
    description: "Palisade host firewall",
    flags: 1,
    serviceName: "palisade",
  };
  assert.deepEqual(
    decodeProvider(memory, encodeProvider(arena, provider).address),
    provider,
  );
});

Deno.test("encodeSubLayer() and decodeSubLayer() round-trip", () => {
  using memory = NativeMemory.open(C_LIBRARY);
  using arena = new Arena(memory);
  const subLayer = {
    key: PALISADE_SUBLAYER_KEY,
    name: "palisade",
    flags: 1,
    providerKey: PALISADE_PROVIDER_KEY,
    weight: 0x8000,
  };
  assert.deepEqual(
    decodeSubLayer(memory, encodeSubLayer(arena, subLayer).address),
    subLayer,
  );
});

Deno.test("encodeSession() and encodeFilterTemplate() fill the fields WFP reads", () => {
  using memory = NativeMemory.open(C_LIBRARY);
  using arena = new Arena(memory);
  const session = encodeSession(arena, {
    name: "palisade",
    flags: 1,
    txnWaitTimeoutMs: 5000,
  });
  assert.equal(session.num("flags"), 1);
  assert.equal(session.num("txnWaitTimeoutInMSec"), 5000);
  assert.notEqual(session.sub("displayData").big("name"), 0n);
  const template = encodeFilterTemplate(arena, {
    layerKey: WFP_LAYERS.FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4,
    providerKey: PALISADE_PROVIDER_KEY,
  });
  assert.equal(
    template.guid("layerKey"),
    WFP_LAYERS.FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4,
  );
  assert.notEqual(template.big("providerKey"), 0n);
  assert.equal(template.num("actionMask"), 0xffffffff);
});

Deno.test("layoutProblems() finds nothing in the layout table", () => {
  assert.deepEqual(layoutProblems(WFP_LAYOUTS), []);
});

Deno.test("layoutProblems() reports a shifted field and a missing pad", () => {
  const broken = structuredClone(WFP_LAYOUTS) as typeof WFP_LAYOUTS;
  const fields = broken.FWPM_FILTER0.fields as unknown as {
    name: string;
    offset: number;
  }[];
  fields.find((f) => f.name === "filterId")!.offset = 172;
  const problems = layoutProblems(broken);
  assert.ok(
    problems.some((p) => p.startsWith("FWPM_FILTER0.filterId starts at 172")),
  );
  assert.ok(problems.some((p) => p.includes("not 8-aligned")));
});
