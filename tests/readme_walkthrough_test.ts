/**
 * The README's "A walk through the commands" run verbatim, as `deno
 * task` commands in a scratch copy of the repository: keys and trust
 * store, check, diff, sign, a second signature and verify, then the
 * operator commands against a real `serve` on 127.0.0.1 with the WFP
 * simulator standing in for the host `web-1`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { makeWfpServiceKit, WfpServe } from "./_wfp_serve_kit.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** What a fresh clone holds that the walkthrough needs. */
const COPIED = [
  "README.md",
  "deno.json",
  "deno.lock",
  "main.ts",
  "mod.ts",
  "cli",
  "signing",
  "policy",
  "service",
  "ffi",
  "examples",
  "schema",
];

/** The walkthrough's commands in order, continuation lines joined. */
function walkthrough(): { local: string[]; host: string[] } {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const section = readme.split("## A walk through the commands")[1];
  assert.ok(section, "README has no walkthrough section");
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block, "the walkthrough has no sh block");
  const local: string[] = [];
  const host: string[] = [];
  let part = local;
  let pending = "";
  for (const raw of block.split("\n")) {
    if (raw.startsWith("# push it")) part = host;
    if (raw.startsWith("# on the host")) break;
    const line = raw.replace(/\s+#.*$/, "").replace(/^#.*$/, "");
    if (line.endsWith("\\")) {
      pending += line.slice(0, -1) + " ";
      continue;
    }
    const command = (pending + line).trim();
    pending = "";
    if (command !== "") part.push(command);
  }
  return { local, host };
}

async function copyTree(from: string, to: string): Promise<void> {
  const info = await Deno.stat(from);
  if (info.isFile) {
    await Deno.copyFile(from, to);
    return;
  }
  await Deno.mkdir(to);
  for await (const entry of Deno.readDir(from)) {
    await copyTree(`${from}/${entry.name}`, `${to}/${entry.name}`);
  }
}

async function task(cwd: string, command: string) {
  const words = command.split(/\s+/);
  assert.deepEqual(words.slice(0, 2), ["deno", "task"], command);
  const output = await new Deno.Command("deno", {
    args: words.slice(1),
    cwd,
    env: { NO_COLOR: "1" },
    stdin: "null",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return {
    code: output.code,
    stdout: text(output.stdout),
    stderr: text(output.stderr),
  };
}

Deno.test("README walkthrough runs verbatim from a fresh copy", async () => {
  const { local, host } = walkthrough();
  assert.ok(local.some((c) => c.startsWith("deno task keygen")));
  assert.ok(local.some((c) => c.startsWith("deno task verify")));
  assert.ok(host.some((c) => c.startsWith("deno task apply")));

  const scratch = await Deno.makeTempDir({ prefix: "palisade-readme-" });
  try {
    const clone = `${scratch}/palisade`;
    await Deno.mkdir(clone);
    for (const name of COPIED) {
      await copyTree(`${ROOT}${name}`, `${clone}/${name}`);
    }

    for (const command of local) {
      const result = await task(clone, command);
      assert.equal(
        result.code,
        0,
        `${command}\n${result.stdout}\n${result.stderr}`,
      );
      if (command.startsWith("deno task verify")) {
        assert.match(result.stdout, /^Valid bundle "edge-baseline" serial 7/);
      }
    }
    const second = JSON.parse(
      await Deno.readTextFile(`${clone}/edge.2.json`),
    );
    assert.equal(second.signatures.length, 2);
    const { mode } = await Deno.stat(`${clone}/keys`);
    assert.equal(mode! & 0o077, 0);

    // The host web-1: the real service, the WFP simulator as its engine,
    // trusting the walkthrough's trust store.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const kit = await makeWfpServiceKit({
      listen: `127.0.0.1:${port}`,
      commitWindow: { default: 5, max: 300 },
    });
    try {
      await Deno.copyFile(`${clone}/trust.jsonc`, kit.trustPath);
      await using serve = new WfpServe(kit);
      assert.ok(await serve.listening(), serve.stderr.join("\n"));
      for (const command of host) {
        const local = command
          .replaceAll("http://web-1:7443", `http://127.0.0.1:${port}`)
          .replaceAll("tcp://web-1:22", `tcp://127.0.0.1:${port}`);
        const result = await task(clone, local);
        assert.equal(
          result.code,
          0,
          `${local}\n${result.stdout}\n${result.stderr}`,
        );
        if (command.startsWith("deno task apply")) {
          assert.match(result.stdout, /confirmed: generation 1/);
        }
      }
    } finally {
      await Deno.remove(kit.dir, { recursive: true });
    }
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
});
