/**
 * The WFP library, engine session, transaction and enumeration as
 * disposable objects. Every native status goes through
 * {@linkcode checkWfp}; every buffer the engine hands out is released
 * with `FwpmFreeMemory0` on every path.
 *
 * @module
 */
import { Arena, memoryLibraryFor, NativeMemory } from "./memory.ts";
import {
  decodeByteBlob,
  decodeFilter,
  decodeProvider,
  decodeSubLayer,
  encodeFilterTemplate,
  encodeProvider,
  encodeSession,
  encodeSubLayer,
  FilterEncoder,
  type WfpFilter,
  type WfpFilterTemplate,
  type WfpProvider,
  type WfpSubLayer,
} from "./codec.ts";
import { FWPM_FLAGS, RPC_C_AUTHN } from "./constants.ts";
import { checkWfp, WFP_E } from "./errors.ts";
import {
  type FilterId,
  type FilterKey,
  type Guid,
  isZeroGuid,
  type ProviderKey,
  type SubLayerKey,
  WFP_LAYERS,
  ZERO_GUID,
} from "./guids.ts";
import {
  DEFAULT_WFP_LIBRARY,
  WFP_SYMBOLS,
  type WfpSymbols,
} from "./symbols.ts";

/** How many filters one `FwpmFilterEnum0` call asks for. */
const ENUM_PAGE = 256;
/** Upper bound on enumeration pages, so a broken engine cannot loop us. */
const ENUM_MAX_PAGES = 4096;

/** The default library path: `fwpuclnt.dll`, resolved by Windows. */
export function defaultWfpLibraryPath(): string {
  return DEFAULT_WFP_LIBRARY;
}

/** Options of {@linkcode WfpLibrary.open}. */
export interface WfpLibraryOptions {
  /**
   * Where to bind `memcpy` from; default
   * {@linkcode memoryLibraryFor}`(path)`: the engine library itself, or
   * `ntdll.dll` on Windows.
   */
  memoryLibrary?: string;
}

/**
 * The loaded WFP user-mode library (`fwpuclnt.dll` or a stand-in with
 * the same exports) and the memory functions its structs are read
 * with. Close it after every engine opened on it.
 *
 * The binding uses no Deno pointer API, so `--allow-ffi` granted for
 * these two paths suffices (on Linux they are one path).
 */
export class WfpLibrary implements Disposable {
  /** Path the library was loaded from. */
  readonly path: string;
  #library: Deno.DynamicLibrary<typeof WFP_SYMBOLS> | null;
  #memory: NativeMemory;

  private constructor(
    path: string,
    library: Deno.DynamicLibrary<typeof WFP_SYMBOLS>,
    memory: NativeMemory,
  ) {
    this.path = path;
    this.#library = library;
    this.#memory = memory;
  }

  /**
   * Loads the library and binds the memory functions.
   *
   * @param path `fwpuclnt.dll` by default; tests pass the simulator
   * @throws {Error} the library cannot be loaded or lacks a symbol
   */
  static open(
    path: string = defaultWfpLibraryPath(),
    options: WfpLibraryOptions = {},
  ): WfpLibrary {
    let library;
    try {
      library = Deno.dlopen(path, WFP_SYMBOLS);
    } catch (error) {
      throw new Error(
        `Cannot load WFP library "${path}": ${(error as Error).message}`,
        { cause: error },
      );
    }
    try {
      const memory = NativeMemory.open(
        options.memoryLibrary ?? memoryLibraryFor(path),
      );
      return new WfpLibrary(path, library, memory);
    } catch (error) {
      library.close();
      throw new Error(
        `Cannot load WFP library "${path}": ${(error as Error).message}`,
        { cause: error },
      );
    }
  }

  /** The memory functions structs are read and laid out with. */
  get memory(): NativeMemory {
    return this.#memory;
  }

  /** The native functions. @throws {TypeError} the library is closed */
  get symbols(): WfpSymbols {
    if (this.#library === null) {
      throw new TypeError(
        `Cannot call into WFP library "${this.path}": it is closed`,
      );
    }
    return this.#library.symbols;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#library === null;
  }

