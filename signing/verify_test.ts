import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeBase64Strict, encodeBase64 } from "./_base64.ts";
import {
  bundleText,
  HOST,
  newKey,
  NOW,
  statement,
  trustFor,
  withPayload,
} from "./_testing.ts";
import {
  addSignature,
  type Envelope,
  pae,
  PAYLOAD_TYPES,
  serializeEnvelope,
  signPayload,
} from "./dsse.ts";
import { signEd25519 } from "./ed25519.ts";
import { type VerifyReason } from "./errors.ts";
import { publicKeyFromBytes } from "./keys.ts";
import {
  makeConfirmStatement,
  makeRollbackStatement,
  signStatement,
} from "./statements.ts";
import type { TrustStore } from "./trust.ts";
import {
  verifyBundle,
  verifyConfirm,
  verifyEnvelope,
  VerifyError,
  verifyRollback,
} from "./verify.ts";

const KEY = newKey();
const KEY2 = newKey();
const STRANGER = newKey();
const TRUST = trustFor([{ key: KEY }, { key: KEY2 }]);
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

function refuses(reason: VerifyReason, fn: () => unknown, hint?: RegExp) {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof VerifyError, `not a VerifyError: ${error}`);
    assert.equal(error.reason, reason, error.message);
    if (hint !== undefined) assert.match(error.message, hint);
    return true;
  });
}

function bundle(text: string | Uint8Array, opts: Partial<{
  trust: TrustStore;
  now: Date;
  host: string;
  groups: string[];
  serialFloor: number;
  maxBytes: number;
  clockSkewSeconds: number;
}> = {}) {
  return verifyBundle(text, { trust: TRUST, now: NOW, ...opts });
}

function parsed(text: string): Envelope {
  return JSON.parse(text);
}

function text(envelope: Envelope): string {
  return serializeEnvelope(envelope);
}

Deno.test("verifyBundle() accepts a bundle signed by a trusted key", () => {
  const verified = bundle(bundleText([KEY]), { host: HOST, serialFloor: 4 });
  assert.equal(verified.statement.serial, 5);
  assert.equal(verified.statement.name, "edge-baseline");
  assert.deepEqual(verified.statement.policy, {
    name: "edge-baseline",
    rules: [],
  });
  assert.deepEqual(verified.signers, [KEY.publicKey.id]);
});

Deno.test("verifyBundle() returns the exact payload bytes that were signed", () => {
  const envelope = parsed(bundleText([KEY]));
  const verified = bundle(text(envelope));
  assert.deepEqual(verified.payload, decodeBase64Strict(envelope.payload));
});

Deno.test("verifyBundle() accepts bytes as well as text", () => {
  const bytes = new TextEncoder().encode(bundleText([KEY]));
  assert.equal(bundle(bytes).statement.serial, 5);
});

Deno.test("verifyBundle() accepts 2 of 2 distinct signers", () => {
  const trust = trustFor([{ key: KEY }, { key: KEY2 }], { bundle: 2 });
  const verified = bundle(bundleText([KEY, KEY2]), { trust });
  assert.deepEqual(
    verified.signers.toSorted(),
    [KEY.publicKey.id, KEY2.publicKey.id].toSorted(),
  );
});

Deno.test("verifyBundle() refuses input over the size bound before parsing", () => {
  refuses("oversize", () => bundle("x".repeat(1025), { maxBytes: 1024 }));
  refuses(
    "oversize",
    () => bundle(new Uint8Array(1025), { maxBytes: 1024 }),
  );
  // Multi-byte characters count as their UTF-8 bytes.
  refuses("oversize", () => bundle("é".repeat(600), { maxBytes: 1024 }));
});

Deno.test("verifyBundle() refuses input over the default 16 MiB bound", () => {
  refuses("oversize", () => bundle("{".repeat(16 * 1024 * 1024 + 1)));
});

