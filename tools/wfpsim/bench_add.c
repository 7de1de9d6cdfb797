/*
 * bench_add.c - reference figure for the FFI benchmarks: adds N filters in
 * one transaction by calling libwfpsim.so directly from C, and prints the
 * rate. Each filter is shaped like a Palisade rule: remote IPv4 network,
 * remote port and protocol, exact 64-bit weight, in Palisade-style provider
 * and sublayer.
 *
 * Usage: bench_add [N]   (default 10000; the store stays in memory unless
 * WFPSIM_STORE is set)
 */
#define _GNU_SOURCE
#include "wfpsim_types.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uchar.h>

#define W(s) ((uint16_t *)u##s)

static const SIM_GUID LAYER = {
    0xc38d57d1, 0x05a7, 0x4c33,
    {0x90, 0x4f, 0x7f, 0xbc, 0xee, 0xe6, 0x0e, 0x82}};
static const SIM_GUID F_REMOTE_ADDR = {
    0xb235ae9a, 0x1d64, 0x49b8,
    {0xa4, 0x4c, 0x5f, 0xf3, 0xd9, 0x09, 0x50, 0x45}};
static const SIM_GUID F_REMOTE_PORT = {
    0xc35a604d, 0xd22b, 0x4e1a,
    {0x91, 0xb4, 0x68, 0xf6, 0x74, 0xee, 0x67, 0x4b}};
static const SIM_GUID F_PROTOCOL = {
    0x3971ef2b, 0x623e, 0x4f9a,
    {0x8c, 0xb1, 0x6e, 0x79, 0xb8, 0x06, 0xb9, 0xa7}};
static const SIM_GUID PROV = {0x0b1e0001, 1, 1, {1, 2, 3, 4, 5, 6, 7, 8}};
static const SIM_GUID SUB = {0x0b1e0002, 2, 2, {1, 2, 3, 4, 5, 6, 7, 8}};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int check(const char *what, uint32_t rc) {
  if (rc == 0) return 0;
  fprintf(stderr, "bench_add: %s failed: 0x%08x\n", what, rc);
  return 1;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? strtol(argv[1], NULL, 10) : 10000;
  if (n <= 0 || n > 10000000) {
    fprintf(stderr, "bench_add: N must be 1..10000000\n");
    return 2;
  }

  SIM_FWPM_SESSION0 session;
  memset(&session, 0, sizeof session);
  session.flags = SIM_FWPM_SESSION_FLAG_DYNAMIC;
  SIM_HANDLE h = NULL;
  if (check("FwpmEngineOpen0",
            FwpmEngineOpen0(NULL, SIM_RPC_C_AUTHN_WINNT, NULL, &session, &h)))
    return 1;

  SIM_FWPM_PROVIDER0 p;
  memset(&p, 0, sizeof p);
  p.providerKey = PROV;
  p.displayData.name = W("palisade");
  SIM_FWPM_SUBLAYER0 s;
  memset(&s, 0, sizeof s);
  s.subLayerKey = SUB;
  s.displayData.name = W("palisade");
  s.providerKey = (SIM_GUID *)&PROV;

  SIM_FWP_V4_ADDR_AND_MASK net = {0xCB007100u, 0xFFFFFF00u};
  SIM_FWPM_FILTER_CONDITION0 c[3];
  memset(c, 0, sizeof c);
  c[0].fieldKey = F_REMOTE_ADDR;
  c[0].conditionValue.type = SIM_FWP_V4_ADDR_MASK;
  c[0].conditionValue.u.v4AddrMask = &net;
  c[1].fieldKey = F_REMOTE_PORT;
  c[1].conditionValue.type = SIM_FWP_UINT16;
  c[2].fieldKey = F_PROTOCOL;
  c[2].conditionValue.type = SIM_FWP_UINT8;
  c[2].conditionValue.u.uint8 = 6;
  uint64_t weight = 0;
  SIM_FWPM_FILTER0 f;
  memset(&f, 0, sizeof f);
  f.displayData.name = W("palisade rule bench");
  f.providerKey = (SIM_GUID *)&PROV;
  f.layerKey = LAYER;
  f.subLayerKey = SUB;
  f.weight.type = SIM_FWP_UINT64;
  f.weight.u.uint64 = &weight;
  f.numFilterConditions = 3;
  f.filterCondition = c;
  f.action.type = SIM_FWP_ACTION_BLOCK;

  double t0 = now();
  if (check("FwpmTransactionBegin0", FwpmTransactionBegin0(h, 0)) ||
      check("FwpmProviderAdd0", FwpmProviderAdd0(h, &p, NULL)) ||
      check("FwpmSubLayerAdd0", FwpmSubLayerAdd0(h, &s, NULL)))
    return 1;
  for (long i = 0; i < n; i++) {
    /* Keys derived from rule IDs arrive in no particular order. */
    f.filterKey.Data1 = (uint32_t)((uint64_t)i * 2654435761u);
    f.filterKey.Data2 = (uint16_t)(i >> 16);
    f.filterKey.Data3 = (uint16_t)i;
    f.filterKey.Data4[0] = 0xbe;
    weight = 0xFFFFFFFFull - (uint64_t)i * 16;
    c[1].conditionValue.u.uint16 = (uint16_t)(i % 65535 + 1);
    uint64_t id;
    if (check("FwpmFilterAdd0", FwpmFilterAdd0(h, &f, NULL, &id))) return 1;
  }
  if (check("FwpmTransactionCommit0", FwpmTransactionCommit0(h))) return 1;
  double t1 = now();

  if (check("FwpmEngineClose0", FwpmEngineClose0(h))) return 1;
  double secs = t1 - t0;
  printf("{\"filters\":%ld,\"seconds\":%.6f,\"filtersPerSecond\":%.0f}\n", n,
         secs, (double)n / secs);
  return 0;
}
