/*
 * wfpsim_types.h - Windows x64 memory layouts of the fwpuclnt.dll structures
 * the simulator accepts and returns, written with fixed-width types so that
 * the same bytes mean the same thing on Linux x86-64 and on Windows x64.
 *
 * Every structure mirrors its namesake in fwptypes.h / fwpmtypes.h of the
 * Windows SDK with a SIM_ prefix. Wide strings are UTF-16 (uint16_t), never
 * wchar_t (4 bytes on Linux). Pointers are 8 bytes, UINT64 is 8-aligned and
 * enums are 32-bit on both platforms, so the natural C layout matches.
 * layout_mingw.c compiles these definitions next to MinGW-w64's real headers
 * and asserts equal size, alignment and field offsets.
 *
 * The header compiles on its own with gcc and with x86_64-w64-mingw32-gcc.
 */
#ifndef WFPSIM_TYPES_H
#define WFPSIM_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes (winerror.h) ------------------------------------------ */

#define SIM_ERROR_SUCCESS 0u
#define SIM_ERROR_INVALID_HANDLE 6u
#define SIM_ERROR_NOT_ENOUGH_MEMORY 8u
#define SIM_ERROR_WRITE_FAULT 29u
#define SIM_ERROR_READ_FAULT 30u
#define SIM_ERROR_NOT_SUPPORTED 50u
#define SIM_ERROR_INVALID_PARAMETER 87u
#define SIM_ERROR_FILE_CORRUPT 1392u

#define SIM_FWP_E_CALLOUT_NOT_FOUND 0x80320001u
#define SIM_FWP_E_CONDITION_NOT_FOUND 0x80320002u
#define SIM_FWP_E_FILTER_NOT_FOUND 0x80320003u
#define SIM_FWP_E_LAYER_NOT_FOUND 0x80320004u
#define SIM_FWP_E_PROVIDER_NOT_FOUND 0x80320005u
#define SIM_FWP_E_PROVIDER_CONTEXT_NOT_FOUND 0x80320006u
#define SIM_FWP_E_SUBLAYER_NOT_FOUND 0x80320007u
#define SIM_FWP_E_NOT_FOUND 0x80320008u
#define SIM_FWP_E_ALREADY_EXISTS 0x80320009u
#define SIM_FWP_E_IN_USE 0x8032000Au
#define SIM_FWP_E_DYNAMIC_SESSION_IN_PROGRESS 0x8032000Bu
#define SIM_FWP_E_WRONG_SESSION 0x8032000Cu
#define SIM_FWP_E_NO_TXN_IN_PROGRESS 0x8032000Du
#define SIM_FWP_E_TXN_IN_PROGRESS 0x8032000Eu
#define SIM_FWP_E_TXN_ABORTED 0x8032000Fu
#define SIM_FWP_E_SESSION_ABORTED 0x80320010u
#define SIM_FWP_E_INCOMPATIBLE_TXN 0x80320011u
#define SIM_FWP_E_TIMEOUT 0x80320012u
#define SIM_FWP_E_LIFETIME_MISMATCH 0x80320016u
#define SIM_FWP_E_BUILTIN_OBJECT 0x80320017u
#define SIM_FWP_E_NULL_POINTER 0x8032001Cu
#define SIM_FWP_E_INVALID_ENUMERATOR 0x8032001Du
#define SIM_FWP_E_INVALID_FLAGS 0x8032001Eu
#define SIM_FWP_E_INVALID_NET_MASK 0x8032001Fu
#define SIM_FWP_E_INVALID_RANGE 0x80320020u
#define SIM_FWP_E_ZERO_LENGTH_ARRAY 0x80320022u
#define SIM_FWP_E_NULL_DISPLAY_NAME 0x80320023u
#define SIM_FWP_E_INVALID_ACTION_TYPE 0x80320024u
#define SIM_FWP_E_INVALID_WEIGHT 0x80320025u
#define SIM_FWP_E_MATCH_TYPE_MISMATCH 0x80320026u
#define SIM_FWP_E_TYPE_MISMATCH 0x80320027u
#define SIM_FWP_E_OUT_OF_BOUNDS 0x80320028u
#define SIM_FWP_E_DUPLICATE_CONDITION 0x8032002Au