Deno.test("verifyBundle() refuses malformed JSON with its place", () => {
  refuses("malformed-json", () => bundle('{"payloadType": '), /line 1/);
  refuses("malformed-json", () => bundle("not json"));
  refuses("malformed-json", () => bundle(Uint8Array.of(0x7b, 0xff, 0x7d)));
});

Deno.test("verifyBundle() refuses an envelope with a duplicate key", () => {
  const good = bundleText([KEY]);
  const doubled = good.replace(
    '"payloadType"',
    `"payloadType": "${PAYLOAD_TYPES.bundle}", "payloadType"`,
  );
  refuses("malformed-json", () => bundle(doubled), /duplicate key/);
});

Deno.test("verifyBundle() refuses a payload with a duplicate key anywhere", () => {
  const json = JSON.stringify(statement()).replace(
    '"rules":[]',
    '"rules":[],"rules":[{"id":"x"}]',
  );
  const envelope = signPayload(
    PAYLOAD_TYPES.bundle,
    new TextEncoder().encode(json),
    KEY,
  );
  refuses(
    "malformed-json",
    () => bundle(text(envelope)),
    /duplicate key "rules"/,
  );
});

Deno.test("verifyBundle() refuses a payload that is not UTF-8", () => {
  const envelope = signPayload(PAYLOAD_TYPES.bundle, Uint8Array.of(0xc3), KEY);
  refuses("malformed-json", () => bundle(text(envelope)), /UTF-8/);
});

Deno.test("verifyBundle() refuses an envelope with unknown or wrong fields", () => {
  const envelope = parsed(bundleText([KEY]));
  refuses("bad-envelope", () => bundle(JSON.stringify({ ...envelope, x: 1 })));
  refuses("bad-envelope", () => bundle("[]"));
  refuses(
    "bad-envelope",
    () => bundle(JSON.stringify({ ...envelope, payload: 1 })),
  );
  refuses(
    "bad-envelope",
    () => bundle(JSON.stringify({ ...envelope, signatures: [[]] })),
  );
});

Deno.test("verifyBundle() refuses an envelope with a missing field", () => {
  const { payloadType, payload, signatures } = parsed(bundleText([KEY]));
  refuses(
    "missing-field",
    () => bundle(JSON.stringify({ payloadType, payload })),
  );
  refuses(
    "missing-field",
    () => bundle(JSON.stringify({ payload, signatures })),
    /payloadType/,
  );
  refuses(
    "missing-field",
    () =>
      bundle(JSON.stringify({
        payloadType,
        payload,
        signatures: [{ keyid: signatures[0].keyid }],
      })),
    /'sig'/,
  );
});

Deno.test("verifyBundle() refuses an envelope without signatures", () => {
  const envelope = parsed(bundleText([KEY]));
  refuses(
    "too-few-signers",
    () => bundle(text({ ...envelope, signatures: [] })),
  );
});

Deno.test("verifyBundle() refuses base64 that is not canonical", () => {
  const envelope = parsed(bundleText([KEY]));
  const { payload } = envelope;
  const sig = envelope.signatures[0].sig;
  const cases = [
    payload.replace(/=+$/, ""),
    "-_8=", // URL-safe form of "+/8="
    payload.slice(0, 8) + "\n" + payload.slice(8),
    " " + payload,
    payload + "!",
  ];
  for (const bad of cases) {
    refuses("bad-base64", () => bundle(text({ ...envelope, payload: bad })));
  }
  refuses(
    "bad-base64",
    () =>
      bundle(
        text({
          ...envelope,
          signatures: [{ keyid: KEY.publicKey.id, sig: sig.slice(0, -2) }],
        }),
      ),
  );
});

Deno.test("verifyBundle() refuses base64 with non-zero padding bits", () => {
  // "YR==" and "YQ==" both decode to "a" in lenient decoders.
  const envelope = parsed(bundleText([KEY]));
  refuses("bad-base64", () => bundle(text({ ...envelope, payload: "YR==" })));
});

