import assert from "node:assert/strict";
import { decodeBase64Strict } from "./_base64.ts";
import { newKey } from "./_testing.ts";
import {
  addSignature,
  pae,
  PAYLOAD_TYPES,
  serializeEnvelope,
  signPayload,
} from "./dsse.ts";
import { verifyEd25519 } from "./ed25519.ts";
import { SigningError } from "./errors.ts";

const encode = (text: string) => new TextEncoder().encode(text);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

Deno.test("pae() matches the DSSE specification's example", () => {
  assert.equal(
    decode(pae("http://example.com/HelloWorld", encode("hello world"))),
    "DSSEv1 29 http://example.com/HelloWorld 11 hello world",
  );
});

Deno.test("pae() counts UTF-8 bytes of a non-ASCII payload type", () => {
  // "ü" is 2 bytes, "😀" 4 bytes (2 UTF-16 units).
  const type = "application/vnd.ü😀+json";
  assert.equal(type.length, 24);
  assert.equal(encode(type).length, 27);
  assert.equal(
    decode(pae(type, encode("{}"))),
    `DSSEv1 27 ${type} 2 {}`,
  );
});

Deno.test("pae() counts UTF-8 bytes of a non-ASCII payload", () => {
  assert.equal(decode(pae("t", encode("é"))), "DSSEv1 1 t 2 é");
  assert.equal(decode(pae("", new Uint8Array())), "DSSEv1 0  0 ");
});

Deno.test("pae() keeps binary payload bytes exactly", () => {
  const payload = Uint8Array.of(0, 255, 10, 32);
  const out = pae("x", payload);
  assert.deepEqual(out.subarray(out.length - 4), payload);
});

Deno.test("signPayload() signs the PAE, not the payload alone", () => {
  const key = newKey();
  const payload = encode('{"a":1}');
  const envelope = signPayload("application/vnd.ü+json", payload, key);
  const sig = decodeBase64Strict(envelope.signatures[0].sig)!;
  const bytes = key.publicKey.bytes;
  assert.equal(
    verifyEd25519(sig, pae(envelope.payloadType, payload), bytes),
    "valid",
  );
  assert.equal(verifyEd25519(sig, payload, bytes), "bad-signature");
  assert.deepEqual(decodeBase64Strict(envelope.payload), payload);
});

Deno.test("addSignature() appends a signature over the same bytes", () => {
  const one = signPayload(PAYLOAD_TYPES.bundle, encode("{}"), newKey());
  const second = newKey();
  const two = addSignature(one, second);
  assert.equal(one.signatures.length, 1);
  assert.equal(two.signatures.length, 2);
  assert.equal(two.payload, one.payload);
  assert.equal(two.signatures[1].keyid, second.publicKey.id);
  const sig = decodeBase64Strict(two.signatures[1].sig)!;
  assert.equal(
    verifyEd25519(
      sig,
      pae(two.payloadType, encode("{}")),
      second.publicKey.bytes,
    ),
    "valid",
  );
});

Deno.test("addSignature() refuses a second signature by the same key", () => {
  const key = newKey();
  const one = signPayload(PAYLOAD_TYPES.bundle, encode("{}"), key);
  assert.throws(() => addSignature(one, key), SigningError);
  // Also when the existing signature carries another key ID.
  const relabelled = {
    ...one,
    signatures: [{ keyid: "", sig: one.signatures[0].sig }],
  };
  assert.throws(() => addSignature(relabelled, key), /already signed/);
});

Deno.test("addSignature() refuses a payload that is not canonical base64", () => {
  const one = signPayload(PAYLOAD_TYPES.bundle, encode("{}"), newKey());
  assert.throws(
    () => addSignature({ ...one, payload: "e30" }, newKey()),
    SigningError,
  );
});

Deno.test("serializeEnvelope() writes exactly the three DSSE fields", () => {
  const envelope = signPayload("t", encode("x"), newKey());
  const text = serializeEnvelope({ ...envelope, extra: 1 } as typeof envelope);
  assert.deepEqual(Object.keys(JSON.parse(text)), [
    "payloadType",
    "payload",
    "signatures",
  ]);
  assert.ok(text.endsWith("}\n"));
});