/* ---- flags and enumerations (fwptypes.h, fwpmtypes.h, fwpmu.h) ----------- */

#define SIM_RPC_C_AUTHN_WINNT 10u
#define SIM_RPC_C_AUTHN_DEFAULT 0xFFFFFFFFu

#define SIM_FWPM_SESSION_FLAG_DYNAMIC 0x00000001u
#define SIM_FWPM_TXN_READ_ONLY 0x00000001u
#define SIM_FWPM_PROVIDER_FLAG_PERSISTENT 0x00000001u
#define SIM_FWPM_PROVIDER_FLAG_DISABLED 0x00000010u
#define SIM_FWPM_SUBLAYER_FLAG_PERSISTENT 0x0001u
#define SIM_FWPM_FILTER_FLAG_PERSISTENT 0x00000001u
#define SIM_FWPM_FILTER_FLAG_BOOTTIME 0x00000002u
#define SIM_FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT 0x00000004u
#define SIM_FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT 0x00000008u
#define SIM_FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED 0x00000010u
#define SIM_FWPM_FILTER_FLAG_DISABLED 0x00000020u
#define SIM_FWPM_FILTER_FLAG_INDEXED 0x00000040u

#define SIM_FWP_ACTION_FLAG_TERMINATING 0x00001000u
#define SIM_FWP_ACTION_FLAG_NON_TERMINATING 0x00002000u
#define SIM_FWP_ACTION_FLAG_CALLOUT 0x00004000u
#define SIM_FWP_ACTION_BLOCK (0x1u | SIM_FWP_ACTION_FLAG_TERMINATING)
#define SIM_FWP_ACTION_PERMIT (0x2u | SIM_FWP_ACTION_FLAG_TERMINATING)
#define SIM_FWP_ACTION_CALLOUT_TERMINATING                                     \
  (0x3u | SIM_FWP_ACTION_FLAG_CALLOUT | SIM_FWP_ACTION_FLAG_TERMINATING)
#define SIM_FWP_ACTION_CALLOUT_INSPECTION                                      \
  (0x4u | SIM_FWP_ACTION_FLAG_CALLOUT | SIM_FWP_ACTION_FLAG_NON_TERMINATING)
#define SIM_FWP_ACTION_CALLOUT_UNKNOWN (0x5u | SIM_FWP_ACTION_FLAG_CALLOUT)

/* FWP_DATA_TYPE */
#define SIM_FWP_EMPTY 0u
#define SIM_FWP_UINT8 1u
#define SIM_FWP_UINT16 2u
#define SIM_FWP_UINT32 3u
#define SIM_FWP_UINT64 4u
#define SIM_FWP_INT8 5u
#define SIM_FWP_INT16 6u
#define SIM_FWP_INT32 7u
#define SIM_FWP_INT64 8u
#define SIM_FWP_FLOAT 9u
#define SIM_FWP_DOUBLE 10u
#define SIM_FWP_BYTE_ARRAY16_TYPE 11u
#define SIM_FWP_BYTE_BLOB_TYPE 12u
#define SIM_FWP_SID 13u
#define SIM_FWP_SECURITY_DESCRIPTOR_TYPE 14u
#define SIM_FWP_TOKEN_INFORMATION_TYPE 15u
#define SIM_FWP_TOKEN_ACCESS_INFORMATION_TYPE 16u
#define SIM_FWP_UNICODE_STRING_TYPE 17u
#define SIM_FWP_BYTE_ARRAY6_TYPE 18u
#define SIM_FWP_V4_ADDR_MASK 0x100u
#define SIM_FWP_V6_ADDR_MASK 0x101u
#define SIM_FWP_RANGE_TYPE 0x102u