Deno.test("verifyBundle() refuses a confirm envelope (wrong payload type)", () => {
  const confirm = signStatement(
    "confirm",
    makeConfirmStatement({ host: HOST, generation: 1, nonce: "n", now: NOW }),
    [KEY],
  );
  refuses("wrong-payload-type", () => bundle(text(confirm)), /confirm/);
});

Deno.test("verifyBundle() refuses a bundle relabelled with another payload type", () => {
  // Changing the type changes the PAE, so even a re-labelled valid
  // signature is refused; the type check comes first.
  const envelope = parsed(bundleText([KEY]));
  const relabelled = { ...envelope, payloadType: PAYLOAD_TYPES.rollback };
  refuses("wrong-payload-type", () => bundle(text(relabelled)));
  refuses(
    "wrong-payload-type",
    () =>
      verifyRollback(text(envelope), { trust: TRUST, host: HOST, now: NOW }),
  );
  refuses(
    "bad-signature",
    () => verifyEnvelope(text(relabelled), { trust: TRUST, kind: "rollback" }),
  );
});

Deno.test("verifyBundle() refuses a signature by an untrusted key", () => {
  refuses(
    "unknown-key",
    () => bundle(bundleText([STRANGER])),
    /no key with this ID/,
  );
});

Deno.test("verifyBundle() refuses an empty key ID matching no trusted key", () => {
  const envelope = parsed(bundleText([STRANGER]));
  envelope.signatures[0].keyid = "";
  refuses("unknown-key", () => bundle(text(envelope)), /none of the trusted/);
});

Deno.test("verifyBundle() accepts an empty key ID by trying every key", () => {
  const envelope = parsed(bundleText([KEY2]));
  envelope.signatures[0].keyid = "";
  assert.deepEqual(bundle(text(envelope)).signers, [KEY2.publicKey.id]);
});

Deno.test("verifyBundle() refuses a key not allowed to sign bundles", () => {
  const trust = trustFor([{ key: KEY, allow: ["confirm"] }, {
    key: KEY2,
    allow: ["bundle", "rollback"],
  }]);
  refuses(
    "key-not-allowed",
    () => bundle(bundleText([KEY]), { trust }),
    /not allowed to sign bundle/,
  );
});

Deno.test("verifyBundle() refuses a signature that does not verify", () => {
  const envelope = parsed(bundleText([KEY]));
  const other = parsed(bundleText([KEY], { serial: 6 }));
  const swapped = { ...envelope, signatures: other.signatures };
  refuses("bad-signature", () => bundle(text(swapped)), /does not verify/);
});

Deno.test("verifyBundle() refuses a signature by another key under a trusted ID", () => {
  const envelope = parsed(bundleText([STRANGER]));
  envelope.signatures[0].keyid = KEY.publicKey.id;
  refuses("bad-signature", () => bundle(text(envelope)));
});

Deno.test("verifyBundle() refuses a bad signature even when others meet the threshold", () => {
  const envelope = parsed(bundleText([KEY]));
  const forged = parsed(bundleText([KEY2], { serial: 9 })).signatures[0];
  refuses(
    "bad-signature",
    () =>
      bundle(
        text({ ...envelope, signatures: [...envelope.signatures, forged] }),
      ),
  );
});

Deno.test("verifyBundle() refuses S >= L (malleated signature)", () => {
  const envelope = parsed(bundleText([KEY]));
  const sig = decodeBase64Strict(envelope.signatures[0].sig)!;
  let s = 0n;
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]);
  let t = s + L;
  const malleated = sig.slice();
  for (let i = 32; i < 64; i++) {
    malleated[i] = Number(t & 0xffn);
    t >>= 8n;
  }
  envelope.signatures[0].sig = encodeBase64(malleated);
  refuses(
    "non-canonical-signature",
    () => bundle(text(envelope)),
    /group order/,
  );
});

Deno.test("verifyBundle() refuses a signature of the wrong length", () => {
  const envelope = parsed(bundleText([KEY]));
  const sig = decodeBase64Strict(envelope.signatures[0].sig)!;
  for (const wrong of [sig.subarray(0, 63), Uint8Array.of(...sig, 0)]) {
    envelope.signatures[0].sig = encodeBase64(wrong);
    refuses("non-canonical-signature", () => bundle(text(envelope)), /64/);
  }
});

