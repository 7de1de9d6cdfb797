import assert from "node:assert/strict";
import { FakeManager } from "./_fake_manager.ts";
import {
  applyBundle,
  fetchStatus,
  requestRollback,
  runCheck,
  type StatementSigner,
  type TimelineStep,
  UnreachableError,
} from "./client.ts";
import { startControlServer } from "./server.ts";

const fakeSigner: StatementSigner = (kind, statement) => ({ kind, statement });
const BUNDLE = new TextEncoder().encode("{}");

async function withHost(
  windowMs: number,
  fn: (url: string, manager: FakeManager) => Promise<void>,
) {
  const manager = new FakeManager(windowMs);
  await using server = startControlServer({
    manager,
    host: "web-1",
    listen: { kind: "tcp", hostname: "127.0.0.1", port: 0, text: "" },
  });
  await fn(`http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`, manager);
}

Deno.test("applyBundle() confirms over a new connection and exits 0", async () => {
  await withHost(5000, async (url, manager) => {
    const steps: TimelineStep[] = [];
    const outcome = await applyBundle({
      bundle: BUNDLE,
      to: url,
      signer: fakeSigner,
      onStep: (s) => steps.push(s),
    });
    assert.equal(outcome.exitCode, 0);
    assert.equal(outcome.result, "confirmed");
    assert.equal(manager.confirms, 1);
    assert.notEqual(manager.confirmConnection, manager.pushConnection);
    assert.deepEqual(steps.map((s) => s.step), [
      "push",
      "applied",
      "checks",
      "confirmed",
    ]);
  });
});

Deno.test("applyBundle() exits 2 when the host refuses the bundle", async () => {
  await withHost(5000, async (url, manager) => {
    manager.refuseNext = "serial-too-low";
    const outcome = await applyBundle({
      bundle: BUNDLE,
      to: url,
      signer: fakeSigner,
    });
    assert.equal(outcome.exitCode, 2);
    assert.equal(outcome.code, "serial-too-low");
    assert.equal(manager.generation, 0);
  });
});

Deno.test("applyBundle() with no confirm waits for the revert and exits 3", async () => {
  await withHost(2000, async (url, manager) => {
    const outcome = await applyBundle({
      bundle: BUNDLE,
      to: url,
      confirm: false,
      settleSeconds: 5,
    });
    assert.equal(outcome.exitCode, 3);
    assert.equal(outcome.result, "reverted");
    assert.equal(manager.confirms, 0);
  });
});

Deno.test("applyBundle() sends no heartbeat when a check fails and exits 3", async () => {
  await withHost(2000, async (url, manager) => {
    // A port nobody listens on: bind one, note it, close it.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const steps: string[] = [];
    const outcome = await applyBundle({
      bundle: BUNDLE,
      to: url,
      signer: fakeSigner,
      checks: [`tcp://127.0.0.1:${port}`],
      settleSeconds: 5,
      onStep: (s) => steps.push(s.step),
    });
    assert.equal(outcome.exitCode, 3);
    assert.equal(manager.confirms, 0);
    assert.ok(steps.includes("checks-failed"), steps.join());
  });
});

Deno.test("runCheck() accepts 2xx and open ports, refuses the rest", async () => {
  await withHost(5000, async (url) => {
    await runCheck(`${url}/healthz`, 2000);
    await assert.rejects(
      runCheck(`${url}/nope`, 2000),
      /Cannot pass check .*: HTTP 404/,
    );
    await runCheck(url.replace("http:", "tcp:"), 2000);
    await assert.rejects(runCheck("ftp://x/", 100), /use http/);
  });
});

Deno.test("requestRollback() signs a short-lived statement for the host", async () => {
  await withHost(5000, async (url, manager) => {
    let seen: Record<string, unknown> = {};
    const reply = await requestRollback({
      to: url,
      empty: true,
      signer: (kind, statement) => {
        assert.equal(kind, "rollback");
        seen = statement;
        return { kind, statement };
      },
    });
    assert.equal(reply.to, "empty");
    assert.equal(seen.host, "web-1");
    assert.match(String(seen.nonce), /^[0-9a-f]{32}$/);
    const validMs = Date.parse(String(seen.expiresAt)) -
      Date.parse(String(seen.issuedAt));
    assert.equal(validMs, 60_000);
    assert.equal((await fetchStatus(url)).active, null);
    assert.equal(manager.active, null);
  });
});

Deno.test("applyBundle() confirms within the shortest window of 2 s", async () => {
  await withHost(2000, async (url, manager) => {
    const outcome = await applyBundle({
      bundle: BUNDLE,
      to: url,
      signer: fakeSigner,
    });
    assert.equal(outcome.exitCode, 0);
    assert.equal(manager.confirms, 1);
  });
});

Deno.test("applyBundle() counts an engine refusal as refused, an internal error as failed", async () => {
  await withHost(5000, async (url, manager) => {
    manager.push = () =>
      Promise.reject(Object.assign(new Error("Cannot apply: engine"), {
        code: "engine-failed",
        httpStatus: 500,
      }));
    const refused = await applyBundle({
      bundle: BUNDLE,
      to: url,
      signer: fakeSigner,
    });
    assert.equal(refused.exitCode, 2);
    assert.equal(refused.code, "engine-failed");
    manager.push = () => Promise.reject(new Error("boom"));
    const failed = await applyBundle({
      bundle: BUNDLE,
      to: url,
      signer: fakeSigner,
    });
    assert.equal(failed.exitCode, 1);
  });
});

