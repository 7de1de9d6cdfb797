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

async function palisadeRules(ns: string): Promise<ListedRule[]> {
  const dump = await nftDump(ns) as { nftables: { rule?: ListedRule }[] };
  return dump.nftables.flatMap((item) =>
    item.rule?.table === "palisade" ? [item.rule] : []
  );
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

  Deno.test("NftBackend.apply() refuses a rule with an app path", () => {
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
    const before = await palisadeRules(ns);
    const next = structuredClone(CONFORMANCE_V2);
    next.rules.splice(1, 0, rule("inserted", { remote: ["192.0.2.99/32"] }));
    next.rules = next.rules.filter((r) => r.id !== "block-dns-in");
    const stats = backend.apply(next, CONFORMANCE_V1);
    assert.equal(stats.incremental, true);
    assert.deepEqual(stats.added, ["inserted"]);
    assert.deepEqual(stats.removed, ["block-dns-in"]);
    assert.deepEqual(backend.readBack(next), { ok: true });
    const after = await palisadeRules(ns);
    const kept = ["permit-admin", "block-smb-out", "block-scanners"];
    for (const listed of before) {
      if (!kept.includes(listed.comment)) continue;
      assert.ok(
        after.some((r) => r.handle === listed.handle),
        `rule ${listed.comment} kept handle ${listed.handle}`,
      );
    }
    const input = after.filter((r) => r.chain === "input").map((r) =>
      r.comment
    );
    assert.deepEqual(input, [
      "permit-admin",
      "permit-admin",
      "inserted",
      "block-scanners",
    ]);
    backend.removeAll();
  });

  Deno.test("NftBackend.apply() falls back to a full batch when the live table differs from current", async () => {
    using backend = new NftBackend();
    backend.apply(CONFORMANCE_V1, null);
    const h = (await palisadeRules(ns)).find((r) =>
      r.comment === "block-dns-in"
    )?.handle;
    const del = await nsSpawn(ns, [
      "nft",
      `delete rule inet palisade input handle ${h}`,
    ]);
    assert.equal(del.code, 0, del.stderr);
    assert.equal(backend.readBack(CONFORMANCE_V1).ok, false);
    const stats = backend.apply(CONFORMANCE_V2, CONFORMANCE_V1);
    assert.equal(stats.incremental, false);
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
      nftables: { set?: { table: string; elem: unknown[] } }[];
    };
    const sets = dump.nftables.flatMap((item) =>
      item.set?.table === "palisade" ? [item.set] : []
    );
    assert.equal(sets.length, 1);
    assert.equal(sets[0].elem.length, 50_000);
    backend.removeAll();
  });
}
