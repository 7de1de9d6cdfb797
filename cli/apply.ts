/**
 * `palisade apply BUNDLE --to URL --key KEY`: pushes a bundle, checks
 * health over new connections and confirms it with one heartbeat.
 *
 * @module
 */
import { APPLY_EXIT, applyBundle } from "../mod.ts";
import {
  hostUrl,
  parseFlags,
  readInput,
  required,
  UsageError,
} from "./_common.ts";
import { readCaCerts, signerFromKeyFile } from "./_signer.ts";

const HELP = `Usage: palisade apply BUNDLE --to URL --key CONFIRM_KEY
                      [--check URL]... [--no-confirm] [--timeout S]
                      [--ca FILE]...

Pushes a signed bundle to a host, waits until the host reports it
applied, runs the health checks over new connections (the host's own
/v1/status through the new policy, plus every --check), then sends one
signed heartbeat that confirms the change.

Flags:
  --to URL        the host's control API (http://host:7443 or https://…)
  --key FILE      private key (PKCS#8 PEM) that signs the heartbeat
  --check URL     extra health check: http(s)://… must answer 2xx,
                  tcp://host:port must accept a connection; repeatable
  --no-confirm    send no heartbeat; wait for the window's outcome
  --timeout S     time allowed for one request (default 10)
  --ca FILE       CA certificate for an HTTPS host; repeatable
  --help          show this help

Exit codes: 0 confirmed, 2 refused by the host (nothing changed),
3 reverted (window ran out or health checks failed), 1 anything else.`;

/** Runs the `apply` command and returns its exit code. */
export async function apply(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    to: { type: "string" },
    key: { type: "string" },
    check: { type: "string", multiple: true },
    "no-confirm": { type: "boolean" },
    timeout: { type: "string" },
    ca: { type: "string", multiple: true },
    help: { type: "boolean" },
  }, { min: 0, max: 1, names: "one BUNDLE" });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError("Expected one BUNDLE, got 0 argument(s)");
  }
  const to = hostUrl(values.to);
  const confirm = !values["no-confirm"];
  const timeout = values.timeout === undefined ? 10 : Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0) {
    throw new UsageError(
      `Invalid --timeout '${values.timeout}': expected seconds above 0`,
    );
  }
  for (const check of values.check ?? []) {
    if (!/^(https?|tcp):\/\//.test(check)) {
      throw new UsageError(
        `Invalid --check '${check}': use http://, https:// or tcp://host:port`,
      );
    }
  }

  const bundle = await readInput(positionals[0], "bundle");
  const signer = confirm
    ? await signerFromKeyFile(required(values.key, "key"))
    : undefined;
  const caCerts = await readCaCerts(values.ca);

  const outcome = await applyBundle({
    bundle,
    to,
    signer,
    confirm,
    checks: values.check ?? [],
    requestTimeoutSeconds: timeout,
    caCerts,
    onStep: ({ atMs, step, message }) => {
      const at = `+${(atMs / 1000).toFixed(2)}s`.padStart(8);
      console.log(`[${at}] ${step.padEnd(16)} ${message}`);
    },
  });
  if (outcome.exitCode === APPLY_EXIT.confirmed) {
    console.log(`confirmed: generation ${outcome.generation}`);
  } else if (outcome.exitCode === APPLY_EXIT.reverted) {
    console.log(`reverted: ${outcome.message}`);
  } else {
    const code = outcome.code === undefined ? "" : ` (${outcome.code})`;
    console.error(`palisade apply: ${outcome.message}${code}`);
  }
  return outcome.exitCode;
}
