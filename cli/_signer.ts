/**
 * The operator commands' signer: a private key read from a PEM file
 * signs confirm and rollback statements.
 *
 * @module
 */
import {
  parsePrivateKeyPem,
  signStatement,
  type StatementOf,
  type StatementSigner,
} from "../mod.ts";
import { readInputText } from "./_common.ts";

/** Reads the PKCS#8 PEM key at `path` and returns a signer using it. */
export async function signerFromKeyFile(
  path: string,
): Promise<StatementSigner> {
  const key = parsePrivateKeyPem(
    await readInputText(path, "private key"),
    path,
  );
  return (kind, statement) =>
    signStatement(kind, statement as unknown as StatementOf[typeof kind], [
      key,
    ]);
}

/** Reads the CA certificate files named by `--ca`. */
export async function readCaCerts(
  paths: string[] | undefined,
): Promise<string[] | undefined> {
  if (paths === undefined || paths.length === 0) return undefined;
  return await Promise.all(
    paths.map((p) => readInputText(p, "CA certificate")),
  );
}
