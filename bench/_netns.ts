/**
 * Network namespaces for the benchmarks. Everything that changes an
 * nftables ruleset runs in a process started inside a namespace made
 * here (`palisade-b<pid>-<n>`), which is deleted again on every path:
 * the host's own ruleset is never touched.
 *
 * @module
 */

/** Names of the namespaces this suite creates. */
export const BENCH_NETNS = /^palisade-b\d+-\d+$/;

/** Upper bound of any child process the suite starts. */
export const CHILD_TIMEOUT_MS = 300_000;

let counter = 0;

/** Namespaces made here and not deleted yet. */
const live = new Set<string>();

/**
 * Deletes every namespace this process made and has not deleted yet:
 * for a signal handler, so an interrupted run leaves none behind.
 */
export function deleteLiveNetns(): void {
  for (const ns of live) {
    new Deno.Command("ip", { args: ["netns", "delete", ns] }).outputSync();
    live.delete(ns);
  }
}

/** Output of a finished child process. */
export interface ChildResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `argv` to completion, bounded in time. */
export async function run(
  argv: string[],
  timeoutMs = CHILD_TIMEOUT_MS,
): Promise<ChildResult> {
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(timeoutMs),
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
  const result = await run(argv);
  if (result.code !== 0) {
    throw new Error(
      `Cannot run ${argv.join(" ")}: exit ${result.code}: ` +
        result.stderr.trim(),
    );
  }
  return result.stdout;
}

/** True when namespaces can be made here (root on Linux). */
export function canUseNetns(): boolean {
  return Deno.build.os === "linux" && Deno.uid() === 0;
}

/**
 * Creates a fresh namespace with `lo` up, runs `fn` in the host
 * namespace with its name, and deletes it, also when `fn` throws.
 */
export async function withBenchNetns<T>(
  fn: (ns: string) => Promise<T>,
): Promise<T> {
  counter += 1;
  const ns = `palisade-b${Deno.pid}-${counter}`;
  await mustRun(["ip", "netns", "add", ns]);
  live.add(ns);
  try {
    await mustRun(["ip", "-n", ns, "link", "set", "lo", "up"]);
    return await fn(ns);
  } finally {
    await run(["ip", "netns", "delete", ns]);
    live.delete(ns);
  }
}

/**
 * The bench namespace this process runs in, as `ip netns identify`
 * names it, or null when it runs in any other (the host's included).
 */
export async function currentBenchNetns(): Promise<string | null> {
  try {
    const result = await run(["ip", "netns", "identify"], 10_000);
    if (result.code !== 0) return null;
    const names = result.stdout.split(/\s+/).filter((n) => n !== "");
    return names.find((name) => BENCH_NETNS.test(name)) ?? null;
  } catch {
    return null;
  }
}

/**
 * Throws unless this process runs inside bench namespace `ns`; called
 * before anything opens libnftables in-process.
 */
export async function assertInBenchNetns(ns: string): Promise<void> {
  const current = await currentBenchNetns();
  if (current === null || current !== ns) {
    throw new Error(
      `Cannot touch nftables in-process: this process runs in ` +
        `${current ?? "a namespace that is not a bench namespace"}, ` +
        `not in ${ns}`,
    );
  }
}