/* FWP_MATCH_TYPE */
#define SIM_FWP_MATCH_EQUAL 0u
#define SIM_FWP_MATCH_GREATER 1u
#define SIM_FWP_MATCH_LESS 2u
#define SIM_FWP_MATCH_GREATER_OR_EQUAL 3u
#define SIM_FWP_MATCH_LESS_OR_EQUAL 4u
#define SIM_FWP_MATCH_RANGE 5u
#define SIM_FWP_MATCH_FLAGS_ALL_SET 6u
#define SIM_FWP_MATCH_FLAGS_ANY_SET 7u
#define SIM_FWP_MATCH_FLAGS_NONE_SET 8u
#define SIM_FWP_MATCH_EQUAL_CASE_INSENSITIVE 9u
#define SIM_FWP_MATCH_NOT_EQUAL 10u
#define SIM_FWP_MATCH_TYPE_MAX 11u

/* FWP_FILTER_ENUM_TYPE */
#define SIM_FWP_FILTER_ENUM_FULLY_CONTAINED 0u
#define SIM_FWP_FILTER_ENUM_OVERLAPPING 1u

/* FWPM_AUTO_WEIGHT_BITS: the low 60 bits of a weight are the auto part. */
#define SIM_FWPM_AUTO_WEIGHT_BITS 60u
#define SIM_FWPM_WEIGHT_RANGE_MAX 15u

/* ---- structures --------------------------------------------------------- */

/* GUID: 16 bytes, 4-aligned. */
typedef struct SIM_GUID {
  uint32_t Data1;
  uint16_t Data2;
  uint16_t Data3;
  uint8_t Data4[8];
} SIM_GUID;

/* SID (winnt.h): variable length, 8 + 4 * SubAuthorityCount bytes. */
typedef struct SIM_SID {
  uint8_t Revision;
  uint8_t SubAuthorityCount;
  uint8_t IdentifierAuthority[6];
  uint32_t SubAuthority[1];
} SIM_SID;

typedef struct SIM_FWP_BYTE_ARRAY6 {
  uint8_t byteArray6[6];
} SIM_FWP_BYTE_ARRAY6;

typedef struct SIM_FWP_BYTE_ARRAY16 {
  uint8_t byteArray16[16];
} SIM_FWP_BYTE_ARRAY16;

typedef struct SIM_FWP_BYTE_BLOB {
  uint32_t size;
  uint8_t *data;
} SIM_FWP_BYTE_BLOB;

/* FWP_VALUE0: a 32-bit type tag and an 8-byte union. Values wider than
 * 32 bits travel by pointer. */
typedef struct SIM_FWP_VALUE0 {
  uint32_t type;
  union {
    uint8_t uint8;
    uint16_t uint16;
    uint32_t uint32;
    uint64_t *uint64;
    int8_t int8;
    int16_t int16;
    int32_t int32;
    int64_t *int64;
    float float32;
    double *double64;
    SIM_FWP_BYTE_ARRAY16 *byteArray16;
    SIM_FWP_BYTE_BLOB *byteBlob;
    SIM_SID *sid;
    SIM_FWP_BYTE_BLOB *sd;
    void *tokenInformation;
    SIM_FWP_BYTE_BLOB *tokenAccessInformation;
    uint16_t *unicodeString;
    SIM_FWP_BYTE_ARRAY6 *byteArray6;
  } u;
} SIM_FWP_VALUE0;

/* IPv4 address and mask, both in host byte order. */
typedef struct SIM_FWP_V4_ADDR_AND_MASK {
  uint32_t addr;
  uint32_t mask;
} SIM_FWP_V4_ADDR_AND_MASK;

/* IPv6 address in network byte order and a prefix length (0-128). */
typedef struct SIM_FWP_V6_ADDR_AND_MASK {
  uint8_t addr[16];
  uint8_t prefixLength;
} SIM_FWP_V6_ADDR_AND_MASK;

