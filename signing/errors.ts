/**
 * Errors of the signing area: {@linkcode VerifyError} for envelopes and
 * statements that are refused, {@linkcode SigningError} for signing
 * requests that cannot be honoured.
 *
 * @module
 */

/**
 * Stable machine-readable reasons a signed envelope or statement is
 * refused. Logs, metrics and tests match on these; messages may change.
 */
export type VerifyReason =
  | "oversize"
  | "malformed-json"
  | "bad-envelope"
  | "bad-base64"
  | "missing-field"
  | "wrong-payload-type"
  | "unknown-key"
  | "key-not-allowed"
  | "bad-signature"
  | "non-canonical-signature"
  | "small-order-key"
  | "too-few-signers"
  | "bad-statement"
  | "expired"
  | "not-yet-valid"
  | "wrong-host"
  | "serial-too-low";

/** A signed envelope or its statement is refused; nothing was trusted. */
export class VerifyError extends Error {
  /** Stable reason code, see {@linkcode VerifyReason}. */
  readonly reason: VerifyReason;

  /** Makes a refusal with a reason code and a message for people. */
  constructor(reason: VerifyReason, message: string) {
    super(message);
    this.name = "VerifyError";
    this.reason = reason;
  }
}

/** A signing request that cannot be honoured (e.g. a key signing twice). */
export class SigningError extends Error {
  /** Makes a signing error with a message for people. */
  constructor(message: string) {
    super(message);
    this.name = "SigningError";
  }
}
