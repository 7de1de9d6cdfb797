/**
 * WFP status codes, their names and meanings, and the one checker every
 * native return code goes through.
 *
 * @module
 */

/** Name, meaning and operator hint of one status code. */
export interface WfpCodeInfo {
  /** Symbolic name, e.g. `FWP_E_IN_USE`. */
  name: string;
  /** What the code means, in lower case for use after a dash. */
  text: string;
  /** Retrying the whole transaction later may succeed. */
  transient: boolean;
  /** What an operator can do about it. */
  hint: string;
}

const RETRY = "retry later; if it persists, check the BFE service";
const REPORT = "this is a defect in Palisade or the engine; report it";

/*
 * Transient: FWP_E_TIMEOUT (another session held the transaction lock
 * past our wait), FWP_E_TXN_ABORTED (the engine aborted the transaction,
 * e.g. under contention) and RPC_S_SERVER_UNAVAILABLE (the Base
 * Filtering Engine is restarting). Retrying the whole transaction may
 * succeed; retrying a single call inside an aborted transaction never
 * does.
 */
const CODE_ROWS: [number, string, string][] = [
  [0x80320001, "FWP_E_CALLOUT_NOT_FOUND", "the callout does not exist"],
  [
    0x80320002,
    "FWP_E_CONDITION_NOT_FOUND",
    "the filter condition does not exist",
  ],
  [0x80320003, "FWP_E_FILTER_NOT_FOUND", "the filter does not exist"],
  [0x80320004, "FWP_E_LAYER_NOT_FOUND", "the layer does not exist"],
  [0x80320005, "FWP_E_PROVIDER_NOT_FOUND", "the provider does not exist"],
  [0x80320007, "FWP_E_SUBLAYER_NOT_FOUND", "the sublayer does not exist"],
  [0x80320008, "FWP_E_NOT_FOUND", "the object does not exist"],
  [
    0x80320009,
    "FWP_E_ALREADY_EXISTS",
    "an object with that key or ID already exists",
  ],
  [
    0x8032000a,
    "FWP_E_IN_USE",
    "the object is referenced by other objects and cannot be deleted",
  ],
  [
    0x8032000b,
    "FWP_E_DYNAMIC_SESSION_IN_PROGRESS",
    "a dynamic session cannot add persistent objects",
  ],
  [0x8032000c, "FWP_E_WRONG_SESSION", "the object belongs to another session"],
  [0x8032000d, "FWP_E_NO_TXN_IN_PROGRESS", "no transaction is in progress"],
  [
    0x8032000e,
    "FWP_E_TXN_IN_PROGRESS",
    "a transaction is already in progress on this session",
  ],
  [
    0x8032000f,
    "FWP_E_TXN_ABORTED",
    "the transaction was aborted by the engine",
  ],
  [
    0x80320010,
    "FWP_E_SESSION_ABORTED",
    "the session was aborted by the engine",
  ],
  [
    0x80320012,
    "FWP_E_TIMEOUT",
    "the engine's transaction lock was not granted in time",
  ],
  [
    0x80320014,
    "FWP_E_INCOMPATIBLE_LAYER",
    "the object is not valid at that layer",
  ],
  [
    0x80320016,
    "FWP_E_LIFETIME_MISMATCH",
    "a persistent object cannot reference a dynamic one",
  ],
  [0x80320017, "FWP_E_BUILTIN_OBJECT", "built-in objects cannot be changed"],
  [0x8032001c, "FWP_E_NULL_POINTER", "a required pointer was null"],
  [
    0x8032001d,
    "FWP_E_INVALID_ENUMERATOR",
    "the enumeration template or handle is not valid",
  ],
  [0x8032001e, "FWP_E_INVALID_FLAGS", "the flags are not valid"],
  [0x8032001f, "FWP_E_INVALID_NET_MASK", "the network mask is not valid"],
  [0x80320020, "FWP_E_INVALID_RANGE", "the range is not valid"],
  [0x80320022, "FWP_E_ZERO_LENGTH_ARRAY", "an array has length zero"],
  [0x80320023, "FWP_E_NULL_DISPLAY_NAME", "the display name is null"],
  [
    0x80320024,
    "FWP_E_INVALID_ACTION_TYPE",
    "the action type is not valid for a filter",
  ],
  [0x80320025, "FWP_E_INVALID_WEIGHT", "the weight is not valid"],
  [
    0x80320026,
    "FWP_E_MATCH_TYPE_MISMATCH",
    "the match type does not fit the value type",
  ],
  [
    0x80320027,
    "FWP_E_TYPE_MISMATCH",
    "a value has the wrong data type for its field",
  ],
  [0x80320028, "FWP_E_OUT_OF_BOUNDS", "a value is out of bounds"],
  [0x8032002a, "FWP_E_DUPLICATE_CONDITION", "a condition is repeated"],
  [
    0x8032002c,
    "FWP_E_ACTION_INCOMPATIBLE_WITH_LAYER",
    "the action is not valid at the layer",
  ],
  [0x80320035, "FWP_E_INVALID_PARAMETER", "a parameter is not valid"],
  [
    0x80320036,
    "FWP_E_TOO_MANY_SUBLAYERS",
    "the engine holds too many sublayers",
  ],
  [0x00000002, "ERROR_FILE_NOT_FOUND", "the file does not exist"],
  [0x00000005, "ERROR_ACCESS_DENIED", "access is denied"],
  [0x00000006, "ERROR_INVALID_HANDLE", "the handle is not valid"],
  [0x00000008, "ERROR_NOT_ENOUGH_MEMORY", "not enough memory"],
  [0x00000057, "ERROR_INVALID_PARAMETER", "a parameter is not valid"],
  [
    0x000006ba,
    "RPC_S_SERVER_UNAVAILABLE",
    "the Base Filtering Engine is not reachable",
  ],
];

