/**
 * The main job end to end with real traffic: `serve` runs under its
 * narrow permission flags in namespace A with a TCP server beside it;
 * the operator commands and the probes run in namespace B.
 */
import {
  type NetnsPair,
  nftDump,
  nsSpawn,
  requireRoot,
  tcpListen,
  tcpProbe,
  withNetnsPair,
} from "./_netns.ts";
import {
  blockPolicy,
  makeServiceKit,
  operatorArgv,
  serveArgv,
  ServeProcess,
  type ServiceKit,
  signedBundle,
  signedHeartbeat,
} from "./_service_kit.ts";

// Plain assertions: a `node:` import would bring Node's timer types
// into this test's type graph, which `_netns.ts` is not written for.
const assert = {
  equal(actual: unknown, expected: unknown, message?: string) {
    if (!Object.is(actual, expected)) {
      throw new Error(
        `Expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}${
          message ? `: ${message}` : ""
        }`,
      );
    }
  },
  deepEqual(actual: unknown, expected: unknown, message?: string) {
    const a = JSON.stringify(actual);
    const b = JSON.stringify(expected);
    if (a !== b) {
      throw new Error(
        `Expected ${b}, got ${a}${message ? `: ${message}` : ""}`,
      );
    }
  },
  ok(value: unknown, message?: string) {
    if (!value) throw new Error(`Expected a true value: ${message ?? ""}`);
  },
  match(text: string, pattern: RegExp) {
    if (!pattern.test(text)) {
      throw new Error(`Expected ${pattern} to match: ${text}`);
    }
  },
};

const APP_PORT = 8080;
const API_PORT = 7443;
const HTTP_POST = new URL("./_http_post.ts", import.meta.url).pathname;

interface Env {
  pair: NetnsPair;
  kit: ServiceKit;
  serve: ServeProcess;
  url: string;
  /** Restarts the service (after a kill). */
  restart(): Promise<ServeProcess>;
}

async function withHost(fn: (env: Env) => Promise<void>): Promise<void> {
  await withNetnsPair(async (pair) => {
    const kit = await makeServiceKit({
      listen: `${pair.v4a}:${API_PORT}`,
      commitWindow: { default: 3, max: 60 },
    });
    let serve: ServeProcess | null = null;
    try {
      await using _app = await tcpListen(pair.a, APP_PORT);
      serve = await ServeProcess.start(kit, pair.a);
      const env: Env = {
        pair,
        kit,
        serve,
        url: `http://${pair.v4a}:${API_PORT}`,
        restart: async () => {
          serve = await ServeProcess.start(kit, pair.a);
          env.serve = serve;
          return serve;
        },
      };
      await fn(env);
    } finally {
      await serve?.kill("SIGKILL");
      await Deno.remove(kit.dir, { recursive: true });
    }
  });
}

function appReachable(env: Env): Promise<boolean> {
  return tcpProbe(env.pair.b, env.pair.v4a, APP_PORT, 1500);
}

async function writeFile(env: Env, name: string, bytes: Uint8Array) {
  const path = `${env.kit.dir}/${name}`;
  await Deno.writeFile(path, bytes);
  return path;
}

/** POSTs a file (or GETs) from namespace B over a new connection. */
async function post(env: Env, path: string, file?: string) {
  const argv = [Deno.execPath(), "run", "--allow-net", "--allow-read"]
    .concat([HTTP_POST, `${env.url}${path}`], file === undefined ? [] : [file]);
  const result = await nsSpawn(env.pair.b, argv);
  return JSON.parse(result.stdout) as {
    status: number;
    // deno-lint-ignore no-explicit-any
    body: any;
    ms: number;
  };
}

function operator(env: Env, command: string, args: string[]) {
  return nsSpawn(env.pair.b, operatorArgv(command, args));
}

