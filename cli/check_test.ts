import assert from "node:assert/strict";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;

/** Runs `palisade <args>` as its own process, bounded to 60 s. */
async function palisade(
  args: string[],
  permissions = ["--allow-read"],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("deno", {
    args: ["run", "--quiet", ...permissions, MAIN, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return {
    code: out.code,
    stdout: decode(out.stdout),
    stderr: decode(out.stderr),
  };
}

async function withPolicy(
  text: string,
  run: (file: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "palisade-check-" });
  try {
    const file = `${dir}/policy.jsonc`;
    await Deno.writeTextFile(file, text);
    await run(file);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("check prints a summary and exits 0 for a valid policy", async () => {
  const { code, stdout, stderr } = await palisade(
    ["check", "examples/edge-baseline.jsonc"],
    ["-P=check"],
  );
  assert.equal(code, 0, stderr);
  assert.match(
    stdout,
    /^edge-baseline: valid \(examples\/edge-baseline\.jsonc\)/,
  );
  assert.match(stdout, /rules +2: 1 block, 1 permit; 1 in, 1 out/);
  assert.match(
    stdout,
    /addresses +2 prefixes after merging \(1 IPv4, 1 IPv6\)/,
  );
  assert.match(stdout, /ports +3 range\(s\) in 2 rule\(s\)/);
  assert.match(stdout, /digest +sha256:[0-9a-f]{64}/);
  assert.match(stdout, /warnings +0/);
});

Deno.test("check prints warnings and still exits 0", async () => {
  await withPolicy(
    `{ "name": "w", "rules": [ { "id": "a", "action": "block",
       "direction": "out", "protocol": "any", "remote": ["10.1.2.3/8"] } ] }`,
    async (file) => {
      const { code, stdout } = await palisade(["check", file]);
      assert.equal(code, 0);
      assert.match(stdout, /warnings +1/);
      assert.match(
        stdout,
        /warning: .*policy\.jsonc:2:\d+ rule "a" at rules\[0\]\.remote\[0\]: 10\.1\.2\.3\/8 has host bits set; using 10\.0\.0\.0\/8/,
      );
    },
  );
});

Deno.test("check exits 1 with file:line:col, rule and fix for an invalid policy", async () => {
  await withPolicy(
    `{
  "name": "bad",
  "rules": [
    { "id": "smb", "action": "block", "direction": "out",
      "protocol": "tcp", "remotePorts": [445, 70000] }
  ]
}`,
    async (file) => {
      const { code, stdout, stderr } = await palisade(["check", file]);
      assert.equal(code, 1);
      assert.equal(stdout, "");
      assert.match(
        stderr,
        /^palisade check: Cannot use policy: .*policy\.jsonc:5:47 rule "smb" at rules\[0\]\.remotePorts\[1\]: port 70000 is outside 1-65535; write a port from 1 to 65535\n$/,
      );
    },
  );
});

Deno.test("check refuses a catch-all block rule with exit 1", async () => {
  await withPolicy(
    `{ "name": "open", "rules": [ { "id": "all", "action": "block",
       "direction": "in", "protocol": "any",
       "remote": ["0.0.0.0/1", "128.0.0.0/1"] } ] }`,
    async (file) => {
      const { code, stderr } = await palisade(["check", file]);
      assert.equal(code, 1);
      assert.match(stderr, /catch-all block rule is refused/);
      assert.match(stderr, /fails open by design/);
    },
  );
});

Deno.test("check --max-rules bounds the rule count", async () => {
  const rules = Array.from(
    { length: 3 },
    (_, i) =>
      `{"id": "r${i}", "action": "permit", "direction": "in", "protocol": "tcp"}`,
  );
  await withPolicy(
    `{"name": "n", "rules": [${rules.join(",")}]}`,
    async (file) => {
      const over = await palisade(["check", file, "--max-rules", "2"]);
      assert.equal(over.code, 1);
      assert.match(over.stderr, /3 rules, more than the bound of 2/);
      const ok = await palisade(["check", file, "--max-rules", "3"]);
      assert.equal(ok.code, 0, ok.stderr);
    },
  );
});

Deno.test("check exits 1 on usage errors and unreadable files", async () => {
  const none = await palisade(["check"]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /Expected POLICY/);
  const flag = await palisade(["check", "x.jsonc", "--max-rules", "ten"]);
  assert.equal(flag.code, 1);
  assert.match(flag.stderr, /--max-rules must be a whole number/);
  const unknown = await palisade(["check", "x.jsonc", "--strict"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /strict/);
  const missing = await palisade(["check", "does-not-exist.jsonc"]);
  assert.equal(missing.code, 1);
  assert.match(
    missing.stderr,
    /Cannot read policy does-not-exist\.jsonc: no such file\n?$/,
  );
  const help = await palisade(["check", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: palisade check POLICY/);
});
