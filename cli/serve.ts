/**
 * `palisade serve [--config FILE]`: runs the host service until SIGTERM
 * or SIGINT, then stops it gracefully and exits 0.
 *
 * @module
 */
import { DEFAULT_CONFIG_PATH, startService } from "../mod.ts";
import { EXIT_OK, parseFlags } from "./_common.ts";

const HELP = `Usage: palisade serve [--config FILE]

Runs the host service: applies signed bundles pushed to its control API,
watches each commit window and reverts unconfirmed changes.

Flags:
  --config FILE  service config (default ${DEFAULT_CONFIG_PATH})
  --help         show this help

Stops on SIGTERM or SIGINT: finishes the operation in flight, closes
every handle and leaves the active policy in force.`;

/** Runs the `serve` command and returns its exit code. */
export async function serve(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    config: { type: "string" },
    help: { type: "boolean" },
  }, { min: 0, max: 0, names: "no arguments" });
  if (values.help) {
    console.log(HELP);
    return EXIT_OK;
  }

  const configPath = values.config ?? DEFAULT_CONFIG_PATH;
  checkConfigFile(configPath);
  const service = await startService({ configPath });
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGTERM", "SIGINT"];
  const handlers = signals.map((signal) => {
    const handler = () => void service.stop(signal);
    Deno.addSignalListener(signal, handler);
    return () => Deno.removeSignalListener(signal, handler);
  });
  try {
    await service.finished;
  } finally {
    for (const remove of handlers) remove();
  }
  return EXIT_OK;
}

/**
 * Names a missing or unreadable config plainly. Where this command may
 * not read the path, the service's own check names the grant instead.
 */
function checkConfigFile(path: string): void {
  const query = Deno.permissions.querySync({ name: "read", path });
  if (query.state !== "granted") return;
  try {
    if (Deno.statSync(path).isDirectory) {
      throw new Error(`Cannot read config ${path}: is a folder`);
    }
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`Cannot read config ${path}: no such file`);
    }
    throw error;
  }
}
