import assert from "node:assert/strict";
import { MemoryBackend } from "../policy/memory_backend.ts";
import { requireRoot } from "../tests/_netns.ts";
import {
  blockPolicy,
  makeServiceKit,
  type ServiceKit,
  signedBundle,
  signedHeartbeat,
} from "../tests/_service_kit.ts";
import { fetchStatus } from "./client.ts";
import { ConfigError } from "./config.ts";
import { PreflightError } from "./preflight.ts";
import { type RunningService, startService } from "./service.ts";

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function withService(
  fn: (
    service: RunningService,
    kit: ServiceKit,
    backend: MemoryBackend,
    lines: string[],
  ) => Promise<void>,
  prepare?: (kit: ServiceKit) => Promise<void>,
  extra?: Record<string, unknown>,
) {
  const kit = await makeServiceKit({
    listen: `127.0.0.1:${freePort()}`,
    extra,
  });
  try {
    await prepare?.(kit);
    const backend = new MemoryBackend();
    const lines: string[] = [];
    const service = await startService({
      configPath: kit.configPath,
      console: (line) => lines.push(line),
      openBackend: () => backend,
    });
    try {
      await fn(service, kit, backend, lines);
    } finally {
      await service.stop("test");
    }
  } finally {
    await Deno.remove(kit.dir, { recursive: true });
  }
}

async function send(
  url: string,
  body?: Uint8Array<ArrayBuffer>,
  client?: Deno.HttpClient,
) {
  const own = client ?? Deno.createHttpClient({});
  try {
    const response = await fetch(url, {
      method: body === undefined ? "GET" : "POST",
      body,
      client: own,
    });
    return { status: response.status, body: await response.json() };
  } finally {
    if (client === undefined) own.close();
  }
}

const events = (lines: string[]) => lines.map((l) => JSON.parse(l).event);

Deno.test("startService() starts in order, serves and logs the stop", async () => {
  await withService(async (service, kit, _backend, lines) => {
    const base = `http://${kit.listen}`;
    const status = await send(`${base}/v1/status`);
    assert.equal(status.status, 200);
    assert.equal(status.body.host, "web-1");
    assert.equal(status.body.state, "idle");
    assert.equal(status.body.active, null);
    assert.equal(service.manager.status().stateWritable, true);
    const order = events(lines);
    assert.ok(
      order.indexOf("config") < order.indexOf("start") &&
        order.indexOf("start") < order.indexOf("listening"),
      order.join(),
    );
    await service.stop("SIGTERM");
    await service.stop("SIGTERM");
    assert.equal(events(lines).at(-1), "stop");
    const file = await Deno.readTextFile(`${kit.logDir}/palisade.log`);
    assert.equal(JSON.parse(file.trim().split("\n").at(-1)!).event, "stop");
    await assert.rejects(fetch(`${base}/healthz`));
  });
});

Deno.test("startService() applies, refuses a same-connection heartbeat, confirms over a new one", async () => {
  await withService(async (service, kit, backend) => {
    const base = `http://${kit.listen}`;
    using shared = Deno.createHttpClient({});
    const bundle = signedBundle(kit, {
      serial: 1,
      policy: blockPolicy("try", 8080, ["10.9.0.2/32"]),
      window: 30,
    });
    const pushed = await send(`${base}/v1/bundles`, bundle, shared);
    assert.equal(pushed.status, 200, JSON.stringify(pushed.body));
    assert.equal(pushed.body.generation, 1);
    assert.equal(backend.installed?.rules[0].id, "block-tcp-8080");

    const heartbeat = signedHeartbeat(kit, 1, pushed.body.nonce);
    const same = await send(`${base}/v1/heartbeat`, heartbeat, shared);
    assert.equal(same.status, 409);
    assert.equal(same.body.error.code, "same-connection");

    const fresh = await send(`${base}/v1/heartbeat`, heartbeat);
    assert.equal(fresh.status, 200, JSON.stringify(fresh.body));
    assert.equal(service.manager.status().lastKnownGood?.generation, 1);

    const replay = await send(`${base}/v1/heartbeat`, heartbeat);
    assert.ok(replay.status >= 400);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^palisade_applies_total 1$/m);
    assert.match(
      metrics,
      /^palisade_refusals_total\{reason="same-connection"\} 1$/m,
    );
    assert.match(metrics, /^palisade_active_rules 1$/m);
  });
});

Deno.test("startService() starts with a corrupt state folder", async () => {
  await withService(
    async (service, kit) => {
      const status = await send(`http://${kit.listen}/v1/status`);
      assert.equal(status.status, 200);
      assert.ok(service.manager.status().problems.length > 0);
    },
    async (kit) => {
      await Deno.mkdir(`${kit.stateDir}/generations`, { recursive: true });
      await Deno.writeTextFile(
        `${kit.stateDir}/generations/00000001.bundle.json`,
        "{ not json",
      );
      await Deno.writeTextFile(
        `${kit.stateDir}/generations/00000001.status.json`,
        '{"generation": 1, "status": "pend',
      );
    },
  );
});

