/*
 * wfpsim_test.c - behaviour tests of libwfpsim.so through its exported
 * fwpuclnt.dll interface. Run by wfpsim_test.ts; prints one line per
 * failed check and a summary, exits 0 only when every check passed.
 *
 * Usage: wfpsim_test <scratch-dir>
 * (re-executes itself as "wfpsim_test --child <scenario> ..." for the
 * tests that need a second process).
 */
#define _GNU_SOURCE
#include "wfpsim_types.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <uchar.h>
#include <unistd.h>

static int checks, failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    checks++;                                                                  \
    if (!(cond)) {                                                             \
      failures++;                                                              \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

#define CHECK_RC(expr, want)                                                   \
  do {                                                                         \
    uint32_t rc_ = (expr);                                                     \
    checks++;                                                                  \
    if (rc_ != (uint32_t)(want)) {                                             \
      failures++;                                                              \
      fprintf(stderr, "%s:%d: %s returned 0x%08x, expected 0x%08x\n",          \
              __FILE__, __LINE__, #expr, rc_, (uint32_t)(want));               \
    }                                                                          \
  } while (0)

#define W(s) ((uint16_t *)u##s)

static const SIM_GUID LAYER_CONNECT_V4 = {
    0xc38d57d1, 0x05a7, 0x4c33,
    {0x90, 0x4f, 0x7f, 0xbc, 0xee, 0xe6, 0x0e, 0x82}};
static const SIM_GUID LAYER_CONNECT_V6 = {
    0x4a72393b, 0x319f, 0x44bc,
    {0x84, 0xc3, 0xba, 0x54, 0xdc, 0xb3, 0xb6, 0xb4}};
static const SIM_GUID LAYER_ACCEPT_V4 = {
    0xe1cd9fe7, 0xf4b5, 0x4273,
    {0x96, 0xc0, 0x59, 0x2e, 0x48, 0x7b, 0x86, 0x50}};
static const SIM_GUID LAYER_OUT_TRANSPORT_V4 = {
    0x09e61aea, 0xd214, 0x46e2,
    {0x9b, 0x21, 0xb2, 0x6b, 0x0b, 0x2f, 0x28, 0xc8}};
static const SIM_GUID F_REMOTE_ADDR = {
    0xb235ae9a, 0x1d64, 0x49b8,
    {0xa4, 0x4c, 0x5f, 0xf3, 0xd9, 0x09, 0x50, 0x45}};
static const SIM_GUID F_REMOTE_PORT = {
    0xc35a604d, 0xd22b, 0x4e1a,
    {0x91, 0xb4, 0x68, 0xf6, 0x74, 0xee, 0x67, 0x4b}};
static const SIM_GUID F_PROTOCOL = {
    0x3971ef2b, 0x623e, 0x4f9a,
    {0x8c, 0xb1, 0x6e, 0x79, 0xb8, 0x06, 0xb9, 0xa7}};
static const SIM_GUID F_APP_ID = {
    0xd78e1e87, 0x8644, 0x4ea5,
    {0x94, 0x37, 0xd8, 0x09, 0xec, 0xef, 0xc9, 0x71}};
static const SIM_GUID UNIVERSAL = {
    0xeebecc03, 0xced4, 0x4380,
    {0x81, 0x9a, 0x27, 0x34, 0x39, 0x7b, 0x2b, 0x74}};

static const SIM_GUID PROV = {0x11111111, 1, 1, {1, 1, 1, 1, 1, 1, 1, 1}};
static const SIM_GUID PROV2 = {0x11111112, 1, 1, {1, 1, 1, 1, 1, 1, 1, 2}};
static const SIM_GUID SUB = {0x22222222, 2, 2, {2, 2, 2, 2, 2, 2, 2, 2}};
static const SIM_GUID MISSING = {0x99999999, 9, 9, {9, 9, 9, 9, 9, 9, 9, 9}};

static SIM_GUID key_n(uint32_t n) {
  SIM_GUID g = {0x33333333, 3, 3, {3, 3, 3, 3, 0, 0, 0, 0}};
  memcpy(&g.Data4[4], &n, 4);
  return g;
}

static int guid_eq(const SIM_GUID *a, const SIM_GUID *b) {
  return memcmp(a, b, sizeof *a) == 0;
}

static int u16eq(const uint16_t *a, const uint16_t *b) {
  if (!a || !b) return a == b;
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

static SIM_HANDLE open_engine(int dynamic, uint32_t wait_ms) {
  SIM_FWPM_SESSION0 s;
  memset(&s, 0, sizeof s);
  s.flags = dynamic ? SIM_FWPM_SESSION_FLAG_DYNAMIC : 0;
  s.txnWaitTimeoutInMSec = wait_ms;
  SIM_HANDLE h = NULL;
  CHECK_RC(FwpmEngineOpen0(NULL, SIM_RPC_C_AUTHN_WINNT, NULL, &s, &h), 0);
  return h;
}

static uint32_t add_provider(SIM_HANDLE h, const SIM_GUID *key,
                             uint32_t flags) {
  SIM_FWPM_PROVIDER0 p;
  memset(&p, 0, sizeof p);
  p.providerKey = *key;
  p.displayData.name = W("palisade");
  p.displayData.description = W("test provider");
  p.flags = flags;
  return FwpmProviderAdd0(h, &p, NULL);
}

static uint32_t add_sublayer(SIM_HANDLE h, const SIM_GUID *key,
                             const SIM_GUID *prov, uint16_t flags) {
  SIM_FWPM_SUBLAYER0 s;
  memset(&s, 0, sizeof s);
  s.subLayerKey = *key;
  s.displayData.name = W("palisade");
  s.providerKey = (SIM_GUID *)prov;
  s.flags = flags;
  s.weight = 0x100;
  return FwpmSubLayerAdd0(h, &s, NULL);
}

/* A filter on one remote TCP port, in SUB under PROV. */
typedef struct filter_spec {
  SIM_FWPM_FILTER0 f;
  SIM_FWPM_FILTER_CONDITION0 c[2];
  uint64_t weight;
} filter_spec;

static void spec_init(filter_spec *s, const SIM_GUID *key,
                      const SIM_GUID *layer, uint16_t port, uint32_t flags) {
  memset(s, 0, sizeof *s);
  s->f.filterKey = *key;
  s->f.displayData.name = W("rule-1");
  s->f.flags = flags;
  s->f.providerKey = (SIM_GUID *)&PROV;
  s->f.layerKey = *layer;
  s->f.subLayerKey = SUB;
  s->weight = 1000;
  s->f.weight.type = SIM_FWP_UINT64;
  s->f.weight.u.uint64 = &s->weight;
  s->c[0].fieldKey = F_REMOTE_PORT;
  s->c[0].matchType = SIM_FWP_MATCH_EQUAL;
  s->c[0].conditionValue.type = SIM_FWP_UINT16;
  s->c[0].conditionValue.u.uint16 = port;
  s->c[1].fieldKey = F_PROTOCOL;
  s->c[1].matchType = SIM_FWP_MATCH_EQUAL;
  s->c[1].conditionValue.type = SIM_FWP_UINT8;
  s->c[1].conditionValue.u.uint8 = 6;
  s->f.numFilterConditions = 2;
  s->f.filterCondition = s->c;
  s->f.action.type = SIM_FWP_ACTION_BLOCK;
}

static uint32_t add_port_filter(SIM_HANDLE h, const SIM_GUID *key,
                                const SIM_GUID *layer, uint16_t port,
                                uint32_t flags, uint64_t *id) {
  filter_spec s;
  spec_init(&s, key, layer, port, flags);
  return FwpmFilterAdd0(h, &s.f, NULL, id);
}

/* Base objects: persistent provider and sublayer. */
static void add_base(SIM_HANDLE h) {
  CHECK_RC(add_provider(h, &PROV, SIM_FWPM_PROVIDER_FLAG_PERSISTENT), 0);
  CHECK_RC(add_sublayer(h, &SUB, &PROV, SIM_FWPM_SUBLAYER_FLAG_PERSISTENT), 0);
}

static uint32_t count_filters(SIM_HANDLE h, const SIM_GUID *layer,
                              const SIM_GUID *prov) {
  SIM_FWPM_FILTER_ENUM_TEMPLATE0 t;
  memset(&t, 0, sizeof t);
  t.providerKey = (SIM_GUID *)prov;
  t.layerKey = *layer;
  t.actionMask = 0xFFFFFFFFu;
  SIM_HANDLE e = NULL;
  uint32_t total = 0;
  CHECK_RC(FwpmFilterCreateEnumHandle0(h, &t, &e), 0);
  for (int round = 0; round < 1000; round++) {
    SIM_FWPM_FILTER0 **entries = NULL;
    uint32_t n = 0;
    CHECK_RC(FwpmFilterEnum0(h, e, 100, &entries, &n), 0);
    if (n == 0) break;
    total += n;
    FwpmFreeMemory0((void **)&entries);
  }
  CHECK_RC(FwpmFilterDestroyEnumHandle0(h, e), 0);
  return total;
}

static void expect_clean(void) {
  CHECK(WfpsimOpenHandles() == 0);
  CHECK(WfpsimUnfreedAllocations() == 0);
}

/* ---- single-process tests ---- */

static void test_roundtrip(void) {
  WfpsimReset();
  SIM_HANDLE h = open_engine(0, 0);
  CHECK_RC(FwpmTransactionBegin0(h, 0), 0);
  add_base(h);

  SIM_FWP_BYTE_BLOB *app = NULL;
  CHECK_RC(FwpmGetAppIdFromFileName0(W("C:\\Apps\\Tool.EXE"), &app), 0);
  SIM_FWP_V4_ADDR_AND_MASK net = {0xCB007100u, 0xFFFFFF00u};
  SIM_FWP_RANGE0 range;
  memset(&range, 0, sizeof range);
  range.valueLow.type = SIM_FWP_UINT16;
  range.valueLow.u.uint16 = 137;
  range.valueHigh.type = SIM_FWP_UINT16;
  range.valueHigh.u.uint16 = 139;
  SIM_FWPM_FILTER_CONDITION0 c[3];
  memset(c, 0, sizeof c);
  c[0].fieldKey = F_REMOTE_ADDR;
  c[0].conditionValue.type = SIM_FWP_V4_ADDR_MASK;
  c[0].conditionValue.u.v4AddrMask = &net;
  c[1].fieldKey = F_REMOTE_PORT;
  c[1].matchType = SIM_FWP_MATCH_RANGE;
  c[1].conditionValue.type = SIM_FWP_RANGE_TYPE;
  c[1].conditionValue.u.rangeValue = &range;
  c[2].fieldKey = F_APP_ID;
  c[2].conditionValue.type = SIM_FWP_BYTE_BLOB_TYPE;
  c[2].conditionValue.u.byteBlob = app;

  filter_spec s;
  SIM_GUID key = key_n(1);
  spec_init(&s, &key, &LAYER_CONNECT_V4, 0, SIM_FWPM_FILTER_FLAG_PERSISTENT);
  s.f.displayData.description = W("no SMB");
  s.f.numFilterConditions = 3;
  s.f.filterCondition = c;
  s.weight = 0x0123456789ABCDEFull;
  uint64_t id = 0;
  CHECK_RC(FwpmFilterAdd0(h, &s.f, NULL, &id), 0);
  CHECK(id != 0);
  FwpmFreeMemory0((void **)&app);
  CHECK(app == NULL);
  CHECK_RC(FwpmTransactionCommit0(h), 0);

  SIM_FWPM_FILTER0 *f = NULL;
  CHECK_RC(FwpmFilterGetByKey0(h, &key, &f), 0);
  CHECK(WfpsimUnfreedAllocations() == 1);
  if (f) {
    uint8_t *lo = (uint8_t *)f, *hi = lo + 4096;
#define INSIDE(p) ((uint8_t *)(p) > lo && (uint8_t *)(p) < hi)
    CHECK(guid_eq(&f->filterKey, &key));
    CHECK(u16eq(f->displayData.name, W("rule-1")));
    CHECK(u16eq(f->displayData.description, W("no SMB")));
    CHECK(INSIDE(f->displayData.name) && INSIDE(f->providerKey));
    CHECK(f->providerKey && guid_eq(f->providerKey, &PROV));
    CHECK(guid_eq(&f->layerKey, &LAYER_CONNECT_V4));
    CHECK(guid_eq(&f->subLayerKey, &SUB));
    CHECK(f->flags == SIM_FWPM_FILTER_FLAG_PERSISTENT);
    CHECK(f->filterId == id);
    CHECK(f->weight.type == SIM_FWP_UINT64 && INSIDE(f->weight.u.uint64) &&
          *f->weight.u.uint64 == 0x0123456789ABCDEFull);
    CHECK(f->effectiveWeight.type == SIM_FWP_UINT64 &&
          *f->effectiveWeight.u.uint64 == 0x0123456789ABCDEFull);
    CHECK(f->action.type == SIM_FWP_ACTION_BLOCK);
    CHECK(f->numFilterConditions == 3 && INSIDE(f->filterCondition));
    if (f->numFilterConditions == 3) {
      SIM_FWPM_FILTER_CONDITION0 *r = f->filterCondition;
      CHECK(r[0].conditionValue.type == SIM_FWP_V4_ADDR_MASK &&
            INSIDE(r[0].conditionValue.u.v4AddrMask) &&
            r[0].conditionValue.u.v4AddrMask->addr == 0xCB007100u &&
            r[0].conditionValue.u.v4AddrMask->mask == 0xFFFFFF00u);
      CHECK(r[1].matchType == SIM_FWP_MATCH_RANGE &&
            INSIDE(r[1].conditionValue.u.rangeValue) &&
            r[1].conditionValue.u.rangeValue->valueLow.u.uint16 == 137 &&
            r[1].conditionValue.u.rangeValue->valueHigh.u.uint16 == 139);
      SIM_FWP_BYTE_BLOB *b = r[2].conditionValue.u.byteBlob;
      CHECK(INSIDE(b) && INSIDE(b->data) &&
            b->size == sizeof(u"c:\\apps\\tool.exe"));
      CHECK(b->size && u16eq((uint16_t *)b->data, W("c:\\apps\\tool.exe")));
    }
#undef INSIDE
  }
  FwpmFreeMemory0((void **)&f);

  SIM_FWPM_PROVIDER0 *p = NULL;
  CHECK_RC(FwpmProviderGetByKey0(h, &PROV, &p), 0);
  CHECK(p && u16eq(p->displayData.name, W("palisade")) &&
        p->flags == SIM_FWPM_PROVIDER_FLAG_PERSISTENT);
  FwpmFreeMemory0((void **)&p);
  SIM_FWPM_SUBLAYER0 *sl = NULL;
  CHECK_RC(FwpmSubLayerGetByKey0(h, &SUB, &sl), 0);
  CHECK(sl && sl->providerKey && guid_eq(sl->providerKey, &PROV) &&
        sl->weight == 0x100);
  FwpmFreeMemory0((void **)&sl);

  CHECK_RC(FwpmEngineClose0(h), 0);
  expect_clean();
}

static void test_transactions(void) {
  WfpsimReset();
  SIM_HANDLE a = open_engine(0, 0), b = open_engine(0, 0);
  SIM_FWPM_PROVIDER0 *p = NULL;

  CHECK_RC(FwpmTransactionCommit0(a), SIM_FWP_E_NO_TXN_IN_PROGRESS);
  CHECK_RC(FwpmTransactionAbort0(a), SIM_FWP_E_NO_TXN_IN_PROGRESS);
  CHECK_RC(FwpmTransactionBegin0(a, 0), 0);
  CHECK_RC(FwpmTransactionBegin0(a, 0), SIM_FWP_E_TXN_IN_PROGRESS);
  CHECK_RC(add_provider(a, &PROV, SIM_FWPM_PROVIDER_FLAG_PERSISTENT), 0);
  CHECK_RC(FwpmProviderGetByKey0(a, &PROV, &p), 0); /* own writes */
  FwpmFreeMemory0((void **)&p);
  CHECK_RC(FwpmProviderGetByKey0(b, &PROV, &p), SIM_FWP_E_PROVIDER_NOT_FOUND);
  /* The engine has one writer at a time. */
  CHECK_RC(add_provider(b, &PROV2, 0), SIM_FWP_E_TIMEOUT);
  CHECK_RC(FwpmTransactionBegin0(b, 0), SIM_FWP_E_TIMEOUT);
  CHECK_RC(FwpmTransactionCommit0(a), 0);
  CHECK_RC(FwpmProviderGetByKey0(b, &PROV, &p), 0);
  FwpmFreeMemory0((void **)&p);

  CHECK_RC(FwpmTransactionBegin0(a, 0), 0);
  CHECK_RC(FwpmProviderDeleteByKey0(a, &PROV), 0);
  CHECK_RC(FwpmProviderGetByKey0(a, &PROV, &p), SIM_FWP_E_PROVIDER_NOT_FOUND);
  CHECK_RC(FwpmTransactionAbort0(a), 0);
  CHECK_RC(FwpmProviderGetByKey0(a, &PROV, &p), 0);
  FwpmFreeMemory0((void **)&p);

  CHECK_RC(FwpmTransactionBegin0(b, SIM_FWPM_TXN_READ_ONLY), 0);
  CHECK_RC(add_provider(b, &PROV2, 0), SIM_FWP_E_INCOMPATIBLE_TXN);
  CHECK_RC(FwpmTransactionCommit0(b), 0);
  CHECK_RC(FwpmTransactionBegin0(b, 0x80), SIM_FWP_E_INVALID_FLAGS);

  /* Closing a handle inside a transaction aborts it. */
  CHECK_RC(FwpmTransactionBegin0(b, 0), 0);
  CHECK_RC(add_provider(b, &PROV2, 0), 0);
  CHECK_RC(FwpmEngineClose0(b), 0);
  CHECK_RC(FwpmProviderGetByKey0(a, &PROV2, &p), SIM_FWP_E_PROVIDER_NOT_FOUND);
  CHECK_RC(FwpmTransactionBegin0(a, 0), 0); /* the lock was released */
  CHECK_RC(FwpmTransactionAbort0(a), 0);
  CHECK_RC(FwpmEngineClose0(a), 0);
  expect_clean();
}

static void test_errors(void) {
  WfpsimReset();
  SIM_HANDLE h = open_engine(0, 0);
  add_base(h);
  SIM_HANDLE out = NULL;
  SIM_FWPM_FILTER0 *f = NULL;
  SIM_GUID k1 = key_n(1);

  CHECK_RC(FwpmEngineOpen0(NULL, SIM_RPC_C_AUTHN_WINNT, NULL, NULL, NULL),
           SIM_ERROR_INVALID_PARAMETER);
  CHECK_RC(FwpmEngineOpen0(NULL, 7, NULL, NULL, &out),
           SIM_ERROR_INVALID_PARAMETER);
  CHECK_RC(FwpmTransactionBegin0((SIM_HANDLE)&k1, 0), SIM_ERROR_INVALID_HANDLE);
  CHECK_RC(FwpmEngineClose0(NULL), SIM_ERROR_INVALID_HANDLE);
  CHECK_RC(FwpmProviderAdd0(h, NULL, NULL), SIM_ERROR_INVALID_PARAMETER);
  CHECK_RC(FwpmSubLayerAdd0(h, NULL, NULL), SIM_ERROR_INVALID_PARAMETER);
  CHECK_RC(FwpmFilterAdd0(h, NULL, NULL, NULL), SIM_ERROR_INVALID_PARAMETER);
  CHECK_RC(FwpmFilterGetByKey0(h, NULL, &f), SIM_ERROR_INVALID_PARAMETER);
  CHECK_RC(FwpmFilterGetByKey0(h, &k1, NULL), SIM_ERROR_INVALID_PARAMETER);
  CHECK_RC(FwpmFilterDeleteByKey0(h, NULL), SIM_ERROR_INVALID_PARAMETER);
  CHECK_RC(FwpmProviderDeleteByKey0(h, NULL), SIM_ERROR_INVALID_PARAMETER);
  CHECK_RC(FwpmSubLayerDeleteByKey0(h, NULL), SIM_ERROR_INVALID_PARAMETER);
  CHECK_RC(FwpmFilterCreateEnumHandle0(h, NULL, NULL),
           SIM_ERROR_INVALID_PARAMETER);
  CHECK_RC(FwpmGetAppIdFromFileName0(NULL, NULL), SIM_ERROR_INVALID_PARAMETER);

  CHECK_RC(add_provider(h, &PROV, 0), SIM_FWP_E_ALREADY_EXISTS);
  CHECK_RC(add_sublayer(h, &SUB, &PROV, 0), SIM_FWP_E_ALREADY_EXISTS);
  CHECK_RC(add_sublayer(h, &UNIVERSAL, NULL, 0), SIM_FWP_E_ALREADY_EXISTS);
  CHECK_RC(add_sublayer(h, &MISSING, &PROV2, 0), SIM_FWP_E_PROVIDER_NOT_FOUND);
  CHECK_RC(add_port_filter(h, &k1, &LAYER_CONNECT_V4, 445, 0, NULL), 0);
  CHECK_RC(add_port_filter(h, &k1, &LAYER_CONNECT_V4, 445, 0, NULL),
           SIM_FWP_E_ALREADY_EXISTS);
  CHECK_RC(FwpmFilterGetByKey0(h, &MISSING, &f), SIM_FWP_E_FILTER_NOT_FOUND);
  CHECK_RC(FwpmFilterDeleteByKey0(h, &MISSING), SIM_FWP_E_FILTER_NOT_FOUND);
  CHECK_RC(FwpmFilterDeleteById0(h, 0), SIM_FWP_E_FILTER_NOT_FOUND);
  CHECK_RC(FwpmProviderDeleteByKey0(h, &MISSING),
           SIM_FWP_E_PROVIDER_NOT_FOUND);
  CHECK_RC(FwpmSubLayerDeleteByKey0(h, &MISSING),
           SIM_FWP_E_SUBLAYER_NOT_FOUND);
  CHECK_RC(FwpmSubLayerDeleteByKey0(h, &UNIVERSAL), SIM_FWP_E_BUILTIN_OBJECT);

  filter_spec s;
  SIM_GUID k2 = key_n(2);
#define TRY(mutation, want)                                                    \
  do {                                                                         \
    spec_init(&s, &k2, &LAYER_CONNECT_V4, 80, 0);                              \
    mutation;                                                                  \
    CHECK_RC(FwpmFilterAdd0(h, &s.f, NULL, NULL), want);                       \
  } while (0)
  TRY(s.f.providerKey = (SIM_GUID *)&MISSING, SIM_FWP_E_PROVIDER_NOT_FOUND);
  TRY(s.f.subLayerKey = MISSING, SIM_FWP_E_SUBLAYER_NOT_FOUND);
  TRY(s.f.layerKey = MISSING, SIM_FWP_E_LAYER_NOT_FOUND);
  TRY(s.f.displayData.name = NULL, SIM_FWP_E_NULL_DISPLAY_NAME);
  TRY(s.f.action.type = 0x77, SIM_FWP_E_INVALID_ACTION_TYPE);
  TRY(s.f.action.type = SIM_FWP_ACTION_CALLOUT_TERMINATING,
      SIM_FWP_E_CALLOUT_NOT_FOUND);
  TRY(s.f.flags = 0x80000000u, SIM_FWP_E_INVALID_FLAGS);
  TRY((s.f.weight.type = SIM_FWP_UINT8, s.f.weight.u.uint8 = 16),
      SIM_FWP_E_INVALID_WEIGHT);
  TRY(s.f.weight.type = SIM_FWP_UINT32, SIM_FWP_E_INVALID_WEIGHT);
  TRY(s.f.weight.u.uint64 = NULL, SIM_FWP_E_NULL_POINTER);
  TRY(s.f.filterCondition = NULL, SIM_FWP_E_NULL_POINTER);
  TRY(s.c[0].conditionValue.type = SIM_FWP_UINT32, SIM_FWP_E_TYPE_MISMATCH);
  TRY(s.c[0].fieldKey = MISSING, SIM_FWP_E_CONDITION_NOT_FOUND);
  TRY(s.c[0].matchType = SIM_FWP_MATCH_RANGE, SIM_FWP_E_MATCH_TYPE_MISMATCH);
  TRY(s.c[0].matchType = 99, SIM_FWP_E_OUT_OF_BOUNDS);
  TRY(s.c[0].matchType = SIM_FWP_MATCH_EQUAL_CASE_INSENSITIVE,
      SIM_FWP_E_MATCH_TYPE_MISMATCH);
  TRY((s.f.layerKey = LAYER_OUT_TRANSPORT_V4, s.c[0].fieldKey = F_APP_ID),
      SIM_FWP_E_CONDITION_NOT_FOUND);

  /* Address types follow the layer's IP version. */
  SIM_FWP_BYTE_ARRAY16 v6 = {{0x20, 0x01, 0x0d, 0xb8}};
  TRY((s.c[0].fieldKey = F_REMOTE_ADDR,
       s.c[0].conditionValue.type = SIM_FWP_BYTE_ARRAY16_TYPE,
       s.c[0].conditionValue.u.byteArray16 = &v6),
      SIM_FWP_E_TYPE_MISMATCH);
  TRY((s.f.layerKey = LAYER_CONNECT_V6, s.c[0].fieldKey = F_REMOTE_ADDR,
       s.c[0].conditionValue.type = SIM_FWP_BYTE_ARRAY16_TYPE,
       s.c[0].conditionValue.u.byteArray16 = &v6),
      0);
  CHECK_RC(FwpmFilterDeleteByKey0(h, &k2), 0);
  SIM_FWP_V4_ADDR_AND_MASK bad_mask = {0x0A000000u, 0xFF00FF00u};
  TRY((s.c[0].fieldKey = F_REMOTE_ADDR,
       s.c[0].conditionValue.type = SIM_FWP_V4_ADDR_MASK,
       s.c[0].conditionValue.u.v4AddrMask = &bad_mask),
      SIM_FWP_E_INVALID_NET_MASK);
  SIM_FWP_V6_ADDR_AND_MASK bad_prefix = {{0}, 129};
  TRY((s.f.layerKey = LAYER_CONNECT_V6, s.c[0].fieldKey = F_REMOTE_ADDR,
       s.c[0].conditionValue.type = SIM_FWP_V6_ADDR_MASK,
       s.c[0].conditionValue.u.v6AddrMask = &bad_prefix),
      SIM_FWP_E_INVALID_NET_MASK);
  SIM_FWP_RANGE0 r;
  memset(&r, 0, sizeof r);
  r.valueLow.type = SIM_FWP_UINT16;
  r.valueLow.u.uint16 = 200;
  r.valueHigh.type = SIM_FWP_UINT16;
  r.valueHigh.u.uint16 = 100;
  TRY((s.c[0].matchType = SIM_FWP_MATCH_RANGE,
       s.c[0].conditionValue.type = SIM_FWP_RANGE_TYPE,
       s.c[0].conditionValue.u.rangeValue = &r),
      SIM_FWP_E_INVALID_RANGE);
  TRY((s.c[0].conditionValue.type = SIM_FWP_RANGE_TYPE,
       s.c[0].conditionValue.u.rangeValue = &r),
      SIM_FWP_E_MATCH_TYPE_MISMATCH);
  SIM_FWP_BYTE_BLOB empty = {0, NULL};
  TRY((s.c[0].fieldKey = F_APP_ID,
       s.c[0].conditionValue.type = SIM_FWP_BYTE_BLOB_TYPE,
       s.c[0].conditionValue.u.byteBlob = &empty),
      SIM_FWP_E_ZERO_LENGTH_ARRAY);
  TRY((s.c[0].fieldKey = F_APP_ID,
       s.c[0].conditionValue.type = SIM_FWP_BYTE_BLOB_TYPE,
       s.c[0].conditionValue.u.byteBlob = NULL),
      SIM_FWP_E_NULL_POINTER);

  /* Lifetimes: persistent objects refer only to persistent ones. */
  SIM_GUID sub2 = key_n(50);
  CHECK_RC(add_sublayer(h, &sub2, &PROV, 0), 0);
  TRY((s.f.subLayerKey = sub2, s.f.flags = SIM_FWPM_FILTER_FLAG_PERSISTENT),
      SIM_FWP_E_LIFETIME_MISMATCH);
  TRY(s.f.subLayerKey = sub2, 0);
  CHECK_RC(add_provider(h, &PROV2, 0), 0);
  CHECK_RC(add_sublayer(h, &MISSING, &PROV2, SIM_FWPM_SUBLAYER_FLAG_PERSISTENT),
           SIM_FWP_E_LIFETIME_MISMATCH);
  TRY((s.f.flags = SIM_FWPM_FILTER_FLAG_PERSISTENT |
                   SIM_FWPM_FILTER_FLAG_BOOTTIME),
      SIM_FWP_E_INVALID_FLAGS);
#undef TRY
  /* Failed adds left nothing behind. */
  CHECK(count_filters(h, &LAYER_CONNECT_V4, &PROV) == 2);
  CHECK(count_filters(h, &LAYER_CONNECT_V6, &PROV) == 0);
  CHECK_RC(FwpmEngineClose0(h), 0);
  expect_clean();
}

static void test_in_use(void) {
  WfpsimReset();
  SIM_HANDLE h = open_engine(0, 0);
  add_base(h);
  SIM_GUID k1 = key_n(1), k2 = key_n(2);
  uint64_t id1 = 0, id2 = 0;
  CHECK_RC(add_port_filter(h, &k1, &LAYER_CONNECT_V4, 1, 0, &id1), 0);
  CHECK_RC(add_port_filter(h, &k2, &LAYER_ACCEPT_V4, 2, 0, &id2), 0);
  CHECK(id2 > id1);
  CHECK_RC(FwpmSubLayerDeleteByKey0(h, &SUB), SIM_FWP_E_IN_USE);
  CHECK_RC(FwpmProviderDeleteByKey0(h, &PROV), SIM_FWP_E_IN_USE);
  CHECK_RC(FwpmFilterDeleteById0(h, id1), 0);
  CHECK_RC(FwpmFilterDeleteById0(h, id1), SIM_FWP_E_FILTER_NOT_FOUND);
  CHECK_RC(FwpmSubLayerDeleteByKey0(h, &SUB), SIM_FWP_E_IN_USE);
  CHECK_RC(FwpmFilterDeleteByKey0(h, &k2), 0);
  /* The provider is still referenced by the sublayer. */
  CHECK_RC(FwpmProviderDeleteByKey0(h, &PROV), SIM_FWP_E_IN_USE);
  CHECK_RC(FwpmSubLayerDeleteByKey0(h, &SUB), 0);
  CHECK_RC(FwpmProviderDeleteByKey0(h, &PROV), 0);

  /* A filter of another provider inside a sublayer blocks it too. */
  add_base(h);
  CHECK_RC(add_provider(h, &PROV2, SIM_FWPM_PROVIDER_FLAG_PERSISTENT), 0);
  filter_spec s;
  spec_init(&s, &k1, &LAYER_CONNECT_V4, 3, 0);
  s.f.providerKey = (SIM_GUID *)&PROV2;
  CHECK_RC(FwpmFilterAdd0(h, &s.f, NULL, NULL), 0);
  CHECK_RC(FwpmSubLayerDeleteByKey0(h, &SUB), SIM_FWP_E_IN_USE);
  CHECK_RC(FwpmEngineClose0(h), 0);
  expect_clean();
}

static void test_enumeration(void) {
  WfpsimReset();
  SIM_HANDLE h = open_engine(0, 0);
  add_base(h);
  CHECK_RC(add_provider(h, &PROV2, SIM_FWPM_PROVIDER_FLAG_PERSISTENT), 0);
  for (uint32_t i = 0; i < 5; i++) {
    SIM_GUID k = key_n(100 + i);
    CHECK_RC(add_port_filter(h, &k, &LAYER_CONNECT_V4, (uint16_t)i, 0, NULL),
             0);
  }
  for (uint32_t i = 0; i < 2; i++) {
    SIM_GUID k = key_n(200 + i);
    CHECK_RC(add_port_filter(h, &k, &LAYER_ACCEPT_V4, (uint16_t)i, 0, NULL),
             0);
  }
  filter_spec s;
  SIM_GUID foreign = key_n(300);
  spec_init(&s, &foreign, &LAYER_CONNECT_V4, 9, 0);
  s.f.providerKey = (SIM_GUID *)&PROV2;
  CHECK_RC(FwpmFilterAdd0(h, &s.f, NULL, NULL), 0);

  CHECK(count_filters(h, &LAYER_CONNECT_V4, &PROV) == 5);
  CHECK(count_filters(h, &LAYER_ACCEPT_V4, &PROV) == 2);
  CHECK(count_filters(h, &LAYER_CONNECT_V4, NULL) == 6);
  CHECK(count_filters(h, &LAYER_CONNECT_V6, NULL) == 0);

  SIM_FWPM_FILTER_ENUM_TEMPLATE0 t;
  memset(&t, 0, sizeof t);
  SIM_HANDLE e = NULL;
  t.layerKey = MISSING;
  CHECK_RC(FwpmFilterCreateEnumHandle0(h, &t, &e), SIM_FWP_E_LAYER_NOT_FOUND);
  t.layerKey = LAYER_CONNECT_V4;
  t.actionMask = 0; /* matches no action, as on Windows */
  CHECK_RC(FwpmFilterCreateEnumHandle0(h, &t, &e), 0);
  SIM_FWPM_FILTER0 **entries = NULL;
  uint32_t n = 99;
  CHECK_RC(FwpmFilterEnum0(h, e, 10, &entries, &n), 0);
  CHECK(n == 0 && entries == NULL);
  CHECK_RC(FwpmFilterDestroyEnumHandle0(h, e), 0);
  CHECK_RC(FwpmFilterDestroyEnumHandle0(h, e), SIM_ERROR_INVALID_HANDLE);

  /* Paging over a snapshot, in ID order, every pointer in its block. */
  t.actionMask = 0xFFFFFFFFu;
  t.providerKey = (SIM_GUID *)&PROV;
  CHECK_RC(FwpmFilterCreateEnumHandle0(h, &t, &e), 0);
  CHECK(WfpsimOpenHandles() == 2);
  SIM_GUID gone = key_n(104);
  CHECK_RC(FwpmFilterDeleteByKey0(h, &gone), 0);
  uint32_t sizes[4] = {0}, got = 0;
  uint64_t last_id = 0;
  int ordered = 1, inside = 1;
  for (int i = 0; i < 4; i++) {
    CHECK_RC(FwpmFilterEnum0(h, e, 2, &entries, &sizes[i]), 0);
    for (uint32_t j = 0; j < sizes[i]; j++) {
      SIM_FWPM_FILTER0 *f = entries[j];
      uint8_t *lo = (uint8_t *)entries, *hi = lo + 8192;
      if (f->filterId <= last_id) ordered = 0;
      last_id = f->filterId;
      if ((uint8_t *)f < lo || (uint8_t *)f > hi ||
          (uint8_t *)f->displayData.name < lo ||
          (uint8_t *)f->displayData.name > hi ||
          (uint8_t *)f->filterCondition < lo ||
          (uint8_t *)f->filterCondition > hi)
        inside = 0;
      got++;
    }
    if (sizes[i]) CHECK(WfpsimUnfreedAllocations() == 1);
    FwpmFreeMemory0((void **)&entries);
  }
  CHECK(sizes[0] == 2 && sizes[1] == 2 && sizes[2] == 1 && sizes[3] == 0);
  CHECK(got == 5 && ordered && inside);
  CHECK_RC(FwpmFilterDestroyEnumHandle0(h, e), 0);

  /* Enumeration inside a transaction sees the transaction's objects. */
  CHECK_RC(FwpmTransactionBegin0(h, 0), 0);
  SIM_GUID k = key_n(400);
  CHECK_RC(add_port_filter(h, &k, &LAYER_CONNECT_V4, 7, 0, NULL), 0);
  CHECK(count_filters(h, &LAYER_CONNECT_V4, &PROV) == 5);
  CHECK_RC(FwpmTransactionAbort0(h), 0);
  CHECK(count_filters(h, &LAYER_CONNECT_V4, &PROV) == 4);

  /* An enum handle is closed with its engine handle. */
  CHECK_RC(FwpmFilterCreateEnumHandle0(h, NULL, &e), 0);
  CHECK_RC(FwpmEngineClose0(h), 0);
  expect_clean();
}

static void test_keys_and_weights(void) {
  WfpsimReset();
  SIM_HANDLE h = open_engine(0, 0);
  add_base(h);
  SIM_GUID zero;
  memset(&zero, 0, sizeof zero);
  filter_spec s;
  spec_init(&s, &zero, &LAYER_CONNECT_V4, 1, 0);
  s.f.weight.type = SIM_FWP_EMPTY;
  uint64_t id = 0;
  CHECK_RC(FwpmFilterAdd0(h, &s.f, NULL, &id), 0);
  spec_init(&s, &zero, &LAYER_CONNECT_V4, 2, 0);
  s.f.weight.type = SIM_FWP_UINT8;
  s.f.weight.u.uint8 = 3;
  s.f.subLayerKey = zero; /* the universal sublayer */
  CHECK_RC(FwpmFilterAdd0(h, &s.f, NULL, NULL), 0);

  SIM_FWPM_FILTER_ENUM_TEMPLATE0 t;
  memset(&t, 0, sizeof t);
  t.layerKey = LAYER_CONNECT_V4;
  t.actionMask = 0xFFFFFFFFu;
  SIM_HANDLE e = NULL;
  SIM_FWPM_FILTER0 **entries = NULL;
  uint32_t n = 0;
  CHECK_RC(FwpmFilterCreateEnumHandle0(h, &t, &e), 0);
  CHECK_RC(FwpmFilterEnum0(h, e, 10, &entries, &n), 0);
  CHECK(n == 2);
  if (n == 2) {
    CHECK(!guid_eq(&entries[0]->filterKey, &zero));
    CHECK(!guid_eq(&entries[0]->filterKey, &entries[1]->filterKey));
    CHECK((entries[0]->filterKey.Data3 & 0xF000) == 0x4000);
    CHECK(entries[0]->filterId == id);
    CHECK(entries[0]->weight.type == SIM_FWP_EMPTY);
    CHECK(*entries[0]->effectiveWeight.u.uint64 == 2);
    CHECK(entries[1]->weight.type == SIM_FWP_UINT8 &&
          entries[1]->weight.u.uint8 == 3);
    CHECK(*entries[1]->effectiveWeight.u.uint64 == ((3ull << 60) | 2));
    CHECK(guid_eq(&entries[1]->subLayerKey, &UNIVERSAL));
  }
  FwpmFreeMemory0((void **)&entries);
  CHECK_RC(FwpmFilterDestroyEnumHandle0(h, e), 0);
  CHECK_RC(FwpmEngineClose0(h), 0);
  expect_clean();
}

static void test_dynamic_session(void) {
  WfpsimReset();
  SIM_HANDLE st = open_engine(0, 0), dyn = open_engine(1, 0);
  CHECK_RC(add_provider(dyn, &PROV, SIM_FWPM_PROVIDER_FLAG_PERSISTENT),
           SIM_FWP_E_DYNAMIC_SESSION_IN_PROGRESS);
  CHECK_RC(add_provider(dyn, &PROV, 0), 0);
  CHECK_RC(add_sublayer(dyn, &SUB, &PROV, 0), 0);
  SIM_GUID k1 = key_n(1), k2 = key_n(2);
  CHECK_RC(add_port_filter(dyn, &k1, &LAYER_CONNECT_V4, 1, 0, NULL), 0);
  CHECK_RC(add_port_filter(dyn, &k2, &LAYER_CONNECT_V4, 1,
                           SIM_FWPM_FILTER_FLAG_PERSISTENT, NULL),
           SIM_FWP_E_DYNAMIC_SESSION_IN_PROGRESS);
  /* A session-independent object may not refer to a dynamic one. */
  CHECK_RC(add_port_filter(st, &k2, &LAYER_CONNECT_V4, 1, 0, NULL),
           SIM_FWP_E_LIFETIME_MISMATCH);
  CHECK(count_filters(st, &LAYER_CONNECT_V4, &PROV) == 1);
  CHECK_RC(FwpmEngineClose0(dyn), 0);
  CHECK(count_filters(st, &LAYER_CONNECT_V4, NULL) == 0);
  SIM_FWPM_PROVIDER0 *p = NULL;
  CHECK_RC(FwpmProviderGetByKey0(st, &PROV, &p), SIM_FWP_E_PROVIDER_NOT_FOUND);
  CHECK_RC(FwpmSubLayerGetByKey0(st, &SUB, (SIM_FWPM_SUBLAYER0 **)&p),
           SIM_FWP_E_SUBLAYER_NOT_FOUND);
  CHECK_RC(FwpmEngineClose0(st), 0);
  expect_clean();
}

static void test_faults(void) {
  WfpsimReset();
  SIM_HANDLE h = open_engine(0, 0);
  add_base(h);
  SIM_GUID k1 = key_n(1), k2 = key_n(2), k3 = key_n(3);
  CHECK_RC(WfpsimInjectFault("FwpmFilterAdd0", 2, 0x80320012u), 0);
  CHECK_RC(add_port_filter(h, &k1, &LAYER_CONNECT_V4, 1, 0, NULL), 0);
  CHECK_RC(add_port_filter(h, &k2, &LAYER_CONNECT_V4, 2, 0, NULL),
           0x80320012u);
  CHECK_RC(add_port_filter(h, &k3, &LAYER_CONNECT_V4, 3, 0, NULL), 0);
  SIM_FWPM_FILTER0 *f = NULL;
  CHECK_RC(FwpmFilterGetByKey0(h, &k2, &f), SIM_FWP_E_FILTER_NOT_FOUND);

  /* An injected commit failure has no effect: the transaction stays open
   * and the caller's abort discards it. */
  CHECK_RC(WfpsimInjectFault("FwpmTransactionCommit0", 1, 0x8032000Fu), 0);
  CHECK_RC(FwpmTransactionBegin0(h, 0), 0);
  CHECK_RC(add_port_filter(h, &k2, &LAYER_CONNECT_V4, 2, 0, NULL), 0);
  CHECK_RC(FwpmTransactionCommit0(h), 0x8032000Fu);
  CHECK_RC(FwpmTransactionAbort0(h), 0);
  CHECK_RC(FwpmFilterGetByKey0(h, &k2, &f), SIM_FWP_E_FILTER_NOT_FOUND);

  SIM_HANDLE h2 = NULL;
  CHECK_RC(WfpsimInjectFault("FwpmEngineOpen0", 1, 5), 0);
  CHECK_RC(FwpmEngineOpen0(NULL, SIM_RPC_C_AUTHN_WINNT, NULL, NULL, &h2), 5);
  CHECK(h2 == NULL);
  setenv("WFPSIM_FAIL_OPEN", "0x80320012", 1);
  CHECK_RC(FwpmEngineOpen0(NULL, SIM_RPC_C_AUTHN_WINNT, NULL, NULL, &h2),
           0x80320012u);
  unsetenv("WFPSIM_FAIL_OPEN");
  CHECK(WfpsimOpenHandles() == 1);

  CHECK_RC(WfpsimInjectFault("FwpmFilterDeleteByKey0", 1, 6), 0);
  WfpsimClearFaults();
  CHECK_RC(FwpmFilterDeleteByKey0(h, &k1), 0);
  CHECK_RC(WfpsimInjectFault(NULL, 1, 1), SIM_ERROR_INVALID_PARAMETER);
  CHECK_RC(WfpsimInjectFault("FwpmFilterAdd0", 0, 1),
           SIM_ERROR_INVALID_PARAMETER);
  CHECK_RC(FwpmEngineClose0(h), 0);
  expect_clean();
}

static void test_counters_and_app_id(void) {
  WfpsimReset();
  expect_clean();
  SIM_HANDLE a = open_engine(0, 0), b = open_engine(1, 0);
  CHECK(WfpsimOpenHandles() == 2);
  SIM_FWP_BYTE_BLOB *blob = NULL;
  CHECK_RC(FwpmGetAppIdFromFileName0(W("D:\\ÀB\\x.exe"), &blob), 0);
  CHECK(WfpsimUnfreedAllocations() == 1);
  CHECK(blob && blob->size == 12 * 2 &&
        u16eq((uint16_t *)blob->data, W("d:\\àb\\x.exe")));
  int unknown = 0;
  void *stranger = &unknown;
  FwpmFreeMemory0(&stranger); /* not ours: ignored */
  CHECK(stranger == &unknown && WfpsimUnfreedAllocations() == 1);
  FwpmFreeMemory0((void **)&blob);
  FwpmFreeMemory0((void **)&blob); /* NULL: ignored */
  FwpmFreeMemory0(NULL);
  CHECK(WfpsimUnfreedAllocations() == 0);
  CHECK_RC(FwpmEngineClose0(a), 0);
  CHECK_RC(FwpmEngineClose0(a), SIM_ERROR_INVALID_HANDLE);
  CHECK_RC(FwpmEngineClose0(b), 0);
  expect_clean();
}

static void test_dump(void) {
  WfpsimReset();
  SIM_HANDLE h = open_engine(0, 0);
  add_base(h);
  SIM_GUID k = key_n(7);
  SIM_FWP_V4_ADDR_AND_MASK net = {0xCB007100u, 0xFFFFFF00u};
  filter_spec s;
  spec_init(&s, &k, &LAYER_CONNECT_V4, 445, 0);
  s.c[1].fieldKey = F_REMOTE_ADDR;
  s.c[1].conditionValue.type = SIM_FWP_V4_ADDR_MASK;
  s.c[1].conditionValue.u.v4AddrMask = &net;
  s.f.displayData.name = W("rule \"q\" é");
  CHECK_RC(FwpmFilterAdd0(h, &s.f, NULL, NULL), 0);

  uint64_t need = WfpsimDump(NULL, 0);
  CHECK(need > 100);
  char *buf = malloc(need + 1);
  CHECK(WfpsimDump((uint8_t *)buf, need + 1) == need);
  CHECK(buf[need] == 0 && strlen(buf) == need);
  const char *expect[] = {
      "\"providers\":[{\"key\":\"11111111-0001-0001-0101-010101010101\"",
      "\"name\":\"palisade\"",
      "\"persistent\":true",
      "\"layer\":\"FWPM_LAYER_ALE_AUTH_CONNECT_V4\"",
      "\"fieldName\":\"FWPM_CONDITION_IP_REMOTE_PORT\"",
      "\"value\":{\"type\":\"FWP_UINT16\",\"value\":445}",
      "{\"type\":\"FWP_V4_ADDR_MASK\",\"address\":\"203.0.113.0\","
      "\"mask\":\"255.255.255.0\"}",
      "\"weight\":\"1000\",\"action\":\"FWP_ACTION_BLOCK\"",
      "\"name\":\"rule \\\"q\\\" \xc3\xa9\"",
      "\"id\":\"1\"",
  };
  for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
    checks++;
    if (!strstr(buf, expect[i])) {
      failures++;
      fprintf(stderr, "dump lacks %s\n%s\n", expect[i], buf);
    }
  }
  memset(buf, 'x', need + 1);
  CHECK(WfpsimDump((uint8_t *)buf, 10) == need && buf[10] == 'x');
  free(buf);
  CHECK_RC(FwpmEngineClose0(h), 0);
  expect_clean();
}

/* ---- multi-process tests (WFPSIM_STORE) ---- */

static const char *self_path;

static pid_t spawn(const char *scenario, int fd_in, int fd_out) {
  pid_t pid = fork();
  if (pid == 0) {
    char a[16], b[16];
    snprintf(a, sizeof a, "%d", fd_in);
    snprintf(b, sizeof b, "%d", fd_out);
    execl(self_path, self_path, "--child", scenario, a, b, (char *)NULL);
    _exit(127);
  }
  return pid;
}

static int wait_child(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void send_byte(int fd) {
  char c = 1;
  CHECK(write(fd, &c, 1) == 1);
}

static void recv_byte(int fd) {
  char c;
  CHECK(read(fd, &c, 1) == 1);
}

/* Child scenarios: the exit status is the number of failed checks, or the
 * process kills itself to model a crash. */
static int child_main(const char *scenario, int fd_in, int fd_out) {
  if (strcmp(scenario, "crash-persistent") == 0) {
    SIM_HANDLE h = open_engine(0, 0);
    add_base(h);
    SIM_GUID k1 = key_n(1), k2 = key_n(2);
    CHECK_RC(add_port_filter(h, &k1, &LAYER_CONNECT_V4, 1,
                             SIM_FWPM_FILTER_FLAG_PERSISTENT, NULL),
             0);
    CHECK_RC(FwpmTransactionBegin0(h, 0), 0);
    CHECK_RC(add_port_filter(h, &k2, &LAYER_CONNECT_V4, 2,
                             SIM_FWPM_FILTER_FLAG_PERSISTENT, NULL),
             0);
    CHECK_RC(FwpmTransactionCommit0(h), 0);
    if (failures) return failures;
    raise(SIGKILL);
  }
  if (strcmp(scenario, "crash-dynamic") == 0) {
    SIM_HANDLE h = open_engine(1, 0);
    CHECK_RC(add_provider(h, &PROV2, 0), 0);
    send_byte(fd_out);
    recv_byte(fd_in);
    if (failures) return failures;
    raise(SIGKILL);
  }
  if (strcmp(scenario, "blocked-writer") == 0) {
    /* Runs while the parent holds an open transaction that added k9. */
    SIM_HANDLE h = open_engine(0, 100);
    SIM_GUID k9 = key_n(9), k1 = key_n(1);
    SIM_FWPM_FILTER0 *f = NULL;
    CHECK_RC(FwpmFilterGetByKey0(h, &k9, &f), SIM_FWP_E_FILTER_NOT_FOUND);
    CHECK_RC(FwpmFilterGetByKey0(h, &k1, &f), 0);
    FwpmFreeMemory0((void **)&f);
    CHECK_RC(FwpmTransactionBegin0(h, 0), SIM_FWP_E_TIMEOUT);
    CHECK_RC(FwpmFilterDeleteByKey0(h, &k1), SIM_FWP_E_TIMEOUT);
    CHECK_RC(FwpmEngineClose0(h), 0);
    expect_clean();
    return failures;
  }
  if (strcmp(scenario, "env-faults") == 0) {
    SIM_HANDLE h = NULL;
    CHECK_RC(FwpmEngineOpen0(NULL, SIM_RPC_C_AUTHN_WINNT, NULL, NULL, &h),
             0x80320012u);
    h = open_engine(1, 0);
    CHECK_RC(add_provider(h, &PROV2, 0), 0);
    CHECK_RC(add_provider(h, &MISSING, 0), 0x8032000Au);
    CHECK_RC(add_provider(h, &MISSING, 0), 0);
    CHECK_RC(FwpmEngineClose0(h), 0);
    expect_clean();
    return failures;
  }
  if (strcmp(scenario, "panic") == 0) {
    /* Removes everything of PROV, as a panic beside a running service. */
    SIM_HANDLE h = open_engine(0, 0);
    SIM_GUID k9 = key_n(9), k1 = key_n(1), k2 = key_n(2);
    CHECK_RC(FwpmTransactionBegin0(h, 0), 0);
    CHECK_RC(FwpmFilterDeleteByKey0(h, &k9), 0);
    CHECK_RC(FwpmFilterDeleteByKey0(h, &k1), 0);
    CHECK_RC(FwpmFilterDeleteByKey0(h, &k2), 0);
    CHECK_RC(FwpmSubLayerDeleteByKey0(h, &SUB), 0);
    CHECK_RC(FwpmProviderDeleteByKey0(h, &PROV), 0);
    CHECK_RC(FwpmTransactionCommit0(h), 0);
    CHECK_RC(FwpmEngineClose0(h), 0);
    expect_clean();
    return failures;
  }
  return 100;
}

static void test_processes(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/store.bin", dir);
  setenv("WFPSIM_STORE", path, 1);
  WfpsimReset();

  /* A killed process's persistent objects are there for the next one. */
  pid_t pid = spawn("crash-persistent", -1, -1);
  CHECK(wait_child(pid) == 128 + SIGKILL);
  SIM_HANDLE h = open_engine(0, 0);
  CHECK(count_filters(h, &LAYER_CONNECT_V4, &PROV) == 2);
  SIM_FWPM_FILTER0 *f = NULL;
  SIM_GUID k2 = key_n(2);
  uint64_t child_id = 0;
  CHECK_RC(FwpmFilterGetByKey0(h, &k2, &f), 0);
  if (f) child_id = f->filterId;
  FwpmFreeMemory0((void **)&f);
  SIM_GUID k3 = key_n(3);
  uint64_t id = 0;
  CHECK_RC(add_port_filter(h, &k3, &LAYER_CONNECT_V4, 3, 0, &id), 0);
  CHECK(child_id >= 2 && id > child_id); /* IDs increase across processes */
  CHECK_RC(FwpmFilterDeleteByKey0(h, &k3), 0);

  /* A dynamic session's objects vanish with its process. */
  int to_child[2], from_child[2];
  CHECK(pipe(to_child) == 0 && pipe(from_child) == 0);
  pid = spawn("crash-dynamic", to_child[0], from_child[1]);
  recv_byte(from_child[0]);
  SIM_FWPM_PROVIDER0 *p = NULL;
  CHECK_RC(FwpmProviderGetByKey0(h, &PROV2, &p), 0);
  FwpmFreeMemory0((void **)&p);
  send_byte(to_child[1]);
  CHECK(wait_child(pid) == 128 + SIGKILL);
  CHECK_RC(FwpmProviderGetByKey0(h, &PROV2, &p),
           SIM_FWP_E_PROVIDER_NOT_FOUND);
  close(to_child[0]);
  close(to_child[1]);
  close(from_child[0]);
  close(from_child[1]);

  /* A dynamic session closing while another handle holds the engine. */
  SIM_HANDLE d = open_engine(1, 0);
  CHECK_RC(add_provider(d, &PROV2, 0), 0);
  CHECK_RC(FwpmTransactionBegin0(h, SIM_FWPM_TXN_READ_ONLY), 0);
  CHECK_RC(FwpmTransactionCommit0(h), 0);
  CHECK_RC(FwpmTransactionBegin0(h, 0), 0);
  CHECK_RC(FwpmEngineClose0(d), 0);
  CHECK_RC(FwpmProviderGetByKey0(h, &PROV2, &p),
           SIM_FWP_E_PROVIDER_NOT_FOUND);
  CHECK_RC(FwpmTransactionAbort0(h), 0);
  CHECK_RC(FwpmProviderGetByKey0(h, &PROV2, &p),
           SIM_FWP_E_PROVIDER_NOT_FOUND);

  /* One writer across processes; uncommitted writes stay invisible. */
  SIM_GUID k9 = key_n(9);
  CHECK_RC(FwpmTransactionBegin0(h, 0), 0);
  CHECK_RC(add_port_filter(h, &k9, &LAYER_CONNECT_V4, 9,
                           SIM_FWPM_FILTER_FLAG_PERSISTENT, NULL),
           0);
  pid = spawn("blocked-writer", -1, -1);
  CHECK(wait_child(pid) == 0);
  CHECK_RC(FwpmTransactionCommit0(h), 0);

  /* A second process changes the same objects; this one sees it. */
  pid = spawn("panic", -1, -1);
  CHECK(wait_child(pid) == 0);
  CHECK(count_filters(h, &LAYER_CONNECT_V4, NULL) == 0);
  CHECK_RC(FwpmProviderGetByKey0(h, &PROV, &p), SIM_FWP_E_PROVIDER_NOT_FOUND);

  /* WFPSIM_FAULTS arms faults in a process from its start. */
  setenv("WFPSIM_FAULTS",
         "FwpmEngineOpen0:1:0x80320012,FwpmProviderAdd0:2:0x8032000A", 1);
  pid = spawn("env-faults", -1, -1);
  unsetenv("WFPSIM_FAULTS");
  CHECK(wait_child(pid) == 0);
  CHECK_RC(FwpmProviderGetByKey0(h, &PROV2, &p),
           SIM_FWP_E_PROVIDER_NOT_FOUND);
  CHECK_RC(FwpmEngineClose0(h), 0);

  /* A damaged file is refused, never half-read. */
  FILE *fp = fopen(path, "r+b");
  CHECK(fp != NULL);
  if (fp) {
    fseek(fp, 30, SEEK_SET);
    fputc(0xFF, fp);
    fputc(0xFF, fp);
    fclose(fp);
  }
  /* A fresh generation forces the reader to parse the damaged body. */
  fp = fopen(path, "r+b");
  if (fp) {
    fseek(fp, 8, SEEK_SET);
    fputc(0x5A, fp);
    fclose(fp);
  }
  SIM_HANDLE bad = NULL;
  CHECK_RC(FwpmEngineOpen0(NULL, SIM_RPC_C_AUTHN_WINNT, NULL, NULL, &bad),
           SIM_ERROR_FILE_CORRUPT);
  unlink(path);
  CHECK_RC(FwpmEngineOpen0(NULL, SIM_RPC_C_AUTHN_WINNT, NULL, NULL, &bad), 0);
  CHECK_RC(FwpmEngineClose0(bad), 0);

  struct stat st;
  CHECK(stat(path, &st) != 0); /* nothing written without a change */
  unsetenv("WFPSIM_STORE");
  expect_clean();
}

int main(int argc, char **argv) {
  self_path = argv[0];
  if (argc == 5 && strcmp(argv[1], "--child") == 0)
    return child_main(argv[2], atoi(argv[3]), atoi(argv[4]));
  if (argc != 2) {
    fprintf(stderr, "usage: %s <scratch-dir>\n", argv[0]);
    return 2;
  }
  unsetenv("WFPSIM_STORE");
  test_roundtrip();
  test_transactions();
  test_errors();
  test_in_use();
  test_enumeration();
  test_keys_and_weights();
  test_dynamic_session();
  test_faults();
  test_counters_and_app_id();
  test_dump();
  test_processes(argv[1]);
  printf("wfpsim_test: %d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
