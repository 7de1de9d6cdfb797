/**
 * The behaviour every engine behind {@linkcode Backend} must show,
 * registered as Deno tests so that each engine (nftables in a network
 * namespace, WFP on the simulator) runs the same suite.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Backend } from "../policy/backend.ts";
import type { NormalPolicy, NormalRule } from "../policy/types.ts";

/** What a conformance test gets from the engine under test. */
export interface ConformanceSetup {
  /** A backend over an engine holding no Palisade objects. */
  backend: Backend;
  /** The engine's whole state, for before/after comparisons. */
  dump: () => Promise<unknown> | unknown;
  /** Releases what setup made; the suite closes the backend itself. */
  cleanup: () => Promise<void> | void;
}

function rule(id: string, fields: Partial<NormalRule>): NormalRule {
  return {
    id,
    action: "block",
    direction: "in",
    protocol: "tcp",
    remote: [],
    local: [],
    remotePorts: [],
    localPorts: [],
    ...fields,
  };
}

/** A small policy using both families, both directions and ports. */
export const CONFORMANCE_V1: NormalPolicy = {
  name: "conformance",
  rules: [
    rule("permit-admin", {
      action: "permit",
      remote: ["192.0.2.10/32", "2001:db8:1::10/128"],
      localPorts: [{ first: 22, last: 22 }],
    }),
    rule("block-smb-out", {
      direction: "out",
      remote: ["198.51.100.0/24", "2001:db8:2::/48"],
      remotePorts: [{ first: 137, last: 139 }, { first: 445, last: 445 }],
    }),
    rule("block-dns-in", {
      protocol: "udp",
      remote: ["203.0.113.0/25"],
      localPorts: [{ first: 53, last: 53 }],
    }),
    rule("block-scanners", {
      protocol: "any",
      remote: ["192.0.2.128/25", "203.0.113.200/32"],
    }),
  ],
};

/** {@linkcode CONFORMANCE_V1} with one rule's address list changed. */
export const CONFORMANCE_V2: NormalPolicy = {
  ...CONFORMANCE_V1,
  rules: CONFORMANCE_V1.rules.map((r) =>
    r.id === "block-scanners"
      ? { ...r, remote: [...r.remote, "203.0.113.201/32"] }
      : r
  ),
};

/** {@linkcode CONFORMANCE_V1} with one rule no engine accepts: a port
 * outside 1-65535 among valid ones (the validator would refuse it). */
export const CONFORMANCE_BAD: NormalPolicy = {
  ...CONFORMANCE_V1,
  rules: [
    ...CONFORMANCE_V1.rules,
    rule("bad-port", {
      remote: ["192.0.2.77/32"],
      localPorts: [
        { first: 80, last: 80 },
        { first: 70000, last: 70000 },
        { first: 443, last: 443 },
      ],
    }),
  ],
};

/**
 * Registers the conformance tests for one engine. Each test calls
 * `setup` for a fresh engine and always closes the backend and runs
 * `cleanup`.
 *
 * @param label engine name in the test names, e.g. `"nft"`
 */
export function backendConformance(
  label: string,
  setup: () => Promise<ConformanceSetup>,
): void {
  const test = (
    name: string,
    fn: (s: ConformanceSetup) => Promise<void> | void,
  ) =>
    Deno.test(`${label} backend ${name}`, async () => {
      const s = await setup();
      try {
        await fn(s);
      } finally {
        s.backend.close();
        await s.cleanup();
      }
    });

  test("apply() installs a full policy that readBack() confirms", (s) => {
    const stats = s.backend.apply(CONFORMANCE_V1, null);
    assert.equal(stats.incremental, false);
    assert.deepEqual(stats.added, CONFORMANCE_V1.rules.map((r) => r.id));
    assert.ok(stats.objects > 0);
    assert.deepEqual(s.backend.readBack(CONFORMANCE_V1), { ok: true });
    const other = s.backend.readBack(CONFORMANCE_V2);
    assert.equal(other.ok, false);
    assert.match((other as { detail: string }).detail, /block-scanners/);
  });

  test("apply() writes a one-rule change as a small transaction", async (s) => {
    const full = s.backend.apply(CONFORMANCE_V1, null);
    const before = JSON.stringify(await s.dump());
    const stats = s.backend.apply(CONFORMANCE_V2, CONFORMANCE_V1);
    assert.equal(stats.incremental, true);
    assert.deepEqual(stats.changed, ["block-scanners"]);
    assert.deepEqual([...stats.added, ...stats.removed], []);
    assert.ok(stats.objects > 0 && stats.objects < full.objects);
    assert.notEqual(JSON.stringify(await s.dump()), before);
    assert.deepEqual(s.backend.readBack(CONFORMANCE_V2), { ok: true });
  });

  test("apply() reverts to an older policy", (s) => {
    s.backend.apply(CONFORMANCE_V1, null);
    s.backend.apply(CONFORMANCE_V2, CONFORMANCE_V1);
    const stats = s.backend.apply(CONFORMANCE_V1, CONFORMANCE_V2);
    assert.deepEqual(stats.changed, ["block-scanners"]);
    assert.deepEqual(s.backend.readBack(CONFORMANCE_V1), { ok: true });
    assert.equal(s.backend.readBack(CONFORMANCE_V2).ok, false);
  });

  test("removeAll() removes everything and is idempotent", (s) => {
    assert.equal(s.backend.removeAll(), 0);
    s.backend.apply(CONFORMANCE_V1, null);
    assert.ok(s.backend.removeAll() > 0);
    assert.equal(s.backend.removeAll(), 0);
    assert.deepEqual(s.backend.readBack(null), { ok: true });
    assert.equal(s.backend.readBack(CONFORMANCE_V1).ok, false);
  });

  test("a failing apply leaves the engine exactly as it was", async (s) => {
    s.backend.apply(CONFORMANCE_V1, null);
    const before = JSON.stringify(await s.dump());
    assert.throws(() => s.backend.apply(CONFORMANCE_BAD, null));
    assert.throws(() => s.backend.apply(CONFORMANCE_BAD, CONFORMANCE_V1));
    assert.equal(JSON.stringify(await s.dump()), before);
    assert.deepEqual(s.backend.readBack(CONFORMANCE_V1), { ok: true });
  });
}
