/**
 * The signing walkthrough through the real tasks and their permission
 * sets: `deno task keygen`, `sign` (twice, k of n) and `verify`.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { encodePublicKeyPem, parsePublicKeyPem } from "../mod.ts";
import { POLICY } from "../cli/_signing_testing.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

async function task(
  name: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("deno", {
    args: ["task", "-q", name, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) =>
    new TextDecoder().decode(bytes).split("\n")
      // Deno notes that permission sets are experimental; not ours.
      .filter((line) => !line.includes("experimental feature"))
      .join("\n").trim();
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("deno task keygen, sign and verify run the walkthrough under their permission sets", async () => {
  await Deno.mkdir(`${ROOT}.tmp`, { recursive: true });
  const abs = await Deno.makeTempDir({
    dir: `${ROOT}.tmp`,
    prefix: "signing-",
  });
  const dir = abs.slice(ROOT.length);
  try {
    await Deno.writeTextFile(`${abs}/policy.jsonc`, POLICY);
    const a = await task("keygen", ["--out", `${dir}/a`]);
    assert.equal(a.code, 0, a.stderr);
    const b = await task("keygen", ["--out", `${dir}/b`]);
    assert.equal(b.code, 0, b.stderr);

    const keys = await Promise.all(["a", "b"].map(async (name) => {
      const pub = parsePublicKeyPem(
        await Deno.readTextFile(`${abs}/${name}.pub`),
        name,
      );
      return {
        id: pub.id,
        publicKey: encodePublicKeyPem(pub),
        allow: ["bundle", "confirm", "rollback"],
      };
    }));
    assert.deepEqual(keys.map((k) => k.id), [a.stdout, b.stdout]);
    await Deno.writeTextFile(
      `${abs}/trust.jsonc`,
      JSON.stringify({
        keys,
        threshold: { bundle: 2, confirm: 1, rollback: 1 },
      }),
    );

    const signed = await task("sign", [
      "--key",
      `${dir}/a.key`,
      "--policy",
      `${dir}/policy.jsonc`,
      "--serial",
      "1",
      "--target",
      "web-1",
      "--out",
      `${dir}/one.json`,
    ]);
    assert.equal(signed.code, 0, signed.stderr);
    const both = await task("sign", [
      "--key",
      `${dir}/b.key`,
      "--bundle",
      `${dir}/one.json`,
      "--out",
      `${dir}/two.json`,
    ]);
    assert.equal(both.code, 0, both.stderr);

    const trust = ["--trust", `${dir}/trust.jsonc`, "--host", "web-1"];
    const ok = await task("verify", [...trust, `${dir}/two.json`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^Valid bundle "edge-baseline" serial 1: .*2 of 2/);
    assert.equal(ok.stdout.split("\n").length, 1);

    const few = await task("verify", [...trust, `${dir}/one.json`]);
    assert.equal(few.code, 1);
    assert.equal(few.stdout, "");
    assert.match(few.stderr, /^palisade verify: refused \(too-few-signers\)/);
    assert.equal(few.stderr.split("\n").length, 1);
  } finally {
    await Deno.remove(abs, { recursive: true });
  }
});
