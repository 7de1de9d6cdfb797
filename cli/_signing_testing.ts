/**
 * Fixtures for the keygen, sign and verify command tests: a temporary
 * folder, a valid policy, and a run helper that captures what a
 * command prints.
 *
 * @module
 */
import { encodePublicKeyPem, parsePublicKeyPem } from "../mod.ts";

/** A small valid policy in JSONC. */
export const POLICY = `{
  // edge hosts
  "name": "edge-baseline",
  "rules": [
    { "id": "block-smb-out", "action": "block", "direction": "out",
      "protocol": "tcp", "remote": ["203.0.113.0/24"],
      "remotePorts": [445] },
    { "id": "web-in", "action": "permit", "direction": "in",
      "protocol": "tcp", "localPorts": [443] },
  ],
}
`;

/** What a command returned and printed. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `command(args)` in-process, capturing console output. */
export async function run(
  command: (args: string[]) => Promise<number>,
  args: string[],
): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error, warn } = console;
  console.log = (...parts: unknown[]) => out.push(parts.join(" "));
  console.error = (...parts: unknown[]) => err.push(parts.join(" "));
  console.warn = console.error;
  try {
    const code = await command(args);
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
    console.warn = warn;
  }
}

/** Runs `fn` with a fresh temporary folder, removed afterwards. */
export async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "palisade-cli-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes a trust store for the `.pub` files given, allowed for all. */
export async function writeTrust(
  path: string,
  pubs: string[],
  bundleThreshold = 1,
): Promise<void> {
  const keys = await Promise.all(pubs.map(async (pub) => {
    const key = parsePublicKeyPem(await Deno.readTextFile(pub), pub);
    return {
      id: key.id,
      publicKey: encodePublicKeyPem(key),
      allow: ["bundle", "confirm", "rollback"],
    };
  }));
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      keys,
      threshold: { bundle: bundleThreshold, confirm: 1, rollback: 1 },
    }),
  );
}
