import assert from "node:assert/strict";
import {
  generateKeyPair,
  parsePrivateKeyPem,
  parsePublicKeyPem,
  parseTrustStore,
} from "../mod.ts";
import { addTrustedKey } from "./_trust_file.ts";
import { run, withDir } from "./_signing_testing.ts";
import { keygen } from "./keygen.ts";

Deno.test("keygen() writes a 0600 PKCS#8 key and an SPKI key and prints the ID", () =>
  withDir(async (dir) => {
    const result = await run(keygen, ["--out", `${dir}/release`]);
    assert.equal(result.code, 0, result.stderr);

    const key = parsePrivateKeyPem(
      await Deno.readTextFile(`${dir}/release.key`),
      "key",
    );
    const pub = parsePublicKeyPem(
      await Deno.readTextFile(`${dir}/release.pub`),
      "pub",
    );
    assert.equal(key.publicKey.id, pub.id);
    assert.equal(result.stdout, pub.id);
    assert.match(pub.id, /^[0-9a-f]{64}$/);
    if (Deno.build.os !== "windows") {
      const { mode } = await Deno.stat(`${dir}/release.key`);
      assert.equal(mode! & 0o777, 0o600);
    }
  }));

Deno.test("keygen() refuses to overwrite an existing key", () =>
  withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/k.key`, "keep me");
    const result = await run(keygen, ["--out", `${dir}/k`]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /already exists/);
    assert.equal(await Deno.readTextFile(`${dir}/k.key`), "keep me");
  }));

Deno.test("keygen() refuses to overwrite an existing public key and writes nothing", () =>
  withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/k.pub`, "keep me");
    const result = await run(keygen, ["--out", `${dir}/k`]);
    assert.equal(result.code, 1);
    await assert.rejects(() => Deno.stat(`${dir}/k.key`), Deno.errors.NotFound);
  }));

Deno.test("keygen() refuses a missing --out and prints help on --help", async () => {
  const missing = await run(keygen, []);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /--out/);
  const help = await run(keygen, ["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: palisade keygen --out PREFIX/);
});

Deno.test("keygen() creates a missing folder for the key pair with mode 0700", () =>
  withDir(async (dir) => {
    const result = await run(keygen, ["--out", `${dir}/keys/deep/release`]);
    assert.equal(result.code, 0, result.stderr);
    await Deno.stat(`${dir}/keys/deep/release.key`);
    await Deno.stat(`${dir}/keys/deep/release.pub`);
    if (Deno.build.os !== "windows") {
      const { mode } = await Deno.stat(`${dir}/keys/deep`);
      assert.equal(mode! & 0o077, 0);
    }
  }));

Deno.test("keygen() --trust creates a loadable store, then appends keeping comments", () =>
  withDir(async (dir) => {
    const trust = `${dir}/trust.jsonc`;
    const first = await run(keygen, [
      "--out",
      `${dir}/release`,
      "--trust",
      trust,
      "--allow",
      "bundle,confirm,rollback",
    ]);
    assert.equal(first.code, 0, first.stderr);
    let store = parseTrustStore(await Deno.readTextFile(trust), trust);
    assert.deepEqual(store.threshold, { bundle: 1, confirm: 1, rollback: 1 });
    assert.equal(store.keys[0].id, first.stdout);

    await Deno.writeTextFile(
      trust,
      "// fleet trust\n" + await Deno.readTextFile(trust),
    );
    const second = await run(keygen, [
      "--out",
      `${dir}/second`,
      "--trust",
      trust,
      "--allow",
      "bundle",
    ]);
    assert.equal(second.code, 0, second.stderr);
    const text = await Deno.readTextFile(trust);
    assert.match(text, /^\/\/ fleet trust\n/);
    store = parseTrustStore(text, trust);
    assert.deepEqual(store.keys.map((k) => k.id), [
      first.stdout,
      second.stdout,
    ]);
    assert.deepEqual(store.keys[1].allow, ["bundle"]);
    const leftovers = [...Deno.readDirSync(dir)].filter((e) =>
      e.name.endsWith(".tmp")
    );
    assert.deepEqual(leftovers, []);
  }));

Deno.test("keygen() --trust refuses a store it cannot keep valid and writes no key", () =>
  withDir(async (dir) => {
    const partial = await run(keygen, [
      "--out",
      `${dir}/k`,
      "--trust",
      `${dir}/new.jsonc`,
      "--allow",
      "bundle",
    ]);
    assert.equal(partial.code, 1);
    assert.match(
      partial.stderr,
      /no key would be allowed to sign confirm, rollback/,
    );
    await assert.rejects(() => Deno.stat(`${dir}/k.key`), Deno.errors.NotFound);
    await assert.rejects(
      () => Deno.stat(`${dir}/new.jsonc`),
      Deno.errors.NotFound,
    );

    await Deno.writeTextFile(`${dir}/bad.jsonc`, '{ "keys": [] }');
    const bad = await run(keygen, [
      "--out",
      `${dir}/k`,
      "--trust",
      `${dir}/bad.jsonc`,
    ]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /Cannot load trust store: .*bad\.jsonc/);
    await assert.rejects(() => Deno.stat(`${dir}/k.key`), Deno.errors.NotFound);
    assert.equal(await Deno.readTextFile(`${dir}/bad.jsonc`), '{ "keys": [] }');

    const unknown = await run(keygen, [
      "--out",
      `${dir}/k`,
      "--trust",
      `${dir}/t.jsonc`,
      "--allow",
      "bundle,push",
    ]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown kind 'push'/);
  }));

Deno.test("addTrustedKey() refuses a key the store already lists", () => {
  const { publicKey } = generateKeyPair();
  const text = addTrustedKey(null, "t.jsonc", publicKey, [
    "bundle",
    "confirm",
    "rollback",
  ]);
  assert.throws(
    () => addTrustedKey(text, "t.jsonc", publicKey, ["bundle"]),
    new RegExp(`key ${publicKey.id} is already listed`),
  );
});
