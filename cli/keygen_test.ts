import assert from "node:assert/strict";
import { parsePrivateKeyPem, parsePublicKeyPem } from "../mod.ts";
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
