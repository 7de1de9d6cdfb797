/**
 * The crash hook arms only with the grant to read its variable, and
 * then kills the process at the named step and at no other.
 */
import assert from "node:assert/strict";
import { crashHookFromEnv, CRASHPOINT_ENV } from "./_crash_hook.ts";

const SCRIPT = new URL("./_crash_hook.ts", import.meta.url).href;

async function child(flags: string[], env: Record<string, string>) {
  const code = `import { crashHookFromEnv } from ${JSON.stringify(SCRIPT)};
const hook = crashHookFromEnv();
console.log(hook === undefined ? "none" : "armed");
hook?.("other.step");
console.log("survived other step");
hook?.("push.after-apply");
console.log("survived");`;
  // `deno eval` grants every permission; a file under `deno run` gets
  // only the flags given.
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(file, code);
  const output = await new Deno.Command("deno", {
    args: ["run", "--no-prompt", `--allow-read=${file}`, ...flags, file],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output().finally(() => Deno.remove(file));
  return {
    signal: output.signal,
    stdout: new TextDecoder().decode(output.stdout).trim().split("\n"),
  };
}

Deno.test("crashHookFromEnv() SIGKILLs the process at the named step only", async () => {
  const run = await child([`--allow-env=${CRASHPOINT_ENV}`], {
    [CRASHPOINT_ENV]: "push.after-apply",
  });
  assert.equal(run.signal, "SIGKILL");
  assert.deepEqual(run.stdout, ["armed", "survived other step"]);
});

Deno.test("crashHookFromEnv() arms nothing without the grant to read the variable", async () => {
  const run = await child([], {
    [CRASHPOINT_ENV]: "push.after-apply",
  });
  assert.equal(run.signal, null);
  assert.deepEqual(run.stdout, ["none", "survived other step", "survived"]);
});

Deno.test("crashHookFromEnv() arms nothing when the variable is unset", () => {
  const saved = Deno.env.get(CRASHPOINT_ENV);
  Deno.env.delete(CRASHPOINT_ENV);
  try {
    assert.equal(crashHookFromEnv(), undefined);
  } finally {
    if (saved !== undefined) Deno.env.set(CRASHPOINT_ENV, saved);
  }
});

Deno.test("the serve permission set grants no environment access", async () => {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("../deno.json", import.meta.url)),
  );
  assert.equal(config.permissions.serve.env, false);
});
