import assert from "node:assert/strict";
import { FakeManager } from "./_fake_manager.ts";
import { Metrics } from "./metrics.ts";
import {
  createHandler,
  createManagerGate,
  readBoundedBody,
  redactPaths,
  startControlServer,
} from "./server.ts";

const INFO = {
  remoteAddr: { transport: "tcp", hostname: "10.0.0.2", port: 40000 },
} as Deno.ServeHandlerInfo;

function post(path: string, body: unknown): Request {
  return new Request(`http://h${path}`, {
    method: "POST",
    body: JSON.stringify(body),
  });
}

Deno.test("createHandler() serves status, policy, healthz and metrics", async () => {
  const manager = new FakeManager(60_000);
  const metrics = new Metrics();
  const handler = createHandler({ manager, host: "web-1", metrics });

  const status = await handler(new Request("http://h/v1/status"), INFO);
  assert.equal(status.status, 200);
  assert.equal((await status.json()).host, "web-1");

  const policy = await handler(new Request("http://h/v1/policy"), INFO);
  assert.equal(policy.status, 404);
  assert.equal((await policy.json()).error.code, "no-policy");
  manager.active = 1;
  const found = await handler(new Request("http://h/v1/policy"), INFO);
  assert.deepEqual(await found.json(), {
    generation: 1,
    serial: 1,
    name: "p",
    policy: { name: "p", rules: [] },
  });

  const health = await handler(new Request("http://h/healthz"), INFO);
  assert.deepEqual(await health.json(), { ok: true, state: "idle" });

  const text = await (await handler(new Request("http://h/metrics"), INFO))
    .text();
  assert.match(text, /^palisade_rule_packets_total\{rule="r1"\} 1$/m);
  assert.match(
    text,
    /^palisade_http_responses_total\{route="\/v1\/policy",status="404"\} 1$/m,
  );
});

Deno.test("createHandler() passes the connection identity to push and confirm", async () => {
  const manager = new FakeManager(60_000);
  const handler = createHandler({ manager, host: "web-1" });
  const pushed = await handler(post("/v1/bundles", {}), INFO);
  assert.equal(pushed.status, 200);
  const reply = await pushed.json();
  assert.equal(reply.host, "web-1");
  assert.equal(reply.generation, 1);
  assert.equal(manager.pushConnection, "10.0.0.2:40000");

  const heartbeat = { statement: { nonce: reply.nonce } };
  const same = await handler(post("/v1/heartbeat", heartbeat), INFO);
  assert.equal(same.status, 409);
  assert.equal((await same.json()).error.code, "same-connection");

  const info6 = {
    remoteAddr: { transport: "tcp", hostname: "fd00::2", port: 40001 },
  } as Deno.ServeHandlerInfo;
  const other = await handler(post("/v1/heartbeat", heartbeat), info6);
  assert.equal(other.status, 200);
  assert.equal(manager.confirmConnection, "[fd00::2]:40001");
});

Deno.test("createHandler() turns refusals and failures into JSON errors", async () => {
  const manager = new FakeManager(60_000);
  const handler = createHandler({ manager, host: "web-1" });
  manager.refuseNext = "bad-signature";
  const refused = await handler(post("/v1/bundles", {}), INFO);
  assert.equal(refused.status, 403);
  assert.deepEqual(await refused.json(), {
    error: {
      code: "bad-signature",
      message: "Cannot accept request: bad-signature",
    },
  });

  manager.rollback = () => Promise.reject(new Error("disk on fire"));
  const failed = await handler(post("/v1/rollback", {}), INFO);
  assert.equal(failed.status, 500);
  assert.equal((await failed.json()).error.code, "internal");

  const missing = await handler(new Request("http://h/v2/x"), INFO);
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, "not-found");

  const wrong = await handler(new Request("http://h/v1/bundles"), INFO);
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "POST");
  await wrong.body?.cancel();

  const empty = await handler(
    new Request("http://h/v1/bundles", { method: "POST" }),
    INFO,
  );
  assert.equal(empty.status, 400);
  assert.equal((await empty.json()).error.code, "empty-body");
});

