/**
 * Palisade's command line. Each subcommand lives in `cli/` and returns
 * its exit code; this file only dispatches and turns uncaught errors
 * into one line on stderr.
 *
 * @module
 */
import { EXIT_FAIL, printError, UsageError } from "./cli/_common.ts";

type Command = (args: string[]) => Promise<number>;

// Each command is loaded on demand so that one command's imports (and
// the permissions they would want) never burden another.
const COMMANDS: Record<string, () => Promise<Command>> = {
  keygen: async () => (await import("./cli/keygen.ts")).keygen,
  sign: async () => (await import("./cli/sign.ts")).sign,
  verify: async () => (await import("./cli/verify.ts")).verify,
  check: async () => (await import("./cli/check.ts")).check,
  diff: async () => (await import("./cli/diff.ts")).diff,
  serve: async () => (await import("./cli/serve.ts")).serve,
  apply: async () => (await import("./cli/apply.ts")).apply,
  status: async () => (await import("./cli/status.ts")).status,
  rollback: async () => (await import("./cli/rollback.ts")).rollback,
  panic: async () => (await import("./cli/panic.ts")).panic,
  uninstall: async () => (await import("./cli/uninstall.ts")).uninstall,
};

const USAGE = `Usage: palisade <command> [flags]

Commands:
  keygen     make an Ed25519 signing key pair
  sign       sign a policy into a bundle, or add a signature to one
  verify     check a bundle against a trust store
  check      validate a policy file
  diff       compare two policies or bundles, or one with a host
  serve      run the host service
  apply      push a bundle to a host and confirm it
  status     show what a host runs
  rollback   ask a host to revert to its last known good
  panic      remove every firewall object Palisade owns
  uninstall  panic, then remove Palisade's files

Run 'palisade <command> --help' for a command's flags.`;

/** Runs the command line `args` and returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "--help" || name === "-h") {
    console.log(USAGE);
    return name === undefined ? EXIT_FAIL : 0;
  }
  const load = COMMANDS[name];
  if (load === undefined) {
    printError(name, new UsageError(`Unknown command '${name}'\n${USAGE}`));
    return EXIT_FAIL;
  }
  try {
    return await (await load())(rest);
  } catch (error) {
    printError(name, error);
    return EXIT_FAIL;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
