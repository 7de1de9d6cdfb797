/**
 * Interoperability with OpenSSL in both directions: keys made by
 * `openssl genpkey` sign bundles Palisade accepts, and signatures over
 * the DSSE PAE made by either side verify on the other.
 */
import assert from "node:assert/strict";
import {
  encodePrivateKeyPem,
  encodePublicKeyPem,
  type Envelope,
  generateKeyPair,
  keyIdOf,
  makeBundleStatement,
  pae,
  parsePrivateKeyPem,
  parsePublicKeyPem,
  parseTrustStore,
  PAYLOAD_TYPES,
  serializeEnvelope,
  signPayload,
  verifyBundle,
  verifyEd25519,
} from "../signing/mod.ts";

async function openssl(
  args: string[],
): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
  const out = await new Deno.Command("openssl", {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: out.code,
    stdout: out.stdout,
    stderr: new TextDecoder().decode(out.stderr),
  };
}

async function hasOpenssl(): Promise<boolean> {
  try {
    return (await openssl(["version"])).code === 0;
  } catch {
    return false;
  }
}

const available = await hasOpenssl();
if (!available && Deno.env.get("CI")) {
  throw new Error(
    "Cannot run OpenSSL interop tests: openssl is not installed (required when CI is set)",
  );
}
if (!available) {
  console.warn("Skipping OpenSSL interop tests: openssl is not installed");
}

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "palisade-openssl-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function must(args: string[]): Promise<Uint8Array> {
  const result = await openssl(args);
  assert.equal(result.code, 0, `openssl ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

const PAYLOAD = new TextEncoder().encode(
  JSON.stringify(makeBundleStatement({
    policy: { name: "interop", rules: [] },
    serial: 1,
  })),
);

Deno.test({
  name: "parsePrivateKeyPem() reads a key made by openssl genpkey",
  ignore: !available,
  fn: () =>
    withDir(async (dir) => {
      await must(["genpkey", "-algorithm", "ed25519", "-out", `${dir}/k.pem`]);
      await must([
        "pkey",
        "-in",
        `${dir}/k.pem`,
        "-pubout",
        "-out",
        `${dir}/k.pub`,
      ]);
      const der = await must([
        "pkey",
        "-in",
        `${dir}/k.pem`,
        "-pubout",
        "-outform",
        "DER",
      ]);

      const key = parsePrivateKeyPem(
        await Deno.readTextFile(`${dir}/k.pem`),
        "k.pem",
      );
      const pub = parsePublicKeyPem(
        await Deno.readTextFile(`${dir}/k.pub`),
        "k.pub",
      );
      assert.equal(key.publicKey.id, pub.id);
      const digest = new Uint8Array(
        await crypto.subtle.digest("SHA-256", der.slice()),
      );
      assert.equal(pub.id, digest.toHex());
      assert.equal(keyIdOf(der.subarray(12)), pub.id);
      // Palisade writes the same PEM OpenSSL does.
      assert.equal(
        encodePrivateKeyPem(key),
        await Deno.readTextFile(`${dir}/k.pem`),
      );
      assert.equal(
        encodePublicKeyPem(pub),
        await Deno.readTextFile(`${dir}/k.pub`),
      );
    }),
});

Deno.test({
  name:
    "signPayload() signatures over the PAE verify with openssl pkeyutl -rawin",
  ignore: !available,
  fn: () =>
    withDir(async (dir) => {
      await must(["genpkey", "-algorithm", "ed25519", "-out", `${dir}/k.pem`]);
      await must([
        "pkey",
        "-in",
        `${dir}/k.pem`,
        "-pubout",
        "-out",
        `${dir}/k.pub`,
      ]);
      const key = parsePrivateKeyPem(
        await Deno.readTextFile(`${dir}/k.pem`),
        "k.pem",
      );

      const envelope = signPayload(PAYLOAD_TYPES.bundle, PAYLOAD, key);
      await Deno.writeFile(
        `${dir}/pae.bin`,
        pae(envelope.payloadType, PAYLOAD),
      );
      await Deno.writeFile(
        `${dir}/sig.bin`,
        Uint8Array.fromBase64(envelope.signatures[0].sig),
      );
      const verify = [
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        `${dir}/k.pub`,
        "-rawin",
        "-in",
        `${dir}/pae.bin`,
        "-sigfile",
        `${dir}/sig.bin`,
      ];
      const ok = await openssl(verify);
      assert.equal(ok.code, 0, ok.stderr);

      // The signature covers the PAE, not the bare payload.
      await Deno.writeFile(`${dir}/pae.bin`, PAYLOAD);
      assert.notEqual((await openssl(verify)).code, 0);
    }),
});

Deno.test({
  name:
    "verifyBundle() accepts a bundle signed by openssl pkeyutl with a keygen key",
  ignore: !available,
  fn: () =>
    withDir(async (dir) => {
      const { privateKey, publicKey } = generateKeyPair();
      await Deno.writeTextFile(`${dir}/k.key`, encodePrivateKeyPem(privateKey));
      const pub = new TextDecoder().decode(
        await must(["pkey", "-in", `${dir}/k.key`, "-pubout"]),
      );
      assert.equal(pub, encodePublicKeyPem(publicKey));

      await Deno.writeFile(
        `${dir}/pae.bin`,
        pae(PAYLOAD_TYPES.bundle, PAYLOAD),
      );
      await must([
        "pkeyutl",
        "-sign",
        "-inkey",
        `${dir}/k.key`,
        "-rawin",
        "-in",
        `${dir}/pae.bin`,
        "-out",
        `${dir}/sig.bin`,
      ]);
      const sig = await Deno.readFile(`${dir}/sig.bin`);
      assert.equal(
        verifyEd25519(sig, pae(PAYLOAD_TYPES.bundle, PAYLOAD), publicKey.bytes),
        "valid",
      );

      const envelope: Envelope = {
        payloadType: PAYLOAD_TYPES.bundle,
        payload: PAYLOAD.toBase64(),
        signatures: [{ keyid: publicKey.id, sig: sig.toBase64() }],
      };
      const trust = parseTrustStore(
        JSON.stringify({
          keys: [{
            id: publicKey.id,
            publicKey: pub,
            allow: ["bundle", "confirm", "rollback"],
          }],
          threshold: { bundle: 1, confirm: 1, rollback: 1 },
        }),
        "trust.jsonc",
      );
      const verified = verifyBundle(serializeEnvelope(envelope), { trust });
      assert.equal(verified.statement.name, "interop");
    }),
});
