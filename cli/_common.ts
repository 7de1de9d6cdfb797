/**
 * Shared plumbing for the subcommands: argument parsing that turns
 * unknown flags into usage errors, and the one place that prints an
 * error and chooses an exit code.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** Exit codes shared by every subcommand; `apply` adds 2 and 3. */
export const EXIT_OK = 0;
export const EXIT_FAIL = 1;

/** A command line that cannot be run as written. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * Parses `args` strictly: unknown flags, missing values and stray
 * positionals become a {@linkcode UsageError} naming the flag.
 */
export function parseFlags<T extends ParseArgsConfig["options"]>(
  args: string[],
  options: T,
  positionals: { min: number; max: number; names: string },
) {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options,
      strict: true,
      allowPositionals: positionals.max > 0,
    });
  } catch (error) {
    throw new UsageError(flagProblem(error));
  }
  const count = parsed.positionals.length;
  if (count < positionals.min || count > positionals.max) {
    throw new UsageError(
      `Expected ${positionals.names}, got ${count} argument(s)`,
    );
  }
  return parsed;
}

/** Rewords a `parseArgs` error as one plain sentence. */
function flagProblem(error: unknown): string {
  const { code, message } = error as { code?: string; message: string };
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
    const flag = message.match(/'([^']*)'/)?.[1] ?? "";
    return `Unknown flag '${flag}'; run with --help for the flags (a ` +
      `value that starts with '-' goes after '--')`;
  }
  return message;
}

/**
 * Returns `--to`'s value when it is a usable control API URL
 * (`http://HOST:PORT` or `https://…`), else throws a usage error
 * saying what to give.
 */
export function hostUrl(value: string | undefined, flag = "to"): string {
  const url = required(value, flag);
  let parsed: URL | null = null;
  try {
    parsed = new URL(url);
  } catch {
    // reported below
  }
  if (
    parsed === null || parsed.hostname === "" ||
    (parsed.protocol !== "http:" && parsed.protocol !== "https:")
  ) {
    throw new UsageError(
      `Cannot use --${flag} ${url}: give a URL such as http://HOST:PORT`,
    );
  }
  return url;
}

/** Returns the flag's value or throws a usage error naming it. */
export function required(
  value: string | undefined,
  flag: string,
): string {
  if (value === undefined || value === "") {
    throw new UsageError(`Missing required flag --${flag}`);
  }
  return value;
}

/** Prints one error line for `command` to stderr. */
export function printError(command: string, error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`palisade ${command}: ${message}`);
}

/** Largest input file a command reads: the envelope bound, 16 MiB. */
export const MAX_INPUT_BYTES = 16 * 1024 * 1024;

/**
 * Says why a file could not be read, in a few words: "no such file",
 * "permission denied", "is a folder", or the system's own message.
 */
export function fileProblem(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.IsADirectory) return "is a folder";
  if (error instanceof Deno.errors.PermissionDenied) {
    return "permission denied";
  }
  if (error instanceof Deno.errors.NotCapable) {
    return `not granted to this command (${(error as Error).message})`;
  }
  const message = (error as Error)?.message ?? String(error);
  return message.replace(/^(.*?), (stat|open|read|readfile) '.*'$/s, "$1");
}

/**
 * Reads the file named on the command line as `what` ("bundle", "trust
 * store", …), refusing one over `maxBytes` before reading it.
 *
 * @throws {Error} "Cannot read <what> <path>: no such file" and the like
 */
export async function readInput(
  path: string,
  what: string,
  maxBytes: number = MAX_INPUT_BYTES,
): Promise<Uint8Array<ArrayBuffer>> {
  const fail = (why: string, cause?: unknown) =>
    new Error(`Cannot read ${what} ${path}: ${why}`, { cause });
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    throw fail(fileProblem(error), error);
  }
  if (info.isDirectory) throw fail("is a folder");
  if (info.size > maxBytes) {
    throw fail(`${info.size} bytes is more than the ${maxBytes}-byte limit`);
  }
  try {
    return await Deno.readFile(path);
  } catch (error) {
    throw fail(fileProblem(error), error);
  }
}

/** Like {@linkcode readInput}, decoded as UTF-8 text. */
export async function readInputText(
  path: string,
  what: string,
  maxBytes: number = MAX_INPUT_BYTES,
): Promise<string> {
  return new TextDecoder().decode(await readInput(path, what, maxBytes));
}
