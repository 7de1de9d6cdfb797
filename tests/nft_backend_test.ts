/**
 * The nftables backend against the real kernel, inside a network
 * namespace this file creates: the conformance suite, the failing batch,
 * other tables left alone, incremental batches.
 *
 * @module
 */
import assert from "node:assert/strict";
import { EngineError } from "../policy/backend.ts";
import { NftBackend } from "../policy/nft_backend.ts";
import type { NormalPolicy, NormalRule } from "../policy/types.ts";
import {
  backendConformance,
  CONFORMANCE_V1,
  CONFORMANCE_V2,
} from "./_backend_conformance.ts";
import {
  assertInPrivateNetns,
  currentNetns,
  netnsSuite,
  nftDump,
  nftText,
  nsSpawn,
} from "./_netns.ts";

const inside = netnsSuite(
  "nft backend tests pass inside a fresh network namespace",
  import.meta.url,
);

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

/** `count` rules, each blocking `perRule` addresses of its own /16. */
function bigPolicy(count: number, perRule: number): NormalPolicy {
  const rules: NormalRule[] = [];
  for (let i = 0; i < count; i++) {
    const remote: string[] = [];
    for (let j = 0; j < perRule; j++) {
      remote.push(`10.${i % 256}.${Math.floor(j / 128)}.${(j % 128) * 2}/32`);
    }
    remote.push(`fd00:${i.toString(16)}::/64`);
    rules.push(
      rule(`r${i}`, {
        remote,
        localPorts: [{ first: 1000 + i, last: 1000 + i }],
      }),
    );
  }
  return { name: "big", rules };
}

const OTHER_TABLES = `
table inet other {
  set friends { type ipv4_addr; flags interval; elements = { 10.9.0.0/16 } }
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr @friends tcp dport 22 counter accept comment "other-rule"
  }
}
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "lo" masquerade
  }
}
`;

async function otherTables(ns: string): Promise<string> {
  return await nftText(ns, ["-s", "list", "table", "inet", "other"]) +
    await nftText(ns, ["-s", "list", "table", "ip", "nat"]);
}

interface ListedRule {
  table: string;
  chain: string;
  comment: string;
  handle: number;
  expr: unknown[];
}

/** Palisade's rules: `jumps` in the base chains, `rules` elsewhere. */
async function palisadeRules(
  ns: string,
  which: "jumps" | "rules" = "rules",
): Promise<ListedRule[]> {
  const dump = await nftDump(ns) as { nftables: { rule?: ListedRule }[] };
  return dump.nftables.flatMap((item) => {
    const rule = item.rule;
    if (rule?.table !== "palisade") return [];
    const base = rule.chain === "input" || rule.chain === "output";
    return base === (which === "jumps") ? [rule] : [];
  });
}

/** Handle of every listed rule by `<chain>/<comment>`. */
async function handles(ns: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const which of ["jumps", "rules"] as const) {
    for (const r of await palisadeRules(ns, which)) {
      out.set(`${r.chain}/${r.comment}/${r.handle}`, r.handle);
    }
  }
  return out;
}

