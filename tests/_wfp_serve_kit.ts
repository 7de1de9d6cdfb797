/**
 * Shared setup of the tests that run the real `palisade serve` on the
 * WFP engine against the simulator: a service folder whose config names
 * `"engine": "wfp"` and the simulator library, a private simulator store
 * file, the narrow `serve` flags with the simulator as the only FFI
 * grant, a `serve` child process, plain HTTP calls and complete
 * simulator dumps read in the test process from the same store.
 *
 * @module
 */
import { readWfpsimDump, type WfpsimDump } from "../tools/wfpsim_dump.ts";
import { validatePolicyValue } from "../policy/parse.ts";
import { openWfpBackend } from "../policy/wfp_backend.ts";
import {
  MAIN,
  makeServiceKit,
  serveFlags,
  type ServiceKit,
} from "./_service_kit.ts";
import { SIM_PATH } from "./reliability/_kit.ts";

export { SIM_PATH };

/** A service folder for the WFP engine with its own simulator store. */
export interface WfpServiceKit extends ServiceKit {
  /** The simulator's persisted-object file (`WFPSIM_STORE`). */
  store: string;
}

/** Options of {@linkcode makeWfpServiceKit}. */
export interface WfpKitOptions {
  /** `127.0.0.1:PORT`. */
  listen: string;
  commitWindow?: { default: number; max: number };
  wfpMode?: "persistent" | "dynamic";
}

/** Makes a key, a trust store and a WFP config in a new folder. */
export async function makeWfpServiceKit(
  opts: WfpKitOptions,
): Promise<WfpServiceKit> {
  const kit = await makeServiceKit({
    listen: opts.listen,
    commitWindow: opts.commitWindow,
    extra: {
      engine: "wfp",
      wfpLibrary: SIM_PATH,
      ...(opts.wfpMode ? { wfpMode: opts.wfpMode } : {}),
    },
  });
  // Outside the service's read and write grants: the simulator opens it
  // from C, as the base filtering engine keeps its own store on Windows.
  const storeDir = `${kit.dir}/bfe`;
  await Deno.mkdir(storeDir);
  return { ...kit, store: `${storeDir}/wfpsim.store` };
}

/** A free TCP port on 127.0.0.1 (bound, read and released). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * `deno run` arguments of `serve` for the kit: the narrow `serve` flags
 * of {@linkcode serveFlags} with the simulator as the only FFI grant in
 * place of libnftables, and `extra` flags (such as the crash hook's
 * environment grant) in front.
 */
export function wfpServeArgs(kit: ServiceKit, extra: string[] = []): string[] {
  const flags = serveFlags(kit).filter((f) => !f.startsWith("--allow-ffi"));
  return [
    "run",
    ...extra,
    ...flags,
    `--allow-ffi=${SIM_PATH}`,
    MAIN,
    "serve",
    "--config",
    kit.configPath,
  ];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A `serve` process on WFP whose JSON log lines are collected. */
export class WfpServe implements AsyncDisposable {
  readonly lines: Record<string, unknown>[] = [];
  readonly stderr: string[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  #exited = false;

  /**
   * Spawns `serve` for `kit` with `WFPSIM_STORE` set to the kit's store;
   * with `crashPoint`, also grants and sets `PALISADE_CRASHPOINT`.
   */
  constructor(kit: WfpServiceKit, opts: { crashPoint?: string } = {}) {
    const extra = opts.crashPoint === undefined
      ? []
      : ["--allow-env=PALISADE_CRASHPOINT"];
    this.#child = new Deno.Command("deno", {
      args: wfpServeArgs(kit, extra),
      env: {
        NO_COLOR: "1",
        WFPSIM_STORE: kit.store,
        ...(opts.crashPoint ? { PALISADE_CRASHPOINT: opts.crashPoint } : {}),
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).spawn();
    this.status = this.#child.status;
    this.status.then(() => this.#exited = true);
    this.#collect(this.#child.stdout, (line) => {
      try {
        this.lines.push(JSON.parse(line));
      } catch {
        this.lines.push({ event: "non-json", text: line });
      }
    });
    this.#collect(this.#child.stderr, (line) => this.stderr.push(line));
  }

  /** PID of the service process. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Waits (bounded) for `listening`; false when the process exited. */
  async listening(timeoutMs = 30_000): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (this.find("listening")) return true;
      if (this.#exited) return false;
      await sleep(25);
    }
    throw new Error(`Cannot see serve listen within ${timeoutMs} ms`);
  }

  /** Like {@linkcode listening} but throws with the output on exit. */
  async started(): Promise<this> {
    if (!(await this.listening())) {
      await this.status;
      throw new Error(`Cannot start serve: ${this.output()}`);
    }
    return this;
  }

  /** The first log line with `event`, if any. */
  find(event: string): Record<string, unknown> | undefined {
    return this.lines.find((l) => l.event === event);
  }

  /** Waits (bounded) for a log line with `event`. */
  async waitFor(
    event: string,
    timeoutMs = 20_000,
  ): Promise<Record<string, unknown>> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      const found = this.find(event);
      if (found) return found;
      await sleep(25);
    }
    throw new Error(
      `Cannot see log event ${event} within ${timeoutMs} ms: ${this.output()}`,
    );
  }

  /** Everything the process printed, for failure messages. */
  output(): string {
    return [...this.stderr, ...this.lines.map((l) => JSON.stringify(l))]
      .join("\n");
  }

  /** Sends `signal` (unless gone) and waits for the exit. */
  async stop(signal: Deno.Signal = "SIGKILL"): Promise<Deno.CommandStatus> {
    if (!this.#exited) {
      try {
        this.#child.kill(signal);
      } catch {
        // Already gone.
      }
    }
    return await this.status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop("SIGKILL");
  }

  #collect(stream: ReadableStream<Uint8Array>, push: (line: string) => void) {
    (async () => {
      let buffer = "";
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let cut;
        while ((cut = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 1);
          if (line.trim() !== "") push(line);
        }
      }
      if (buffer.trim() !== "") push(buffer);
    })().catch(() => {});
  }
}

