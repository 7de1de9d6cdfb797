import assert from "node:assert/strict";
import { loadTrustStore, verifyBundle } from "../mod.ts";
import { keygen } from "./keygen.ts";
import { POLICY, run, withDir, writeTrust } from "./_signing_testing.ts";
import { sign } from "./sign.ts";

async function setup(dir: string) {
  await Deno.writeTextFile(`${dir}/p.jsonc`, POLICY);
  assert.equal((await run(keygen, ["--out", `${dir}/a`])).code, 0);
  assert.equal((await run(keygen, ["--out", `${dir}/b`])).code, 0);
}

function base(dir: string, serial = "7"): string[] {
  return [
    "--key",
    `${dir}/a.key`,
    "--policy",
    `${dir}/p.jsonc`,
    "--serial",
    serial,
  ];
}

Deno.test("sign() writes a bundle that verifies, with the policy as written", () =>
  withDir(async (dir) => {
    await setup(dir);
    const result = await run(sign, [
      ...base(dir),
      "--target",
      "web-1",
      "--target",
      "group:edge",
      "--expires",
      "2h",
      "--window",
      "30",
      "--out",
      `${dir}/b.json`,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /Signed bundle "edge-baseline" serial 7/);

    await writeTrust(`${dir}/trust.json`, [`${dir}/a.pub`]);
    const { statement } = verifyBundle(await Deno.readFile(`${dir}/b.json`), {
      trust: await loadTrustStore(`${dir}/trust.json`),
      host: "web-1",
    });
    assert.equal(statement.serial, 7);
    assert.deepEqual(statement.targets, ["web-1", "group:edge"]);
    assert.equal(statement.commitWindowSeconds, 30);
    const hours = (Date.parse(statement.expiresAt) -
      Date.parse(statement.issuedAt)) / 3_600_000;
    assert.equal(hours, 2);
    // The policy as written: comments gone, lists not normalised.
    assert.deepEqual(
      (statement.policy as { rules: { localPorts?: number[] }[] }).rules[1]
        .localPorts,
      [443],
    );
  }));

Deno.test("sign() uses 7 days, window 120 and every host by default", () =>
  withDir(async (dir) => {
    await setup(dir);
    assert.equal(
      (await run(sign, [...base(dir), "--out", `${dir}/b.json`])).code,
      0,
    );
    const envelope = JSON.parse(await Deno.readTextFile(`${dir}/b.json`));
    const statement = JSON.parse(
      new TextDecoder().decode(Uint8Array.fromBase64(envelope.payload)),
    );
    assert.equal(
      Date.parse(statement.expiresAt) - Date.parse(statement.issuedAt),
      7 * 86_400_000,
    );
    assert.equal(statement.commitWindowSeconds, 120);
    assert.deepEqual(statement.targets, []);
  }));

Deno.test("sign() refuses an invalid policy with its error and writes nothing", () =>
  withDir(async (dir) => {
    await setup(dir);
    await Deno.writeTextFile(
      `${dir}/p.jsonc`,
      '{"name": "x", "rules": [{"id": "all", "action": "block", "direction": "out", "protocol": "any"}]}',
    );
    const result = await run(sign, [...base(dir), "--out", `${dir}/b.json`]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /Cannot use policy: .*p\.jsonc/);
    await assert.rejects(
      () => Deno.stat(`${dir}/b.json`),
      Deno.errors.NotFound,
    );
  }));

Deno.test("sign() refuses to overwrite --out without --force", () =>
  withDir(async (dir) => {
    await setup(dir);
    await Deno.writeTextFile(`${dir}/b.json`, "old");
    const refused = await run(sign, [...base(dir), "--out", `${dir}/b.json`]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /already exists \(use --force/);
    assert.equal(await Deno.readTextFile(`${dir}/b.json`), "old");
    const forced = await run(sign, [
      ...base(dir),
      "--out",
      `${dir}/b.json`,
      "--force",
    ]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(await Deno.readTextFile(`${dir}/b.json`), "old");
  }));

Deno.test("sign() adds a second signature for 2 of 2", () =>
  withDir(async (dir) => {
    await setup(dir);
    assert.equal(
      (await run(sign, [...base(dir), "--out", `${dir}/1.json`])).code,
      0,
    );
    const added = await run(sign, [
      "--key",
      `${dir}/b.key`,
      "--bundle",
      `${dir}/1.json`,
      "--out",
      `${dir}/2.json`,
    ]);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /2 signature\(s\)/);

    await writeTrust(`${dir}/t.json`, [`${dir}/a.pub`, `${dir}/b.pub`], 2);
    const trust = await loadTrustStore(`${dir}/t.json`);
    assert.throws(
      () => verifyBundle(Deno.readFileSync(`${dir}/1.json`), { trust }),
      /1 distinct trusted signer/,
    );
    const { signers } = verifyBundle(Deno.readFileSync(`${dir}/2.json`), {
      trust,
    });
    assert.equal(signers.length, 2);

    const again = await run(sign, [
      "--key",
      `${dir}/a.key`,
      "--bundle",
      `${dir}/2.json`,
      "--out",
      `${dir}/3.json`,
    ]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already signed/);
  }));

Deno.test("sign() refuses to add a signature to a damaged bundle", () =>
  withDir(async (dir) => {
    await setup(dir);
    await Deno.writeTextFile(`${dir}/1.json`, '{"payloadType": "x"}');
    const result = await run(sign, [
      "--key",
      `${dir}/b.key`,
      "--bundle",
      `${dir}/1.json`,
      "--out",
      `${dir}/2.json`,
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /Cannot decode envelope: .*'payload'/);
  }));

Deno.test("sign() refuses bad flag values", () =>
  withDir(async (dir) => {
    await setup(dir);
    const cases: [string[], RegExp][] = [
      [[...base(dir, "-1"), "--out", "x"], /--serial/],
      [[...base(dir, "1.5"), "--out", "x"], /--serial/],
      [[...base(dir), "--window", "1", "--out", "x"], /--window/],
      [[...base(dir), "--expires", "soon", "--out", "x"], /--expires/],
      [
        [...base(dir), "--expires", "2000-01-01T00:00:00Z", "--out", "x"],
        /not in the future/,
      ],
      [[...base(dir), "--target", "a b", "--out", "x"], /target/],
      [["--key", "k", "--out", "x"], /exactly one of --policy/],
      [
        ["--key", "k", "--bundle", "b", "--serial", "2", "--out", "x"],
        /--serial cannot be used with --bundle/,
      ],
      [[...base(dir)], /--out/],
      [[...base(dir), "--bogus", "--out", "x"], /bogus/],
    ];
    for (const [args, hint] of cases) {
      const result = await run(sign, args);
      assert.equal(result.code, 1, args.join(" "));
      assert.match(result.stderr, hint);
    }
  }));

Deno.test("sign() --help names every flag and --force", async () => {
  const help = await run(sign, ["--help"]);
  assert.equal(help.code, 0);
  for (
    const flag of [
      "--key",
      "--policy",
      "--serial",
      "--target",
      "--expires",
      "--window",
      "--name",
      "--bundle",
      "--out",
      "--force",
    ]
  ) {
    assert.ok(help.stdout.includes(flag), flag);
  }
});

Deno.test("sign() refuses serial 0 and serials JSON would round", () =>
  withDir(async (dir) => {
    await setup(dir);
    const zero = await run(sign, [...base(dir, "0"), "--out", `${dir}/z`]);
    assert.equal(zero.code, 1);
    assert.match(zero.stderr, /--serial must be at least 1, not "0"/);
    const big = await run(sign, [
      ...base(dir, "9007199254740993"),
      "--out",
      `${dir}/big`,
    ]);
    assert.equal(big.code, 1);
    assert.match(
      big.stderr,
      /--serial 9007199254740993 is above 9007199254740991/,
    );
    await assert.rejects(() => Deno.stat(`${dir}/z`), Deno.errors.NotFound);
    await assert.rejects(() => Deno.stat(`${dir}/big`), Deno.errors.NotFound);
  }));

Deno.test("sign() notes on stderr that no --target means every host", () =>
  withDir(async (dir) => {
    await setup(dir);
    const all = await run(sign, [...base(dir), "--out", `${dir}/all.json`]);
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stderr, /no --target: valid for every host/);
    const one = await run(sign, [
      ...base(dir),
      "--target",
      "web-1",
      "--out",
      `${dir}/one.json`,
    ]);
    assert.equal(one.code, 0, one.stderr);
    assert.doesNotMatch(one.stderr, /no --target/);
  }));

Deno.test("sign() names a missing file argument and its role", () =>
  withDir(async (dir) => {
    await setup(dir);
    const policy = await run(sign, [
      "--key",
      `${dir}/a.key`,
      "--policy",
      `${dir}/nope.jsonc`,
      "--serial",
      "1",
      "--out",
      `${dir}/o.json`,
    ]);
    assert.equal(policy.code, 1);
    assert.match(
      policy.stderr,
      new RegExp(`Cannot read policy ${dir}/nope\\.jsonc: no such file$`),
    );
    const key = await run(
      sign,
      [...base(dir), "--out", `${dir}/o.json`]
        .map((a) => a === `${dir}/a.key` ? `${dir}/none.key` : a),
    );
    assert.match(
      key.stderr,
      new RegExp(`Cannot read private key ${dir}/none\\.key: no such file$`),
    );
    const bundle = await run(sign, [
      "--key",
      `${dir}/a.key`,
      "--bundle",
      `${dir}/none.json`,
      "--out",
      `${dir}/o.json`,
    ]);
    assert.match(
      bundle.stderr,
      new RegExp(`Cannot read bundle ${dir}/none\\.json: no such file$`),
    );
  }));