/** A loopback port with nothing listening on it. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

Deno.test("fetchStatus() names the URL and a refused connection", async () => {
  const url = `http://127.0.0.1:${closedPort()}`;
  const error = await fetchStatus(url, { timeoutMs: 2000 }).then(
    () => null,
    (e) => e,
  );
  assert.ok(error instanceof UnreachableError, String(error));
  assert.match(
    error.message,
    new RegExp(`^Cannot reach ${url}/v1/status: connection refused`),
  );
  assert.doesNotMatch(error.message, /^fetch failed/);
});

Deno.test("fetchStatus() names a timeout with its length", async () => {
  // Accepts the connection and never answers.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  const { port } = listener.addr as Deno.NetAddr;
  try {
    await assert.rejects(
      fetchStatus(`http://127.0.0.1:${port}`, { timeoutMs: 300 }),
      /Cannot reach http:\/\/127\.0\.0\.1:\d+\/v1\/status: no answer within 0\.3 s/,
    );
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of held) conn.close();
  }
});

Deno.test("fetchStatus() explains a certificate problem and suggests --ca", async () => {
  const dir = await Deno.makeTempDir({ prefix: "palisade-client-" });
  try {
    const made = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ed25519",
        "-nodes",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    assert.ok(made.success, "openssl could not make a test certificate");
    await using server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
      onListen() {},
    }, () => Response.json({}));
    await assert.rejects(
      fetchStatus(`https://localhost:${server.addr.port}`, {
        timeoutMs: 5000,
      }),
      /Cannot reach https:\/\/localhost:\d+\/v1\/status: TLS certificate problem .*--ca CA\.pem/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("applyBundle() names the URL and the cause when the host is down", async () => {
  const url = `http://127.0.0.1:${closedPort()}`;
  const outcome = await applyBundle({
    bundle: BUNDLE,
    to: url,
    signer: fakeSigner,
    requestTimeoutSeconds: 2,
  });
  assert.equal(outcome.exitCode, 1);
  assert.match(
    outcome.message,
    new RegExp(
      `^Cannot push bundle to ${url}: ${url}/v1/bundles: connection refused`,
    ),
  );
});

Deno.test("runCheck() names a refused tcp check", async () => {
  const check = `tcp://127.0.0.1:${closedPort()}`;
  await assert.rejects(
    runCheck(check, 2000),
    new RegExp(`Cannot pass check ${check}: connection refused`),
  );
});

Deno.test("applyBundle() with no confirm reports a revert before the deadline as soon as the host shows it", async () => {
  await withHost(60_000, async (url, manager) => {
    const steps: TimelineStep[] = [];
    // The host reverts early, as a rollback or its own checks would.
    const timer = setTimeout(() => {
      manager.pending = null;
    }, 1000);
    try {
      const outcome = await applyBundle({
        bundle: BUNDLE,
        to: url,
        confirm: false,
        settleSeconds: 1,
        onStep: (s) => steps.push(s),
      });
      assert.equal(outcome.result, "reverted");
      assert.equal(outcome.exitCode, 3);
      const applied = steps.find((s) => s.step === "applied");
      const deadline = Date.parse(
        String(applied?.message.match(/deadline (\S+)/)?.[1]),
      );
      assert.ok(Date.now() < deadline, "outcome came only after the deadline");
    } finally {
      clearTimeout(timer);
    }
  });
});

Deno.test("fetchStatus() refuses a host URL without a scheme and says what to give", async () => {
  await assert.rejects(
    fetchStatus("localhost:7443"),
    /Cannot use host URL localhost:7443: give a URL such as http:\/\/HOST:PORT/,
  );
});

Deno.test("fetchStatus() over http:// to a host that answers TLS names https:// as the likely cause", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) {
      try {
        await conn.read(new Uint8Array(1024));
        // A TLS alert record, as an HTTPS server sends to plain HTTP.
        await conn.write(new Uint8Array([21, 3, 3, 0, 2, 2, 70]));
      } catch {
        // the client may have gone
      } finally {
        conn.close();
      }
    }
  })();
  try {
    const port = (listener.addr as Deno.NetAddr).port;
    await assert.rejects(
      fetchStatus(`http://127.0.0.1:${port}`, { timeoutMs: 5000 }),
      /the host may speak HTTPS; use https:\/\//,
    );
  } finally {
    listener.close();
    await serving.catch(() => {});
  }
});

Deno.test("runCheck() on a refused tcp:// check does not hint at palisade serve", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const error = await runCheck(`tcp://127.0.0.1:${port}`, 2000).then(
    () => null,
    (e: Error) => e,
  );
  assert.ok(error !== null, "the check passed");
  assert.match(error.message, /connection refused: nothing listens there/);
  assert.doesNotMatch(error.message, /palisade serve/);
});