/**
 * Status codes Palisade can meet (`winerror.h`), as unsigned 32-bit.
 */
export const WFP_CODES: ReadonlyMap<number, WfpCodeInfo> = new Map(
  CODE_ROWS.map(([code, name, text]) => [code, info(name, text)]),
);

function info(name: string, text: string): WfpCodeInfo {
  const transient = name === "FWP_E_TIMEOUT" ||
    name === "FWP_E_TXN_ABORTED" || name === "RPC_S_SERVER_UNAVAILABLE";
  let hint = REPORT;
  if (transient) hint = RETRY;
  else if (name === "ERROR_ACCESS_DENIED") {
    hint = "run as Administrator or as the service account";
  } else if (name === "FWP_E_IN_USE") {
    hint = "another object still references it; find and remove that first";
  } else if (name === "ERROR_FILE_NOT_FOUND") {
    hint = "check the application path in the policy";
  } else if (name === "FWP_E_ALREADY_EXISTS") {
    hint = "another object holds the key; run panic, then apply again";
  }
  return { name, text, transient, hint };
}

/** Looks up a status code; unknown codes get a generic entry. */
export function describeWfpCode(code: number): WfpCodeInfo {
  const known = WFP_CODES.get(code >>> 0);
  if (known) return known;
  return {
    name: `UNKNOWN_STATUS`,
    text: "a status code Palisade does not know",
    transient: false,
    hint: "look the code up in winerror.h",
  };
}

/** Formats a status code as `0x8032000F`. */
export function formatWfpCode(code: number): string {
  return `0x${(code >>> 0).toString(16).toUpperCase().padStart(8, "0")}`;
}

/**
 * A WFP call returned an error. Carries the native function, the
 * unsigned status code, its `FWP_E_*` name and meaning, the object the
 * call was about and what an operator can do.
 */
export class WfpError extends Error {
  /** The native function that failed, e.g. `FwpmFilterAdd0`. */
  readonly call: string;
  /** The status code, unsigned 32-bit. */
  readonly code: number;
  /** Symbolic name, e.g. `FWP_E_TXN_ABORTED`. */
  readonly codeName: string;
  /** What the code means. */
  readonly text: string;
  /** The object involved (provider, sublayer, filter), if any. */
  readonly object?: string;
  /** Whether retrying the whole operation later may succeed. */
  readonly transient: boolean;
  /** What an operator can do about it. */
  readonly hint: string;

  /**
   * Builds the error of a failed call.
   *
   * @param action what failed, e.g. `commit WFP transaction`
   * @param call the native function
   * @param code its status
   * @param object the object involved
   */
  constructor(
    action: string,
    call: string,
    code: number,
    object?: string,
    options?: ErrorOptions,
  ) {
    const found = describeWfpCode(code);
    const what = object === undefined ? action : `${action} ${object}`;
    // The call and the hint are part of the message, so logs and the
    // command line show them without knowing this class.
    super(
      `Cannot ${what}: ${found.name} (${
        formatWfpCode(code)
      }) — ${found.text} (${call}); ${found.hint}`,
      options,
    );
    this.name = "WfpError";
    this.call = call;
    this.code = code >>> 0;
    this.codeName = found.name;
    this.text = found.text;
    this.object = object;
    this.transient = found.transient;
    this.hint = found.hint;
  }
}

/**
 * The checker for every native status: returns on `ERROR_SUCCESS`,
 * throws {@linkcode WfpError} otherwise.
 *
 * @param status the DWORD the call returned
 * @param call the native function
 * @param action what was being done, e.g. `commit WFP transaction`
 * @param object the object involved, e.g. `filter "web-in" (key …)`
 * @throws {WfpError} the status is not 0
 * @example
 * ```ts
 * import { checkWfp } from "./errors.ts";
 * try {
 *   checkWfp(0x8032000f, "FwpmTransactionCommit0", "commit WFP transaction");
 * } catch (error) {
 *   console.assert((error as Error).message ===
 *     "Cannot commit WFP transaction: FWP_E_TXN_ABORTED (0x8032000F) " +
 *       "— the transaction was aborted by the engine " +
 *       "(FwpmTransactionCommit0); retry later; if it persists, " +
 *       "check the BFE service");
 * }
 * ```
 */
export function checkWfp(
  status: number,
  call: string,
  action: string,
  object?: string,
): void {
  if ((status >>> 0) === 0) return;
  throw new WfpError(action, call, status, object);
}

/** Well-known codes by name, for callers that test for one. */
export const WFP_E = {
  FWP_E_FILTER_NOT_FOUND: 0x80320003,
  FWP_E_PROVIDER_NOT_FOUND: 0x80320005,
  FWP_E_SUBLAYER_NOT_FOUND: 0x80320007,
  FWP_E_NOT_FOUND: 0x80320008,
  FWP_E_ALREADY_EXISTS: 0x80320009,
  FWP_E_IN_USE: 0x8032000a,
  FWP_E_TXN_IN_PROGRESS: 0x8032000e,
  FWP_E_TXN_ABORTED: 0x8032000f,
  FWP_E_TIMEOUT: 0x80320012,
} as const;
