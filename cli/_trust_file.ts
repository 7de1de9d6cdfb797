/**
 * Adds a public key to a trust store file for `keygen --trust`, keeping
 * the file's comments and layout, and writing it atomically.
 *
 * @module
 */
import { applyEdits, modify } from "jsonc-parser";
import { encodePublicKeyPem, parseTrustStore, type PublicKey } from "../mod.ts";

/** The payload kinds a trust store entry can allow. */
export const TRUST_KINDS = ["bundle", "confirm", "rollback"] as const;

/** One of {@linkcode TRUST_KINDS}. */
export type TrustKind = typeof TRUST_KINDS[number];

/**
 * Parses the `--allow` list: comma-separated kinds, each known, none
 * twice.
 *
 * @throws {TypeError} naming an unknown or repeated kind
 */
export function parseAllow(text: string): TrustKind[] {
  const kinds = text.split(",").map((k) => k.trim()).filter((k) => k !== "");
  if (kinds.length === 0) {
    throw new TypeError(
      `Cannot read --allow: give one or more of ${TRUST_KINDS.join(",")}`,
    );
  }
  for (const [i, kind] of kinds.entries()) {
    if (!(TRUST_KINDS as readonly string[]).includes(kind)) {
      throw new TypeError(
        `Cannot read --allow: unknown kind '${kind}'; use ${
          TRUST_KINDS.join(", ")
        }`,
      );
    }
    if (kinds.indexOf(kind) !== i) {
      throw new TypeError(`Cannot read --allow: '${kind}' is given twice`);
    }
  }
  return kinds as TrustKind[];
}

/**
 * Returns the text of a trust store holding `key` with `allow`: a new
 * store with every threshold 1 when `existing` is null, else `existing`
 * with the key appended to `keys` (comments and layout kept). The
 * result always passes `parseTrustStore`.
 *
 * @throws {Error} the existing store is invalid, already lists the key,
 *   or a new store could not meet its thresholds
 */
export function addTrustedKey(
  existing: string | null,
  source: string,
  key: PublicKey,
  allow: TrustKind[],
): string {
  const entry = {
    id: key.id,
    publicKey: encodePublicKeyPem(key),
    allow,
  };
  let text: string;
  if (existing === null) {
    const missing = TRUST_KINDS.filter((kind) => !allow.includes(kind));
    if (missing.length > 0) {
      throw new Error(
        `Cannot create trust store ${source}: a new store needs thresholds ` +
          `of 1 for bundle, confirm and rollback, and no key would be ` +
          `allowed to sign ${missing.join(", ")}; use --allow ` +
          `${TRUST_KINDS.join(",")} for its first key`,
      );
    }
    text = JSON.stringify(
      { keys: [entry], threshold: { bundle: 1, confirm: 1, rollback: 1 } },
      null,
      2,
    ) + "\n";
  } else {
    const store = parseTrustStore(existing, source);
    const twin = store.keys.find((k) => k.id === key.id);
    if (twin !== undefined) {
      throw new Error(
        `Cannot add key to trust store ${source}: key ${key.id} is already ` +
          `listed (allowed: ${twin.allow.join(", ")})`,
      );
    }
    const edits = modify(existing, ["keys", -1], entry, {
      isArrayInsertion: true,
      formattingOptions: { insertSpaces: true, tabSize: 2, eol: "\n" },
    });
    text = applyEdits(existing, edits);
  }
  // The file written must be one every host can load.
  parseTrustStore(text, source);
  return text;
}
