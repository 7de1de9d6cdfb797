import assert from "node:assert/strict";
import fc from "fast-check";
import { mergeRanges } from "./address.ts";
import type { NormalRule } from "./types.ts";
import {
  compilePolicy,
  compileRule,
  elementOf,
  firstDifference,
  jumpObject,
  markerObject,
  modelOf,
  readListing,
  ruleAllocations,
  ruleChainObject,
  ruleObject,
  setObject,
} from "./_nft_compile.ts";
import { canonicalRuleJson, sameRule } from "./diff.ts";
import { planFull, planIncremental } from "./_nft_incremental.ts";

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

/** Wraps compiled objects the way `nft -j list table` prints them. */
function listing(units: ReturnType<typeof compilePolicy>, handle = 10) {
  const items: unknown[] = [
    { metainfo: { version: "1.0.6" } },
    { table: { family: "inet", name: "palisade", handle: 1 } },
  ];
  for (const chain of ["input", "output"]) {
    items.push({
      chain: {
        family: "inet",
        table: "palisade",
        name: chain,
        handle: 2,
        type: "filter",
        hook: chain,
        prio: -10,
        policy: "accept",
      },
    });
  }
  items.push({ set: { ...markerObject(7), handle: handle++ } });
  for (const unit of units) {
    items.push({ chain: { ...ruleChainObject(unit), handle: handle++ } });
  }
  for (const unit of units) {
    items.push({ rule: { ...jumpObject(unit), handle: handle++ } });
  }
  for (const unit of units) {
    for (const r of unit.rules) {
      for (const set of r.sets) items.push({ set: setObject(set) });
      const expr = r.expr.map((e) =>
        JSON.stringify(e) === '{"counter":null}'
          ? { counter: { packets: 3, bytes: 180 } }
          : e
      );
      items.push({ rule: { ...ruleObject(r), expr, handle: handle++ } });
    }
  }
  return { nftables: items };
}

Deno.test("compileRule() maps an inbound rule's remote side to the source and splits families", () => {
  const unit = compileRule(rule("smb", {
    remote: ["203.0.113.0/24", "198.51.100.7", "2001:db8::/32", "2001:db9::1"],
    localPorts: [{ first: 445, last: 445 }],
  }));
  assert.equal(unit.chain, "input");
  assert.equal(unit.rules.length, 2);
  assert.deepEqual(unit.rules.map((r) => r.id), ["smb", "smb"]);
  assert.deepEqual(unit.rules[0].expr, [
    {
      match: {
        op: "==",
        left: { payload: { protocol: "ip", field: "saddr" } },
        right: "@smb.remote4",
      },
    },
    {
      match: {
        op: "==",
        left: { payload: { protocol: "tcp", field: "dport" } },
        right: 445,
      },
    },
    { counter: null },
    { drop: null },
  ]);
  assert.deepEqual(
    unit.rules[1].sets.map((s) => [s.name, s.family]),
    [["smb.remote6", 6]],
  );
});

Deno.test("compileRule() maps an outbound rule's remote side to the destination and rejects", () => {
  const tcp = compileRule(rule("out", {
    direction: "out",
    remote: ["192.0.2.1"],
    remotePorts: [{ first: 137, last: 139 }, { first: 140, last: 140 }],
  }));
  assert.equal(tcp.chain, "output");
  const text = JSON.stringify(tcp.rules[0].expr);
  assert.match(text, /"field":"daddr"/);
  assert.match(text, /"field":"dport"\}\},"right":\{"range":\[137,140\]\}/);
  assert.deepEqual(tcp.rules[0].expr.at(-1), { reject: { type: "tcp reset" } });

  const any = compileRule(rule("any", {
    direction: "out",
    protocol: "any",
    remote: ["192.0.2.1"],
    localPorts: [{ first: 53, last: 53 }, { first: 80, last: 80 }],
  }));
  const anyText = JSON.stringify(any.rules[0].expr);
  assert.match(anyText, /"right":\{"set":\["tcp","udp"\]\}/);
  assert.match(
    anyText,
    /"protocol":"th","field":"sport"\}\},"right":\{"set":\[53,80\]\}/,
  );
  assert.deepEqual(any.rules[0].expr.at(-1), {
    reject: { type: "icmpx", expr: "admin-prohibited" },
  });
});

