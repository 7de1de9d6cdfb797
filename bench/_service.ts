/**
 * Service start and memory: `main.ts serve` spawned with a temporary
 * config under the flags of the `serve` permission set (paths swapped
 * for the temporary folder), timed from spawn to its `listening` log
 * line; resident memory read from `/proc/<pid>/status` when idle and
 * while holding a large policy pushed through the control API.
 *
 * @module
 */
import { run } from "./_netns.ts";
import { addressPolicyValue } from "./_policies.ts";
import { benchSigner } from "./_signing.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;

// Limitation: the service is measured with the nft engine only; the
// WFP engine through the service (simulator) is not measured.

/** Where the service listens; the namespace is fresh, so it is free. */
const LISTEN = "127.0.0.1:7443";
const HOST = "bench-host";

/** How long memory settles before it is read. */
const SETTLE_MS = 1500;

type Grant = boolean | string[] | undefined;

function serveFlags(dir: string): string[] {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`));
  const set = config.permissions.serve as Record<string, Grant>;
  const flag = (kind: string, grant: Grant) => {
    if (grant === true) return [`--allow-${kind}`];
    if (Array.isArray(grant) && grant.length > 0) {
      const values = grant.map((v) =>
        v.startsWith("./") ? ROOT + v.slice(2) : v
      );
      return [`--allow-${kind}=${values.join(",")}`];
    }
    return [];
  };
  return [
    "--no-prompt",
    `--allow-read=${dir}`,
    `--allow-write=${dir}/state,${dir}/logs`,
    `--allow-net=${LISTEN}`,
    ...flag("ffi", set.ffi),
    ...flag("sys", set.sys),
    ...flag("env", set.env),
    ...flag("run", set.run),
  ];
}

/** Resident memory of `pid` in MiB (Deno reads `/proc` only with -A). */
async function rssMiB(pid: number): Promise<number> {
  const result = await run(["cat", `/proc/${pid}/status`], 10_000);
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(result.stdout);
  if (match === null) {
    throw new Error(`Cannot read the resident memory of process ${pid}`);
  }
  return Number(match[1]) / 1024;
}

/** Resolves with the time of the first stdout line with `event`. */
function watchFor(
  stream: ReadableStream<Uint8Array>,
  event: string,
  timeoutMs: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(new Error(`Cannot see the ${event} line in ${timeoutMs} ms`)),
      timeoutMs,
    );
    (async () => {
      let buffer = "";
      let found = false;
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        const lines = buffer.split("\n");
        buffer = lines.pop() ?? "";
        for (const line of lines) {
          if (!found && line.includes(`"event":"${event}"`)) {
            found = true;
            clearTimeout(timer);
            resolve(performance.now());
          }
        }
      }
      if (!found) {
        clearTimeout(timer);
        reject(new Error(`Cannot see the ${event} line: the service exited`));
      }
    })().catch(reject);
  });
}

/** Samples of one service measurement. */
export interface ServiceSamples {
  startMs: number[];
  rssIdleMiB: number[];
  rssHeldMiB: number[];
}

/**
 * Starts the service `runs` times with the nft engine in the calling
 * process's namespace (the caller makes sure it is a bench namespace)
 * and measures each start.
 *
 * @throws {Error} the service failed to start, to accept the policy or
 *   to stop
 */
export async function measureService(
  runs: number,
  addresses: number,
): Promise<ServiceSamples> {
  const signer = benchSigner();
  const samples: ServiceSamples = {
    startMs: [],
    rssIdleMiB: [],
    rssHeldMiB: [],
  };
  for (let r = 0; r < runs; r++) {
    const dir = await Deno.makeTempDir({ prefix: "palisade-bench-svc-" });
    try {
      await Deno.writeTextFile(`${dir}/trust.json`, signer.trustText);
      await Deno.writeTextFile(
        `${dir}/config.jsonc`,
        JSON.stringify({
          host: HOST,
          listen: LISTEN,
          trust: `${dir}/trust.json`,
          stateDir: `${dir}/state`,
          logDir: `${dir}/logs`,
          engine: "nft",
          commitWindow: { default: 600, max: 3600 },
        }),
      );
      await serviceRun(dir, signer, addresses, r + 1, samples);
    } finally {
      // A stopped service leaves its policy in force: clear it so the
      // next start is cold again (this namespace is the bench's own).
      await run(["nft", "delete", "table", "inet", "palisade"], 60_000);
      await Deno.remove(dir, { recursive: true });
    }
  }
  return samples;
}

async function serviceRun(
  dir: string,
  signer: ReturnType<typeof benchSigner>,
  addresses: number,
  serial: number,
  samples: ServiceSamples,
): Promise<void> {
  const bundle = signer.bundle(
    addressPolicyValue(addresses),
    serial,
    HOST,
    600,
  );
  const start = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...serveFlags(dir),
      MAIN,
      "serve",
      "--config",
      `${dir}/config.jsonc`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(120_000),
  }).spawn();
  try {
    const listening = await watchFor(child.stdout, "listening", 60_000);
    samples.startMs.push(listening - start);

    await new Promise((r) => setTimeout(r, SETTLE_MS));
    samples.rssIdleMiB.push(await rssMiB(child.pid));

    using client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
    const response = await fetch(`http://${LISTEN}/v1/bundles`, {
      method: "POST",
      body: bundle,
      client,
      signal: AbortSignal.timeout(60_000),
    });
    const text = await response.text();
    if (!response.ok) {
      throw new Error(
        `Cannot push the ${addresses}-address policy: ${response.status} ${text}`,
      );
    }
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    samples.rssHeldMiB.push(await rssMiB(child.pid));
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await child.status;
  }
}