Deno.test("startService() logs to the console when the log folder is unwritable", async () => {
  await withService(
    async (_service, kit, _backend, lines) => {
      const status = await send(`http://${kit.listen}/v1/status`);
      assert.equal(status.status, 200);
      const warning = lines.map((l) => JSON.parse(l)).find((l) =>
        l.event === "log.file-unavailable"
      );
      assert.equal(warning?.level, "warn");
      assert.ok(events(lines).includes("listening"));
    },
    async (kit) => {
      await Deno.writeTextFile(`${kit.dir}/not-a-dir`, "");
    },
    { logDir: "not-a-dir/logs" },
  );
});

Deno.test("startService() refuses a config outside the granted paths", async () => {
  const kit = await makeServiceKit({ listen: "127.0.0.1:7443" });
  try {
    await assert.rejects(
      startService({
        configPath: kit.configPath,
        openBackend: () => assert.fail("opened the engine"),
        query: (d) =>
          "path" in d && String(d.path).startsWith(kit.stateDir)
            ? "prompt"
            : "granted",
      }),
      (error: Error) =>
        error instanceof PreflightError &&
        error.message.startsWith(
          `Cannot start: stateDir ${kit.stateDir} is outside the granted paths; run with --allow-read=${kit.stateDir} --allow-write=${kit.stateDir}`,
        ),
    );
    await Deno.writeTextFile(kit.configPath, '{ "host": "x" }');
    await assert.rejects(
      startService({ configPath: kit.configPath }),
      (error: Error) =>
        error instanceof ConfigError &&
        /key "listen" is required/.test(error.message),
    );
  } finally {
    await Deno.remove(kit.dir, { recursive: true });
  }
});

Deno.test("startService() listens on a Unix socket", async () => {
  const kit = await makeServiceKit({ listen: "./api.sock" });
  try {
    const service = await startService({
      configPath: kit.configPath,
      console: null,
      openBackend: () => new MemoryBackend(),
    });
    try {
      assert.equal((service.addr as Deno.UnixAddr).path, `${kit.dir}/api.sock`);
      using conn = await Deno.connect({
        transport: "unix",
        path: `${kit.dir}/api.sock`,
      });
      await conn.write(new TextEncoder().encode(
        "GET /healthz HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n",
      ));
      let reply = "";
      const buffer = new Uint8Array(4096);
      for (let i = 0; i < 20; i++) {
        const n = await conn.read(buffer);
        if (n === null) break;
        reply += new TextDecoder().decode(buffer.subarray(0, n));
      }
      assert.match(reply, /^HTTP\/1\.1 200/);
      assert.match(reply, /"ok":true/);
    } finally {
      await service.stop("test");
    }
  } finally {
    await Deno.remove(kit.dir, { recursive: true });
  }
});

Deno.test("startService() serves HTTPS with the configured certificate", async (t) => {
  const kit = await makeServiceKit({
    listen: `127.0.0.1:${freePort()}`,
    extra: { tls: { cert: "tls.crt", key: "tls.key" } },
  });
  try {
    let made;
    try {
      made = await new Deno.Command("openssl", {
        args: [
          "req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:prime256v1",
          "-nodes",
          "-days",
          "1",
          "-subj",
          "/CN=palisade-test",
          "-addext",
          "subjectAltName=IP:127.0.0.1",
          "-addext",
          "basicConstraints=critical,CA:FALSE",
          "-keyout",
          `${kit.dir}/tls.key`,
          "-out",
          `${kit.dir}/tls.crt`,
        ],
        stdout: "null",
        stderr: "piped",
      }).output();
    } catch (error) {
      if (Deno.env.get("CI")) throw error;
      console.warn(`SKIPPED "${t.name}": openssl is missing`);
      return;
    }
    assert.equal(made.code, 0, new TextDecoder().decode(made.stderr));
    const service = await startService({
      configPath: kit.configPath,
      console: null,
      openBackend: () => new MemoryBackend(),
    });
    try {
      const ca = await Deno.readTextFile(`${kit.dir}/tls.crt`);
      const status = await fetchStatus(`https://${kit.listen}`, {
        caCerts: [ca],
      });
      assert.equal(status.host, "web-1");
      await assert.rejects(
        fetchStatus(`http://${kit.listen}`, { timeoutMs: 2000 }),
      );
    } finally {
      await service.stop("test");
    }
  } finally {
    await Deno.remove(kit.dir, { recursive: true });
  }
});