Deno.test("compileRule() refuses an app path with the engine's message", () => {
  assert.throws(
    () =>
      compileRule(
        rule("with-app", { app: "C:\\x.exe", remote: ["192.0.2.1"] }),
      ),
    {
      name: "TypeError",
      message: "the nft engine cannot match applications (rule with-app)",
    },
  );
});

Deno.test("compileRule() refuses a catch-all block rule, also written as 0.0.0.0/0", () => {
  for (const remote of [[], ["0.0.0.0/0"], ["0.0.0.0/0", "::/0"]]) {
    assert.throws(() => compileRule(rule("all", { remote })), /default deny/);
  }
  assert.equal(compileRule(rule("all", { action: "permit" })).rules.length, 1);
  assert.equal(
    compileRule(rule("v4", { remote: ["0.0.0.0/1"] })).rules.length,
    1,
  );
});

Deno.test("compileRule() refuses rules that could never match or need ports without a port protocol", () => {
  assert.throws(
    () => compileRule(rule("x", { protocol: "icmp", remote: ["2001:db8::1"] })),
    /could never match/,
  );
  assert.throws(
    () =>
      compileRule(rule("x", { remote: ["192.0.2.1"], local: ["2001:db8::1"] })),
    /could never match/,
  );
  assert.throws(
    () =>
      compileRule(
        rule("x", {
          protocol: "icmp",
          remote: ["192.0.2.1"],
          localPorts: [{ first: 1, last: 1 }],
        }),
      ),
    /ports need protocol tcp, udp or any, not icmp/,
  );
  assert.throws(
    () => compileRule(rule("Bad ID", { remote: ["192.0.2.1"] })),
    /the ID must match/,
  );
});

Deno.test("compileRule() matches a single address, prefix or range inline and keeps a set for a whole family", () => {
  const exprOf = (remote: string[]) =>
    JSON.stringify(
      compileRule(rule("x", { action: "permit", remote })).rules[0].expr[0],
    );
  assert.match(exprOf(["192.0.2.1"]), /"right":"192.0.2.1"/);
  assert.match(
    exprOf(["2001:db8::/32"]),
    /"right":\{"prefix":\{"addr":"2001:db8::","len":32\}\}/,
  );
  assert.match(
    exprOf(["10.0.0.1", "10.0.0.2/31"]),
    /"right":\{"range":\["10.0.0.1","10.0.0.3"\]\}/,
  );
  assert.match(exprOf(["0.0.0.0/0"]), /"right":"@x.remote4"/);
  assert.equal(
    compileRule(rule("x", { remote: ["192.0.2.1"] })).rules[0].sets.length,
    0,
  );
});

Deno.test("compilePolicy() refuses a duplicate rule ID", () => {
  const r = rule("dup", { remote: ["192.0.2.1"] });
  assert.throws(
    () => compilePolicy({ name: "p", rules: [r, r] }),
    /used twice/,
  );
});

Deno.test("elementOf() writes an address, a prefix or a range", () => {
  assert.equal(elementOf({ first: 5n, last: 5n }, 4), "0.0.0.5");
  assert.deepEqual(elementOf({ first: 0x0a000000n, last: 0x0a0000ffn }, 4), {
    prefix: { addr: "10.0.0.0", len: 24 },
  });
  assert.deepEqual(elementOf({ first: 1n, last: 2n }, 6), {
    range: ["::1", "::2"],
  });
});

