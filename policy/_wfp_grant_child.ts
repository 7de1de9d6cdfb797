/**
 * Child process of `wfp_backend_grant_test.ts`: drives the WFP backend
 * on the simulator through a full lifecycle (apply, read back,
 * incremental apply, remove all) and prints what it saw as JSON. The
 * test starts it with `--allow-ffi` granted for the simulator library
 * only, so every step proves the binding needs no pointer API.
 *
 * Usage: `deno run --allow-read --allow-ffi=LIB --allow-env=WFPSIM_STORE
 * policy/_wfp_grant_child.ts LIB`
 *
 * @module
 */
import {
  PALISADE_PROVIDER_KEY,
  simulatorHooks,
  WFP_LAYERS,
  WfpEngine,
  WfpLibrary,
} from "../ffi/wfp/mod.ts";
import type { NormalPolicy, NormalRule } from "./types.ts";
import { openWfpBackend } from "./wfp_backend.ts";

function rule(id: string, extra: Partial<NormalRule>): NormalRule {
  return {
    id,
    action: "permit",
    direction: "out",
    protocol: "tcp",
    remote: [],
    local: [],
    remotePorts: [],
    localPorts: [],
    ...extra,
  };
}

/** Addresses of both families, a port range and an application. */
const FIRST: NormalPolicy = {
  name: "grant-first",
  rules: [
    rule("block-smb-out", {
      action: "block",
      remote: ["203.0.113.0/24", "2001:db8::/32"],
      remotePorts: [{ first: 137, last: 139 }, { first: 445, last: 445 }],
    }),
    rule("web-in", {
      direction: "in",
      localPorts: [{ first: 443, last: 443 }],
    }),
    rule("no-telemetry", {
      action: "block",
      protocol: "any",
      app: "C:\\Program Files\\Telemetry\\agent.exe",
    }),
  ],
};

/** FIRST with one rule inserted and one changed. */
const SECOND: NormalPolicy = {
  name: "grant-second",
  rules: [
    FIRST.rules[0],
    rule("ssh-in", {
      direction: "in",
      remote: ["198.51.100.0/24"],
      localPorts: [{ first: 22, last: 22 }],
    }),
    { ...FIRST.rules[1], localPorts: [{ first: 8443, last: 8443 }] },
    FIRST.rules[2],
  ],
};

const path = Deno.args[0];
const report: Record<string, unknown> = {
  ffiUnrestricted: Deno.permissions.querySync({ name: "ffi" }).state,
  ffiLibrary: Deno.permissions.querySync({ name: "ffi", path }).state,
};

{
  using backend = openWfpBackend({ library: path });
  const first = backend.apply(FIRST, null);
  report.firstIncremental = first.incremental;
  report.firstReadBack = backend.readBack(FIRST);
  const second = backend.apply(SECOND, FIRST);
  report.secondIncremental = second.incremental;
  report.secondReadBack = backend.readBack(SECOND);
  {
    // The binding's own enumeration and getters, under the same grant.
    using library = WfpLibrary.open(path);
    using engine = WfpEngine.open(library);
    report.provider = engine.getProvider(PALISADE_PROVIDER_KEY)?.name;
    report.enumerated = Object.values(WFP_LAYERS).flatMap((layerKey) =>
      engine.enumFilters({ layerKey, providerKey: PALISADE_PROVIDER_KEY })
    ).map((filter) => filter.name).sort();
  }
  report.removed = backend.removeAll();
  report.emptyReadBack = backend.readBack(null);
}

using library = WfpLibrary.open(path);
const hooks = simulatorHooks(library);
if (hooks === null) throw new Error(`Cannot inspect "${path}": no test hooks`);
const dump = hooks.dump();
report.left = dump.providers.length + dump.sublayers.length +
  dump.filters.length;
report.openHandles = hooks.openHandles();
report.unfreed = String(hooks.unfreedAllocations());
console.log(JSON.stringify(report));
