/**
 * `deno task demo` (root, Linux): the main job on a real firewall.
 *
 * Two network namespaces joined by a veth pair: "host" runs `palisade
 * serve` under the flags of its permission set and a TCP service on
 * port 8080; "client" is where the operator and the traffic come from.
 * The demo makes a key, a trust store and a policy that closes 8080 to
 * the client, pushes it without a heartbeat (blocked, then reverted by
 * itself when the window runs out), then pushes it again with a
 * confirm (blocked, and it stays so). It cleans up after itself, also
 * when interrupted, and exits non-zero when anything differs from that
 * story.
 *
 * @module
 */
import { keyIdOf, parsePrivateKeyPem, parsePublicKeyPem } from "../mod.ts";
import {
  type NetnsPair,
  type SpawnResult,
  tcpListen,
  tcpProbe,
  withNetnsPair,
} from "../tests/_netns.ts";
import {
  MAIN,
  operatorArgv,
  ServeProcess,
  type ServiceKit,
} from "../tests/_service_kit.ts";

const APP_PORT = 8080;
const API_PORT = 7443;
const WINDOW = 5;
const HOST = "demo-host";
// By name, so that the task's `--allow-run=deno` covers it.
const DENO = "deno";

const started = Date.now();
let failures = 0;
const interrupt = new AbortController();

/** What the demo shows when an expectation fails. */
const context: { apply?: SpawnResult; serve?: ServeProcess } = {};

function say(text: string): void {
  const at = ((Date.now() - started) / 1000).toFixed(1).padStart(5);
  console.log(`[${at}s] ${text}`);
}

function expect(what: string, ok: boolean): void {
  say(`${ok ? "PASS" : "FAIL"}  ${what}`);
  if (!ok) {
    failures++;
    showContext();
  }
}

function tail(lines: string[], count: number): string {
  const shown = lines.filter((l) => l.trim() !== "").slice(-count);
  return shown.length === 0
    ? "          | (nothing)"
    : indent(shown.join("\n"));
}

/** Prints the last lines of `apply` and of the serve log. */
function showContext(): void {
  if (context.apply !== undefined) {
    const { code, stdout, stderr } = context.apply;
    console.log(`        last apply output (exit ${code}):`);
    console.log(tail((stdout + "\n" + stderr).split("\n"), 15));
  }
  if (context.serve !== undefined) {
    const log = context.serve.lines.map((l) => JSON.stringify(l));
    console.log("        last serve log lines:");
    console.log(tail([...log, ...context.serve.stderr], 20));
  }
}

/** Settles with `promise`, or rejects at once on an interrupt. */
function guard<T>(promise: Promise<T>): Promise<T> {
  checkInterrupt();
  return Promise.race([
    promise,
    new Promise<never>((_, reject) =>
      interrupt.signal.addEventListener(
        "abort",
        () => reject(new Error("interrupted")),
        { once: true },
      )
    ),
  ]);
}

/**
 * Probes until the answer is `expected` or `budgetMs` is spent: one
 * slow probe on a loaded machine must not decide an expectation.
 */
async function probeUntil(
  probe: () => Promise<boolean>,
  expected: boolean,
  budgetMs: number,
): Promise<boolean> {
  const until = Date.now() + budgetMs;
  for (let attempt = 0; attempt < 10; attempt++) {
    const answer = await guard(probe());
    if (answer === expected || Date.now() >= until) return answer;
    await sleep(250);
  }
  return !expected;
}

/**
 * Waits for `event` in the serve log, giving up early when `running`
 * (the command that should cause it) ends without it.
 */
async function waitForEvent(
  serve: ServeProcess,
  event: string,
  running: Promise<unknown>,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  let ended = false;
  running.then(() => ended = true, () => ended = true);
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const found = serve.find(event);
    if (found) return found;
    if (ended) {
      // The command is done; one last look for a line still in flight.
      await sleep(500);
      const late = serve.find(event);
      if (late) return late;
      throw new Error(`Cannot see log event ${event}: the command ended`);
    }
    await sleep(50);
  }
  throw new Error(`Cannot see log event ${event} within ${timeoutMs} ms`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    interrupt.signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new Error("interrupted"));
    }, { once: true });
  });
}

function checkInterrupt(): void {
  if (interrupt.signal.aborted) throw new Error("interrupted");
}

