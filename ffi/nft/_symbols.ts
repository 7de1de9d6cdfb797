/**
 * The libnftables symbol table: the only description of the native
 * interface, so that a wrong type shows up here and nowhere else.
 *
 * @module
 */

/** Where Debian and Ubuntu install libnftables on x86-64. */
export const NFT_DEFAULT_LIBRARY = "/usr/lib/x86_64-linux-gnu/libnftables.so.1";

/** `nft_ctx_new` flag: no special behaviour. */
export const NFT_CTX_DEFAULT = 0;

/** Output flags of `nft_ctx_output_set_flags` (libnftables.h). */
export const NFT_OUTPUT_STATELESS = 1 << 2;
export const NFT_OUTPUT_HANDLE = 1 << 3;
export const NFT_OUTPUT_JSON = 1 << 4;

/** The functions of libnftables.h that Palisade calls. */
export const NFT_SYMBOLS = {
  nft_ctx_new: {
    parameters: ["u32"], // uint32_t flags
    result: "pointer", // struct nft_ctx *
  },
  nft_ctx_free: {
    parameters: ["pointer"], // struct nft_ctx *ctx
    result: "void",
  },
  nft_ctx_set_dry_run: {
    parameters: ["pointer", "bool"], // struct nft_ctx *ctx, bool dry
    result: "void",
  },
  nft_ctx_output_set_flags: {
    parameters: ["pointer", "u32"], // struct nft_ctx *ctx, unsigned int flags
    result: "void",
  },
  nft_ctx_output_get_flags: {
    parameters: ["pointer"], // struct nft_ctx *ctx
    result: "u32", // unsigned int
  },
  nft_ctx_buffer_output: {
    parameters: ["pointer"], // struct nft_ctx *ctx
    result: "i32", // int: 0 on success
  },
  nft_ctx_get_output_buffer: {
    parameters: ["pointer"], // struct nft_ctx *ctx
    result: "pointer", // const char *, reset by the call
  },
  nft_ctx_buffer_error: {
    parameters: ["pointer"], // struct nft_ctx *ctx
    result: "i32", // int: 0 on success
  },
  nft_ctx_get_error_buffer: {
    parameters: ["pointer"], // struct nft_ctx *ctx
    result: "pointer", // const char *, reset by the call
  },
  nft_run_cmd_from_buffer: {
    parameters: ["pointer", "buffer"], // struct nft_ctx *nft, const char *buf
    result: "i32", // int: 0 on success, non-zero on failure
  },
  // The C library, reached through libnftables' own dependencies. Deno
  // lets only an unrestricted --allow-ffi read memory through pointer
  // views, so output buffers are measured and copied natively: the
  // service's grant stays limited to this one library.
  strlen: {
    parameters: ["pointer"], // const char *s
    result: "usize", // size_t
  },
  memcpy: {
    parameters: ["buffer", "pointer", "usize"], // void *dst, const void *src, size_t n
    result: "pointer", // void *dst
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The opened library with {@linkcode NFT_SYMBOLS} bound. */
export type NftLibrary = Deno.DynamicLibrary<typeof NFT_SYMBOLS>;