function bundleFor(env: Env, serial: number, window = 3, port = APP_PORT) {
  return signedBundle(env.kit, {
    serial,
    window,
    policy: blockPolicy(`try-${serial}`, port, [`${env.pair.v4b}/32`]),
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("service: a confirm within the window keeps the policy", async (t) => {
  if (!requireRoot(t)) return;
  await withHost(async (env) => {
    assert.equal(await appReachable(env), true);
    const file = await writeFile(env, "b1.json", bundleFor(env, 1, 4));
    const applied = await operator(env, "apply", [
      file,
      "--to",
      env.url,
      "--key",
      env.kit.keyPath,
      "--check",
      `tcp://${env.pair.v4a}:${API_PORT}`,
    ]);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    assert.match(applied.stdout, /confirmed: generation 1/);
    assert.equal(await appReachable(env), false);

    await sleep(4500);
    assert.equal(await appReachable(env), false, "the block was reverted");
    const status = await operator(env, "status", ["--to", env.url, "--json"]);
    const body = JSON.parse(status.stdout);
    assert.equal(body.lastKnownGood.generation, 1);
    assert.equal(body.pending, null);
    assert.ok(env.serve.find("confirm"));

    const stopped = await env.serve.kill("SIGTERM");
    assert.equal(stopped.code, 0, env.serve.stderr.join("\n"));
    assert.ok(env.serve.find("stop"));
    assert.equal(await appReachable(env), false, "stop removed the policy");
  });
});

Deno.test("service: no heartbeat reverts and apply --no-confirm exits 3", async (t) => {
  if (!requireRoot(t)) return;
  await withHost(async (env) => {
    const file = await writeFile(env, "b1.json", bundleFor(env, 1, 3));
    const applying = operator(env, "apply", [
      file,
      "--to",
      env.url,
      "--no-confirm",
    ]);
    await env.serve.waitFor("watchdog.armed");
    assert.equal(await appReachable(env), false);
    const result = await applying;
    assert.equal(result.code, 3, result.stdout + result.stderr);
    assert.match(result.stdout, /host reverted generation 1/);
    assert.equal(await appReachable(env), true);

    const armed = env.serve.find("watchdog.armed")!;
    const revert = env.serve.find("revert")!;
    assert.deepEqual(revert.removed, ["block-tcp-8080"]);
    const lag = Date.parse(String(revert.ts)) -
      Date.parse(String(armed.deadline));
    console.log(`deadline-to-reverted: ${lag} ms`);
    assert.ok(lag >= 0);
  });
});

Deno.test("service: SIGKILL inside the window, then a restart reverts", async (t) => {
  if (!requireRoot(t)) return;
  await withHost(async (env) => {
    const file = await writeFile(env, "b1.json", bundleFor(env, 1, 20));
    const pushed = await post(env, "/v1/bundles", file);
    assert.equal(pushed.status, 200, JSON.stringify(pushed.body));
    assert.equal(await appReachable(env), false);

    const killed = await env.serve.kill("SIGKILL");
    assert.equal(killed.signal, "SIGKILL");
    // The kernel keeps the rules: only the restart can undo them.
    assert.equal(await appReachable(env), false);

    const serve = await env.restart();
    const recovered = serve.find("recover.pending");
    assert.equal(recovered?.generation, 1);
    assert.equal(await appReachable(env), true);
    const status = await post(env, "/v1/status");
    assert.equal(status.body.pending, null);
    assert.equal(status.body.active, null);
    const tables = JSON.stringify(await nftDump(env.pair.a));
    assert.ok(!tables.includes('"palisade"'), tables);
  });
});

Deno.test("service: a bundle that blocks the management port reverts by itself", async (t) => {
  if (!requireRoot(t)) return;
  await withHost(async (env) => {
    const file = await writeFile(
      env,
      "b1.json",
      bundleFor(env, 1, 4, API_PORT),
    );
    const result = await operator(env, "apply", [
      file,
      "--to",
      env.url,
      "--key",
      env.kit.keyPath,
      "--timeout",
      "2",
    ]);
    assert.equal(result.code, 3, result.stdout + result.stderr);
    assert.match(result.stdout, /no heartbeat sent/);
    assert.equal(env.serve.find("confirm"), undefined);
    assert.ok(env.serve.find("watchdog.expired"));
    const status = await post(env, "/v1/status");
    assert.equal(status.status, 200);
    assert.equal(status.body.active, null);
  });
});

Deno.test("service: replays, foreign hosts, lower serials and bad signatures change nothing", async (t) => {
  if (!requireRoot(t)) return;
  await withHost(async (env) => {
    const first = await writeFile(env, "b5.json", bundleFor(env, 5, 30));
    const pushed = await post(env, "/v1/bundles", first);
    assert.equal(pushed.status, 200, JSON.stringify(pushed.body));
    const commit = await env.serve.waitFor("apply.commit");
    const baseline = await post(env, "/v1/status");
    console.log(
      `push round trip (push-to-enforced): ${pushed.ms.toFixed(1)} ms; ` +
        `engine transaction ${commit.durationMs} ms; ` +
        `status round trip ${baseline.ms.toFixed(1)} ms`,
    );
    assert.equal(await appReachable(env), false);
    const beat = await writeFile(
      env,
      "hb.json",
      signedHeartbeat(env.kit, 1, pushed.body.nonce),
    );
    const confirmed = await post(env, "/v1/heartbeat", beat);
    assert.equal(confirmed.status, 200, JSON.stringify(confirmed.body));

    const before = await nftDump(env.pair.a);
    const statusBefore = (await post(env, "/v1/status")).body;

    const replay = await post(env, "/v1/heartbeat", beat);
    assert.ok(replay.status >= 400, JSON.stringify(replay.body));

    const foreign = await writeFile(
      env,
      "foreign.json",
      signedBundle(env.kit, {
        serial: 9,
        policy: blockPolicy("other", 9090, [`${env.pair.v4b}/32`]),
        targets: ["db-7"],
      }),
    );
    const wrongHost = await post(env, "/v1/bundles", foreign);
    assert.equal(wrongHost.status, 403);
    assert.equal(wrongHost.body.error.code, "wrong-host");

    const lower = await writeFile(env, "b3.json", bundleFor(env, 3, 30));
    const lowSerial = await post(env, "/v1/bundles", lower);
    assert.equal(lowSerial.body.error.code, "serial-too-low");
    assert.equal(lowSerial.status, 409);

    const good = JSON.parse(
      new TextDecoder().decode(bundleFor(env, 10, 30)),
    );
    const sig = good.signatures[0].sig as string;
    good.signatures[0].sig = (sig[0] === "A" ? "B" : "A") + sig.slice(1);
    const forged = await writeFile(
      env,
      "forged.json",
      new TextEncoder().encode(JSON.stringify(good)),
    );
    const badSig = await post(env, "/v1/bundles", forged);
    assert.equal(badSig.status, 403);
    assert.match(badSig.body.error.code, /signature/);

    assert.deepEqual(await nftDump(env.pair.a), before);
    const statusAfter = (await post(env, "/v1/status")).body;
    assert.deepEqual(statusAfter.active, statusBefore.active);
    assert.deepEqual(statusAfter.lastKnownGood, statusBefore.lastKnownGood);
    assert.equal(await appReachable(env), false);

    const metrics = await post(env, "/metrics");
    assert.match(
      metrics.body,
      /palisade_refusals_total\{reason="wrong-host"\} 1/,
    );
    await sleep(1000);
    const rss = await env.serve.rssKiB();
    console.log(`idle RSS of serve: ${rss} KiB`);
    assert.ok(rss > 0, "no RSS figure");
  });
});

Deno.test("service: a second serve on the same host changes nothing", async (t) => {
  if (!requireRoot(t)) return;
  await withHost(async (env) => {
    const file = await writeFile(env, "b1.json", bundleFor(env, 1, 30));
    const pushed = await post(env, "/v1/bundles", file);
    assert.equal(pushed.status, 200, JSON.stringify(pushed.body));
    const before = await nftDump(env.pair.a);

    const second = await nsSpawn(env.pair.a, serveArgv(env.kit));
    assert.equal(second.code, 1, second.stderr);
    assert.match(second.stderr, /another Palisade service \(pid \d+/);
    assert.match(second.stderr, /state\/lock/);
    assert.deepEqual(await nftDump(env.pair.a), before);
    assert.equal(await appReachable(env), false, "the block stays");

    const status = await post(env, "/v1/status");
    assert.equal(status.body.state, "pending");
    assert.equal(status.body.pending.generation, 1);
  });
});
