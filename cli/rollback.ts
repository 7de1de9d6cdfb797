/**
 * `palisade rollback --to URL --key K [--empty]`: asks a host to revert
 * now to its last known good, or to no policy at all.
 *
 * @module
 */
import { HostError, requestRollback } from "../mod.ts";
import { parseFlags, printError, required } from "./_common.ts";
import { readCaCerts, signerFromKeyFile } from "./_signer.ts";

const HELP =
  `Usage: palisade rollback --to URL --key KEY [--empty] [--host NAME]
                         [--ca FILE]...

Signs a rollback statement (fresh nonce, valid for 60 s) and sends it:
the host reverts now to its last known good, or with --empty removes
every Palisade object (fail open). A pending generation is reverted.

Flags:
  --to URL     the host's control API
  --key FILE   private key (PKCS#8 PEM) allowed to sign rollbacks
  --empty      revert to no policy instead of the last known good
  --host NAME  host name for the statement (default: asked from the host)
  --ca FILE    CA certificate for an HTTPS host; repeatable
  --help       show this help

Exit codes: 0 done, 2 refused by the host, 1 anything else.`;

/** Runs the `rollback` command and returns its exit code. */
export async function rollback(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    to: { type: "string" },
    key: { type: "string" },
    empty: { type: "boolean" },
    host: { type: "string" },
    ca: { type: "string", multiple: true },
    help: { type: "boolean" },
  }, { min: 0, max: 0, names: "no arguments" });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const to = required(values.to, "to");
  const signer = await signerFromKeyFile(required(values.key, "key"));
  try {
    const reply = await requestRollback({
      to,
      signer,
      empty: values.empty ?? false,
      host: values.host,
      caCerts: await readCaCerts(values.ca),
    });
    const target = reply.to === "empty"
      ? "no policy (fail open)"
      : reply.generation === null
      ? "no policy (no last known good)"
      : `generation ${reply.generation}`;
    console.log(`rolled back ${reply.host}: now enforcing ${target}`);
    return 0;
  } catch (error) {
    printError("rollback", error);
    const refused = error instanceof HostError &&
      error.code !== "internal" && !error.code.startsWith("http-");
    return refused ? 2 : 1;
  }
}