  /**
   * Returns the application ID WFP uses to match `app` conditions
   * (`FwpmGetAppIdFromFileName0`): the device path of the file.
   *
   * @throws {WfpError} the file cannot be resolved
   */
  appIdFromFileName(fileName: string): Uint8Array {
    using arena = new Arena(this.memory);
    const out = arena.alloc(8);
    const status = this.symbols.FwpmGetAppIdFromFileName0(
      arena.wideBuffer(fileName),
      out,
    );
    checkWfp(
      status,
      "FwpmGetAppIdFromFileName0",
      "resolve application ID of",
      `"${fileName}"`,
    );
    const address = readAddress(out);
    try {
      return decodeByteBlob(this.memory, address);
    } finally {
      this.free(address);
    }
  }

  /** Releases a buffer the engine returned (`FwpmFreeMemory0`). */
  free(address: bigint): void {
    if (address === 0n) return;
    const cell = new BigUint64Array([address]);
    this.symbols.FwpmFreeMemory0(new Uint8Array(cell.buffer));
  }

  /** Unloads the library and the memory functions; safe to call twice. */
  close(): void {
    const library = this.#library;
    this.#library = null;
    library?.close();
    this.#memory.close();
  }

  /** Same as {@linkcode WfpLibrary.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Options of {@linkcode WfpEngine.open}. */
export interface WfpEngineOptions {
  /** Objects added through this session vanish when it closes. */
  dynamic?: boolean;
  /** Session display name, shown by `netsh wfp show state`. */
  sessionName?: string;
  /** How long a transaction waits for the engine lock (ms), default 5000. */
  txnWaitTimeoutMs?: number;
}

/** Symbolic name of a layer key, or the key itself. */
export function layerName(key: Guid): string {
  for (const [name, value] of Object.entries(WFP_LAYERS)) {
    if (value === key) return name;
  }
  return key;
}

function readAddress(cell: Uint8Array): bigint {
  return new DataView(cell.buffer, cell.byteOffset).getBigUint64(0, true);
}

function refuseZero(key: Guid, action: string, object: string): void {
  if (isZeroGuid(key)) {
    throw new RangeError(
      `Cannot ${action} ${object}: the key is the zero GUID`,
    );
  }
}

/**
 * True when `key` is (or may be) the zero GUID; canonical text is told
 * apart by one comparison, anything else by the full check.
 */
function isZeroKey(key: Guid): boolean {
  return key.length === 36 ? key === ZERO_GUID : isZeroGuid(key);
}

function describeFilter(filter: WfpFilter): string {
  return `filter "${filter.name}" (key ${filter.key}, layer ${
    layerName(filter.layerKey)
  })`;
}

/**
 * An open session with the base filtering engine (`FwpmEngineOpen0`).
 *
 * @example
 * ```ts ignore
 * import { WfpEngine, WfpLibrary } from "./engine.ts";
 * using library = WfpLibrary.open("tools/wfpsim/libwfpsim.so");
 * using engine = WfpEngine.open(library, { dynamic: true });
 * engine.transaction(() => {
 *   // add or delete objects; any throw aborts
 * });
 * ```
 */
export class WfpEngine implements Disposable {
  /** The library this engine calls into. */
  readonly library: WfpLibrary;
  #handle: Deno.PointerObject | null;
  #inTransaction = false;
  #filters: FilterEncoder | null = null;

  private constructor(library: WfpLibrary, handle: Deno.PointerObject) {
    this.library = library;
    this.#handle = handle;
  }

  /**
   * Opens a session on the local engine.
   *
   * @throws {WfpError} the engine refused (e.g. ERROR_ACCESS_DENIED)
   */
  static open(library: WfpLibrary, options: WfpEngineOptions = {}): WfpEngine {
    using arena = new Arena(library.memory);
    const session = encodeSession(arena, {
      name: options.sessionName ?? "palisade",
      flags: options.dynamic ? FWPM_FLAGS.FWPM_SESSION_FLAG_DYNAMIC : 0,
      txnWaitTimeoutMs: options.txnWaitTimeoutMs ?? 5000,
    });
    const out = arena.alloc(8);
    const status = library.symbols.FwpmEngineOpen0(
      null,
      RPC_C_AUTHN.RPC_C_AUTHN_WINNT,
      null,
      session.bytes,
      out,
    );
    checkWfp(status, "FwpmEngineOpen0", "open WFP engine");
    const handle = library.memory.pointerAt(readAddress(out));
    if (handle === null) {
      throw new TypeError(
        "Cannot open WFP engine: FwpmEngineOpen0 succeeded with a null handle",
      );
    }
    return new WfpEngine(library, handle);
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#handle === null;
  }

