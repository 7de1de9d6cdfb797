import assert from "node:assert/strict";
import {
  compileRule,
  filterKeyFor,
  freshWeights,
  parsePrefix,
  planWeights,
  WEIGHT_GAP,
  WEIGHT_TOP,
} from "./_wfp_compile.ts";
import type { NormalRule } from "./types.ts";

function rule(extra: Partial<NormalRule>): NormalRule {
  return {
    id: "r",
    action: "permit",
    direction: "out",
    protocol: "any",
    remote: [],
    local: [],
    remotePorts: [],
    localPorts: [],
    ...extra,
  };
}

Deno.test("compileRule() puts out rules at ALE connect and in rules at receive/accept", () => {
  assert.deepEqual(
    compileRule(rule({ direction: "out" }), 0).map((f) => f.layer),
    ["FWPM_LAYER_ALE_AUTH_CONNECT_V4", "FWPM_LAYER_ALE_AUTH_CONNECT_V6"],
  );
  assert.deepEqual(
    compileRule(rule({ direction: "in" }), 0).map((f) => f.layer),
    [
      "FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4",
      "FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6",
    ],
  );
});

Deno.test("compileRule() keeps a v4-only address list off the v6 layer", () => {
  const filters = compileRule(
    rule({ action: "block", remote: ["203.0.113.0/24", "198.51.100.7/32"] }),
    0,
  );
  assert.equal(filters.length, 1);
  assert.equal(filters[0].layer, "FWPM_LAYER_ALE_AUTH_CONNECT_V4");
  assert.deepEqual(filters[0].conditions.map((c) => c.value), [
    { type: "v4AddrMask", addr: 0xcb007100, mask: 0xffffff00 },
    { type: "v4AddrMask", addr: 0xc6336407, mask: 0xffffffff },
  ]);
});

Deno.test("compileRule() gives one filter per layer carrying the whole address list", () => {
  const filters = compileRule(
    rule({
      action: "block",
      protocol: "tcp",
      remote: ["203.0.113.0/24", "2001:db8::/32", "2001:db8:ffff::1/128"],
      remotePorts: [{ first: 445, last: 445 }, { first: 137, last: 139 }],
    }),
    0,
  );
  assert.equal(filters.length, 2);
  const v6 = filters[1];
  assert.equal(v6.layer, "FWPM_LAYER_ALE_AUTH_CONNECT_V6");
  assert.deepEqual(v6.conditions.map((c) => c.value.type), [
    "uint8",
    "v6AddrMask",
    "v6AddrMask",
    "uint16",
    "range",
  ]);
  assert.deepEqual(v6.conditions[0].value, { type: "uint8", value: 6 });
  assert.equal(v6.conditions[4].match, 5);
});

Deno.test("compileRule() treats /0 as any address of its family", () => {
  const filters = compileRule(
    rule({
      protocol: "udp",
      remote: ["0.0.0.0/0"],
      remotePorts: [{ first: 53, last: 53 }],
    }),
    0,
  );
  assert.equal(filters.length, 1);
  assert.equal(filters[0].layer, "FWPM_LAYER_ALE_AUTH_CONNECT_V4");
  assert.equal(filters[0].conditions.length, 2);
});

Deno.test("compileRule() refuses a catch-all block, /0 and protocol included", () => {
  assert.throws(() => compileRule(rule({ action: "block" }), 0), {
    name: "TypeError",
    message: /Cannot compile rule "r" for WFP: a block rule needs/,
  });
  assert.throws(
    () =>
      compileRule(
        rule({
          action: "block",
          protocol: "tcp",
          remote: ["0.0.0.0/0", "::/0"],
        }),
        0,
      ),
    TypeError,
  );
});

Deno.test("compileRule() refuses ports without tcp or udp and impossible families", () => {
  assert.throws(
    () => compileRule(rule({ remotePorts: [{ first: 1, last: 2 }] }), 0),
    /ports need protocol tcp or udp/,
  );
  assert.throws(
    () =>
      compileRule(rule({ protocol: "icmpv6", remote: ["192.0.2.0/24"] }), 0),
    /no IP version/,
  );
});

Deno.test("compileRule() adds the application ID as a byte blob", () => {
  const id = new Uint8Array([1, 2, 3]);
  const [v4] = compileRule(rule({ action: "block", app: "C:\\x.exe" }), 0, id);
  assert.deepEqual(v4.conditions.at(-1)?.value, {
    type: "byteBlob",
    value: id,
  });
  assert.throws(
    () => compileRule(rule({ app: "C:\\x.exe" }), 0),
    /not resolved/,
  );
});

Deno.test("filterKeyFor() is deterministic, per layer, and a version-8 UUID", () => {
  const a = filterKeyFor("web-in", "FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4");
  assert.equal(a, filterKeyFor("web-in", "FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4"));
  assert.notEqual(
    a,
    filterKeyFor("web-in", "FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6"),
  );
  assert.notEqual(
    a,
    filterKeyFor("web-out", "FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4"),
  );
  assert.match(
    a,
    /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
  );
});

Deno.test("parsePrefix() reads v4, v6 and v4-mapped text and refuses junk", () => {
  assert.deepEqual(
    [...parsePrefix("::ffff:192.0.2.1/128", "r").bytes].slice(10),
    [
      0xff,
      0xff,
      192,
      0,
      2,
      1,
    ],
  );
  assert.equal(parsePrefix("fe80::1/64", "r").bytes[15], 1);
  assert.throws(() => parsePrefix("10.0.0.0/33", "r"), SyntaxError);
  assert.throws(() => parsePrefix("1:2:3:4:5:6:7:8:9/64", "r"), SyntaxError);
  assert.throws(() => parsePrefix("10.0.0.0", "r"), SyntaxError);
});

Deno.test("planWeights() keeps existing weights and fits an inserted rule in the gap", () => {
  const fresh = freshWeights(3);
  assert.deepEqual(fresh, [
    WEIGHT_TOP,
    WEIGHT_TOP - WEIGHT_GAP,
    WEIGHT_TOP - 2n * WEIGHT_GAP,
  ]);
  const kept = new Map([["a", fresh[0]], ["b", fresh[1]], ["c", fresh[2]]]);
  const planned = planWeights(["a", "new", "b", "c"], kept)!;
  assert.equal(planned[0], fresh[0]);
  assert.equal(planned[2], fresh[1]);
  assert.equal(planned[3], fresh[2]);
  assert.ok(planned[1] < fresh[0] && planned[1] > fresh[1]);
});

Deno.test("planWeights() renumbers only the moved rule", () => {
  const fresh = freshWeights(3);
  const kept = new Map([["a", fresh[0]], ["b", fresh[1]], ["c", fresh[2]]]);
  const planned = planWeights(["c", "a", "b"], kept)!;
  assert.deepEqual(planned.slice(1), [fresh[0], fresh[1]]);
  assert.ok(planned[0] > fresh[0]);
});

Deno.test("planWeights() returns null when a gap is used up", () => {
  const kept = new Map([["a", 10n], ["b", 9n]]);
  assert.equal(planWeights(["a", "x", "b"], kept), null);
});
