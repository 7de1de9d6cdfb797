import assert from "node:assert/strict";
import {
  makeBundleStatement,
  parsePrivateKeyPem,
  serializeEnvelope,
  signStatement,
} from "../mod.ts";
import { keygen } from "./keygen.ts";
import { POLICY, run, withDir, writeTrust } from "./_signing_testing.ts";
import { sign } from "./sign.ts";
import { verify } from "./verify.ts";

async function setup(dir: string, extra: string[] = []) {
  await Deno.writeTextFile(`${dir}/p.jsonc`, POLICY);
  assert.equal((await run(keygen, ["--out", `${dir}/a`])).code, 0);
  assert.equal((await run(keygen, ["--out", `${dir}/x`])).code, 0);
  const signed = await run(sign, [
    "--key",
    `${dir}/a.key`,
    "--policy",
    `${dir}/p.jsonc`,
    "--serial",
    "4",
    "--target",
    "web-1",
    "--target",
    "group:edge",
    ...extra,
    "--out",
    `${dir}/b.json`,
  ]);
  assert.equal(signed.code, 0, signed.stderr);
  await writeTrust(`${dir}/trust.jsonc`, [`${dir}/a.pub`]);
}

Deno.test("verify() prints one summary line for a valid bundle", () =>
  withDir(async (dir) => {
    await setup(dir);
    const result = await run(verify, [
      "--trust",
      `${dir}/trust.jsonc`,
      "--host",
      "web-1",
      `${dir}/b.json`,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.split("\n").length, 1);
    assert.match(
      result.stdout,
      /^Valid bundle "edge-baseline" serial 4: 2 rule\(s\), signed by 1 of 1 required/,
    );
  }));

Deno.test("verify() matches a host by its groups", () =>
  withDir(async (dir) => {
    await setup(dir);
    const trust = ["--trust", `${dir}/trust.jsonc`];
    const ok = await run(verify, [
      ...trust,
      "--host",
      "web-9",
      "--groups",
      "db, edge",
      `${dir}/b.json`,
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const refused = await run(verify, [
      ...trust,
      "--host",
      "web-9",
      "--groups",
      "db",
      `${dir}/b.json`,
    ]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^palisade verify: refused \(wrong-host\): /);
  }));

Deno.test("verify() refuses with one line naming the reason code", () =>
  withDir(async (dir) => {
    await setup(dir);
    const trust = ["--trust", `${dir}/trust.jsonc`];
    const floor = await run(verify, [
      ...trust,
      "--serial-floor",
      "4",
      `${dir}/b.json`,
    ]);
    assert.equal(floor.code, 1);
    assert.equal(floor.stdout, "");
    assert.equal(floor.stderr.split("\n").length, 1);
    assert.match(floor.stderr, /refused \(serial-too-low\).*not above 4/);

    await writeTrust(`${dir}/other.jsonc`, [`${dir}/x.pub`]);
    const stranger = await run(verify, [
      "--trust",
      `${dir}/other.jsonc`,
      `${dir}/b.json`,
    ]);
    assert.equal(stranger.code, 1);
    assert.match(stranger.stderr, /refused \(unknown-key\)/);

    await Deno.writeTextFile(`${dir}/junk.json`, "{]");
    const junk = await run(verify, [...trust, `${dir}/junk.json`]);
    assert.match(junk.stderr, /refused \(malformed-json\).*line 1, column 2/);
  }));

Deno.test("verify() refuses a tampered bundle", () =>
  withDir(async (dir) => {
    await setup(dir);
    const envelope = JSON.parse(await Deno.readTextFile(`${dir}/b.json`));
    const statement = JSON.parse(atob(envelope.payload));
    statement.serial = 99;
    envelope.payload = btoa(JSON.stringify(statement));
    await Deno.writeTextFile(`${dir}/b.json`, JSON.stringify(envelope));
    const result = await run(verify, [
      "--trust",
      `${dir}/trust.jsonc`,
      `${dir}/b.json`,
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /refused \(bad-signature\)/);
  }));

Deno.test("verify() refuses a bad trust store with its place", () =>
  withDir(async (dir) => {
    await setup(dir);
    await Deno.writeTextFile(
      `${dir}/trust.jsonc`,
      '{\n  "keys": 1, "threshold": {} }',
    );
    const result = await run(verify, [
      "--trust",
      `${dir}/trust.jsonc`,
      `${dir}/b.json`,
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /trust\.jsonc:2:/);
  }));

Deno.test("verify() refuses usage errors and prints help", async () => {
  assert.equal((await run(verify, ["b.json"])).code, 1);
  assert.equal((await run(verify, ["--trust", "t"])).code, 1);
  const floor = await run(verify, ["--trust", "t", "--serial-floor", "x", "b"]);
  assert.match(floor.stderr, /--serial-floor/);
  const help = await run(verify, ["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: palisade verify --trust/);
});

Deno.test("verify() refuses a validly signed bundle whose policy is invalid", () =>
  withDir(async (dir) => {
    await setup(dir);
    const key = parsePrivateKeyPem(
      await Deno.readTextFile(`${dir}/a.key`),
      "a.key",
    );
    // Signed through the library, which knows nothing of policies.
    const statement = makeBundleStatement({
      policy: { name: "bad", rules: [{ id: "BAD ID" }] },
      serial: 1,
    });
    await Deno.writeTextFile(
      `${dir}/bad.json`,
      serializeEnvelope(signStatement("bundle", statement, [key])),
    );
    const result = await run(verify, [
      "--trust",
      `${dir}/trust.jsonc`,
      `${dir}/bad.json`,
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /refused \(bad-policy\): Cannot use policy/);
  }));

Deno.test("verify() names a missing bundle or trust store without a raw stat", () =>
  withDir(async (dir) => {
    await setup(dir);
    const bundle = await run(verify, [
      "--trust",
      `${dir}/trust.jsonc`,
      `${dir}/missing.json`,
    ]);
    assert.equal(bundle.code, 1);
    assert.match(
      bundle.stderr,
      new RegExp(`Cannot read bundle ${dir}/missing\\.json: no such file$`),
    );
    assert.doesNotMatch(bundle.stderr, /stat '/);
    const trust = await run(verify, [
      "--trust",
      `${dir}/none.jsonc`,
      `${dir}/b.json`,
    ]);
    assert.equal(trust.code, 1);
    assert.match(
      trust.stderr,
      new RegExp(`Cannot read trust store ${dir}/none\\.jsonc: no such file$`),
    );
    const folder = await run(verify, ["--trust", `${dir}/trust.jsonc`, dir]);
    assert.match(folder.stderr, /Cannot read bundle .*: is a folder$/);
  }));
