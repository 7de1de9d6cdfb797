/**
 * Network namespace plumbing for tests. Everything that changes a
 * firewall runs inside a namespace created here and deleted on every
 * path, so the host's own ruleset is never touched.
 *
 * @module
 */

/** Flags of `deno task test`, for test files that re-run themselves. */
export const TEST_FLAGS = [
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-net",
  "--allow-ffi",
  "--allow-sys",
  "--allow-run=ip,nft,openssl,deno,gcc,x86_64-w64-mingw32-gcc,mount,umount,sh",
];

/** Env variable naming the namespace a re-run test file lives in. */
export const NETNS_ENV = "PALISADE_TEST_NETNS";

/** Upper bound of any child process a helper starts. */
const SPAWN_TIMEOUT_MS = 180_000;

const ECHO_SERVER = new URL("./_echo_server.ts", import.meta.url).pathname;

// Seeded at random: test files may run in separate isolates of one
// process, and their namespace names must still differ.
let counter = crypto.getRandomValues(new Uint32Array(1))[0] % 1_000_000;

/** Names of the namespaces these helpers create. */
const OWN_NETNS = /^palisade-t\d+-\d+(-[a-z0-9-]+)?$/;

/** Output of a finished child process. */
export interface SpawnResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * True when this process runs in a network namespace other than the
 * host's: one that differs from PID 1's where both can be read, else
 * one of the `palisade-t*` namespaces these helpers create, as named by
 * `ip netns identify` (Deno refuses `/proc/self` without --allow-all,
 * and PID 1's namespace needs CAP_SYS_PTRACE). Any doubt answers false.
 */
export function inPrivateNetns(): boolean {
  try {
    const init = Deno.readLinkSync("/proc/1/ns/net");
    return Deno.readLinkSync("/proc/self/ns/net") !== init;
  } catch {
    // unreadable here; ask ip which named namespace this process is in
  }
  try {
    const output = new Deno.Command("ip", {
      args: ["netns", "identify"],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    if (!output.success) return false;
    const names = new TextDecoder().decode(output.stdout).split(/\s+/);
    return names.some((name) => OWN_NETNS.test(name));
  } catch {
    return false;
  }
}

/**
 * Whether a test that needs root and namespaces can run. Locally a
 * missing privilege skips the test with a message; with `CI` set it
 * fails the test instead.
 *
 * @throws {Error} not root while `CI` is set
 */
export function requireRoot(t: Deno.TestContext): boolean {
  if (Deno.uid() === 0) return true;
  const why = "needs root to create network namespaces";
  if (Deno.env.get("CI")) {
    throw new Error(`Cannot run "${t.name}": ${why} (CI is set)`);
  }
  console.warn(`SKIPPED "${t.name}": ${why}`);
  return false;
}

/** Runs `argv` to completion with a bounded time. */
export async function spawn(
  argv: string[],
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<SpawnResult> {
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? SPAWN_TIMEOUT_MS),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Runs `argv` and throws with its stderr when it fails. */
export async function mustRun(argv: string[]): Promise<string> {
  const result = await spawn(argv);
  if (result.code !== 0) {
    throw new Error(
      `Cannot run ${argv.join(" ")}: exit ${result.code}: ${result.stderr}`,
    );
  }
  return result.stdout;
}

/** Runs `argv` inside namespace `ns`. */
export function nsSpawn(
  ns: string,
  argv: string[],
  options: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<SpawnResult> {
  assertOwnNetns(ns);
  return spawn(["ip", "netns", "exec", ns, ...argv], options);
}

/** Refuses any namespace name these helpers did not make. */
export function assertOwnNetns(ns: string): void {
  if (!OWN_NETNS.test(ns)) {
    throw new Error(`Cannot use namespace ${ns}: not a test namespace`);
  }
}

async function addNetns(label: string): Promise<string> {
  counter += 1;
  const ns = `palisade-t${Deno.pid}-${counter}${label ? `-${label}` : ""}`;
  assertOwnNetns(ns);
  await mustRun(["ip", "netns", "add", ns]);
  try {
    await mustRun(["ip", "-n", ns, "link", "set", "lo", "up"]);
  } catch (error) {
    await deleteNetns(ns);
    throw error;
  }
  return ns;
}

function ipIn(ns: string, command: string): Promise<string> {
  return mustRun(["ip", "-n", ns, ...command.split(" ")]);
}

async function deleteNetns(ns: string): Promise<void> {
  assertOwnNetns(ns);
  await spawn(["ip", "netns", "delete", ns]);
}

/**
 * Creates a fresh namespace `palisade-t<pid>-<n>-<label>` with `lo` up,
 * runs `fn` and deletes the namespace, also when `fn` throws.
 */
export async function withNetns<T>(
  label: string,
  fn: (ns: string) => Promise<T>,
): Promise<T> {
  const ns = await addNetns(label);
  try {
    return await fn(ns);
  } finally {
    await deleteNetns(ns);
  }
}

/** Two namespaces joined by a veth pair. */
export interface NetnsPair {
  /** Namespace of side A (`.1` / `::1`). */
  a: string;
  /** Namespace of side B (`.2` / `::2`). */
  b: string;
  v4a: string;
  v4b: string;
  v6a: string;
  v6b: string;
}

/**
 * Creates namespaces A and B joined by a veth pair, with
 * `10.213.<n>.1/24`–`.2` and `fd00:213:<n>::1/64`–`::2`, runs `fn` and
 * deletes both, also when `fn` throws.
 */
export async function withNetnsPair<T>(
  fn: (pair: NetnsPair) => Promise<T>,
): Promise<T> {
  const a = await addNetns("a");
  try {
    const b = await addNetns("b");
    try {
      const n = (Deno.pid + counter) % 250 + 1;
      const pair: NetnsPair = {
        a,
        b,
        v4a: `10.213.${n}.1`,
        v4b: `10.213.${n}.2`,
        v6a: `fd00:213:${n.toString(16)}::1`,
        v6b: `fd00:213:${n.toString(16)}::2`,
      };
      await ipIn(a, `link add veth0 type veth peer name veth0 netns ${b}`);
      const sides = [[a, pair.v4a, pair.v6a], [b, pair.v4b, pair.v6b]];
      for (const [ns, v4, v6] of sides) {
        await ipIn(ns, `addr add ${v4}/24 dev veth0`);
        await ipIn(ns, `-6 addr add ${v6}/64 dev veth0 nodad`);
        await ipIn(ns, "link set veth0 up");
      }
      return await fn(pair);
    } finally {
      await deleteNetns(b);
    }
  } finally {
    await deleteNetns(a);
  }
}

/** `nft -j -s list ruleset` in `ns`, parsed. */
export async function nftDump(ns: string): Promise<unknown> {
  return JSON.parse(await nftText(ns, ["-j", "-s", "list", "ruleset"]));
}

/** Output of `nft <args>` in `ns`, verbatim. */
export async function nftText(ns: string, args: string[]): Promise<string> {
  const result = await nsSpawn(ns, ["nft", ...args]);
  if (result.code !== 0) {
    throw new Error(`Cannot run nft ${args.join(" ")}: ${result.stderr}`);
  }
  return result.stdout;
}

/** A server child process; disposing stops it. */
export interface Listener extends AsyncDisposable {
  close(): Promise<void>;
}

async function listen(
  ns: string,
  transport: "tcp" | "udp",
  port: number,
): Promise<Listener> {
  assertOwnNetns(ns);
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", ns, Deno.execPath(), "run", "--allow-net"]
      .concat([ECHO_SERVER, "serve", transport, String(port)]),
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
    signal: AbortSignal.timeout(SPAWN_TIMEOUT_MS),
  }).spawn();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    await child.status;
  };
  const reader = child.stdout.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ready = await Promise.race([
    reader.read(),
    new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), 20_000);
    }),
  ]);
  clearTimeout(timer);
  reader.releaseLock();
  if (ready === null || ready.done) {
    await close();
    throw new Error(`Cannot start ${transport} server on port ${port}`);
  }
  child.stdout.cancel().catch(() => {});
  return { close, [Symbol.asyncDispose]: close };
}

