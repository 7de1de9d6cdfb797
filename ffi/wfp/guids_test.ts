import assert from "node:assert/strict";
import {
  guidFields,
  guidFromBytes,
  guidToBytes,
  isZeroGuid,
  PALISADE_PROVIDER_KEY,
  PALISADE_SUBLAYER_KEY,
  parseGuid,
  WFP_LAYERS,
  ZERO_GUID,
} from "./guids.ts";

Deno.test("guidToBytes() stores Data1-3 little-endian and Data4 in order", () => {
  const bytes = guidToBytes(WFP_LAYERS.FWPM_LAYER_ALE_AUTH_CONNECT_V4);
  assert.deepEqual(
    [...bytes],
    [
      0xd1,
      0x57,
      0x8d,
      0xc3,
      0xa7,
      0x05,
      0x33,
      0x4c,
      0x90,
      0x4f,
      0x7f,
      0xbc,
      0xee,
      0xe6,
      0x0e,
      0x82,
    ],
  );
});

Deno.test("guidFromBytes() inverts guidToBytes() for every Palisade GUID", () => {
  for (
    const key of [
      PALISADE_PROVIDER_KEY,
      PALISADE_SUBLAYER_KEY,
      ...Object.values(WFP_LAYERS),
    ]
  ) {
    assert.equal(guidFromBytes(guidToBytes(key)), key);
  }
});

Deno.test("parseGuid() normalises braces and case and refuses junk", () => {
  assert.equal(
    parseGuid("{A3B42C97-9F04-4672-B87E-CEE9C483257F}"),
    "a3b42c97-9f04-4672-b87e-cee9c483257f",
  );
  assert.throws(() => parseGuid("a3b42c97-9f04-4672-b87e"), SyntaxError);
  assert.throws(() => parseGuid("zzb42c97-9f04-4672-b87e-cee9c483257f"), {
    message: /Cannot parse GUID/,
  });
});

Deno.test("guidFields() splits a GUID as the C struct does", () => {
  const fields = guidFields("c38d57d1-05a7-4c33-904f-7fbceee60e82");
  assert.equal(fields.data1, 0xc38d57d1);
  assert.equal(fields.data2, 0x05a7);
  assert.equal(fields.data3, 0x4c33);
  assert.deepEqual(fields.data4, [
    0x90,
    0x4f,
    0x7f,
    0xbc,
    0xee,
    0xe6,
    0x0e,
    0x82,
  ]);
});

Deno.test("isZeroGuid() tells the zero GUID from Palisade's keys", () => {
  assert.equal(isZeroGuid(ZERO_GUID), true);
  assert.equal(isZeroGuid(PALISADE_PROVIDER_KEY), false);
  assert.notEqual(PALISADE_PROVIDER_KEY, PALISADE_SUBLAYER_KEY);
});