Deno.test("verifyBundle() refuses a non-canonical R", () => {
  const envelope = parsed(bundleText([KEY]));
  const sig = decodeBase64Strict(envelope.signatures[0].sig)!;
  // y = p (≡ 0) is a non-canonical encoding of a valid point.
  sig.set(Uint8Array.fromHex("ed" + "ff".repeat(30) + "7f"), 0);
  envelope.signatures[0].sig = encodeBase64(sig);
  refuses("non-canonical-signature", () => bundle(text(envelope)));
});

Deno.test("verifyBundle() refuses a small-order key even if the trust store holds one", () => {
  // parseTrustStore refuses such keys; this store is built by hand to
  // show the verifier does not rely on that.
  const identity = Uint8Array.fromHex("01" + "00".repeat(31));
  const trust: TrustStore = {
    source: "hand-made",
    keys: [{
      id: "a".repeat(64),
      publicKey: { bytes: identity, id: "a".repeat(64) },
      allow: ["bundle"],
    }],
    threshold: { bundle: 1, confirm: 1, rollback: 1 },
  };
  const payload = new TextEncoder().encode(JSON.stringify(statement()));
  // With A = identity and R = identity, S = 0 satisfies the equation
  // for every message.
  const sig = new Uint8Array(64);
  sig.set(identity, 0);
  const envelope: Envelope = {
    payloadType: PAYLOAD_TYPES.bundle,
    payload: encodeBase64(payload),
    signatures: [{ keyid: "a".repeat(64), sig: encodeBase64(sig) }],
  };
  refuses("small-order-key", () => bundle(text(envelope), { trust }));
  assert.throws(() => publicKeyFromBytes(identity));
});

Deno.test("verifyBundle() counts duplicate signatures by the same key once", () => {
  const trust = trustFor([{ key: KEY }, { key: KEY2 }], { bundle: 2 });
  const envelope = parsed(bundleText([KEY]));
  const doubled = {
    ...envelope,
    signatures: [envelope.signatures[0], envelope.signatures[0]],
  };
  refuses(
    "too-few-signers",
    () => bundle(text(doubled), { trust }),
    /1 distinct/,
  );

  // A second, different signature by the same key (empty key ID) too.
  const payload = decodeBase64Strict(envelope.payload)!;
  const again = signEd25519(pae(PAYLOAD_TYPES.bundle, payload), KEY.seed);
  const twice = {
    ...envelope,
    signatures: [envelope.signatures[0], {
      keyid: "",
      sig: encodeBase64(again),
    }],
  };
  refuses("too-few-signers", () => bundle(text(twice), { trust }));
});

Deno.test("verifyBundle() counts a key listed under two IDs once", () => {
  // A parsed trust store cannot list a key twice; a hand-made one shows
  // that counting is by public key, not by key ID.
  const entry = TRUST.keys[0];
  const trust: TrustStore = {
    source: "hand-made",
    keys: [entry, { ...entry, id: "b".repeat(64) }],
    threshold: { bundle: 2, confirm: 1, rollback: 1 },
  };
  const envelope = parsed(bundleText([KEY]));
  const sig = envelope.signatures[0].sig;
  const both = {
    ...envelope,
    signatures: [{ keyid: entry.id, sig }, { keyid: "b".repeat(64), sig }],
  };
  refuses("too-few-signers", () => bundle(text(both), { trust }));
});

Deno.test("verifyBundle() refuses too few valid signers with the reasons", () => {
  const trust = trustFor([{ key: KEY }, { key: KEY2 }], { bundle: 2 });
  refuses(
    "too-few-signers",
    () => bundle(bundleText([KEY, STRANGER]), { trust }),
    /1 distinct trusted signer.*2 required.*no key with this ID/,
  );
});

