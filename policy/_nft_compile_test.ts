import assert from "node:assert/strict";
import fc from "fast-check";
import { mergeRanges } from "./address.ts";
import type { NormalRule } from "./types.ts";
import {
  compilePolicy,
  compileRule,
  elementOf,
  firstDifference,
  modelOf,
  readListing,
  ruleObject,
  setObject,
} from "./_nft_compile.ts";
import { planIncremental } from "./_nft_incremental.ts";

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
  assert.equal(live.chains.input.rules[0].packets, 3n);

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
    /^chain input has rule "a" at position 2, expected b$/,
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

Deno.test("planIncremental() deletes by handle, updates elements in place and inserts before the next kept rule", () => {
  const a = rule("a", { remote: ["192.0.2.1", "192.0.2.11"] });
  const b = rule("b", { remote: ["192.0.2.2", "192.0.2.12"] });
  const c = rule("c", { remote: ["192.0.2.3", "192.0.2.13"] });
  const current = compilePolicy({ name: "p", rules: [a, b, c] });
  const live = readListing(listing(current, 100));
  const next = compilePolicy({
    name: "p",
    rules: [a, rule("new", { remote: ["192.0.2.9", "192.0.2.19"] }), {
      ...c,
      remote: ["192.0.2.3", "192.0.2.4", "192.0.2.13"],
    }],
  });
  const plan = planIncremental(live, current, next)!;
  const ops = plan.commands.map((c) => JSON.stringify(c));
  assert.match(ops[0], /^\{"delete":\{"rule":\{.*"handle":101\}\}\}$/);
  assert.match(ops[1], /^\{"delete":\{"set":\{.*"name":"b.remote4"\}\}\}$/);
  assert.match(
    ops[2],
    /^\{"delete":\{"element":\{.*"name":"c.remote4","elem":\["192.0.2.3"\]\}\}\}$/,
  );
  assert.match(
    ops[3],
    /^\{"add":\{"element":\{.*"name":"c.remote4","elem":\[\{"range":\["192.0.2.3","192.0.2.4"\]\}\]\}\}\}$/,
  );
  assert.match(ops[4], /^\{"add":\{"set":\{.*"name":"new.remote4"/);
  assert.match(ops[5], /^\{"flush":\{"set":/);
  assert.match(ops[6], /^\{"add":\{"element":\{.*"name":"new.remote4"/);
  assert.match(
    ops[7],
    /^\{"insert":\{"rule":\{.*"comment":"new".*"handle":102\}\}\}$/,
  );
  assert.equal(ops.length, 8);
});

Deno.test("planIncremental() inserts a run of new rules in order before the next kept rule, or appends them", () => {
  const r = (id: string) => rule(id, { remote: [`192.0.2.${id.length}`] });
  const current = compilePolicy({ name: "p", rules: [r("k"), r("kk")] });
  const live = readListing(listing(current, 50));
  const next = compilePolicy({
    name: "p",
    rules: [r("x"), r("k"), r("aaa"), r("bbbb"), r("kk"), r("ccccc")],
  });
  const ops = planIncremental(live, current, next)!.commands.map((c) => {
    const [op, body] = Object.entries(
      c as Record<string, { rule: { comment: string; handle?: number } }>,
    )[0];
    const at = body.rule.handle ? ` before ${body.rule.handle}` : "";
    return `${op} ${body.rule.comment}${at}`;
  });
  assert.deepEqual(ops, [
    "insert x before 50",
    "insert aaa before 51",
    "insert bbbb before 51",
    "add ccccc",
  ]);
});