/** Starts a TCP echo server on `[::]:port` in `ns` (v4 and v6). */
export function tcpListen(ns: string, port: number): Promise<Listener> {
  return listen(ns, "tcp", port);
}

/** Starts a UDP echo server on `[::]:port` in `ns` (v4 and v6). */
export function udpListen(ns: string, port: number): Promise<Listener> {
  return listen(ns, "udp", port);
}

async function probe(
  ns: string,
  transport: "tcp" | "udp",
  addr: string,
  port: number,
  timeoutMs: number,
): Promise<boolean> {
  const argv = [Deno.execPath(), "run", "--allow-net", ECHO_SERVER, "probe"]
    .concat([transport, addr, String(port), String(timeoutMs)]);
  const result = await nsSpawn(ns, argv, { timeoutMs: timeoutMs + 30_000 });
  return result.code === 0 && result.stdout.trim() === "ok";
}

/** True when a TCP echo round trip from `ns` to `addr:port` works. */
export function tcpProbe(
  ns: string,
  addr: string,
  port: number,
  timeoutMs: number,
): Promise<boolean> {
  return probe(ns, "tcp", addr, port, timeoutMs);
}

/** True when a UDP echo round trip from `ns` to `addr:port` works. */
export function udpProbe(
  ns: string,
  addr: string,
  port: number,
  timeoutMs: number,
): Promise<boolean> {
  return probe(ns, "udp", addr, port, timeoutMs);
}

