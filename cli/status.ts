/**
 * `palisade status --to URL [--json]`: shows what a host runs.
 *
 * @module
 */
import { fetchStatus, type HostStatus } from "../mod.ts";
import { hostUrl, parseFlags } from "./_common.ts";
import { readCaCerts } from "./_signer.ts";

const HELP = `Usage: palisade status --to URL [--json] [--ca FILE]...

Shows a host's active generation, the pending one and the seconds left
in its commit window, its last known good and its last error.

Flags:
  --to URL   the host's control API
  --json     print the host's reply as JSON
  --ca FILE  CA certificate for an HTTPS host; repeatable
  --help     show this help`;

/** Formats a host status as aligned lines for people. */
export function formatStatus(status: HostStatus): string {
  const gen = (g: { generation: number; serial: number; name: string }) =>
    `generation ${g.generation} (serial ${g.serial}, ${g.name})`;
  const lines: [string, string][] = [
    ["host", status.host],
    ["state", status.state],
    [
      "active",
      status.active === null
        ? "none (nothing enforced)"
        : `${gen(status.active)}, ${status.active.rules} rule(s)`,
    ],
    [
      "pending",
      status.pending === null
        ? "none"
        : `${
          gen(status.pending)
        }, ${status.pending.secondsLeft} s left (deadline ${status.pending.deadline})`,
    ],
    [
      "last known good",
      status.lastKnownGood === null ? "none" : gen(status.lastKnownGood),
    ],
    [
      "last error",
      status.lastError === null
        ? "none"
        : `${status.lastError.code} at ${status.lastError.at}: ${status.lastError.message}`,
    ],
  ];
  if (status.stateWritable === false) {
    lines.push(["state folder", "not writable; pushes are refused"]);
  }
  return lines.map(([k, v]) => `${(k + ":").padEnd(17)}${v}`).join("\n");
}

/** Runs the `status` command and returns its exit code. */
export async function status(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    to: { type: "string" },
    json: { type: "boolean" },
    ca: { type: "string", multiple: true },
    help: { type: "boolean" },
  }, { min: 0, max: 0, names: "no arguments" });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const to = hostUrl(values.to);
  const reply = await fetchStatus(to, {
    caCerts: await readCaCerts(values.ca),
  });
  console.log(
    values.json ? JSON.stringify(reply, null, 2) : formatStatus(reply),
  );
  return 0;
}
