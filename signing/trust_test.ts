import assert from "node:assert/strict";
import { newKey, SMALL_ORDER, trustText } from "./_testing.ts";
import { encodePublicKeyPem } from "./keys.ts";
import { loadTrustStore, parseTrustStore, TrustStoreError } from "./trust.ts";

const KEY = newKey();
const KEY2 = newKey();

function entry(key = KEY, allow: unknown = ["bundle", "confirm", "rollback"]) {
  return {
    id: key.publicKey.id,
    publicKey: encodePublicKeyPem(key.publicKey),
    allow,
  };
}

function store(keys: unknown[], threshold: unknown = {
  bundle: 1,
  confirm: 1,
  rollback: 1,
}, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ keys, threshold, ...extra }, null, 2);
}

function refuses(text: string, hint: RegExp, line?: number) {
  assert.throws(
    () => parseTrustStore(text, "trust.jsonc"),
    (error: unknown) => {
      assert.ok(error instanceof TrustStoreError, String(error));
      assert.match(error.message, /^Cannot load trust store: trust\.jsonc/);
      assert.match(error.message, hint);
      if (line !== undefined) assert.equal(error.line, line, error.message);
      return true;
    },
  );
}

Deno.test("parseTrustStore() reads JSONC with comments and trailing commas", () => {
  const text = `{
    // release keys
    "keys": [
      ${JSON.stringify(entry(KEY))},
      ${JSON.stringify(entry(KEY2, ["bundle"]))},
    ],
    /* two of two for bundles */
    "threshold": { "bundle": 2, "confirm": 1, "rollback": 1 },
  }`;
  const trust = parseTrustStore(text, "trust.jsonc");
  assert.equal(trust.keys.length, 2);
  assert.deepEqual(trust.keys[1].allow, ["bundle"]);
  assert.deepEqual(trust.threshold, { bundle: 2, confirm: 1, rollback: 1 });
  assert.deepEqual(trust.keys[0].publicKey.bytes, KEY.publicKey.bytes);
  assert.equal(trust.source, "trust.jsonc");
});

Deno.test("parseTrustStore() refuses a syntax error with its line", () => {
  refuses('{\n  "keys": [\n  }', /syntax error/, 3);
});

Deno.test("parseTrustStore() refuses an ID that is not the key's SHA-256", () => {
  const wrong = { ...entry(KEY), id: KEY2.publicKey.id };
  refuses(store([wrong]), /does not match its public key/, 4);
  refuses(store([{ ...entry(KEY), id: "ABC" }]), /64 lowercase hex/);
});

Deno.test("parseTrustStore() refuses unknown allow names", () => {
  refuses(store([entry(KEY, ["bundle", "reboot"])]), /unknown name "reboot"/);
  refuses(store([entry(KEY, [])]), /non-empty array/);
  refuses(store([entry(KEY, ["bundle", "bundle"])]), /listed twice/);
});

Deno.test("parseTrustStore() refuses thresholds below 1", () => {
  for (const bad of [0, -1, 1.5, "1"]) {
    refuses(
      store([entry(KEY)], { bundle: bad, confirm: 1, rollback: 1 }),
      /threshold\.bundle must be an integer of at least 1/,
    );
  }
});

Deno.test("parseTrustStore() refuses a threshold above the keys allowed", () => {
  refuses(
    store([entry(KEY), entry(KEY2, ["bundle"])], {
      bundle: 2,
      confirm: 2,
      rollback: 1,
    }),
    /threshold\.confirm is 2 but only 1 key\(s\) may sign confirm/,
  );
  refuses(
    store([entry(KEY, ["bundle"])]),
    /threshold\.confirm is 1 but only 0 key\(s\)/,
  );
});

Deno.test("parseTrustStore() refuses unknown and missing fields", () => {
  refuses(
    store([entry(KEY)], undefined, { extra: 1 }),
    /unknown field 'extra'/,
  );
  refuses(
    store([{ ...entry(KEY), note: "x" }]),
    /unknown field 'note' in keys\[0\]/,
  );
  refuses(
    store([entry(KEY)], { bundle: 1, confirm: 1 }),
    /missing field 'rollback' in threshold/,
  );
  refuses(
    store([entry(KEY)], { bundle: 1, confirm: 1, rollback: 1, apply: 1 }),
    /unknown field 'apply'/,
  );
  refuses(JSON.stringify({ keys: [entry(KEY)] }), /missing field 'threshold'/);
  refuses(store([]), /non-empty array/);
});

Deno.test("parseTrustStore() refuses duplicate fields", () => {
  refuses(
    `{"keys": [], "keys": [], "threshold": {}}`,
    /duplicate field 'keys'/,
  );
});

Deno.test("parseTrustStore() refuses a key listed twice", () => {
  refuses(
    store([entry(KEY, ["bundle"]), entry(KEY, ["confirm"])]),
    /listed twice/,
  );
});

Deno.test("parseTrustStore() refuses a small-order public key", () => {
  const der = Uint8Array.fromHex("302a300506032b6570032100" + SMALL_ORDER[4]);
  const pem =
    `-----BEGIN PUBLIC KEY-----\n${der.toBase64()}\n-----END PUBLIC KEY-----\n`;
  refuses(
    store([{ id: "0".repeat(64), publicKey: pem, allow: ["bundle"] }]),
    /small order/,
  );
});

Deno.test("parseTrustStore() refuses a public key that is not PEM", () => {
  refuses(store([{ ...entry(KEY), publicKey: "abc" }]), /no PEM block/);
});

Deno.test("loadTrustStore() reads a file and names it in errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "palisade-trust-" });
  try {
    const path = `${dir}/trust.jsonc`;
    await Deno.writeTextFile(path, trustText([{ key: KEY }]));
    assert.equal((await loadTrustStore(path)).keys[0].id, KEY.publicKey.id);
    await assert.rejects(
      () => loadTrustStore(`${dir}/missing.jsonc`),
      /Cannot load trust store: .*missing\.jsonc/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