typedef struct SIM_FWP_RANGE0 {
  SIM_FWP_VALUE0 valueLow;
  SIM_FWP_VALUE0 valueHigh;
} SIM_FWP_RANGE0;

/* FWP_CONDITION_VALUE0: FWP_VALUE0 plus masks and ranges. */
typedef struct SIM_FWP_CONDITION_VALUE0 {
  uint32_t type;
  union {
    uint8_t uint8;
    uint16_t uint16;
    uint32_t uint32;
    uint64_t *uint64;
    int8_t int8;
    int16_t int16;
    int32_t int32;
    int64_t *int64;
    float float32;
    double *double64;
    SIM_FWP_BYTE_ARRAY16 *byteArray16;
    SIM_FWP_BYTE_BLOB *byteBlob;
    SIM_SID *sid;
    SIM_FWP_BYTE_BLOB *sd;
    void *tokenInformation;
    SIM_FWP_BYTE_BLOB *tokenAccessInformation;
    uint16_t *unicodeString;
    SIM_FWP_BYTE_ARRAY6 *byteArray6;
    SIM_FWP_V4_ADDR_AND_MASK *v4AddrMask;
    SIM_FWP_V6_ADDR_AND_MASK *v6AddrMask;
    SIM_FWP_RANGE0 *rangeValue;
  } u;
} SIM_FWP_CONDITION_VALUE0;

typedef struct SIM_FWPM_DISPLAY_DATA0 {
  uint16_t *name;
  uint16_t *description;
} SIM_FWPM_DISPLAY_DATA0;

typedef struct SIM_FWPM_SESSION0 {
  SIM_GUID sessionKey;
  SIM_FWPM_DISPLAY_DATA0 displayData;
  uint32_t flags;
  uint32_t txnWaitTimeoutInMSec;
  uint32_t processId;
  SIM_SID *sid;
  uint16_t *username;
  int32_t kernelMode;
} SIM_FWPM_SESSION0;

typedef struct SIM_FWPM_PROVIDER0 {
  SIM_GUID providerKey;
  SIM_FWPM_DISPLAY_DATA0 displayData;
  uint32_t flags;
  SIM_FWP_BYTE_BLOB providerData;
  uint16_t *serviceName;
} SIM_FWPM_PROVIDER0;

typedef struct SIM_FWPM_SUBLAYER0 {
  SIM_GUID subLayerKey;
  SIM_FWPM_DISPLAY_DATA0 displayData;
  uint16_t flags;
  SIM_GUID *providerKey;
  SIM_FWP_BYTE_BLOB providerData;
  uint16_t weight;
} SIM_FWPM_SUBLAYER0;

typedef struct SIM_FWPM_ACTION0 {
  uint32_t type;
  union {
    SIM_GUID filterType;
    SIM_GUID calloutKey;
  } u;
} SIM_FWPM_ACTION0;

typedef struct SIM_FWPM_FILTER_CONDITION0 {
  SIM_GUID fieldKey;
  uint32_t matchType;
  SIM_FWP_CONDITION_VALUE0 conditionValue;
} SIM_FWPM_FILTER_CONDITION0;

typedef struct SIM_FWPM_FILTER0 {
  SIM_GUID filterKey;
  SIM_FWPM_DISPLAY_DATA0 displayData;
  uint32_t flags;
  SIM_GUID *providerKey;
  SIM_FWP_BYTE_BLOB providerData;
  SIM_GUID layerKey;
  SIM_GUID subLayerKey;
  SIM_FWP_VALUE0 weight;
  uint32_t numFilterConditions;
  SIM_FWPM_FILTER_CONDITION0 *filterCondition;
  SIM_FWPM_ACTION0 action;
  union {
    uint64_t rawContext;
    SIM_GUID providerContextKey;
  } u;
  SIM_GUID *reserved;
  uint64_t filterId;
  SIM_FWP_VALUE0 effectiveWeight;
} SIM_FWPM_FILTER0;

