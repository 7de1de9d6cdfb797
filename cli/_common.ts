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
    throw new UsageError((error as Error).message);
  }
  const count = parsed.positionals.length;
  if (count < positionals.min || count > positionals.max) {
    throw new UsageError(
      `Expected ${positionals.names}, got ${count} argument(s)`,
    );
  }
  return parsed;
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