Deno.test("readListing() and firstDifference() accept what compiles and name the first difference", () => {
  const policy = {
    name: "p",
    rules: [
      rule("a", { remote: ["10.0.0.0/25", "10.0.0.128/25", "2001:db8::/48"] }),
      rule("b", {
        action: "permit",
        protocol: "udp",
        localPorts: [{ first: 53, last: 53 }],
      }),
    ],
  };
  const units = compilePolicy(policy);
  const live = readListing(listing(units));
  assert.equal(firstDifference(live, modelOf(units)), null);
  assert.deepEqual(live.chains.input.rules.map((r) => r.id), ["a", "b"]);
  assert.equal(live.ruleChains.get("r-a")?.rules[0].packets, 3n);
  assert.equal(live.marker?.value, 7);

  const other = compilePolicy({
    ...policy,
    rules: [policy.rules[1], policy.rules[0]],
  });
  assert.match(
    firstDifference(live, modelOf(other))!,
    /^chain input has rule "a" at position 1, expected b$/,
  );
  const fewer = compilePolicy({
    ...policy,
    rules: [{ ...policy.rules[0], remote: ["10.0.0.0/24"] }, policy.rules[1]],
  });
  assert.match(
    firstDifference(live, modelOf(fewer))!,
    /^chain r-a has an extra rule "a" at position 2$/,
  );
  const renamed = compilePolicy({
    ...policy,
    rules: [policy.rules[0], { ...policy.rules[1], id: "c" }],
  });
  assert.match(
    firstDifference(live, modelOf(renamed))!,
    /^unexpected chain r-b$/,
  );
});

Deno.test("readListing() reads set elements however they are printed, as merged ranges", () => {
  const arbitraryRange = fc.tuple(
    fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    fc.integer({ min: 0, max: 4096 }),
  )
    .map(([first, size]) => ({
      first: BigInt(first),
      last: BigInt(Math.min(first + size, 2 ** 32 - 1)),
    }));
  fc.assert(
    fc.property(
      fc.array(arbitraryRange, { minLength: 1, maxLength: 40 }),
      (ranges) => {
        const merged = mergeRanges(ranges.map((r) => ({ ...r })));
        const set = { name: "s", family: 4 as const, ranges: merged };
        const live = readListing({
          nftables: [{ set: { ...setObject(set), table: "palisade" } }],
        });
        assert.deepEqual(live.sets.get("s")?.ranges, merged);
      },
    ),
    { numRuns: 200 },
  );
});

/** A plan's commands as short text: `op object name-or-comment`. */
function summary(commands: unknown[]): string[] {
  return commands.map((command) => {
    const [op, body] = Object.entries(
      command as Record<string, Record<string, Record<string, unknown>>>,
    )[0];
    const [kind, object] = Object.entries(body)[0];
    const name = object.comment ?? object.name;
    const where = kind === "rule" ? ` in ${object.chain}` : "";
    const at = object.handle === undefined ? "" : ` @${object.handle}`;
    return `${op} ${kind} ${name}${where}${at}`;
  });
}

Deno.test("planFull() numbers the handles the kernel allocates, anonymous sets included", () => {
  const units = compilePolicy({
    name: "p",
    rules: [
      rule("a", { remote: ["192.0.2.1", "192.0.2.11"] }),
      rule("b", {
        protocol: "any",
        direction: "out",
        remotePorts: [{ first: 80, last: 80 }, { first: 443, last: 443 }],
      }),
    ],
  });
  const plan = planFull(units, 42);
  assert.deepEqual(summary(plan.commands), [
    "add table palisade",
    "delete table palisade",
    "add table palisade",
    "add chain input",
    "add chain output",
    "add chain r-a",
    "add set a.remote4",
    "add rule a in r-a",
    "add rule a in input",
    "add chain r-b",
    "add rule b in r-b",
    "add rule b in output",
    "add set state",
  ]);
  // input 1, output 2, r-a 3, a.remote4 4, rule 5, jump a 6, r-b 7,
  // two anonymous sets (l4proto, ports) 8-9 and the rule 10, jump b 11,
  // marker 12.
  assert.equal(ruleAllocations(units[1].rules[0].expr), 3);
  assert.deepEqual([...plan.newJumps], [["a", 6], ["b", 11]]);
  assert.equal(plan.allocations, 12);
});