Deno.test("verifyBundle() ignores an unknown signer when the threshold is met", () => {
  const verified = bundle(bundleText([KEY, STRANGER]));
  assert.deepEqual(verified.signers, [KEY.publicKey.id]);
});

Deno.test("verifyBundle() refuses a statement with a missing field", () => {
  const { serial: _, ...rest } = statement();
  const envelope = signPayload(
    PAYLOAD_TYPES.bundle,
    new TextEncoder().encode(JSON.stringify(rest)),
    KEY,
  );
  refuses("missing-field", () => bundle(text(envelope)), /'serial'/);
});

Deno.test("verifyBundle() refuses a statement with bad fields", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ extra: true }, /unknown field 'extra'/],
    [{ serial: -1 }, /serial/],
    [{ serial: 1.5 }, /serial/],
    [{ serial: 2 ** 53 }, /serial/],
    [{ serial: "5" }, /serial/],
    [{ name: "" }, /name/],
    [{ issuedAt: "yesterday" }, /issuedAt/],
    [{ expiresAt: "2026-02-30T00:00:00Z" }, /expiresAt/],
    [{ expiresAt: "2026-06-01T11:00:00Z" }, /not after issuedAt/],
    [{ targets: "web-1" }, /targets/],
    [{ targets: ["web 1"] }, /target/],
    [{ targets: ["group:"] }, /target/],
    [{ commitWindowSeconds: 1 }, /commitWindowSeconds/],
    [{ policy: [] }, /policy/],
    [{ policy: null }, /policy/],
  ];
  for (const [change, hint] of cases) {
    const value = { ...statement(), ...change };
    const envelope = signPayload(
      PAYLOAD_TYPES.bundle,
      new TextEncoder().encode(JSON.stringify(value)),
      KEY,
    );
    refuses("bad-statement", () => bundle(text(envelope)), hint);
  }
  const array = signPayload(
    PAYLOAD_TYPES.bundle,
    new TextEncoder().encode("[1]"),
    KEY,
  );
  refuses("bad-statement", () => bundle(text(array)));
});

Deno.test("verifyBundle() refuses an expired bundle beyond the clock skew", () => {
  const expiresAt = new Date(NOW.getTime() - 301_000).toISOString();
  const issuedAt = new Date(NOW.getTime() - 86_400_000).toISOString();
  const text = bundleText([KEY], { issuedAt, expiresAt });
  refuses("expired", () => bundle(text), /expired at/);
  // Within the default 300 s skew it still passes.
  const late = new Date(NOW.getTime() - 299_000).toISOString();
  assert.ok(bundle(bundleText([KEY], { issuedAt, expiresAt: late })));
  refuses(
    "expired",
    () =>
      bundle(bundleText([KEY], { issuedAt, expiresAt: late }), {
        clockSkewSeconds: 0,
      }),
  );
});

Deno.test("verifyBundle() refuses a bundle not yet valid beyond the clock skew", () => {
  const issuedAt = new Date(NOW.getTime() + 301_000).toISOString();
  refuses(
    "not-yet-valid",
    () => bundle(bundleText([KEY], { issuedAt })),
    /future/,
  );
  const soon = new Date(NOW.getTime() + 299_000).toISOString();
  assert.ok(bundle(bundleText([KEY], { issuedAt: soon })));
});

Deno.test("verifyBundle() refuses a bundle whose targets name neither host nor group", () => {
  const text = bundleText([KEY], { targets: ["web-2", "group:db"] });
  refuses("wrong-host", () => bundle(text, { host: HOST }), /web-2/);
  refuses(
    "wrong-host",
    () => bundle(text, { host: HOST, groups: ["edge"] }),
  );
  assert.ok(bundle(text, { host: HOST, groups: ["edge", "db"] }));
  assert.ok(bundle(text, { host: "web-2" }));
  // A host is never a group of the same name.
  refuses("wrong-host", () => bundle(text, { host: "db" }));
});

Deno.test("verifyBundle() accepts an empty target list on every host", () => {
  assert.ok(bundle(bundleText([KEY], { targets: [] }), { host: "any-host" }));
});

