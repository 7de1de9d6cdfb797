/**
 * A libnftables context: one `struct nft_ctx` with buffered output and
 * error text, JSON in and out, freed on every path.
 *
 * @module
 */
import {
  NFT_CTX_DEFAULT,
  NFT_DEFAULT_LIBRARY,
  NFT_OUTPUT_HANDLE,
  NFT_OUTPUT_JSON,
  NFT_OUTPUT_STATELESS,
  NFT_SYMBOLS,
  type NftLibrary,
} from "./_symbols.ts";

export { NFT_DEFAULT_LIBRARY };

/**
 * A libnftables call that failed. `errorText` is the library's error
 * buffer exactly as it wrote it; `command` is what was submitted (the
 * whole batch, which may be large).
 */
export class NftError extends Error {
  /** The native function that failed, e.g. `nft_run_cmd_from_buffer`. */
  readonly call: string;
  /** Its return value (libnftables returns non-zero on failure). */
  readonly code: number;
  /** The error buffer text, verbatim; empty when the library gave none. */
  readonly errorText: string;
  /** The command text submitted, verbatim. */
  readonly command: string;

  constructor(
    message: string,
    opts: { call: string; code: number; errorText: string; command: string },
  ) {
    super(message);
    this.name = "NftError";
    this.call = opts.call;
    this.code = opts.code;
    this.errorText = opts.errorText;
    this.command = opts.command;
  }
}

/** Options of {@linkcode NftContext}. */
export interface NftContextOptions {
  /** Path of libnftables; default {@linkcode NFT_DEFAULT_LIBRARY}. */
  library?: string;
  /** Print the stateless form (no counter values) in listings. */
  stateless?: boolean;
}

const encoder = new TextEncoder();

/**
 * One libnftables context. Commands go in as JSON (an object, or text
 * that libnftables parses as JSON first and as nft syntax otherwise);
 * listings come back as JSON with object handles.
 *
 * Every call runs in the network namespace of the calling thread, so a
 * context opened in the host's namespace changes the host's firewall.
 *
 * @example
 * ```ts ignore
 * using nft = new NftContext();
 * const listing = JSON.parse(nft.run("list tables"));
 * ```
 */
export class NftContext implements Disposable {
  #lib: NftLibrary | null;
  #ctx: Deno.PointerValue;
  #dryRun = false;

  /**
   * Opens libnftables and creates a context with buffered output and
   * error text.
   *
   * @throws {NftError} the library cannot be set up
   * @throws {Deno.errors.NotFound} the library file is missing
   */
  constructor(options: NftContextOptions = {}) {
    const lib = Deno.dlopen(
      options.library ?? NFT_DEFAULT_LIBRARY,
      NFT_SYMBOLS,
    );
    this.#lib = lib;
    this.#ctx = null;
    try {
      this.#ctx = lib.symbols.nft_ctx_new(NFT_CTX_DEFAULT);
      if (this.#ctx === null) {
        throw setupError("nft_ctx_new", 0, "it returned NULL");
      }
      const flags = NFT_OUTPUT_JSON | NFT_OUTPUT_HANDLE |
        (options.stateless ? NFT_OUTPUT_STATELESS : 0);
      lib.symbols.nft_ctx_output_set_flags(this.#ctx, flags);
      const set = lib.symbols.nft_ctx_output_get_flags(this.#ctx);
      if (set !== flags) {
        throw setupError(
          "nft_ctx_output_set_flags",
          set,
          `flags read back as 0x${set.toString(16)}`,
        );
      }
      for (const call of ["nft_ctx_buffer_output", "nft_ctx_buffer_error"]) {
        const rc = call === "nft_ctx_buffer_output"
          ? lib.symbols.nft_ctx_buffer_output(this.#ctx)
          : lib.symbols.nft_ctx_buffer_error(this.#ctx);
        if (rc !== 0) throw setupError(call, rc, `it returned ${rc}`);
      }
    } catch (error) {
      this.close();
      throw error;
    }
  }

  /** True once {@linkcode close} ran. */
  get closed(): boolean {
    return this.#lib === null;
  }

  /**
   * In dry-run mode libnftables sends the batch to the kernel without
   * the final commit: the kernel checks every message and then discards
   * the whole batch.
   */
  get dryRun(): boolean {
    return this.#dryRun;
  }

  set dryRun(value: boolean) {
    const lib = this.#open("set dry-run mode");
    lib.symbols.nft_ctx_set_dry_run(this.#ctx, value);
    this.#dryRun = value;
  }

  /**
   * Runs `commands` (a JSON object such as `{ nftables: [...] }`, or
   * command text) as one batch and returns the output buffer.
   *
   * @throws {NftError} libnftables or the kernel refused; the error
   *   buffer text and the command are on the error
   */
  run(commands: string | object): string {
    const lib = this.#open("run nftables commands");
    const text = typeof commands === "string"
      ? commands
      : JSON.stringify(commands);
    const bytes = encoder.encode(text + "\0");

    const rc = lib.symbols.nft_run_cmd_from_buffer(this.#ctx, bytes);
    const output = readBuffer(
      lib,
      lib.symbols.nft_ctx_get_output_buffer(this.#ctx),
    );
    const errorText = readBuffer(
      lib,
      lib.symbols.nft_ctx_get_error_buffer(this.#ctx),
    );
    if (rc !== 0) {
      const why = errorText.trim() || `libnftables returned ${rc}`;
      throw new NftError(`Cannot run nftables commands: ${why}`, {
        call: "nft_run_cmd_from_buffer",
        code: rc,
        errorText,
        command: text,
      });
    }
    return output;
  }

  /**
   * Runs `commands` and parses the JSON output; empty output is `null`.
   *
   * @throws {NftError} as {@linkcode run}
   * @throws {SyntaxError} the output is not JSON
   */
  runJson(commands: string | object): unknown {
    const output = this.run(commands).trim();
    return output === "" ? null : JSON.parse(output);
  }

  /** Frees the context and closes the library; safe to call twice. */
  close(): void {
    const lib = this.#lib;
    if (lib === null) return;
    this.#lib = null;
    if (this.#ctx !== null) lib.symbols.nft_ctx_free(this.#ctx);
    this.#ctx = null;
    lib.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #open(action: string): NftLibrary {
    if (this.#lib === null || this.#ctx === null) {
      throw new Error(`Cannot ${action}: the nftables context is closed`);
    }
    return this.#lib;
  }
}

const decoder = new TextDecoder();

/** Copies a NUL-terminated buffer of libnftables' into a string. */
function readBuffer(lib: NftLibrary, pointer: Deno.PointerValue): string {
  if (pointer === null) return "";
  const length = lib.symbols.strlen(pointer);
  const bytes = new Uint8Array(Number(length));
  if (bytes.length > 0) lib.symbols.memcpy(bytes, pointer, length);
  return decoder.decode(bytes);
}

function setupError(call: string, code: number, why: string): NftError {
  return new NftError(`Cannot set up the nftables context: ${call}: ${why}`, {
    call,
    code,
    errorText: "",
    command: "",
  });
}