  /** True between begin and commit/abort. */
  get inTransaction(): boolean {
    return this.#inTransaction;
  }

  get #h(): Deno.PointerObject {
    if (this.#handle === null) {
      throw new TypeError("Cannot use WFP engine: the session is closed");
    }
    return this.#handle;
  }

  get #fn(): WfpSymbols {
    return this.library.symbols;
  }

  /** Starts a read-write transaction. @throws {WfpError} */
  begin(): void {
    if (this.#inTransaction) {
      throw new TypeError(
        "Cannot begin WFP transaction: one is already open on this session",
      );
    }
    const status = this.#fn.FwpmTransactionBegin0(this.#h, 0);
    checkWfp(status, "FwpmTransactionBegin0", "begin WFP transaction");
    this.#inTransaction = true;
  }

  /** Commits the open transaction. @throws {WfpError} */
  commit(): void {
    const status = this.#fn.FwpmTransactionCommit0(this.#h);
    checkWfp(status, "FwpmTransactionCommit0", "commit WFP transaction");
    this.#inTransaction = false;
  }

  /** Aborts the open transaction. @throws {WfpError} */
  abort(): void {
    const status = this.#fn.FwpmTransactionAbort0(this.#h);
    if ((status >>> 0) === 0 || (status >>> 0) === 0x8032000d) {
      // FWP_E_NO_TXN_IN_PROGRESS: the engine already ended it.
      this.#inTransaction = false;
      return;
    }
    checkWfp(status, "FwpmTransactionAbort0", "abort WFP transaction");
  }

  /**
   * Runs `fn` inside one transaction: begin, run, commit on success;
   * abort on any throw (a failed commit included) and rethrow the
   * original error. If the abort itself fails, the session is closed so
   * the engine drops the transaction, and the abort's error is attached
   * to the original as `abortError`.
   *
   * @throws whatever `fn` or the engine threw
   */
  transaction<T>(fn: (engine: WfpEngine) => T): T {
    this.begin();
    try {
      const result = fn(this);
      this.commit();
      return result;
    } catch (error) {
      this.#abortAfter(error);
      throw error;
    }
  }

  #abortAfter(original: unknown): void {
    if (!this.#inTransaction || this.#handle === null) return;
    try {
      this.abort();
    } catch (abortError) {
      this.#inTransaction = false;
      if (original instanceof Error) {
        Object.defineProperty(original, "abortError", {
          value: abortError,
          enumerable: false,
        });
      }
      try {
        this.close();
      } catch {
        // The abort's error is already attached; the handle is gone.
      }
    }
  }

  /** Adds a provider. @throws {WfpError} @throws {RangeError} zero key */
  addProvider(provider: WfpProvider): void {
    const object = `provider "${provider.name}" (key ${provider.key})`;
    refuseZero(provider.key, "add WFP", object);
    using arena = new Arena(this.library.memory);
    const view = encodeProvider(arena, provider);
    const status = this.#fn.FwpmProviderAdd0(this.#h, view.bytes, null);
    checkWfp(status, "FwpmProviderAdd0", "add WFP", object);
  }

  /** Reads a provider; null when there is none with that key. */
  getProvider(key: ProviderKey): WfpProvider | null {
    return this.#get(
      key,
      "provider",
      WFP_E.FWP_E_PROVIDER_NOT_FOUND,
      "FwpmProviderGetByKey0",
      decodeProvider,
    );
  }

  /** Deletes a provider. @throws {WfpError} e.g. FWP_E_IN_USE */
  deleteProvider(key: ProviderKey): void {
    this.#delete(key, "provider", "FwpmProviderDeleteByKey0");
  }

  /** Adds a sublayer. @throws {WfpError} @throws {RangeError} zero key */
  addSubLayer(subLayer: WfpSubLayer): void {
    const object = `sublayer "${subLayer.name}" (key ${subLayer.key})`;
    refuseZero(subLayer.key, "add WFP", object);
    using arena = new Arena(this.library.memory);
    const view = encodeSubLayer(arena, subLayer);
    const status = this.#fn.FwpmSubLayerAdd0(this.#h, view.bytes, null);
    checkWfp(status, "FwpmSubLayerAdd0", "add WFP", object);
  }

  /** Reads a sublayer; null when there is none with that key. */
  getSubLayer(key: SubLayerKey): WfpSubLayer | null {
    return this.#get(
      key,
      "sublayer",
      WFP_E.FWP_E_SUBLAYER_NOT_FOUND,
      "FwpmSubLayerGetByKey0",
      decodeSubLayer,
    );
  }

  /** Deletes a sublayer. @throws {WfpError} e.g. FWP_E_IN_USE */
  deleteSubLayer(key: SubLayerKey): void {
    this.#delete(key, "sublayer", "FwpmSubLayerDeleteByKey0");
  }

  /**
   * Adds a filter and returns the ID the engine gave it.
   *
   * @throws {WfpError} the engine refused; the message names the filter
   * @throws {RangeError} a zero filter, layer or sublayer key
   */
  addFilter(filter: WfpFilter): FilterId {
    if (
      isZeroKey(filter.key) || isZeroKey(filter.layerKey) ||
      isZeroKey(filter.subLayerKey)
    ) {
      const object = describeFilter(filter);
      refuseZero(filter.key, "add WFP", object);
      refuseZero(filter.layerKey, "add WFP", `${object} at layer`);
      refuseZero(filter.subLayerKey, "add WFP", `${object} in sublayer`);
    }
    const fn = this.#fn;
    const handle = this.#h;
    // One reused buffer per session: the call copies what it needs, and
    // the encoder stays referenced by the session until it returns.
    const encoder = this.#filters ??= new FilterEncoder(this.library.memory);
    const bytes = encoder.encode(filter);
    const status = fn.FwpmFilterAdd0(handle, bytes, null, encoder.idCell);
    if (status !== 0) {
      checkWfp(status, "FwpmFilterAdd0", "add WFP", describeFilter(filter));
    }
    return encoder.readId() as FilterId;
  }

  /** Deletes a filter by run-time ID. @throws {WfpError} */
  deleteFilterById(id: FilterId): void {
    const status = this.#fn.FwpmFilterDeleteById0(this.#h, id);
    checkWfp(status, "FwpmFilterDeleteById0", "delete WFP", `filter ${id}`);
  }

  /** Deletes a filter by key. @throws {WfpError} */
  deleteFilterByKey(key: FilterKey): void {
    this.#delete(key, "filter", "FwpmFilterDeleteByKey0");
  }

  /** Reads a filter; null when there is none with that key. */
  getFilter(key: FilterKey): WfpFilter | null {
    return this.#get(
      key,
      "filter",
      WFP_E.FWP_E_FILTER_NOT_FOUND,
      "FwpmFilterGetByKey0",
      decodeFilter,
    );
  }

  /** Opens an enumeration of the filters `template` selects. */
  openFilterEnum(template: WfpFilterTemplate): WfpFilterEnum {
    const object = `filters at layer ${layerName(template.layerKey)}`;
    refuseZero(template.layerKey, "enumerate WFP", object);
    using arena = new Arena(this.library.memory);
    const view = encodeFilterTemplate(arena, template);
    const out = arena.alloc(8);
    const status = this.#fn.FwpmFilterCreateEnumHandle0(
      this.#h,
      view.bytes,
      out,
    );
    checkWfp(status, "FwpmFilterCreateEnumHandle0", "enumerate WFP", object);
    const handle = this.library.memory.pointerAt(readAddress(out));
    if (handle === null) {
      throw new TypeError(
        `Cannot enumerate WFP ${object}: the engine returned a null handle`,
      );
    }
    return new WfpFilterEnum(this, this.#h, handle, object);
  }

  /** Every filter `template` selects, read page by page. */
  enumFilters(template: WfpFilterTemplate): WfpFilter[] {
    using filters = this.openFilterEnum(template);
    const all: WfpFilter[] = [];
    for (let page = 0; page < ENUM_MAX_PAGES; page++) {
      const batch = filters.next(ENUM_PAGE);
      all.push(...batch);
      if (batch.length < ENUM_PAGE) return all;
    }
    throw new RangeError(
      `Cannot enumerate WFP filters: more than ${ENUM_MAX_PAGES * ENUM_PAGE}`,
    );
  }

  #get<T>(
    key: Guid,
    kind: string,
    notFound: number,
    call:
      | "FwpmProviderGetByKey0"
      | "FwpmSubLayerGetByKey0"
      | "FwpmFilterGetByKey0",
    decode: (memory: NativeMemory, address: bigint) => T,
  ): T | null {
    const object = `${kind} ${key}`;
    refuseZero(key, "read WFP", object);
    using arena = new Arena(this.library.memory);
    const out = arena.alloc(8);
    const status = this.#fn[call](this.#h, arena.guid(key), out);
    if ((status >>> 0) === notFound) return null;
    checkWfp(status, call, "read WFP", object);
    const address = readAddress(out);
    try {
      return decode(this.library.memory, address);
    } finally {
      this.library.free(address);
    }
  }

  #delete(
    key: Guid,
    kind: string,
    call:
      | "FwpmProviderDeleteByKey0"
      | "FwpmSubLayerDeleteByKey0"
      | "FwpmFilterDeleteByKey0",
  ): void {
    const object = `${kind} ${key}`;
    refuseZero(key, "delete WFP", object);
    using arena = new Arena(this.library.memory);
    const status = this.#fn[call](this.#h, arena.guid(key));
    checkWfp(status, call, "delete WFP", object);
  }

  /**
   * Closes the session (an open transaction is aborted by the engine);
   * safe to call twice.
   *
   * @throws {WfpError} FwpmEngineClose0 failed; the session stays open
   * so that `close()` can be retried
   */
  close(): void {
    const handle = this.#handle;
    if (handle === null || this.library.closed) {
      this.#handle = null;
      return;
    }
    const status = this.library.symbols.FwpmEngineClose0(handle);
    checkWfp(status, "FwpmEngineClose0", "close WFP engine");
    this.#handle = null;
    this.#inTransaction = false;
    this.#filters = null;
  }

  /** Same as {@linkcode WfpEngine.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** An open filter enumeration; destroy it with `close()` or `using`. */