/** A reply of {@linkcode call}; a dropped connection is status 0. */
export interface Reply {
  status: number;
  // deno-lint-ignore no-explicit-any
  json: any;
}

/** One request to the kit's API over a new connection. */
export async function call(
  kit: ServiceKit,
  path: string,
  body?: Uint8Array<ArrayBuffer>,
): Promise<Reply> {
  using client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    const reply = await fetch(`http://${kit.listen}${path}`, {
      method: body ? "POST" : "GET",
      body,
      client,
      signal: AbortSignal.timeout(20_000),
    });
    return { status: reply.status, json: await reply.json() };
  } catch (error) {
    return { status: 0, json: { error: String(error) } };
  }
}

/**
 * Runs `fn` with `WFPSIM_STORE` set to `store` in this process (the
 * simulator follows the variable on every call), then restores it.
 */
export function withStore<T>(store: string, fn: () => T): T {
  const before = Deno.env.get("WFPSIM_STORE");
  Deno.env.set("WFPSIM_STORE", store);
  try {
    return fn();
  } finally {
    if (before === undefined) Deno.env.delete("WFPSIM_STORE");
    else Deno.env.set("WFPSIM_STORE", before);
  }
}

/** The complete simulator dump of `store`. */
export function simDump(store: string): WfpsimDump {
  return withStore(store, () => readWfpsimDump(SIM_PATH));
}

/**
 * A complete dump as text with the run-time filter IDs taken out (they
 * count every filter ever added); everything else, weights included,
 * is kept.
 */
export function withoutIds(dump: WfpsimDump): string {
  return JSON.stringify({
    ...dump,
    filters: dump.filters.map(({ id: _id, ...rest }) => rest),
  });
}

/**
 * Reference dumps (see {@linkcode withoutIds}) of each policy applied
 * on an empty engine, plus `empty`, made in this process on a scratch
 * store next to `dir`.
 */
export function referenceDumps(
  dir: string,
  policies: Record<string, unknown>,
  opts: { dynamic?: boolean } = {},
): Record<string, string> {
  const store = `${dir}/reference.store`;
  return withStore(store, () => {
    const out: Record<string, string> = {};
    using backend = openWfpBackend({
      library: SIM_PATH,
      dynamic: opts.dynamic,
    });
    backend.removeAll();
    out.empty = withoutIds(readWfpsimDump(SIM_PATH));
    for (const [name, value] of Object.entries(policies)) {
      backend.apply(validatePolicyValue(value, name).policy, null);
      out[name] = withoutIds(readWfpsimDump(SIM_PATH));
      backend.removeAll();
    }
    return out;
  });
}

/** Output of an operator process. */
export interface CommandRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `palisade panic --engine wfp --wfp-library SIM` as a separate
 * process on `store`, granted only the simulator library.
 */
export async function runPanic(store: string): Promise<CommandRun> {
  const output = await new Deno.Command("deno", {
    args: [
      "run",
      "--no-prompt",
      `--allow-ffi=${SIM_PATH}`,
      MAIN,
      "panic",
      "--engine",
      "wfp",
      "--wfp-library",
      SIM_PATH,
    ],
    env: { NO_COLOR: "1", WFPSIM_STORE: store },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}