Deno.test("planIncremental() rewrites a changed rule's chain and sets without positions", () => {
  const a = rule("a", { remote: ["192.0.2.1", "192.0.2.11"] });
  const b = rule("b", { remote: ["192.0.2.2"] });
  const previous = compilePolicy({ name: "p", rules: [a, b] });
  const next = compilePolicy({
    name: "p",
    rules: [{ ...a, remote: ["192.0.2.1", "192.0.2.12"] }, {
      ...b,
      localPorts: [{ first: 22, last: 22 }],
    }],
  });
  const plan = planIncremental(previous, next, new Map(), 9)!;
  assert.deepEqual(summary(plan.commands), [
    "flush chain r-a",
    "flush set a.remote4",
    "add set a.remote4",
    "add rule a in r-a",
    "flush chain r-b",
    "add rule b in r-b",
    "delete set state",
    "add set state",
  ]);
  assert.equal(plan.allocations, 3);
  assert.equal(plan.newJumps.size, 0);
  assert.deepEqual(
    planIncremental(previous, previous, new Map(), 9)!.commands,
    [],
  );
});

Deno.test("planIncremental() deletes jumps by handle, appends at the end and inserts before the next kept jump", () => {
  const r = (id: string) => rule(id, { remote: [`192.0.2.${id.length}`] });
  const previous = compilePolicy({
    name: "p",
    rules: [r("k"), r("gone"), r("kk"), r("moved")],
  });
  const jumps = new Map([["k", 10], ["gone", 11], ["kk", 12], ["moved", 13]]);
  const next = compilePolicy({
    name: "p",
    rules: [r("x"), r("k"), r("moved"), r("aaa"), r("kk"), r("ccccc")],
  });
  const plan = planIncremental(previous, next, jumps, 9)!;
  assert.deepEqual(summary(plan.commands), [
    "delete rule undefined in input @11",
    "delete rule undefined in input @13",
    "flush chain r-gone",
    "delete chain r-gone",
    "add chain r-x",
    "add rule x in r-x",
    "add chain r-aaa",
    "add rule aaa in r-aaa",
    "add chain r-ccccc",
    "add rule ccccc in r-ccccc",
    "insert rule x in input @10",
    "insert rule moved in input @12",
    "insert rule aaa in input @12",
    "add rule ccccc in input",
    "delete set state",
    "add set state",
  ]);
  assert.deepEqual(plan.deletedJumps, ["gone", "moved"]);
  assert.deepEqual([...plan.newJumps], [
    ["x", 7],
    ["moved", 8],
    ["aaa", 9],
    ["ccccc", 10],
  ]);
  assert.equal(plan.allocations, 11);
  assert.equal(planIncremental(previous, next, new Map(), 9), null);
});

Deno.test("sameRule() agrees with comparing canonical JSON", () => {
  const arbitraryRule = fc.record({
    id: fc.constantFrom("a", "b", "c", "d", "e", "f"),
    action: fc.constantFrom("permit" as const, "block" as const),
    direction: fc.constantFrom("in" as const, "out" as const),
    remote: fc.subarray(["192.0.2.0/24", "2001:db8::/32"]),
    remotePorts: fc.subarray([{ first: 22, last: 22 }, {
      first: 80,
      last: 90,
    }]),
    comment: fc.option(fc.constantFrom("x", "y"), { nil: undefined }),
  }).map(({ id, comment, ...fields }) => {
    const r = rule(id, fields);
    if (comment !== undefined) r.comment = comment;
    return r;
  });
  fc.assert(
    fc.property(arbitraryRule, arbitraryRule, (a, b) => {
      assert.equal(
        sameRule(a, b),
        canonicalRuleJson(a) === canonicalRuleJson(b),
      );
    }),
    { numRuns: 500 },
  );
});
