/**
 * Resource pressure on the state directory: a tiny tmpfs filled to the
 * last byte, then remounted read-only. The service starts on it,
 * enforces the last known good, refuses pushes with a clear "disk full"
 * or "read-only" error, and takes pushes again once the disk recovers.
 * Needs root for `mount`: skipped locally without it, failing with CI.
 */
import assert from "node:assert/strict";
import { SIM_LIBRARY, simTest } from "../../ffi/wfp/_sim_fixture.ts";
import type { WfpSimulatorHooks } from "../../ffi/wfp/simulator.ts";
import { openWfpBackend } from "../../policy/wfp_backend.ts";
import { type RunningService, startService } from "../../service/service.ts";
import { mustRun, spawn } from "../_netns.ts";
import {
  HOST,
  makeHostDir,
  normalizeWfp,
  policyFor,
  signBundle,
  signConfirm,
} from "./_kit.ts";

/** Size of the tmpfs: room for a few generations and little else. */
const TMPFS_SIZE = "512k";

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Mounts a tmpfs on a fresh folder, runs `fn`, unmounts on every path. */
async function withTmpfs(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "palisade-tmpfs-" });
  try {
    await mustRun(["mount", "-t", "tmpfs", "-o", `size=${TMPFS_SIZE}`]
      .concat(["palisade-rel", dir]));
    try {
      await fn(dir);
    } finally {
      await spawn(["umount", dir]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Writes `path` until the file system refuses even one more byte. */
async function fillToLastByte(path: string): Promise<number> {
  using file = await Deno.open(path, { create: true, write: true });
  let written = 0;
  for (const size of [65536, 4096, 512, 64, 8, 1]) {
    for (let i = 0; i < 100_000; i++) {
      try {
        written += await file.write(new Uint8Array(size));
      } catch (error) {
        if (!(error instanceof Error) || !/space/i.test(error.message)) {
          throw error;
        }
        break;
      }
    }
  }
  return written;
}

interface Env {
  hooks: WfpSimulatorHooks;
  stateDir: string;
  serial: number;
  start(): Promise<RunningService>;
  push(service: RunningService, ports: number[]): Promise<Response>;
}

async function withService(
  hooks: WfpSimulatorHooks,
  fn: (env: Env) => Promise<void>,
): Promise<void> {
  await withTmpfs(async (mount) => {
    await using host = await makeHostDir();
    const port = freePort();
    const configPath = `${host.dir}/config.jsonc`;
    const stateDir = `${mount}/state`;
    await Deno.writeTextFile(
      configPath,
      JSON.stringify({
        host: HOST,
        listen: `127.0.0.1:${port}`,
        trust: host.trustPath,
        stateDir,
        logDir: host.logDir,
        engine: "wfp",
        wfpLibrary: SIM_LIBRARY,
      }),
    );
    const env: Env = {
      hooks,
      stateDir,
      serial: 0,
      start: () =>
        startService({
          configPath,
          console: null,
          openBackend: () => openWfpBackend({ library: SIM_LIBRARY }),
        }),
      push: (_service, ports) =>
        fetch(`http://127.0.0.1:${port}/v1/bundles`, {
          method: "POST",
          body: signBundle(host.key, ++env.serial, policyFor("p", ports)),
        }),
    };
    // A last known good, written while the disk had room.
    {
      await using service = await env.start();
      const reply = await env.push(service, [8001]);
      assert.equal(reply.status, 200, await reply.clone().text());
      const pushed = await reply.json();
      await service.manager.confirm(
        signConfirm(host.key, pushed.generation, pushed.nonce),
      );
    }
    await fn(env);
  });
}

simTest(
  "a state disk full to the last byte: the service starts, enforces the last known good, refuses pushes with disk-full, recovers when space returns",
  async ({ hooks }) => {
    if (Deno.uid() !== 0) {
      if (Deno.env.get("CI")) throw new Error("needs root to mount a tmpfs");
      console.warn("SKIPPED: needs root to mount a tmpfs");
      return;
    }
    await withService(hooks, async (env) => {
      const lkg = normalizeWfp(hooks.dumpText());
      const filler = `${env.stateDir}/../filler`;
      const filled = await fillToLastByte(filler);
      console.log(`filled ${filled} bytes to the last byte`);

      {
        await using service = await env.start();
        const status = service.manager.status();
        assert.equal(status.active?.generation, 1);
        assert.equal(status.stateWritable, false);
        assert.equal(normalizeWfp(hooks.dumpText()), lkg);
        const reply = await env.push(service, [8002]);
        assert.equal(reply.status, 507);
        const body = await reply.json();
        assert.equal(body.error.code, "state-disk-full");
        assert.match(body.error.message, /^Cannot .*(disk|space)/i);
        assert.equal(normalizeWfp(hooks.dumpText()), lkg);

        await Deno.remove(filler);
        const again = await env.push(service, [8003]);
        assert.equal(again.status, 200, await again.clone().text());
        await again.body?.cancel();
        assert.notEqual(normalizeWfp(hooks.dumpText()), lkg);
        assert.equal(service.manager.status().stateWritable, true);
      }
    });
  },
);

simTest(
  "a read-only state disk: the service starts, enforces the last known good, refuses pushes with read-only, recovers when remounted",
  async ({ hooks }) => {
    if (Deno.uid() !== 0) {
      if (Deno.env.get("CI")) throw new Error("needs root to mount a tmpfs");
      console.warn("SKIPPED: needs root to mount a tmpfs");
      return;
    }
    await withService(hooks, async (env) => {
      const lkg = normalizeWfp(hooks.dumpText());
      const mount = `${env.stateDir}/..`;
      await mustRun(["mount", "-o", "remount,ro", mount]);
      try {
        await using service = await env.start();
        const status = service.manager.status();
        assert.equal(status.active?.generation, 1);
        assert.equal(status.stateWritable, false);
        assert.equal(normalizeWfp(hooks.dumpText()), lkg);
        const reply = await env.push(service, [8002]);
        assert.equal(reply.status, 503);
        const body = await reply.json();
        assert.equal(body.error.code, "state-read-only");
        assert.match(body.error.message, /^Cannot .*read-only/i);
        assert.equal(normalizeWfp(hooks.dumpText()), lkg);

        await mustRun(["mount", "-o", "remount,rw", mount]);
        const again = await env.push(service, [8003]);
        assert.equal(again.status, 200, await again.clone().text());
        await again.body?.cancel();
        assert.notEqual(normalizeWfp(hooks.dumpText()), lkg);
      } finally {
        await spawn(["mount", "-o", "remount,rw", mount]);
      }
    });
  },
);
