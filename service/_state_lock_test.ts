import assert from "node:assert/strict";
import {
  acquireStateLock,
  type StateLock,
  StateLockError,
} from "./_state_lock.ts";

const LOCK_MODULE = new URL("./_state_lock.ts", import.meta.url).href;

/** Tries the lock in a child that may read `dir` but not write it. */
async function lockWithoutWrite(dir: string): Promise<string> {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      script,
      `import { acquireStateLock } from ${JSON.stringify(LOCK_MODULE)};
try {
  const lock = await acquireStateLock(${
        JSON.stringify(dir)
      }, { listen: "child" }, 300);
  console.log(JSON.stringify({ held: lock.held, warning: lock.warning }));
  lock.close();
} catch (error) {
  console.log(JSON.stringify({ error: error.name, message: error.message }));
}
// As main.ts does: a refused flock() still queued must not hold the exit.
Deno.exit(0);
`,
    );
    const output = await new Deno.Command("deno", {
      args: ["run", "--no-prompt", `--allow-read=${dir}`, script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(
      output.code,
      0,
      new TextDecoder().decode(output.stderr),
    );
    return new TextDecoder().decode(output.stdout).trim();
  } finally {
    await Deno.remove(script);
  }
}

Deno.test({
  name: "acquireStateLock() refuses a second holder and names the first",
  // The refused flock() stays queued in a worker thread until the first
  // holder lets go; it is released with the file.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    let first: StateLock | null = null;
    try {
      first = await acquireStateLock(`${dir}/state`, {
        listen: "127.0.0.1:7443",
      });
      assert.equal(first.held, true);
      let error: unknown = null;
      try {
        await acquireStateLock(`${dir}/state`, { listen: "other" }, 200);
      } catch (caught) {
        error = caught;
      }
      assert.ok(error instanceof StateLockError, String(error));
      assert.match(
        error.message,
        new RegExp(`pid ${Deno.pid}, listening on 127\\.0\\.0\\.1:7443`),
      );
      assert.match(error.message, /state\/lock/);
      first.close();
      first.close();
      const again = await acquireStateLock(`${dir}/state`, { listen: "x" });
      assert.equal(again.held, true);
      again.close();
    } finally {
      first?.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("acquireStateLock() locks an existing lock file without write access", async () => {
  const dir = await Deno.makeTempDir();
  try {
    (await acquireStateLock(dir, { listen: "setup" })).close();
    const reply = JSON.parse(await lockWithoutWrite(dir));
    assert.deepEqual(reply, { held: true, warning: null });

    // Held by this process: the read-only child is refused.
    using _held = await acquireStateLock(dir, { listen: "parent" });
    const refused = JSON.parse(await lockWithoutWrite(dir));
    assert.equal(refused.error, "StateLockError", JSON.stringify(refused));
    assert.match(refused.message, /listening on parent/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acquireStateLock() goes on with a warning on a read-only folder without a lock file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const reply = JSON.parse(await lockWithoutWrite(dir));
    assert.equal(reply.held, false);
    assert.match(reply.warning, /read-only and has no lock file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