Deno.test("verifyBundle() refuses a serial not above the floor", () => {
  const text = bundleText([KEY], { serial: 7 });
  refuses(
    "serial-too-low",
    () => bundle(text, { serialFloor: 7 }),
    /not above 7/,
  );
  refuses("serial-too-low", () => bundle(text, { serialFloor: 8 }));
  assert.equal(bundle(text, { serialFloor: 6 }).statement.serial, 7);
});

Deno.test("verifyBundle() checks signatures before it parses the payload", () => {
  // A forged envelope with a malformed payload is refused for its
  // signature, showing the payload was never parsed.
  const envelope = signPayload(
    PAYLOAD_TYPES.bundle,
    new TextEncoder().encode("{not json"),
    STRANGER,
  );
  refuses("unknown-key", () => bundle(text(envelope)));
});

Deno.test("verifyConfirm() accepts a heartbeat for this host", () => {
  const envelope = signStatement(
    "confirm",
    makeConfirmStatement({ host: HOST, generation: 3, nonce: "abc", now: NOW }),
    [KEY],
  );
  const verified = verifyConfirm(text(envelope), {
    trust: TRUST,
    host: HOST,
    now: NOW,
  });
  assert.equal(verified.statement.generation, 3);
  assert.equal(verified.statement.nonce, "abc");
  refuses(
    "wrong-host",
    () =>
      verifyConfirm(text(envelope), { trust: TRUST, host: "web-2", now: NOW }),
  );
  refuses(
    "expired",
    () =>
      verifyConfirm(text(envelope), {
        trust: TRUST,
        now: new Date(NOW.getTime() + 3_600_000),
        maxAgeSeconds: 60,
      }),
  );
  refuses(
    "not-yet-valid",
    () =>
      verifyConfirm(text(envelope), {
        trust: TRUST,
        now: new Date(NOW.getTime() - 3_600_000),
      }),
  );
});

Deno.test("verifyConfirm() refuses a bundle (wrong payload type)", () => {
  refuses(
    "wrong-payload-type",
    () => verifyConfirm(bundleText([KEY]), { trust: TRUST, now: NOW }),
  );
});

Deno.test("verifyConfirm() refuses a confirm with bad fields", () => {
  const value = { host: HOST, generation: -1, nonce: "n", issuedAt: NOW };
  const envelope = signPayload(
    PAYLOAD_TYPES.confirm,
    new TextEncoder().encode(JSON.stringify(value)),
    KEY,
  );
  refuses(
    "bad-statement",
    () => verifyConfirm(text(envelope), { trust: TRUST }),
  );
});

Deno.test("verifyRollback() accepts a rollback for this host until it expires", () => {
  const envelope = signStatement(
    "rollback",
    makeRollbackStatement({
      host: HOST,
      nonce: "n1",
      now: NOW,
      validSeconds: 60,
    }),
    [KEY],
  );
  const verified = verifyRollback(text(envelope), {
    trust: TRUST,
    host: HOST,
    now: NOW,
  });
  assert.equal(verified.statement.to, "last-known-good");
  refuses(
    "wrong-host",
    () => verifyRollback(text(envelope), { trust: TRUST, host: "x", now: NOW }),
  );
  refuses(
    "expired",
    () =>
      verifyRollback(text(envelope), {
        trust: TRUST,
        host: HOST,
        now: new Date(NOW.getTime() + 600_000),
      }),
  );
});

Deno.test("verifyRollback() refuses a validity longer than the maximum", () => {
  const envelope = signStatement(
    "rollback",
    makeRollbackStatement({
      host: HOST,
      nonce: "n-long",
      now: NOW,
      validSeconds: 86_400,
    }),
    [KEY],
  );
  refuses(
    "bad-statement",
    () =>
      verifyRollback(text(envelope), { trust: TRUST, host: HOST, now: NOW }),
    /at most 600/,
  );
  const verified = verifyRollback(text(envelope), {
    trust: TRUST,
    host: HOST,
    now: NOW,
    maxValiditySeconds: 86_400,
  });
  assert.equal(verified.statement.nonce, "n-long");
});