Deno.test("readBoundedBody() refuses a body over the size bound", async () => {
  const declared = new Request("http://h/", {
    method: "POST",
    body: "x".repeat(100),
    headers: { "content-length": "100" },
  });
  await assert.rejects(
    readBoundedBody(declared, 99, 1000),
    (e: Error & { status?: number }) =>
      e.status === 413 && /100 bytes exceeds the limit of 99/.test(e.message),
  );

  let sent = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      sent++;
      controller.enqueue(new Uint8Array(64));
      if (sent > 1000) controller.close();
    },
  });
  const streamed = new Request("http://h/", { method: "POST", body: stream });
  await assert.rejects(
    readBoundedBody(streamed, 1000, 1000),
    (e: Error & { status?: number; code?: string }) =>
      e.status === 413 && e.code === "body-too-large",
  );
  assert.ok(sent < 100, `read ${sent} chunks past the bound`);
});

Deno.test("readBoundedBody() cuts off a slow sender with 408", async () => {
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new Uint8Array(10));
      // Never closes: a sender that stalls.
    },
  });
  const request = new Request("http://h/", { method: "POST", body: stream });
  await assert.rejects(
    readBoundedBody(request, 1000, 50),
    (e: Error & { status?: number; code?: string }) =>
      e.status === 408 && e.code === "body-timeout",
  );
});

Deno.test("startControlServer() answers 408 to a stalled sender over TCP", async () => {
  const manager = new FakeManager(60_000);
  await using server = startControlServer({
    manager,
    host: "web-1",
    listen: { kind: "tcp", hostname: "127.0.0.1", port: 0, text: "" },
    bodyTimeoutMs: 200,
  });
  const port = (server.addr as Deno.NetAddr).port;
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(
    "POST /v1/bundles HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{",
  ));
  const buffer = new Uint8Array(4096);
  const n = await conn.read(buffer);
  const reply = new TextDecoder().decode(buffer.subarray(0, n ?? 0));
  assert.match(reply, /^HTTP\/1\.1 408/);
  assert.match(reply, /"code":"body-timeout"/);
  assert.equal(manager.pushes, 0);
});

Deno.test("createManagerGate() answers 503 starting until the manager is ready", async () => {
  const gate = createManagerGate();
  const handler = createHandler({ manager: gate.manager, host: "web-1" });
  for (const path of ["/healthz", "/v1/status", "/metrics"]) {
    const reply = await handler(new Request(`http://h${path}`), INFO);
    assert.equal(reply.status, 503, path);
    assert.equal((await reply.json()).error.code, "starting");
  }
  const push = await handler(post("/v1/bundles", {}), INFO);
  assert.equal(push.status, 503);
  await push.body?.cancel();
  gate.ready(new FakeManager(60_000));
  const ready = await handler(new Request("http://h/healthz"), INFO);
  assert.equal(ready.status, 200);
  await ready.body?.cancel();
});

Deno.test("createHandler() keeps local paths out of refusal messages", async () => {
  const refusal = Object.assign(
    new Error(
      "Cannot write state file /var/lib/palisade/generations/x.json: full",
    ),
    { httpStatus: 507, code: "state-disk-full" },
  );
  const handler = createHandler({
    host: "web-1",
    manager: {
      ...new FakeManager(60_000),
      push: () => Promise.reject(refusal),
      confirm: () => Promise.reject(refusal),
      rollback: () => Promise.reject(refusal),
      status: () => ({
        state: "idle",
        active: null,
        pending: null,
        stateWritable: true,
      }),
      current: () => null,
      counters: () => [],
    },
  });
  const reply = await handler(post("/v1/bundles", { a: 1 }), INFO);
  assert.equal(reply.status, 507);
  const body = await reply.json();
  assert.equal(
    body.error.message,
    "Cannot write state file <local path>: full",
  );
  assert.equal(
    redactPaths("trust store C:\\ProgramData\\palisade\\trust.jsonc"),
    "trust store <local path>",
  );
  assert.equal(
    redactPaths("block 10.0.0.0/8 on /v1"),
    "block 10.0.0.0/8 on /v1",
  );
});