/** Runs `argv` (inside `ns` when given), cut short by an interrupt. */
async function spawn(argv: string[], ns?: string): Promise<SpawnResult> {
  checkInterrupt();
  const full = ns === undefined ? argv : ["ip", "netns", "exec", ns, ...argv];
  const output = await new Deno.Command(full[0], {
    args: full.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.any([interrupt.signal, AbortSignal.timeout(120_000)]),
  }).output();
  checkInterrupt();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Runs `apply` (or another operator command) and keeps its output. */
async function operator(argv: string[], ns: string): Promise<SpawnResult> {
  const result = await spawn(argv, ns);
  if (argv.includes("apply")) context.apply = result;
  return result;
}

async function run(argv: string[]): Promise<SpawnResult> {
  const result = await spawn(argv);
  if (result.code !== 0) {
    throw new Error(
      `Cannot run ${argv.slice(4).join(" ")}: ${result.stderr.trim()}`,
    );
  }
  return result;
}

function indent(text: string): string {
  return text.trim().split("\n").map((l) => `          | ${l}`).join("\n");
}

async function setUp(dir: string, pair: NetnsPair): Promise<ServiceKit> {
  const keyPrefix = `${dir}/operator`;
  const files = [`--allow-read=${dir}`, `--allow-write=${dir}`];
  const keygen = await run([
    DENO,
    "run",
    ...files,
    MAIN,
    "keygen",
    "--out",
    keyPrefix,
  ]);
  say(`keygen: ${keygen.stdout.trim()}`);
  const publicPem = await Deno.readTextFile(`${keyPrefix}.pub`);
  const trustPath = `${dir}/trust.jsonc`;
  await Deno.writeTextFile(
    trustPath,
    JSON.stringify(
      {
        keys: [{
          id: keyIdOf(parsePublicKeyPem(publicPem, `${keyPrefix}.pub`)),
          publicKey: publicPem,
          allow: ["bundle", "confirm", "rollback"],
        }],
        threshold: { bundle: 1, confirm: 1, rollback: 1 },
      },
      null,
      2,
    ),
  );
  const stateDir = `${dir}/state`;
  const logDir = `${dir}/logs`;
  const configPath = `${dir}/config.jsonc`;
  const listen = `${pair.v4a}:${API_PORT}`;
  await Deno.writeTextFile(
    configPath,
    JSON.stringify(
      {
        host: HOST,
        listen,
        trust: trustPath,
        stateDir,
        logDir,
        engine: "nft",
        commitWindow: { default: WINDOW, max: 60 },
      },
      null,
      2,
    ),
  );
  await Deno.writeTextFile(
    `${dir}/policy.jsonc`,
    JSON.stringify(
      {
        name: "close-8080-to-client",
        rules: [{
          id: "block-app-from-client",
          action: "block",
          direction: "in",
          protocol: "tcp",
          remote: [`${pair.v4b}/32`],
          localPorts: [APP_PORT],
          comment: "the change being tried",
        }],
      },
      null,
      2,
    ),
  );
  say(`trust store, config and policy written in ${dir}`);
  const keyPath = `${keyPrefix}.key`;
  return {
    dir,
    host: HOST,
    key: parsePrivateKeyPem(await Deno.readTextFile(keyPath), keyPath),
    keyPath,
    trustPath,
    configPath,
    stateDir,
    logDir,
    listen,
  };
}

async function sign(kit: ServiceKit, serial: number): Promise<string> {
  const out = `${kit.dir}/bundle-${serial}.json`;
  await run([
    DENO,
    "run",
    `--allow-read=${kit.dir}`,
    `--allow-write=${kit.dir}`,
    MAIN,
    "sign",
    "--key",
    kit.keyPath,
    "--policy",
    `${kit.dir}/policy.jsonc`,
    "--serial",
    String(serial),
    "--target",
    HOST,
    "--window",
    String(WINDOW),
    "--expires",
    "1h",
    "--out",
    out,
  ]);
  say(`signed bundle serial ${serial} (window ${WINDOW} s): ${out}`);
  return out;
}

async function demo(pair: NetnsPair, dir: string): Promise<void> {
  say(
    `namespaces: host ${pair.a} (${pair.v4a}), client ${pair.b} (${pair.v4b})`,
  );
  const kit = await setUp(dir, pair);
  const probe = () => tcpProbe(pair.b, pair.v4a, APP_PORT, 1500);
  const reachable = (budgetMs = 10_000) => probeUntil(probe, true, budgetMs);
  const blocked = async (budgetMs = 10_000) =>
    !await probeUntil(probe, false, budgetMs);
  const url = `http://${pair.v4a}:${API_PORT}`;

  await using _app = await tcpListen(pair.a, APP_PORT);
  say(`TCP service listening on ${pair.v4a}:${APP_PORT} in the host namespace`);
  let serve = await guard(ServeProcess.start(kit, pair.a, 60_000));
  context.serve = serve;
  const stopServe = () => serve.kill("SIGTERM");
  interrupt.signal.addEventListener("abort", () => void stopServe());
  try {
    say(`palisade serve running (pid ${serve.pid}) on ${url}`);
    expect("client reaches port 8080 before any policy", await reachable());

    // 1. Push without a heartbeat: blocked, then reverted by the host.
    const first = await sign(kit, 1);
    say("apply --no-confirm: push, send no heartbeat, wait for the window");
    const applying = operator(
      operatorArgv("apply", [first, "--to", url, "--no-confirm"]),
      pair.b,
    );
    applying.catch(() => {}); // awaited below; an early end is seen here
    // The operator's deno may take long to start on a loaded machine.
    const armed = await guard(
      waitForEvent(serve, "watchdog.armed", applying, 90_000),
    );
    say(
      `host: generation ${armed.generation} applied, deadline ${armed.deadline}`,
    );
    const pendingMs = Date.parse(String(armed.deadline)) - Date.now() - 500;
    expect(
      "client is blocked while the change is pending",
      await blocked(Math.max(0, pendingMs)),
    );
    const noConfirm = await applying;
    console.log(indent(noConfirm.stdout + noConfirm.stderr));
    expect("apply --no-confirm exits 3 (reverted)", noConfirm.code === 3);
    const revert = serve.find("revert");
    if (revert) {
      const lag = Date.parse(String(revert.ts)) -
        Date.parse(String(armed.deadline));
      say(
        `host: reverted ${lag} ms after the deadline, removed ${
          JSON.stringify(revert.removed)
        }`,
      );
    }
    expect(
      "client reaches port 8080 again after the auto-revert",
      await reachable(),
    );
    checkInterrupt();

    // 2. Push again with a confirm: the block stays.
    const second = await sign(kit, 2);
    say("apply with health checks and a signed heartbeat");
    const confirmed = await operator(
      operatorArgv("apply", [
        second,
        "--to",
        url,
        "--key",
        kit.keyPath,
        "--check",
        `tcp://${pair.v4a}:${API_PORT}`,
      ]),
      pair.b,
    );
    console.log(indent(confirmed.stdout + confirmed.stderr));
    expect("apply exits 0 (confirmed)", confirmed.code === 0);
    expect("client is blocked after the confirm", await blocked());
    say(`waiting ${WINDOW + 2} s, past the window`);
    await sleep((WINDOW + 2) * 1000);
    expect("client is still blocked after the window", await blocked());
    const status = await operator(
      operatorArgv("status", ["--to", url]),
      pair.b,
    );
    console.log(indent(status.stdout + status.stderr));
    expect(
      "status shows generation 2 as last known good",
      /last known good: generation 2 /.test(status.stdout),
    );
    say(`idle memory of the service: ${await serve.rssKiB()} KiB RSS`);

    // 3. Graceful stop leaves the policy in force.
    await serve.kill("SIGTERM");
    // The last log lines may still be in the pipe when the exit is seen.
    const stopped = await guard(
      waitForEvent(serve, "stop", Promise.resolve(), 5000).then(
        () => true,
        () => false,
      ),
    );
    expect("serve logged its stop", stopped);
    expect(
      "the policy stays in force after the service stops",
      await blocked(),
    );
    serve = await guard(ServeProcess.start(kit, pair.a, 60_000));
    context.serve = serve;
    say("restarted the service: it re-applies the last known good");
    expect("still blocked after the restart", await blocked());
  } catch (error) {
    if (!interrupt.signal.aborted) {
      say(`FAIL  ${(error as Error).message}`);
      showContext();
    }
    throw error;
  } finally {
    await serve.kill("SIGTERM");
  }
}

if (import.meta.main) {
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) {
    console.error(
      "palisade demo: Cannot run: needs root on Linux (network namespaces)",
    );
    Deno.exit(1);
  }
  const onSignal = () => {
    say("interrupted: cleaning up");
    interrupt.abort();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const dir = await Deno.makeTempDir({ prefix: "palisade-demo-" });
  let code = 0;
  try {
    await withNetnsPair((pair) => demo(pair, dir));
  } catch (error) {
    console.error(`palisade demo: ${(error as Error).message}`);
    code = 1;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  if (interrupt.signal.aborted) code = 130;
  else if (failures > 0) code = 1;
  say(
    code === 0
      ? "demo passed; namespaces, processes and files removed"
      : code === 130
      ? "demo interrupted; namespaces, processes and files removed"
      : `demo failed (${failures} expectation(s)); everything removed`,
  );
  Deno.exit(code);
}
