/**
 * The one symbol table for `fwpuclnt.dll` (and the simulator that
 * mirrors it). Every function returns a Win32 `DWORD` status except
 * `FwpmFreeMemory0`. Struct pointers are passed as buffers laid out by
 * `layout.ts`; out-parameters are 8-byte buffers.
 *
 * @module
 */

/** Symbols Palisade calls, with the C prototype of each parameter. */
export const WFP_SYMBOLS = {
  FwpmEngineOpen0: {
    parameters: [
      "pointer", // const wchar_t *serverName (NULL: local engine)
      "u32", // UINT32 authnService
      "pointer", // SEC_WINNT_AUTH_IDENTITY_W *authIdentity
      "buffer", // const FWPM_SESSION0 *session
      "buffer", // HANDLE *engineHandle
    ],
    result: "u32", // DWORD
  },
  FwpmEngineClose0: {
    parameters: [
      "pointer", // HANDLE engineHandle
    ],
    result: "u32", // DWORD
  },
  FwpmTransactionBegin0: {
    parameters: [
      "pointer", // HANDLE engineHandle
      "u32", // UINT32 flags
    ],
    result: "u32", // DWORD
  },
  FwpmTransactionCommit0: {
    parameters: [
      "pointer", // HANDLE engineHandle
    ],
    result: "u32", // DWORD
  },
  FwpmTransactionAbort0: {
    parameters: [
      "pointer", // HANDLE engineHandle
    ],
    result: "u32", // DWORD
  },
  FwpmProviderAdd0: {
    parameters: [
      "pointer", // HANDLE engineHandle
      "buffer", // const FWPM_PROVIDER0 *provider
      "pointer", // PSECURITY_DESCRIPTOR sd
    ],
    result: "u32", // DWORD
  },
  FwpmProviderDeleteByKey0: {
    parameters: [
      "pointer", // HANDLE engineHandle
      "buffer", // const GUID *key
    ],
    result: "u32", // DWORD
  },
  FwpmProviderGetByKey0: {
    parameters: [
      "pointer", // HANDLE engineHandle
      "buffer", // const GUID *key
      "buffer", // FWPM_PROVIDER0 **provider
    ],
    result: "u32", // DWORD
  },
  FwpmSubLayerAdd0: {
    parameters: [
      "pointer", // HANDLE engineHandle
      "buffer", // const FWPM_SUBLAYER0 *subLayer
      "pointer", // PSECURITY_DESCRIPTOR sd
    ],
    result: "u32", // DWORD
  },
  FwpmSubLayerDeleteByKey0: {
    parameters: [
      "pointer", // HANDLE engineHandle
      "buffer", // const GUID *key
    ],
    result: "u32", // DWORD
  },
  FwpmSubLayerGetByKey0: {
    parameters: [
      "pointer", // HANDLE engineHandle
      "buffer", // const GUID *key
      "buffer", // FWPM_SUBLAYER0 **subLayer
    ],
    result: "u32", // DWORD
  },
  FwpmFilterAdd0: {
    parameters: [
      "pointer", // HANDLE engineHandle
      "buffer", // const FWPM_FILTER0 *filter
      "pointer", // PSECURITY_DESCRIPTOR sd
      "buffer", // UINT64 *id
    ],
    result: "u32", // DWORD
  },
  FwpmFilterDeleteById0: {
    parameters: [
      "pointer", // HANDLE engineHandle
      "u64", // UINT64 id
    ],
    result: "u32", // DWORD
  },
  FwpmFilterDeleteByKey0: {
    parameters: [
      "pointer", // HANDLE engineHandle
      "buffer", // const GUID *key
    ],
    result: "u32", // DWORD
  },
  FwpmFilterGetByKey0: {
    parameters: [
      "pointer", // HANDLE engineHandle
      "buffer", // const GUID *key
      "buffer", // FWPM_FILTER0 **filter
    ],
    result: "u32", // DWORD
  },
  FwpmFilterCreateEnumHandle0: {
    parameters: [
      "pointer", // HANDLE engineHandle
      "buffer", // const FWPM_FILTER_ENUM_TEMPLATE0 *enumTemplate
      "buffer", // HANDLE *enumHandle
    ],
    result: "u32", // DWORD
  },
  FwpmFilterEnum0: {
    parameters: [
      "pointer", // HANDLE engineHandle
      "pointer", // HANDLE enumHandle
      "u32", // UINT32 numEntriesRequested
      "buffer", // FWPM_FILTER0 ***entries
      "buffer", // UINT32 *numEntriesReturned
    ],
    result: "u32", // DWORD
  },
  FwpmFilterDestroyEnumHandle0: {
    parameters: [
      "pointer", // HANDLE engineHandle
      "pointer", // HANDLE enumHandle
    ],
    result: "u32", // DWORD
  },
  FwpmFreeMemory0: {
    parameters: [
      "buffer", // void **p (set to NULL on return)
    ],
    result: "void",
  },
  FwpmGetAppIdFromFileName0: {
    parameters: [
      "buffer", // const wchar_t *fileName
      "buffer", // FWP_BYTE_BLOB **appId
    ],
    result: "u32", // DWORD
  },

  // Test hooks that only the simulator exports.
  WfpsimInjectFault: {
    parameters: [
      "buffer", // const char *function (NUL-terminated)
      "u32", // uint32_t nth (1: the very next call)
      "u32", // uint32_t code
    ],
    result: "u32", // uint32_t (0)
    optional: true,
  },
  WfpsimClearFaults: {
    parameters: [],
    result: "void",
    optional: true,
  },
  WfpsimOpenHandles: {
    parameters: [],
    result: "u32", // uint32_t
    optional: true,
  },
  WfpsimUnfreedAllocations: {
    parameters: [],
    result: "u64", // uint64_t
    optional: true,
  },
  WfpsimReset: {
    parameters: [],
    result: "u32", // uint32_t
    optional: true,
  },
  WfpsimDump: {
    parameters: [
      "buffer", // uint8_t *buf
      "u64", // uint64_t cap
    ],
    result: "u64", // uint64_t (length needed)
    optional: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded library's functions. */
export type WfpSymbols = Deno.DynamicLibrary<typeof WFP_SYMBOLS>["symbols"];

/** Where the binding looks for the WFP user-mode library by default. */
export const DEFAULT_WFP_LIBRARY = "fwpuclnt.dll";

/**
 * Native memory access without Deno's pointer APIs, which need an
 * unrestricted `--allow-ffi`: the C library's `memcpy`, bound three
 * times under different names. With a length of 0 it copies nothing and
 * returns its destination, which turns it into an identity function
 * (buffer to address, address to pointer). On Linux it is resolved
 * through the engine library's own handle (the dynamic linker searches
 * the library's dependencies); on Windows from `ntdll.dll`.
 */
export const MEMORY_SYMBOLS = {
  MemoryAddressOf: {
    name: "memcpy",
    parameters: [
      "buffer", // void *dst (the buffer whose address is wanted)
      "buffer", // const void *src (the same buffer)
      "usize", // size_t n (always 0)
    ],
    result: "usize", // void *dst, as an integer
  },
  MemoryRead: {
    name: "memcpy",
    parameters: [
      "buffer", // void *dst (receives the bytes)
      "usize", // const void *src (a native address)
      "usize", // size_t n
    ],
    result: "usize", // void *dst, as an integer (unused)
  },
  MemoryPointerAt: {
    name: "memcpy",
    parameters: [
      "usize", // void *dst (the address wanted as a pointer)
      "usize", // const void *src (the same address)
      "usize", // size_t n (always 0)
    ],
    result: "pointer", // void *dst, as an opaque pointer (NULL for 0)
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The loaded memory functions. */
export type MemorySymbols = Deno.DynamicLibrary<
  typeof MEMORY_SYMBOLS
>["symbols"];

/** The library that exports `memcpy` on Windows. */
export const WINDOWS_MEMORY_LIBRARY = "ntdll.dll";
