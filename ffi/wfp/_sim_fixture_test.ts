import assert from "node:assert/strict";

Deno.test("simTest() skips without the simulator under flags that grant no env", async () => {
  // The Windows test command grants no --allow-env: registering a
  // simulator test where the library is missing must not read `CI`.
  const dir = await Deno.makeTempDir({ prefix: "palisade-fixture-" });
  try {
    const fixture = new URL("./_sim_fixture.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${dir}/probe_test.ts`,
      `import { simTest } from ${JSON.stringify(fixture)};\n` +
        `simTest("probe", () => {});\n`,
    );
    const { code, stdout, stderr } = await new Deno.Command("deno", {
      args: ["test", "--no-check", "--allow-read", "probe_test.ts"],
      cwd: dir,
      env: { CI: "" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(stdout) +
      new TextDecoder().decode(stderr);
    assert.equal(code, 0, out);
    assert.doesNotMatch(out, /NotCapable/);
    assert.match(out, /skipping WFP simulator tests/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
