import assert from "node:assert/strict";
import { FakeManager } from "./_fake_manager.ts";
import {
  applyBundle,
  fetchStatus,
  requestRollback,
  runCheck,
  type StatementSigner,
  type TimelineStep,
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