/**
 * Runs the test file `fileUrl` again inside namespace `ns` with the
 * flags of `deno task test`, with {@linkcode NETNS_ENV} and `extraEnv`
 * set, and returns its result.
 */
export function rerunInNetns(
  ns: string,
  fileUrl: string,
  extraEnv: Record<string, string> = {},
): Promise<SpawnResult> {
  return nsSpawn(
    ns,
    [Deno.execPath(), "test", ...TEST_FLAGS, new URL(fileUrl).pathname],
    { env: { [NETNS_ENV]: ns, ...extraEnv } },
  );
}

/**
 * Throws unless this process runs in a private network namespace; call
 * it before anything that opens libnftables in-process.
 */
export function assertInPrivateNetns(): void {
  if (!inPrivateNetns()) {
    throw new Error(
      "Cannot touch nftables in-process: this is the host's network " +
        "namespace",
    );
  }
}

/**
 * Splits a test file in two. In the host's namespace it registers one
 * test, `name`, that re-runs the file inside a fresh namespace (or, with
 * `pair`, inside side B of a fresh pair, described to the child in
 * `PALISADE_TEST_PAIR`) and fails when the child fails. Inside a private
 * namespace it registers nothing and returns true: the caller then
 * registers the real tests.
 */
export function netnsSuite(
  name: string,
  fileUrl: string,
  options: { pair?: boolean } = {},
): boolean {
  if (inPrivateNetns()) return true;
  const rerun = Deno.env.get(NETNS_ENV);
  if (rerun !== undefined) {
    // Already re-run once: never nest further, whatever went wrong.
    Deno.test(name, () => {
      throw new Error(
        `Cannot confirm a private network namespace although ` +
          `${NETNS_ENV}=${rerun} is set`,
      );
    });
    return false;
  }
  Deno.test(name, async (t) => {
    if (!requireRoot(t)) return;
    const run = async (ns: string, env: Record<string, string>) => {
      const result = await rerunInNetns(ns, fileUrl, env);
      const summary = result.stdout.trim().split("\n").slice(-3).join("\n");
      if (result.code !== 0) {
        throw new Error(
          `Tests inside ${ns} failed (exit ${result.code}):\n` +
            `${result.stdout}\n${result.stderr}`,
        );
      }
      console.log(`inside ${ns}: ${summary}`);
    };
    if (options.pair) {
      await withNetnsPair((pair) =>
        run(pair.b, { [PAIR_ENV]: JSON.stringify(pair) })
      );
    } else {
      await withNetns("suite", (ns) => run(ns, {}));
    }
  });
  return false;
}

/** Env variable describing the pair to a re-run test file. */
export const PAIR_ENV = "PALISADE_TEST_PAIR";

/** The pair a test file was re-run in, from {@linkcode PAIR_ENV}. */
export function currentPair(): NetnsPair {
  const text = Deno.env.get(PAIR_ENV);
  if (text === undefined) throw new Error(`Cannot find ${PAIR_ENV}`);
  return JSON.parse(text) as NetnsPair;
}

/** The namespace a test file was re-run in, from {@linkcode NETNS_ENV}. */
export function currentNetns(): string {
  const ns = Deno.env.get(NETNS_ENV);
  if (ns === undefined) throw new Error(`Cannot find ${NETNS_ENV}`);
  assertOwnNetns(ns);
  return ns;
}
