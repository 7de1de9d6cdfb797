import assert from "node:assert/strict";
import { encodeBase64 } from "./_base64.ts";
import {
  encodePrivateKeyPem,
  encodePublicKeyPem,
  generateKeyPair,
  KeyError,
  type KeyErrorReason,
  keyIdOf,
  parsePrivateKeyPem,
  parsePublicKeyPem,
  privateKeyFromSeed,
  publicKeyFromBytes,
} from "./keys.ts";
import { SMALL_ORDER, SMALL_ORDER_NON_CANONICAL } from "./_testing.ts";

// RFC 8032 section 7.1, test 1.
const RFC_SEED =
  "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const RFC_PUBLIC =
  "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

function refuses(reason: KeyErrorReason, fn: () => unknown, hint?: RegExp) {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof KeyError, String(error));
    assert.equal(error.reason, reason, error.message);
    if (hint !== undefined) assert.match(error.message, hint);
    return true;
  });
}

function spkiPem(der: Uint8Array): string {
  const body = encodeBase64(der).match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN PUBLIC KEY-----\n${body}\n-----END PUBLIC KEY-----\n`;
}

function spkiOf(raw: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.fromHex("302a300506032b6570032100" + raw);
}

Deno.test("privateKeyFromSeed() derives the RFC 8032 public key", () => {
  const key = privateKeyFromSeed(Uint8Array.fromHex(RFC_SEED));
  assert.equal(key.publicKey.bytes.toHex(), RFC_PUBLIC);
});

Deno.test("keyIdOf() is the SHA-256 of the SPKI DER", async () => {
  const raw = Uint8Array.fromHex(RFC_PUBLIC);
  const digest = await crypto.subtle.digest("SHA-256", spkiOf(RFC_PUBLIC));
  assert.equal(keyIdOf(raw), new Uint8Array(digest).toHex());
  assert.equal(publicKeyFromBytes(raw).id, keyIdOf(raw));
});

Deno.test("encodePrivateKeyPem() round-trips through parsePrivateKeyPem()", () => {
  const { privateKey } = generateKeyPair();
  const pem = encodePrivateKeyPem(privateKey);
  assert.match(pem, /^-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/=]{64}\n/);
  const back = parsePrivateKeyPem(pem, "k.key");
  assert.deepEqual(back.seed, privateKey.seed);
  assert.equal(back.publicKey.id, privateKey.publicKey.id);
});

Deno.test("encodePublicKeyPem() round-trips through parsePublicKeyPem()", () => {
  const { publicKey } = generateKeyPair();
  const back = parsePublicKeyPem(encodePublicKeyPem(publicKey), "k.pub");
  assert.deepEqual(back.bytes, publicKey.bytes);
  assert.equal(back.id, publicKey.id);
});

Deno.test("parsePrivateKeyPem() accepts CRLF line ends and surrounding space", () => {
  const { privateKey } = generateKeyPair();
  const pem = "\n" + encodePrivateKeyPem(privateKey).replaceAll("\n", "\r\n");
  assert.equal(
    parsePrivateKeyPem(pem, "k").publicKey.id,
    privateKey.publicKey.id,
  );
});

Deno.test("parsePrivateKeyPem() accepts PKCS#8 v2 with the matching public key", () => {
  const { privateKey } = generateKeyPair();
  const der = Uint8Array.fromHex(
    "3053020101300506032b657004220420" + privateKey.seed.toHex() +
      "812100" + privateKey.publicKey.bytes.toHex(),
  );
  der[1] = der.length - 2;
  const pem = `-----BEGIN PRIVATE KEY-----\n${
    encodeBase64(der)
  }\n-----END PRIVATE KEY-----\n`;
  assert.equal(
    parsePrivateKeyPem(pem, "k").publicKey.id,
    privateKey.publicKey.id,
  );

  const other = generateKeyPair().publicKey.bytes.toHex();
  const wrong = Uint8Array.fromHex(
    "3053020101300506032b657004220420" + privateKey.seed.toHex() + "812100" +
      other,
  );
  wrong[1] = wrong.length - 2;
  refuses(
    "mismatched-public-key",
    () =>
      parsePrivateKeyPem(
        `-----BEGIN PRIVATE KEY-----\n${
          encodeBase64(wrong)
        }\n-----END PRIVATE KEY-----\n`,
        "k",
      ),
  );
});

Deno.test("parsePublicKeyPem() refuses all 8 small-order points", () => {
  for (const raw of SMALL_ORDER) {
    refuses(
      "small-order-key",
      () => parsePublicKeyPem(spkiPem(spkiOf(raw)), "k.pub"),
      /small order/,
    );
  }
});

Deno.test("parsePublicKeyPem() refuses non-canonical encodings of small-order points", () => {
  for (const raw of SMALL_ORDER_NON_CANONICAL) {
    refuses(
      "small-order-key",
      () => parsePublicKeyPem(spkiPem(spkiOf(raw)), "k.pub"),
    );
  }
});

Deno.test("parsePublicKeyPem() refuses a non-canonical encoding of a valid point", () => {
  // y = 2^255 - 19 + 2 ≡ 2 (mod p): decodes leniently, not strictly.
  const raw = "ef" + "ff".repeat(30) + "7f";
  refuses(
    "non-canonical-key",
    () => parsePublicKeyPem(spkiPem(spkiOf(raw)), "k"),
  );
});

Deno.test("parsePublicKeyPem() refuses a point not on the curve", () => {
  refuses(
    "non-canonical-key",
    () => parsePublicKeyPem(spkiPem(spkiOf("02" + "00".repeat(31))), "k"),
  );
});

Deno.test("parsePublicKeyPem() refuses other algorithms by name", () => {
  // X25519 and Ed448 SPKI headers, and an RSA one.
  const x25519 = Uint8Array.fromHex(
    "302a300506032b656e032100" + RFC_PUBLIC,
  );
  refuses(
    "wrong-algorithm",
    () => parsePublicKeyPem(spkiPem(x25519), "k"),
    /X25519/,
  );
  const ed448 = Uint8Array.fromHex(
    "3043300506032b6571033a00" + "11".repeat(57),
  );
  refuses(
    "wrong-algorithm",
    () => parsePublicKeyPem(spkiPem(ed448), "k"),
    /Ed448/,
  );
  const rsa = Uint8Array.fromHex(
    "3020300d06092a864886f70d0101010500030f003003020101",
  );
  rsa[1] = rsa.length - 2;
  refuses("wrong-algorithm", () => parsePublicKeyPem(spkiPem(rsa), "k"), /RSA/);
});

Deno.test("parsePublicKeyPem() refuses wrong key lengths", () => {
  for (const length of [31, 33]) {
    const der = Uint8Array.fromHex(
      "30" + (length + 10).toString(16).padStart(2, "0") +
        "300506032b657003" + (length + 1).toString(16) + "00" +
        "11".repeat(length),
    );
    refuses(
      "bad-key-length",
      () => parsePublicKeyPem(spkiPem(der), "k"),
      new RegExp(`not ${length}`),
    );
  }
});

Deno.test("parsePrivateKeyPem() refuses a wrong seed length", () => {
  const der = Uint8Array.fromHex(
    "302d020100300506032b657004210420" + "11".repeat(31),
  );
  der[13] = 0x21;
  der[15] = 0x1f;
  refuses(
    "bad-key-length",
    () =>
      parsePrivateKeyPem(
        `-----BEGIN PRIVATE KEY-----\n${
          encodeBase64(der)
        }\n-----END PRIVATE KEY-----`,
        "k",
      ),
  );
});

Deno.test("parsePrivateKeyPem() refuses a public key, an encrypted key and junk", () => {
  const { privateKey, publicKey } = generateKeyPair();
  refuses(
    "bad-pem",
    () => parsePrivateKeyPem(encodePublicKeyPem(publicKey), "k"),
    /PUBLIC KEY/,
  );
  refuses(
    "bad-pem",
    () => parsePublicKeyPem(encodePrivateKeyPem(privateKey), "k"),
  );
  refuses(
    "encrypted-key",
    () =>
      parsePrivateKeyPem(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        "k",
      ),
  );
  refuses("bad-pem", () => parsePrivateKeyPem("hello", "k"), /no PEM block/);
  const pem = encodePrivateKeyPem(privateKey);
  refuses("bad-pem", () => parsePrivateKeyPem(pem + pem, "k"), /one PEM block/);
  refuses("bad-pem", () => parsePrivateKeyPem("junk\n" + pem, "k"));
  refuses("bad-pem", () => parsePrivateKeyPem(pem.replace("A", "-"), "k"));
});

Deno.test("parsePrivateKeyPem() refuses trailing DER data", () => {
  const { privateKey } = generateKeyPair();
  const der = Uint8Array.fromHex(
    "302e020100300506032b657004220420" + privateKey.seed.toHex() + "00",
  );
  refuses(
    "bad-der",
    () =>
      parsePrivateKeyPem(
        `-----BEGIN PRIVATE KEY-----\n${
          encodeBase64(der)
        }\n-----END PRIVATE KEY-----`,
        "k",
      ),
  );
});

Deno.test("publicKeyFromBytes() refuses wrong lengths and small order", () => {
  refuses("bad-key-length", () => publicKeyFromBytes(new Uint8Array(31)));
  for (const raw of [...SMALL_ORDER, ...SMALL_ORDER_NON_CANONICAL]) {
    refuses(
      "small-order-key",
      () => publicKeyFromBytes(Uint8Array.fromHex(raw)),
    );
  }
});