if (inside) {
  const ns = currentNetns();
  assertInPrivateNetns();

  backendConformance("nft", () => {
    assertInPrivateNetns();
    const backend = new NftBackend();
    backend.removeAll();
    return Promise.resolve({
      backend,
      dump: () => nftDump(ns),
      cleanup: () => {
        using cleaner = new NftBackend();
        cleaner.removeAll();
      },
    });
  });

  Deno.test("NftBackend.apply() and validate() refuse a rule with an app path", () => {
    using backend = new NftBackend();
    const policy = {
      name: "p",
      rules: [
        rule("with-app", {
          app: "C:\\\\x.exe",
          localPorts: [{ first: 1, last: 1 }],
        }),
      ],
    };
    assert.throws(() => backend.apply(policy, null), {
      name: "TypeError",
      message: "the nft engine cannot match applications (rule with-app)",
    });
    assert.throws(() => backend.validate(policy), {
      name: "TypeError",
      message: "the nft engine cannot match applications (rule with-app)",
    });
    backend.validate(CONFORMANCE_V1);
    assert.equal(backend.removeAll(), 0);
  });

  Deno.test("NftBackend.apply() leaves the ruleset unchanged when one element among many is bad and names the rule", async () => {
    using backend = new NftBackend();
    const good = bigPolicy(200, 50);
    backend.apply(good, null);
    const before = await nftText(ns, ["-j", "-s", "list", "ruleset"]);
    const bad = structuredClone(good);
    bad.rules[137].localPorts = [
      { first: 80, last: 80 },
      { first: 70000, last: 70000 },
      { first: 443, last: 443 },
    ];

    for (const current of [null, good]) {
      let engineError: EngineError | undefined;
      try {
        backend.apply(bad, current);
      } catch (error) {
        engineError = error as EngineError;
      }
      assert.ok(engineError instanceof EngineError, String(engineError));
      assert.equal(engineError.ruleId, "r137");
      assert.equal(engineError.call, "nft_run_cmd_from_buffer");
      assert.match(engineError.message, /Service out of range.*\(rule r137\)/s);
      assert.equal(await nftText(ns, ["-j", "-s", "list", "ruleset"]), before);
    }
    assert.deepEqual(backend.readBack(good), { ok: true });
    backend.removeAll();
  });

  Deno.test("NftBackend leaves other tables byte-identical through apply, change, revert and removeAll", async () => {
    const load = await nsSpawn(ns, [
      "sh",
      "-c",
      `nft -f - <<'EOF'\n${OTHER_TABLES}\nEOF`,
    ]);
    assert.equal(load.code, 0, load.stderr);
    try {
      const original = await otherTables(ns);
      assert.match(original, /other-rule/);
      using backend = new NftBackend();
      backend.apply(CONFORMANCE_V1, null);
      assert.equal(await otherTables(ns), original);
      backend.apply(CONFORMANCE_V2, CONFORMANCE_V1);
      assert.equal(await otherTables(ns), original);
      backend.apply(CONFORMANCE_V1, CONFORMANCE_V2);
      assert.equal(await otherTables(ns), original);
      assert.ok(backend.removeAll() > 0);
      assert.equal(await otherTables(ns), original);
      assert.equal(backend.removeAll(), 0);
      assert.equal(await otherTables(ns), original);
    } finally {
      await nsSpawn(ns, [
        "nft",
        "delete table inet other; delete table ip nat",
      ]);
    }
  });

  Deno.test("NftBackend.apply() keeps the handles of rules a change does not name", async () => {
    using backend = new NftBackend();
    backend.apply(CONFORMANCE_V1, null);
    const before = await handles(ns);
    const next = structuredClone(CONFORMANCE_V2);
    next.rules.splice(1, 0, rule("inserted", { remote: ["192.0.2.99/32"] }));
    next.rules = next.rules.filter((r) => r.id !== "block-dns-in");
    const stats = backend.apply(next, CONFORMANCE_V1);
    assert.equal(stats.incremental, true);
    assert.deepEqual(stats.added, ["inserted"]);
    assert.deepEqual(stats.removed, ["block-dns-in"]);
    assert.deepEqual(stats.changed, ["block-scanners"]);
    assert.deepEqual(backend.readBack(next), { ok: true });
    const after = await handles(ns);
    // Every jump but the removed one stays, and so do the rules of the
    // rules the change does not name.
    for (const key of before.keys()) {
      const [chain, id] = key.split("/");
      const untouched = chain === "input" || chain === "output"
        ? id !== "block-dns-in"
        : id === "permit-admin" || id === "block-smb-out";
      assert.equal(after.has(key), untouched, key);
    }
    const input = (await palisadeRules(ns, "jumps"))
      .filter((r) => r.chain === "input").map((r) => r.comment);
    assert.deepEqual(input, ["permit-admin", "inserted", "block-scanners"]);
    backend.removeAll();
  });

  Deno.test("NftBackend.apply() takes the small path to add at the end, remove, insert in the middle, move and change direction", async () => {
    using backend = new NftBackend();
    const steps: [string, (rules: NormalRule[]) => NormalRule[]][] = [
      ["append", (r) => [...r, rule("tail", { remote: ["192.0.2.50"] })]],
      // Removes the rule the previous batch created: its handle came
      // from that batch's numbering.
      ["remove new", (r) => r.filter((x) => x.id !== "tail")],
      [
        "insert",
        (r) => [r[0], rule("mid", { remote: ["192.0.2.51"] }), ...r.slice(1)],
      ],
      // Inserts before the jump the previous batch created.
      [
        "insert before new",
        (r) => [r[0], rule("mid2", { remote: ["192.0.2.52"] }), ...r.slice(1)],
      ],
      ["move", (r) => [...r.slice(1), r[0]]],
      [
        "direction",
        (r) =>
          r.map((x) =>
            x.id === "mid" ? { ...x, direction: "out" as const } : x
          ),
      ],
      ["remove first", (r) => r.slice(1)],
    ];
    let current: NormalPolicy = structuredClone(CONFORMANCE_V1);
    backend.apply(current, null);
    for (const [label, edit] of steps) {
      const next = { ...current, rules: edit(current.rules) };
      const jumpsBefore = await palisadeRules(ns, "jumps");
      const stats = backend.apply(next, current);
      assert.equal(stats.incremental, true, label);
      assert.deepEqual(backend.readBack(next), { ok: true }, label);
      // Jumps of rules neither added, removed nor moved keep handles.
      const touched = new Set([
        ...stats.added,
        ...stats.removed,
        ...stats.changed,
      ]);
      const jumpsAfter = new Set(
        (await palisadeRules(ns, "jumps")).map((r) => r.handle),
      );
      for (const jump of jumpsBefore) {
        if (!touched.has(jump.comment)) {
          assert.ok(jumpsAfter.has(jump.handle), `${label}: ${jump.comment}`);
        }
      }
      current = next;
    }
    backend.removeAll();
  });

  Deno.test("NftBackend.apply() falls back to a full batch when a remembered handle is stale", async () => {
    using backend = new NftBackend();
    backend.apply(CONFORMANCE_V1, null);
    // A hand edit: the jump of block-dns-in deleted with the nft CLI.
    const h = (await palisadeRules(ns, "jumps")).find((r) =>
      r.comment === "block-dns-in"
    )?.handle;
    const del = await nsSpawn(ns, [
      "nft",
      `delete rule inet palisade input handle ${h}`,
    ]);
    assert.equal(del.code, 0, del.stderr);
    assert.match(
      (backend.readBack(CONFORMANCE_V1) as { detail: string }).detail,
      /^chain input has rule "block-scanners" at position 2, expected block-dns-in$/,
    );
    const next = {
      ...CONFORMANCE_V2,
      rules: CONFORMANCE_V2.rules.filter((r) => r.id !== "block-dns-in"),
    };
    const stats = backend.apply(next, CONFORMANCE_V1);
    assert.equal(stats.incremental, false);
    assert.deepEqual(stats.removed, ["block-dns-in"]);
    assert.deepEqual(backend.readBack(next), { ok: true });
    // Back on the small path once the full batch is known.
    assert.equal(backend.apply(CONFORMANCE_V2, next).incremental, true);
    assert.deepEqual(backend.readBack(CONFORMANCE_V2), { ok: true });
    backend.removeAll();
  });

  Deno.test("NftBackend.apply() applies in full when another instance wrote last or the table was removed", () => {
    using first = new NftBackend();
    using second = new NftBackend();
    first.apply(CONFORMANCE_V1, null);
    // Another instance applies V2 over it: first's marker is gone.
    second.apply(CONFORMANCE_V2, null);
    const stats = first.apply(CONFORMANCE_V1, CONFORMANCE_V2);
    assert.equal(stats.incremental, false);
    assert.deepEqual(stats.changed, ["block-scanners"]);
    assert.deepEqual(first.readBack(CONFORMANCE_V1), { ok: true });
    // The second instance's knowledge is now stale as well.
    assert.equal(
      second.apply(CONFORMANCE_V2, CONFORMANCE_V1).incremental,
      false,
    );
    assert.deepEqual(second.readBack(CONFORMANCE_V2), { ok: true });

    // A panic in between: the table is gone, the apply rebuilds it.
    assert.ok(first.removeAll() > 0);
    const rebuilt = second.apply(CONFORMANCE_V1, CONFORMANCE_V2);
    assert.equal(rebuilt.incremental, false);
    assert.deepEqual(second.readBack(CONFORMANCE_V1), { ok: true });
    assert.equal(
      second.apply(CONFORMANCE_V2, CONFORMANCE_V1).incremental,
      true,
    );
    assert.deepEqual(second.readBack(CONFORMANCE_V2), { ok: true });
    second.removeAll();
  });

  Deno.test("NftBackend.apply() applies in full when current is not what this instance applied", () => {
    using backend = new NftBackend();
    backend.apply(CONFORMANCE_V1, null);
    const stats = backend.apply(CONFORMANCE_V1, CONFORMANCE_V2);
    assert.equal(stats.incremental, false);
    assert.deepEqual(backend.readBack(CONFORMANCE_V1), { ok: true });
    // An equal copy of what was applied is as good as the object.
    const copy = structuredClone(CONFORMANCE_V1);
    assert.equal(backend.apply(CONFORMANCE_V2, copy).incremental, true);
    assert.deepEqual(backend.readBack(CONFORMANCE_V2), { ok: true });
    backend.removeAll();
  });

  Deno.test("NftBackend.readBack() names the first difference", async () => {
    using backend = new NftBackend();
    backend.apply(CONFORMANCE_V1, null);
    const add = await nsSpawn(ns, [
      "nft",
      "add element inet palisade block-scanners.remote4 { 10.1.2.3 }",
    ]);
    assert.equal(add.code, 0, add.stderr);
    const result = backend.readBack(CONFORMANCE_V1);
    assert.equal(result.ok, false);
    assert.match(
      (result as { detail: string }).detail,
      /^set block-scanners\.remote4 differs: element 1 is 10\.1\.2\.3-10\.1\.2\.3/,
    );
    backend.removeAll();
  });

  Deno.test("NftBackend compiles a rule with IPv4 and IPv6 addresses to one rule per family with one comment", async () => {
    using backend = new NftBackend();
    const policy = {
      name: "families",
      rules: [rule("both", {
        remote: ["192.0.2.1", "192.0.2.9", "2001:db8:2::/48", "2001:db8:9::1"],
        localPorts: [{ first: 22, last: 22 }],
      })],
    };
    backend.apply(policy, null);
    const rules = await palisadeRules(ns);
    assert.deepEqual(rules.map((r) => r.comment), ["both", "both"]);
    assert.deepEqual(rules.map((r) => r.chain), ["r-both", "r-both"]);
    const jumps = await palisadeRules(ns, "jumps");
    assert.deepEqual(
      jumps.map((r) => [r.chain, r.comment, r.expr]),
      [["input", "both", [{ jump: { target: "r-both" } }]]],
    );
    const text = JSON.stringify(rules);
    assert.match(text, /"@both\.remote4"/);
    assert.match(text, /"@both\.remote6"/);
    assert.equal(text.match(/"counter"/g)?.length, 2);
    const set = await nftText(ns, [
      "list",
      "set",
      "inet",
      "palisade",
      "both.remote6",
    ]);
    assert.match(set, /flags interval/);
    assert.match(set, /2001:db8:2::\/48/);
    backend.removeAll();
  });

  Deno.test("NftBackend.readBack() accepts every match form nft prints back", () => {
    using backend = new NftBackend();
    const policy: NormalPolicy = {
      name: "forms",
      rules: [
        rule("addr", {
          remote: ["192.0.2.1"],
          local: ["2001:db8::1", "192.0.2.200"],
        }),
        rule("prefix", {
          direction: "out",
          protocol: "udp",
          remote: ["198.51.100.0/24", "2001:db8:1::/64"],
          remotePorts: [{ first: 53, last: 53 }],
        }),
        rule("range", {
          protocol: "any",
          remote: ["10.0.0.1", "10.0.0.2/31", "fd00::1", "fd00::2"],
          localPorts: [{ first: 1000, last: 2000 }, {
            first: 3000,
            last: 3000,
          }],
        }),
        rule("sets", {
          remote: ["10.1.0.0/16", "10.3.0.0/16", "fd01::/16", "fd03::/16"],
          remotePorts: [{ first: 1, last: 1023 }],
        }),
        rule("all-v6", { action: "permit", protocol: "tcp", remote: ["::/0"] }),
        rule("icmp", { action: "permit", protocol: "icmp" }),
        rule("icmp6-out", {
          direction: "out",
          protocol: "icmpv6",
          remote: ["2001:db8::99"],
        }),
        rule("udp-any", {
          action: "permit",
          direction: "out",
          protocol: "udp",
        }),
        rule("tcp-sport", {
          direction: "out",
          local: ["192.0.2.5"],
          localPorts: [{ first: 8080, last: 8081 }],
        }),
      ],
    };
    backend.apply(policy, null);
    assert.deepEqual(backend.readBack(policy), { ok: true });
    // Jumps created after rules with anonymous sets (port lists,
    // `meta l4proto { tcp, udp }`) are found by their computed handles.
    const fewer = {
      ...policy,
      rules: policy.rules.filter((r) =>
        r.id !== "sets" && r.id !== "tcp-sport"
      ),
    };
    assert.equal(backend.apply(fewer, policy).incremental, true);
    assert.deepEqual(backend.readBack(fewer), { ok: true });
    assert.equal(backend.apply(policy, fewer).incremental, true);
    assert.deepEqual(backend.readBack(policy), { ok: true });
    backend.removeAll();
  });

  Deno.test("NftBackend installs 50,000 addresses as one rule and one set", async () => {
    using backend = new NftBackend();
    const remote: string[] = [];
    for (let i = 0; i < 50_000; i++) {
      remote.push(`10.${(i >> 14) & 255}.${(i >> 6) & 255}.${(i & 63) * 4}/32`);
    }
    const policy = {
      name: "big",
      rules: [rule("blocklist", { protocol: "any", remote })],
    };
    backend.apply(policy, null);
    assert.deepEqual(backend.readBack(policy), { ok: true });
    assert.equal((await palisadeRules(ns)).length, 1);
    const dump = await nftDump(ns) as {
      nftables: { set?: { table: string; name: string; elem: unknown[] } }[];
    };
    const sets = dump.nftables.flatMap((item) =>
      item.set?.table === "palisade" && item.set.name !== "state"
        ? [item.set]
        : []
    );
    assert.equal(sets.length, 1);
    assert.equal(sets[0].elem.length, 50_000);
    backend.removeAll();
  });
}