typedef struct SIM_FWPM_PROVIDER_CONTEXT_ENUM_TEMPLATE0 {
  SIM_GUID *providerKey;
  uint32_t providerContextType;
} SIM_FWPM_PROVIDER_CONTEXT_ENUM_TEMPLATE0;

typedef struct SIM_FWPM_FILTER_ENUM_TEMPLATE0 {
  SIM_GUID *providerKey;
  SIM_GUID layerKey;
  uint32_t enumType;
  uint32_t flags;
  SIM_FWPM_PROVIDER_CONTEXT_ENUM_TEMPLATE0 *providerContextTemplate;
  uint32_t numFilterConditions;
  SIM_FWPM_FILTER_CONDITION0 *filterCondition;
  uint32_t actionMask;
  SIM_GUID *calloutKey;
} SIM_FWPM_FILTER_ENUM_TEMPLATE0;

/* Windows x64 sizes and offsets, checked here on every compiler and against
 * the real headers by layout_mingw.c. */
#define SIM_LAYOUT_ASSERT(cond, msg) _Static_assert(cond, msg)
SIM_LAYOUT_ASSERT(sizeof(SIM_GUID) == 16, "GUID size");
SIM_LAYOUT_ASSERT(sizeof(SIM_FWP_BYTE_BLOB) == 16, "FWP_BYTE_BLOB size");
SIM_LAYOUT_ASSERT(sizeof(SIM_FWP_VALUE0) == 16, "FWP_VALUE0 size");
SIM_LAYOUT_ASSERT(sizeof(SIM_FWP_CONDITION_VALUE0) == 16,
                  "FWP_CONDITION_VALUE0 size");
SIM_LAYOUT_ASSERT(sizeof(SIM_FWP_V6_ADDR_AND_MASK) == 17,
                  "FWP_V6_ADDR_AND_MASK size");
SIM_LAYOUT_ASSERT(sizeof(SIM_FWP_RANGE0) == 32, "FWP_RANGE0 size");
SIM_LAYOUT_ASSERT(sizeof(SIM_FWPM_SESSION0) == 72, "FWPM_SESSION0 size");
SIM_LAYOUT_ASSERT(sizeof(SIM_FWPM_PROVIDER0) == 64, "FWPM_PROVIDER0 size");
SIM_LAYOUT_ASSERT(sizeof(SIM_FWPM_SUBLAYER0) == 72, "FWPM_SUBLAYER0 size");
SIM_LAYOUT_ASSERT(sizeof(SIM_FWPM_ACTION0) == 20, "FWPM_ACTION0 size");
SIM_LAYOUT_ASSERT(sizeof(SIM_FWPM_FILTER_CONDITION0) == 40,
                  "FWPM_FILTER_CONDITION0 size");
SIM_LAYOUT_ASSERT(sizeof(SIM_FWPM_FILTER0) == 200, "FWPM_FILTER0 size");
SIM_LAYOUT_ASSERT(offsetof(SIM_FWPM_FILTER0, weight) == 96, "weight");
SIM_LAYOUT_ASSERT(offsetof(SIM_FWPM_FILTER0, action) == 128, "action");
SIM_LAYOUT_ASSERT(offsetof(SIM_FWPM_FILTER0, u) == 152, "context union");
SIM_LAYOUT_ASSERT(offsetof(SIM_FWPM_FILTER0, filterId) == 176, "filterId");
SIM_LAYOUT_ASSERT(offsetof(SIM_FWPM_FILTER0, effectiveWeight) == 184,
                  "effectiveWeight");
SIM_LAYOUT_ASSERT(sizeof(SIM_FWPM_FILTER_ENUM_TEMPLATE0) == 72,
                  "FWPM_FILTER_ENUM_TEMPLATE0 size");

