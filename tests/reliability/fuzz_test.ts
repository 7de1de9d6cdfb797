/**
 * Bad input: property tests over bundles, policies, trust stores,
 * config files and every HTTP endpoint, with random and
 * mutated-from-valid inputs. Every input gets a clear error (a typed
 * error whose message starts "Cannot"), the process carries on, and the
 * engine dump (WFP simulator) is unchanged. `PALISADE_FUZZ_RUNS` sets
 * the cases per target (200 by default; `deno task assess` asks 10,000).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { SIM_LIBRARY, simTest } from "../../ffi/wfp/_sim_fixture.ts";
import {
  bundle,
  FakeClock,
  heartbeat,
  type Keys,
  makeKeys,
  rollbackCommand,
  T0,
  tempStateDir,
} from "../../policy/_fixture.ts";
import {
  type ManagerEvent,
  PolicyManager,
  RefusedError,
} from "../../policy/manager.ts";
import { parsePolicyText, PolicyError } from "../../policy/parse.ts";
import { openWfpBackend } from "../../policy/wfp_backend.ts";
import { ConfigError, parseConfig } from "../../service/config.ts";
import { createHandler, startControlServer } from "../../service/server.ts";
import {
  parseTrustStore,
  PAYLOAD_TYPES,
  serializeEnvelope,
  signPayload,
  TrustStoreError,
} from "../../signing/mod.ts";
import {
  fuzzRuns,
  fuzzSeed,
  mutatedBytes,
  mutatedJson,
  mutatedText,
  randomText,
} from "./_fuzz.ts";
import { normalizeWfp, policyFor, trustText } from "./_kit.ts";

const RUNS = fuzzRuns();
const options = () => ({ numRuns: RUNS, seed: fuzzSeed() });
const encoder = new TextEncoder();

function clear(error: unknown, ...types: (new (...a: never[]) => Error)[]) {
  if (!types.some((type) => error instanceof type)) throw error;
  const message = (error as Error).message;
  assert.match(message, /^Cannot [^\n]{8,}/, `unclear error: ${message}`);
}

interface Host extends AsyncDisposable {
  manager: PolicyManager;
  keys: Keys;
  events: ManagerEvent[];
}

async function simHost(): Promise<Host> {
  const state = await tempStateDir();
  const backend = openWfpBackend({ library: SIM_LIBRARY });
  const clock = new FakeClock();
  const keys = makeKeys();
  const events: ManagerEvent[] = [];
  const manager = await PolicyManager.open({
    backend,
    stateDir: state.dir,
    trust: keys.trust,
    host: "web-1",
    groups: [],
    commitWindow: { default: 30, max: 3600 },
    retry: { attempts: 2, baseMs: 1, maxMs: 1 },
    now: clock.clock,
    timers: clock.timers,
    onEvent: (e) => events.push(e),
  });
  const pushed = await manager.push(
    bundle(keys, { serial: 1, policy: policyFor("lkg", [8001, 8002]) }),
  );
  await manager.confirm(heartbeat(keys, pushed.generation, pushed.nonce));
  return {
    manager,
    keys,
    events,
    async [Symbol.asyncDispose]() {
      await manager.close();
      backend.close();
      await state[Symbol.asyncDispose]();
    },
  };
}

function validStatement(serial: number) {
  return {
    name: "fuzz",
    serial,
    issuedAt: new Date(T0 - 60_000).toISOString(),
    expiresAt: new Date(T0 + 86_400_000).toISOString(),
    targets: ["web-1"],
    commitWindowSeconds: 30,
    policy: policyFor("fuzz", [9001, 9002]),
  };
}

simTest(
  "push gives every random, mutated or re-signed bundle a clear refusal and leaves the engine unchanged",
  async ({ hooks }) => {
    await using host = await simHost();
    const valid = bundle(host.keys, { serial: 2, ports: [9000] });
    let serial = 2;
    let accepted = 0;
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      randomText().map((t) => encoder.encode(t)),
      mutatedBytes(valid),
      mutatedJson(validStatement(0)).map((statement) => {
        // Signed by a trusted key, so verification passes and the
        // statement and its policy are what gets tested.
        if (statement && typeof statement === "object") {
          const s = statement as Record<string, unknown>;
          if (s.serial === 0) s.serial = ++serial;
        }
        const payload = encoder.encode(JSON.stringify(statement));
        const envelope = signPayload(
          PAYLOAD_TYPES.bundle,
          payload,
          host.keys.key,
        );
        return encoder.encode(serializeEnvelope(envelope));
      }),
    );
    const baseline = normalizeWfp(hooks.dumpText());
    await fc.assert(
      fc.asyncProperty(input, async (bytes) => {
        const before = hooks.dumpText();
        try {
          await host.manager.push(bytes);
        } catch (error) {
          clear(error, RefusedError);
          assert.notEqual((error as RefusedError).code, "internal");
          assert.equal(hooks.dumpText(), before, "engine changed");
          return;
        }
        // A mutation that is still a valid bundle: it applied; roll
        // back so the next case starts from the last known good.
        accepted++;
        await host.manager.rollback(rollbackCommand(host.keys));
        assert.equal(normalizeWfp(hooks.dumpText()), baseline);
      }),
      options(),
    );
    assert.equal(host.manager.status().active?.generation, 1);
    console.log(`bundles: ${RUNS} cases, ${accepted} still valid`);
  },
);

Deno.test("parsePolicyText() gives every random or mutated policy a clear PolicyError", () => {
  const valid = policyFor("fuzz", [80, 443]);
  const input = fc.oneof(
    randomText(),
    mutatedText(JSON.stringify(valid, null, 2)),
    mutatedJson(valid).map((v) => JSON.stringify(v) ?? ""),
  );
  fc.assert(
    fc.property(input, (text) => {
      try {
        parsePolicyText(text, "fuzz.jsonc");
      } catch (error) {
        clear(error, PolicyError);
      }
    }),
    options(),
  );
});

Deno.test("parseTrustStore() gives every random or mutated trust store a clear TrustStoreError", () => {
  const valid = JSON.parse(trustText([makeKeys().key]));
  const input = fc.oneof(
    randomText(),
    mutatedText(JSON.stringify(valid, null, 2)),
    mutatedJson(valid).map((v) => JSON.stringify(v) ?? ""),
  );
  fc.assert(
    fc.property(input, (text) => {
      try {
        parseTrustStore(text, "trust.jsonc");
      } catch (error) {
        clear(error, TrustStoreError);
      }
    }),
    options(),
  );
});

Deno.test("parseConfig() gives every random or mutated config a clear ConfigError", () => {
  const valid = {
    host: "web-1",
    listen: "127.0.0.1:7443",
    trust: "/etc/palisade/trust.jsonc",
    stateDir: "/var/lib/palisade",
    engine: "nft",
    groups: ["edge"],
    commitWindow: { default: 120, max: 3600 },
    log: { maxBytes: 1048576, files: 5 },
  };
  const input = fc.oneof(
    randomText(),
    mutatedText(JSON.stringify(valid, null, 2)),
    mutatedJson(valid).map((v) => JSON.stringify(v) ?? ""),
  );
  fc.assert(
    fc.property(input, (text) => {
      try {
        parseConfig(text, "/etc/palisade/config.jsonc");
      } catch (error) {
        clear(error, ConfigError);
      }
    }),
    options(),
  );
});

const INFO = {
  remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 },
  completed: Promise.resolve(),
} as unknown as Deno.ServeHandlerInfo;

simTest(
  "every HTTP endpoint answers random and mutated requests with a clear error and leaves the engine unchanged",
  async ({ hooks }) => {
    await using host = await simHost();
    const handler = createHandler({ manager: host.manager, host: "web-1" });
    const envelopes = [
      bundle(host.keys, { serial: 2, ports: [9000] }),
      heartbeat(host.keys, 2, "00".repeat(16)),
      rollbackCommand(host.keys),
    ];
    const routes: Record<string, string> = {
      "/v1/bundles": "POST",
      "/v1/heartbeat": "POST",
      "/v1/rollback": "POST",
      "/v1/status": "GET",
      "/v1/policy": "GET",
      "/healthz": "GET",
      "/metrics": "GET",
    };
    const paths = Object.keys(routes);
    const body = fc.oneof(
      fc.constant(null),
      fc.uint8Array({ maxLength: 300 }),
      ...envelopes.map((e) => mutatedBytes(e)),
    );
    const method = fc.constantFrom(
      "GET",
      "POST",
      "PUT",
      "DELETE",
      "PATCH",
      "OPTIONS",
    );
    // Mostly the right method on a real endpoint, so that bodies reach
    // the manager; the rest random methods and paths.
    const request = fc.oneof(
      {
        arbitrary: fc.constantFrom(...paths).map((p) => [routes[p], p]),
        weight: 6,
      },
      fc.tuple(method, fc.constantFrom(...paths)),
      fc.tuple(method, fc.webPath()),
      fc.tuple(method, fc.constantFrom(...paths).chain((p) => mutatedText(p))),
    );
    const before = normalizeWfp(hooks.dumpText());
    const statuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, body, async ([m, p], b) => {
        let url: URL;
        try {
          url = new URL(p.startsWith("/") ? p : `/${p}`, "http://h");
        } catch {
          return;
        }
        const withBody = m !== "GET" && b !== null;
        const request = new Request(url, {
          method: m,
          body: withBody ? new Uint8Array(b) : undefined,
        });
        const reply = await handler(request, INFO);
        statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
        assert.ok(reply.status < 500, `${m} ${p}: ${reply.status}`);
        if (reply.status >= 400) {
          const json = await reply.json();
          assert.equal(typeof json.error?.code, "string");
          assert.match(json.error.message, /^Cannot /);
        } else {
          await reply.body?.cancel();
        }
        if (reply.status === 200 && url.pathname === "/v1/bundles") {
          // A byte edit that kept the envelope valid (whitespace): it
          // applied; roll back to the last known good.
          await host.manager.rollback(rollbackCommand(host.keys));
        }
        assert.equal(normalizeWfp(hooks.dumpText()), before);
      }),
      options(),
    );
    const health = await handler(new Request("http://h/healthz"), INFO);
    assert.equal(health.status, 200);
    await health.body?.cancel();
    console.log(`http: ${JSON.stringify(Object.fromEntries(statuses))}`);
  },
);

Deno.test("the control API cuts off an oversize body (413) and a slow sender (408) and keeps serving", async () => {
  const manager = {
    push: () => Promise.reject(new Error("Cannot push: not reached")),
    confirm: () => Promise.reject(new Error("Cannot confirm: not reached")),
    rollback: () => Promise.reject(new Error("Cannot roll back: not reached")),
    status: () => ({
      state: "idle",
      active: null,
      pending: null,
      stateWritable: true,
    }),
    current: () => null,
    counters: () => [],
  };
  const server = startControlServer({
    manager,
    host: "web-1",
    listen: { kind: "tcp", hostname: "127.0.0.1", port: 0, text: "" },
    maxBodyBytes: 1024,
    bodyTimeoutMs: 300,
  });
  try {
    const addr = server.addr as Deno.NetAddr;
    const base = `http://127.0.0.1:${addr.port}`;

    // Declared too large, and too large without a declared length.
    const big = await fetch(`${base}/v1/bundles`, {
      method: "POST",
      body: new Uint8Array(4096),
    });
    assert.equal(big.status, 413);
    assert.match((await big.json()).error.message, /^Cannot read request/);
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 8; i++) c.enqueue(new Uint8Array(512));
        c.close();
      },
    });
    const chunked = await fetch(`${base}/v1/bundles`, {
      method: "POST",
      body: stream,
    });
    assert.equal(chunked.status, 413);
    await chunked.body?.cancel();

    // A sender that announces 100 bytes and sends 10.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: addr.port });
    try {
      await conn.write(encoder.encode(
        "POST /v1/bundles HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n" +
          "0123456789",
      ));
      const buffer = new Uint8Array(4096);
      const read = await Promise.race([
        conn.read(buffer),
        new Promise<null>((r) => setTimeout(() => r(null), 10_000)),
      ]);
      assert.ok(read !== null && read > 0, "no answer to a slow sender");
      const text = new TextDecoder().decode(buffer.subarray(0, read));
      assert.match(text, /^HTTP\/1\.1 408/);
    } finally {
      conn.close();
    }

    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    await server.shutdown();
  }
});