Deno.test("verifyRollback() refuses an unknown target state", () => {
  const value = {
    ...makeRollbackStatement({ host: HOST, nonce: "n", now: NOW }),
    to: "previous",
  };
  const envelope = signPayload(
    PAYLOAD_TYPES.rollback,
    new TextEncoder().encode(JSON.stringify(value)),
    KEY,
  );
  refuses(
    "bad-statement",
    () =>
      verifyRollback(text(envelope), { trust: TRUST, host: HOST, now: NOW }),
    /'to'/,
  );
});

Deno.test("verifyEnvelope() refuses a key allowed for bundles when a rollback is expected", () => {
  const trust = trustFor([{ key: KEY, allow: ["bundle", "confirm"] }, {
    key: KEY2,
  }]);
  const envelope = signStatement(
    "rollback",
    makeRollbackStatement({ host: HOST, nonce: "n", now: NOW }),
    [KEY],
  );
  refuses(
    "key-not-allowed",
    () => verifyEnvelope(text(envelope), { trust, kind: "rollback" }),
  );
});

Deno.test("addSignature() output verifies and needs both keys for 2 of 2", () => {
  const trust = trustFor([{ key: KEY }, { key: KEY2 }], { bundle: 2 });
  const one = parsed(bundleText([KEY]));
  refuses("too-few-signers", () => bundle(text(one), { trust }));
  const two = addSignature(one, KEY2);
  assert.equal(bundle(text(two), { trust }).signers.length, 2);
});

Deno.test("verifyBundle() refuses any single-byte change to the payload", () => {
  const envelope = parsed(bundleText([KEY]));
  const payload = decodeBase64Strict(envelope.payload)!;
  fc.assert(
    fc.property(
      fc.nat({ max: payload.length - 1 }),
      fc.integer({ min: 1, max: 255 }),
      (index, flip) => {
        const changed = payload.slice();
        changed[index] ^= flip;
        const tampered = withPayload(envelope, changed);
        assert.throws(() => bundle(text(tampered)), VerifyError);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("verifyBundle() refuses any single-byte change to the signature", () => {
  const envelope = parsed(bundleText([KEY]));
  const sig = decodeBase64Strict(envelope.signatures[0].sig)!;
  fc.assert(
    fc.property(
      fc.nat({ max: 63 }),
      fc.integer({ min: 1, max: 255 }),
      (index, flip) => {
        const changed = sig.slice();
        changed[index] ^= flip;
        const tampered = {
          ...envelope,
          signatures: [{ keyid: KEY.publicKey.id, sig: encodeBase64(changed) }],
        };
        assert.throws(() => bundle(text(tampered)), VerifyError);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("verifyBundle() refuses any single-byte change to the envelope text", () => {
  const original = bundleText([KEY]);
  const bytes = new TextEncoder().encode(original);
  fc.assert(
    fc.property(
      fc.nat({ max: bytes.length - 1 }),
      fc.integer({ min: 1, max: 255 }),
      (index, flip) => {
        const changed = bytes.slice();
        changed[index] ^= flip;
        // Whitespace changes between tokens are not changes of meaning.
        const before = String.fromCharCode(bytes[index]);
        const after = String.fromCharCode(changed[index]);
        fc.pre(!(/\s/.test(before) && /\s/.test(after)));
        assert.throws(() => bundle(changed), VerifyError);
      },
    ),
    { numRuns: 200 },
  );
});

Deno.test("verifyEnvelope() refuses when the trust store has no usable threshold", () => {
  for (const threshold of [0, Number.NaN, undefined]) {
    const trust = {
      ...TRUST,
      threshold: { ...TRUST.threshold, bundle: threshold as number },
    };
    refuses(
      "too-few-signers",
      () => verifyEnvelope(bundleText([KEY]), { trust, kind: "bundle" }),
      /no usable threshold/,
    );
  }
});