/* ---- exported functions (same names and signatures as fwpuclnt.dll) ------ */

/* A file that also includes the real fwpmu.h defines WFPSIM_NO_PROTOTYPES:
 * the Windows declarations use DWORD and wchar_t, a different spelling of
 * the same ABI. */
#ifndef WFPSIM_NO_PROTOTYPES

typedef void *SIM_HANDLE;

uint32_t FwpmEngineOpen0(const uint16_t *serverName, uint32_t authnService,
                         void *authIdentity, const SIM_FWPM_SESSION0 *session,
                         SIM_HANDLE *engineHandle);
uint32_t FwpmEngineClose0(SIM_HANDLE engineHandle);
uint32_t FwpmTransactionBegin0(SIM_HANDLE engineHandle, uint32_t flags);
uint32_t FwpmTransactionCommit0(SIM_HANDLE engineHandle);
uint32_t FwpmTransactionAbort0(SIM_HANDLE engineHandle);
uint32_t FwpmProviderAdd0(SIM_HANDLE engineHandle,
                          const SIM_FWPM_PROVIDER0 *provider, void *sd);
uint32_t FwpmProviderDeleteByKey0(SIM_HANDLE engineHandle,
                                  const SIM_GUID *key);
uint32_t FwpmProviderGetByKey0(SIM_HANDLE engineHandle, const SIM_GUID *key,
                               SIM_FWPM_PROVIDER0 **provider);
uint32_t FwpmSubLayerAdd0(SIM_HANDLE engineHandle,
                          const SIM_FWPM_SUBLAYER0 *subLayer, void *sd);
uint32_t FwpmSubLayerDeleteByKey0(SIM_HANDLE engineHandle,
                                  const SIM_GUID *key);
uint32_t FwpmSubLayerGetByKey0(SIM_HANDLE engineHandle, const SIM_GUID *key,
                               SIM_FWPM_SUBLAYER0 **subLayer);
uint32_t FwpmFilterAdd0(SIM_HANDLE engineHandle,
                        const SIM_FWPM_FILTER0 *filter, void *sd,
                        uint64_t *id);
uint32_t FwpmFilterDeleteById0(SIM_HANDLE engineHandle, uint64_t id);
uint32_t FwpmFilterDeleteByKey0(SIM_HANDLE engineHandle, const SIM_GUID *key);
uint32_t FwpmFilterGetByKey0(SIM_HANDLE engineHandle, const SIM_GUID *key,
                             SIM_FWPM_FILTER0 **filter);
uint32_t FwpmFilterCreateEnumHandle0(
    SIM_HANDLE engineHandle, const SIM_FWPM_FILTER_ENUM_TEMPLATE0 *enumTemplate,
    SIM_HANDLE *enumHandle);
uint32_t FwpmFilterEnum0(SIM_HANDLE engineHandle, SIM_HANDLE enumHandle,
                         uint32_t numEntriesRequested,
                         SIM_FWPM_FILTER0 ***entries,
                         uint32_t *numEntriesReturned);
uint32_t FwpmFilterDestroyEnumHandle0(SIM_HANDLE engineHandle,
                                      SIM_HANDLE enumHandle);
void FwpmFreeMemory0(void **p);
uint32_t FwpmGetAppIdFromFileName0(const uint16_t *fileName,
                                   SIM_FWP_BYTE_BLOB **appId);

/* ---- test hooks (simulator only) ----------------------------------------- */

uint32_t WfpsimInjectFault(const char *function, uint32_t nth, uint32_t code);
void WfpsimClearFaults(void);
uint32_t WfpsimOpenHandles(void);
uint64_t WfpsimUnfreedAllocations(void);
uint32_t WfpsimReset(void);
uint64_t WfpsimDump(uint8_t *buf, uint64_t cap);

#endif /* WFPSIM_NO_PROTOTYPES */

#ifdef __cplusplus
}
#endif

#endif /* WFPSIM_TYPES_H */
