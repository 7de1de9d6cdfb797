/**
 * `palisade keygen --out PREFIX`: makes an Ed25519 key pair, writes
 * `PREFIX.key` (PKCS#8 PEM, mode 0600) and `PREFIX.pub` (SPKI PEM), and
 * prints the key ID.
 *
 * @module
 */
import {
  encodePrivateKeyPem,
  encodePublicKeyPem,
  generateKeyPair,
} from "../mod.ts";
import {
  EXIT_FAIL,
  EXIT_OK,
  parseFlags,
  printError,
  required,
} from "./_common.ts";

const HELP = `Usage: palisade keygen --out PREFIX

Makes an Ed25519 signing key pair and writes
  PREFIX.key  private key, PKCS#8 PEM, file mode 0600
  PREFIX.pub  public key, SPKI PEM (goes into trust stores)
then prints the key ID (lowercase hex SHA-256 of the SPKI DER).
Refuses to overwrite either file. Keys made with
'openssl genpkey -algorithm ed25519' work the same way.

Flags:
  --out PREFIX  path prefix of the two files (required)
  -h, --help    show this help

Exit codes: 0 written, 1 refused or failed.`;

/**
 * Runs `keygen` with the arguments after the command name.
 *
 * @returns the exit code: 0 written, 1 refused or failed
 */
export async function keygen(args: string[]): Promise<number> {
  let prefix: string;
  try {
    const { values } = parseFlags(args, {
      out: { type: "string" },
      help: { type: "boolean", short: "h" },
    }, { min: 0, max: 0, names: "no arguments" });
    if (values.help) {
      console.log(HELP);
      return EXIT_OK;
    }
    prefix = required(values.out, "out");
  } catch (error) {
    printError("keygen", error);
    return EXIT_FAIL;
  }

  const keyPath = `${prefix}.key`;
  const pubPath = `${prefix}.pub`;
  const { privateKey, publicKey } = generateKeyPair();
  try {
    for (const path of [keyPath, pubPath]) {
      if (await exists(path)) {
        throw new Error(`Cannot write key pair: ${path} already exists`);
      }
    }
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
  } catch (error) {
    // Leave no private key without its public half.
    await Deno.remove(keyPath).catch(() => {});
    printError("keygen", error);
    return EXIT_FAIL;
  }

  console.error(`Wrote ${keyPath} (private, mode 0600) and ${pubPath}`);
  console.log(publicKey.id);
  return EXIT_OK;
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
