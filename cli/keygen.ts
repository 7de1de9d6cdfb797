/**
 * `palisade keygen --out PREFIX [--trust FILE --allow KINDS]`: makes an
 * Ed25519 key pair, writes `PREFIX.key` (PKCS#8 PEM, mode 0600) and
 * `PREFIX.pub` (SPKI PEM), optionally adds the public key to a trust
 * store, and prints the key ID.
 *
 * @module
 */
import {
  encodePrivateKeyPem,
  encodePublicKeyPem,
  generateKeyPair,
  writeFileAtomic,
} from "../mod.ts";
import { dirname } from "node:path";
import {
  EXIT_FAIL,
  EXIT_OK,
  parseFlags,
  printError,
  readInputText,
  required,
  UsageError,
} from "./_common.ts";
import {
  addTrustedKey,
  parseAllow,
  TRUST_KINDS,
  type TrustKind,
} from "./_trust_file.ts";

const HELP = `Usage: palisade keygen --out PREFIX [--trust TRUST.jsonc]
                       [--allow bundle,confirm,rollback]

Makes an Ed25519 signing key pair and writes
  PREFIX.key  private key, PKCS#8 PEM, file mode 0600
  PREFIX.pub  public key, SPKI PEM (goes into trust stores)
then prints the key ID (lowercase hex SHA-256 of the SPKI DER).
Creates PREFIX's folder (mode 0700) when it is missing. Refuses to
overwrite either file. Keys made with 'openssl genpkey -algorithm
ed25519' work the same way.

With --trust, also adds the public key to that trust store: a new store
is created with every threshold 1; an existing one keeps its comments
and gains the key (a key already listed is refused). The store is
written atomically and always loads.

Flags:
  --out PREFIX    path prefix of the two files (required)
  --trust FILE    trust store to add the public key to
  --allow KINDS   what the key may sign in that store: bundle, confirm,
                  rollback, comma-separated (default all three)
  -h, --help      show this help

Exit codes: 0 written, 1 refused or failed.`;

/**
 * Runs `keygen` with the arguments after the command name.
 *
 * @returns the exit code: 0 written, 1 refused or failed
 */
export async function keygen(args: string[]): Promise<number> {
  let prefix: string;
  let trustPath: string | undefined;
  let allow: TrustKind[];
  try {
    const { values } = parseFlags(args, {
      out: { type: "string" },
      trust: { type: "string" },
      allow: { type: "string" },
      help: { type: "boolean", short: "h" },
    }, { min: 0, max: 0, names: "no arguments" });
    if (values.help) {
      console.log(HELP);
      return EXIT_OK;
    }
    prefix = required(values.out, "out");
    trustPath = values.trust;
    if (values.allow !== undefined && trustPath === undefined) {
      throw new UsageError("--allow needs --trust: the store to add to");
    }
    try {
      allow = parseAllow(values.allow ?? TRUST_KINDS.join(","));
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  } catch (error) {
    printError("keygen", error);
    return EXIT_FAIL;
  }

  const keyPath = `${prefix}.key`;
  const pubPath = `${prefix}.pub`;
  const { privateKey, publicKey } = generateKeyPair();
  let trustText: string | undefined;
  try {
    for (const path of [keyPath, pubPath]) {
      if (await exists(path)) {
        throw new Error(`Cannot write key pair: ${path} already exists`);
      }
    }
    // The trust store is checked before any key is written, so that a
    // refusal leaves nothing behind.
    if (trustPath !== undefined) {
      const existing = await exists(trustPath)
        ? await readInputText(trustPath, "trust store")
        : null;
      trustText = addTrustedKey(existing, trustPath, publicKey, allow);
    }
    await makeFolder(dirname(keyPath));
    await Deno.writeTextFile(keyPath, encodePrivateKeyPem(privateKey), {
      createNew: true,
      mode: 0o600,
    });
  } catch (error) {
    printError("keygen", error);
    return EXIT_FAIL;
  }

  try {
    // The mode given at creation is filtered by the umask; set it exactly.
    await Deno.chmod(keyPath, 0o600);
    await Deno.writeTextFile(pubPath, encodePublicKeyPem(publicKey), {
      createNew: true,
      mode: 0o644,
    });
    if (trustPath !== undefined) {
      await writeFileAtomic(trustPath, new TextEncoder().encode(trustText!), {
        mode: 0o644,
      });
    }
  } catch (error) {
    // Leave no private key without its public half or its trust entry.
    await Deno.remove(keyPath).catch(() => {});
    await Deno.remove(pubPath).catch(() => {});
    printError("keygen", error);
    return EXIT_FAIL;
  }

  console.error(`Wrote ${keyPath} (private, mode 0600) and ${pubPath}`);
  if (trustPath !== undefined) {
    console.error(`Added key to ${trustPath} (allow ${allow.join(", ")})`);
  }
  console.log(publicKey.id);
  return EXIT_OK;
}

/** Creates `folder` (mode 0700) and its parents when missing. */
async function makeFolder(folder: string): Promise<void> {
  if (folder === "" || folder === "." || await exists(folder)) return;
  try {
    await Deno.mkdir(folder, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new Error(
      `Cannot create folder ${folder} for the key pair: ${
        (error as Error).message
      }`,
      { cause: error },
    );
  }
  console.error(`Created folder ${folder} (mode 0700)`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
