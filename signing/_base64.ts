/**
 * Canonical standard base64 (RFC 4648 section 4, with padding) and hex
 * helpers shared by the signing modules.
 *
 * @module
 */

const ALPHABET = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Decodes canonical standard base64: padded, no whitespace, no URL-safe
 * alphabet, unused trailing bits zero. Returns null for anything else,
 * so that one byte string has exactly one accepted text.
 */
export function decodeBase64Strict(text: string): Uint8Array | null {
  if (text.length % 4 !== 0 || !ALPHABET.test(text)) return null;
  try {
    return Uint8Array.fromBase64(text, { lastChunkHandling: "strict" });
  } catch {
    return null;
  }
}

/** Encodes bytes as padded standard base64. */
export function encodeBase64(bytes: Uint8Array): string {
  return bytes.toBase64();
}

/** Encodes bytes as lowercase hex. */
export function toHex(bytes: Uint8Array): string {
  return bytes.toHex();
}

/** True when both byte arrays hold the same bytes. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return false;
  }
  return true;
}
