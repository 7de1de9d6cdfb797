/**
 * Shared setup of the service tests and the demo: a temporary folder
 * with a signing key, a trust store and a service config, signed
 * bundles and statements, and the explicit permission flags that mirror
 * the `serve` set for that folder.
 *
 * @module
 */
import {
  encodePrivateKeyPem,
  encodePublicKeyPem,
  type Envelope,
  generateKeyPair,
  makeBundleStatement,
  makeConfirmStatement,
  makeRollbackStatement,
  type PrivateKey,
  serializeEnvelope,
  signStatement,
} from "../signing/mod.ts";

/** Absolute path of `main.ts`. */
export const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** A temporary service folder. */
export interface ServiceKit {
  dir: string;
  host: string;
  key: PrivateKey;
  keyPath: string;
  trustPath: string;
  configPath: string;
  stateDir: string;
  logDir: string;
  listen: string;
}

/** Options of {@linkcode makeServiceKit}. */
export interface KitOptions {
  host?: string;
  /** `IP:PORT`, `[IPv6]:PORT` or a socket path. */
  listen: string;
  commitWindow?: { default: number; max: number };
  /** Extra config keys. */
  extra?: Record<string, unknown>;
  /** Parent of the temporary folder. */
  parent?: string;
}

/** Makes a key, a trust store and a config in a new temporary folder. */
export async function makeServiceKit(opts: KitOptions): Promise<ServiceKit> {
  const dir = await Deno.makeTempDir({
    dir: opts.parent,
    prefix: "palisade-svc-",
  });
  const host = opts.host ?? "web-1";
  const { privateKey } = generateKeyPair();
  const keyPath = `${dir}/operator.key`;
  await Deno.writeTextFile(keyPath, encodePrivateKeyPem(privateKey), {
    mode: 0o600,
  });
  const trustPath = `${dir}/trust.jsonc`;
  await Deno.writeTextFile(
    trustPath,
    JSON.stringify(
      {
        keys: [{
          id: privateKey.publicKey.id,
          publicKey: encodePublicKeyPem(privateKey.publicKey),
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
  await Deno.writeTextFile(
    configPath,
    JSON.stringify(
      {
        host,
        listen: opts.listen,
        trust: trustPath,
        stateDir,
        logDir,
        engine: "nft",
        commitWindow: opts.commitWindow ?? { default: 5, max: 60 },
        ...opts.extra,
      },
      null,
      2,
    ),
  );
  return {
    dir,
    host,
    key: privateKey,
    keyPath,
    trustPath,
    configPath,
    stateDir,
    logDir,
    listen: opts.listen,
  };
}

function bytesOf(envelope: Envelope): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(serializeEnvelope(envelope));
}

/** A policy blocking inbound TCP to `port` from `from` (CIDRs). */
export function blockPolicy(
  name: string,
  port: number,
  from: string[],
): unknown {
  return {
    name,
    rules: [{
      id: `block-tcp-${port}`,
      action: "block",
      direction: "in",
      protocol: "tcp",
      remote: from,
      localPorts: [port],
      comment: "closed while the change is tried",
    }],
  };
}

/** A signed bundle for the kit's host. */
export function signedBundle(
  kit: ServiceKit,
  init: {
    serial: number;
    policy: unknown;
    window?: number;
    targets?: string[];
    key?: PrivateKey;
  },
): Uint8Array<ArrayBuffer> {
  const statement = makeBundleStatement({
    policy: init.policy,
    serial: init.serial,
    targets: init.targets ?? [kit.host],
    commitWindowSeconds: init.window ?? 5,
    issuedAt: new Date(Date.now() - 60_000),
  });
  return bytesOf(signStatement("bundle", statement, [init.key ?? kit.key]));
}

/** A signed heartbeat. */
export function signedHeartbeat(
  kit: ServiceKit,
  generation: number,
  nonce: string,
  host = kit.host,
): Uint8Array<ArrayBuffer> {
  const statement = makeConfirmStatement({ host, generation, nonce });
  return bytesOf(signStatement("confirm", statement, [kit.key]));
}

/** A signed rollback command. */
export function signedRollback(
  kit: ServiceKit,
  to: "last-known-good" | "empty" = "last-known-good",
): Uint8Array<ArrayBuffer> {
  const statement = makeRollbackStatement({
    host: kit.host,
    nonce: crypto.randomUUID(),
    to,
    validSeconds: 60,
  });
  return bytesOf(signStatement("rollback", statement, [kit.key]));
}

type Grant = boolean | string[] | undefined;

/** The `serve` permission set of `deno.json`. */
function serveSet(): Record<string, Grant> {
  const config = JSON.parse(
    Deno.readTextFileSync(new URL("../deno.json", import.meta.url)),
  );
  return config.permissions.serve;
}

function flag(kind: string, grant: Grant): string[] {
  if (grant === true) return [`--allow-${kind}`];
  if (Array.isArray(grant) && grant.length > 0) {
    const root = new URL("../", import.meta.url).pathname;
    const values = grant.map((v) => v.startsWith("./") ? root + v.slice(2) : v);
    return [`--allow-${kind}=${values.join(",")}`];
  }
  return [];
}

/**
 * The `deno run` flags of `serve` for the kit: the `serve` permission
 * set of `deno.json` with the kit's folder in place of the install
 * folders and its listen address in place of the default ones. Written
 * out in full because a flag on the command line replaces that kind's
 * list of a permission set.
 */
export function serveFlags(kit: ServiceKit): string[] {
  const set = serveSet();
  const unix = kit.listen.startsWith("/");
  const write = [kit.stateDir, kit.logDir, ...(unix ? [kit.listen] : [])];
  return [
    "--no-prompt",
    `--allow-read=${kit.dir}`,
    `--allow-write=${write.join(",")}`,
    ...(unix ? [] : [`--allow-net=${kit.listen}`]),
    ...flag("ffi", set.ffi),
    ...flag("sys", set.sys),
    ...flag("env", set.env),
    ...flag("run", set.run),
  ];
}

/** argv that runs `serve` for the kit under its narrow permissions. */
export function serveArgv(kit: ServiceKit): string[] {
  return [
    Deno.execPath(),
    "run",
    ...serveFlags(kit),
    MAIN,
    "serve",
    "--config",
    kit.configPath,
  ];
}

/** argv that runs an operator command (`apply`, `status`, `rollback`). */
export function operatorArgv(command: string, args: string[]): string[] {
  return [
    Deno.execPath(),
    "run",
    "--no-prompt",
    "--allow-read",
    "--allow-net",
    MAIN,
    command,
    ...args,
  ];
}

/** A `serve` child process whose log lines are collected. */
export class ServeProcess implements AsyncDisposable {
  readonly lines: Record<string, unknown>[] = [];
  readonly stderr: string[] = [];
  readonly #child: Deno.ChildProcess;
  #exited: Promise<Deno.CommandStatus>;
  #done = false;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#exited = child.status;
    this.#collect(child.stdout, (line) => {
      try {
        this.lines.push(JSON.parse(line));
      } catch {
        this.lines.push({ event: "non-json", text: line });
      }
    });
    this.#collect(child.stderr, (line) => this.stderr.push(line));
    this.#exited.then(() => this.#done = true);
  }

  /**
   * Starts `serve` (inside namespace `ns` when given) and waits for its
   * `listening` line.
   *
   * @throws {Error} with its output when it exits or stays silent
   */
  static async start(
    kit: ServiceKit,
    ns?: string,
    timeoutMs = 30_000,
  ): Promise<ServeProcess> {
    const argv = serveArgv(kit);
    const full = ns === undefined ? argv : ["ip", "netns", "exec", ns, ...argv];
    const child = new Deno.Command(full[0], {
      args: full.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const serve = new ServeProcess(child);
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (serve.find("listening")) return serve;
      if (serve.#done) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await serve.kill("SIGKILL");
    throw new Error(
      `Cannot start serve: ${serve.stderr.join("\n")}\n${
        serve.lines.map((l) => JSON.stringify(l)).join("\n")
      }`,
    );
  }

  /** PID of the service process. */
  get pid(): number {
    return this.#child.pid;
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
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`Cannot see log event ${event} within ${timeoutMs} ms`);
  }

  /** Sends `signal` and waits for the exit. */
  async kill(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    if (!this.#done) {
      try {
        this.#child.kill(signal);
      } catch {
        // Already gone.
      }
    }
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }, 20_000);
    try {
      return await this.#exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Resident memory of the service in KiB, from `/proc` (read through
   * `sh`, since Deno grants `/proc` files only with every permission).
   */
  async rssKiB(): Promise<number> {
    const output = await new Deno.Command("sh", {
      args: ["-c", 'grep "^VmRSS:" "/proc/$1/status"', "sh", String(this.pid)],
      stdout: "piped",
      stderr: "null",
    }).output();
    const text = new TextDecoder().decode(output.stdout);
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(text);
    return match === null ? NaN : Number(match[1]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill("SIGKILL");
  }

  #collect(stream: ReadableStream<Uint8Array>, push: (line: string) => void) {
    (async () => {
      let buffer = "";
      for await (
        const chunk of stream.pipeThrough(new TextDecoderStream())
      ) {
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