Deno.test("startService() starts on a read-only disk and refuses pushes", async (t) => {
  if (!requireRoot(t)) return;
  const kit = await makeServiceKit({ listen: `127.0.0.1:${freePort()}` });
  const ro = `${kit.dir}/ro`;
  await Deno.mkdir(ro);
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "ro,size=1m", "palisade-test-ro", ro],
  }).output();
  assert.equal(mount.code, 0, new TextDecoder().decode(mount.stderr));
  try {
    const config = JSON.parse(await Deno.readTextFile(kit.configPath));
    config.stateDir = `${ro}/state`;
    config.logDir = `${ro}/logs`;
    await Deno.writeTextFile(kit.configPath, JSON.stringify(config));
    const lines: string[] = [];
    const service = await startService({
      configPath: kit.configPath,
      console: (line) => lines.push(line),
      openBackend: () => new MemoryBackend(),
    });
    try {
      assert.ok(events(lines).includes("log.file-unavailable"));
      const status = await send(`http://${kit.listen}/v1/status`);
      assert.equal(status.body.stateWritable, false);
      const bundle = signedBundle(kit, {
        serial: 1,
        policy: blockPolicy("try", 8080, ["10.9.0.2/32"]),
      });
      const pushed = await send(`http://${kit.listen}/v1/bundles`, bundle);
      assert.equal(pushed.status, 503, JSON.stringify(pushed.body));
      assert.match(pushed.body.error.code, /^state-/);
    } finally {
      await service.stop("test");
    }
  } finally {
    await new Deno.Command("umount", { args: [ro] }).output();
    await Deno.remove(kit.dir, { recursive: true });
  }
});

Deno.test("serve refuses to start when the grants miss the state folder", async () => {
  const kit = await makeServiceKit({ listen: `127.0.0.1:${freePort()}` });
  try {
    // No --allow-ffi at all: even a wrong preflight could not reach an
    // engine from this process, which runs in the host's namespace.
    // By name, so that the test flags' `--allow-run=deno` cover it.
    const output = await new Deno.Command("deno", {
      args: [
        "run",
        "--no-prompt",
        `--allow-read=${kit.configPath},${kit.trustPath}`,
        `--allow-write=${kit.logDir}`,
        `--allow-net=${kit.listen}`,
        new URL("../main.ts", import.meta.url).pathname,
        "serve",
        "--config",
        kit.configPath,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 1, stderr);
    assert.match(
      stderr,
      new RegExp(
        `palisade serve: Cannot start: stateDir ${kit.stateDir} is outside the granted paths; run with --allow-read=${kit.stateDir} --allow-write=${kit.stateDir}`,
      ),
    );
    assert.match(stderr, /nftLibrary \S+ is outside the granted libraries/);
    assert.equal(new TextDecoder().decode(output.stdout), "");
  } finally {
    await Deno.remove(kit.dir, { recursive: true });
  }
});

Deno.test({
  name:
    "startService() refuses a second instance on the same state folder and leaves the engine as it was",
  // The refused flock() stays queued in a worker thread until the first
  // service lets go of the lock.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await withService(async (service, kit, backend) => {
      const base = `http://${kit.listen}`;
      const pushed = await send(
        `${base}/v1/bundles`,
        signedBundle(kit, {
          serial: 1,
          policy: blockPolicy("try", 8080, ["10.9.0.2/32"]),
          window: 30,
        }),
      );
      assert.equal(pushed.status, 200, JSON.stringify(pushed.body));
      const calls = backend.calls.length;
      const installed = structuredClone(backend.installed);
      let opened = 0;
      const lines: string[] = [];
      let error: unknown = null;
      try {
        await startService({
          configPath: kit.configPath,
          console: (line) => lines.push(line),
          openBackend: () => {
            opened++;
            return backend;
          },
        });
      } catch (caught) {
        error = caught;
      }
      assert.ok(error instanceof Error, String(error));
      assert.match(error.message, /another Palisade service/);
      assert.match(error.message, new RegExp(`pid ${Deno.pid}`));
      assert.match(error.message, /state\/lock/);
      assert.ok(events(lines).includes("start.failed"));
      assert.equal(opened, 0);
      assert.equal(backend.calls.length, calls);
      assert.deepEqual(backend.installed, installed);
      const status = await send(`${base}/v1/status`);
      assert.equal(status.body.state, "pending");
      assert.equal(service.manager.status().pending?.generation, 1);
    });
  },
});

Deno.test("startService() fails on a taken listen address before touching the engine", async () => {
  await withService(async (_service, kit, backend) => {
    const other = await makeServiceKit({ listen: kit.listen });
    try {
      const calls = backend.calls.length;
      let opened = 0;
      let error: unknown = null;
      try {
        await startService({
          configPath: other.configPath,
          console: null,
          openBackend: () => {
            opened++;
            return backend;
          },
        });
      } catch (caught) {
        error = caught;
      }
      assert.ok(error instanceof Error, String(error));
      assert.match(
        error.message,
        new RegExp(`Cannot listen on ${kit.listen}: the address is in use`),
      );
      assert.equal(opened, 0);
      assert.equal(backend.calls.length, calls);
    } finally {
      await Deno.remove(other.dir, { recursive: true });
    }
  });
});