export class WfpFilterEnum implements Disposable {
  readonly #engine: WfpEngine;
  readonly #engineHandle: Deno.PointerObject;
  #handle: Deno.PointerObject | null;
  readonly #object: string;

  /** Use {@linkcode WfpEngine.openFilterEnum}. */
  constructor(
    engine: WfpEngine,
    engineHandle: Deno.PointerObject,
    handle: Deno.PointerObject,
    object: string,
  ) {
    this.#engine = engine;
    this.#engineHandle = engineHandle;
    this.#handle = handle;
    this.#object = object;
  }

  /** Up to `max` more filters; fewer means the end was reached. */
  next(max = ENUM_PAGE): WfpFilter[] {
    if (this.#handle === null) {
      throw new TypeError(
        `Cannot enumerate WFP ${this.#object}: the enumeration is closed`,
      );
    }
    const library = this.#engine.library;
    const entries = new BigUint64Array(1);
    const count = new Uint32Array(1);
    const status = library.symbols.FwpmFilterEnum0(
      this.#engineHandle,
      this.#handle,
      max,
      new Uint8Array(entries.buffer),
      new Uint8Array(count.buffer),
    );
    checkWfp(status, "FwpmFilterEnum0", "enumerate WFP", this.#object);
    const array = entries[0];
    try {
      if (count[0] > max) {
        throw new RangeError(
          `Cannot enumerate WFP ${this.#object}: asked for ${max}, got ${
            count[0]
          }`,
        );
      }
      if (count[0] === 0) return [];
      const pointers = new BigUint64Array(count[0]);
      library.memory.readInto(array, new Uint8Array(pointers.buffer));
      return [...pointers].map((address) =>
        decodeFilter(library.memory, address)
      );
    } finally {
      library.free(array);
    }
  }

  /** Destroys the enumeration handle; safe to call twice. */
  close(): void {
    const handle = this.#handle;
    if (handle === null) return;
    this.#handle = null;
    if (this.#engine.closed || this.#engine.library.closed) return;
    const status = this.#engine.library.symbols.FwpmFilterDestroyEnumHandle0(
      this.#engineHandle,
      handle,
    );
    checkWfp(
      status,
      "FwpmFilterDestroyEnumHandle0",
      "close WFP enumeration of",
      this.#object,
    );
  }

  /** Same as {@linkcode WfpFilterEnum.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
