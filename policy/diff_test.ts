import assert from "node:assert/strict";
import {
  canonicalRuleJson,
  diffPolicies,
  isEmptyDiff,
  policyDigest,
  ruleDigest,
} from "./diff.ts";
import { parsePolicyText } from "./parse.ts";
import type { NormalPolicy, NormalRule } from "./types.ts";

function r(id: string, extra: Partial<NormalRule> = {}): NormalRule {
  return {
    id,
    action: "block",
    direction: "out",
    protocol: "tcp",
    remote: ["203.0.113.0/24"],
    local: [],
    remotePorts: [],
    localPorts: [],
    ...extra,
  };
}

function p(...rules: NormalRule[]): NormalPolicy {
  return { name: "p", rules };
}

Deno.test("diffPolicies() finds added, removed and changed rules", () => {
  const a = p(r("keep"), r("drop"), r("edit"));
  const b = p(
    r("keep"),
    r("edit", { remotePorts: [{ first: 1, last: 2 }] }),
    r("new"),
  );
  assert.deepEqual(diffPolicies(a, b), {
    added: ["new"],
    removed: ["drop"],
    changed: ["edit"],
    moved: [],
    unchanged: ["keep"],
  });
});

Deno.test("diffPolicies() counts a changed comment or app as a change", () => {
  const d1 = diffPolicies(p(r("a")), p(r("a", { comment: "why" })));
  assert.deepEqual(d1.changed, ["a"]);
  const d2 = diffPolicies(p(r("a")), p(r("a", { app: "C:\\x.exe" })));
  assert.deepEqual(d2.changed, ["a"]);
});

Deno.test("diffPolicies() reports the fewest moved rules", () => {
  // c moved to the front; a, b, d keep their relative order.
  const d = diffPolicies(
    p(r("a"), r("b"), r("c"), r("d")),
    p(r("c"), r("a"), r("b"), r("d")),
  );
  assert.deepEqual(d.moved, ["c"]);
  assert.deepEqual(d.unchanged, ["a", "b", "d"]);

  const swap = diffPolicies(p(r("a"), r("b")), p(r("b"), r("a")));
  assert.equal(swap.moved.length, 1);
  assert.equal(swap.unchanged.length, 1);

  // Insertions and removals around common rules are not moves.
  const shift = diffPolicies(
    p(r("x"), r("a"), r("b")),
    p(r("a"), r("y"), r("b")),
  );
  assert.deepEqual(shift.moved, []);
  assert.deepEqual(shift.added, ["y"]);
  assert.deepEqual(shift.removed, ["x"]);
});

Deno.test("diffPolicies() lists a rule both changed and moved as changed", () => {
  const d = diffPolicies(
    p(r("a"), r("b")),
    p(r("b", { action: "permit" }), r("a")),
  );
  assert.deepEqual(d.changed, ["b"]);
  assert.deepEqual(d.moved, []);
  assert.deepEqual(d.unchanged, ["a"]);
});

Deno.test("diffPolicies() treats null as a policy without rules", () => {
  assert.deepEqual(diffPolicies(null, p(r("a"))).added, ["a"]);
  assert.deepEqual(diffPolicies(p(r("a")), null).removed, ["a"]);
  const none = diffPolicies(null, null);
  assert.ok(isEmptyDiff(none));
  assert.ok(isEmptyDiff(diffPolicies(p(r("a")), p(r("a")))));
  assert.ok(!isEmptyDiff(diffPolicies(p(r("a")), p(r("a", { id: "b" })))));
});

Deno.test("diffPolicies() handles 10,000 rules with one change", () => {
  const rules = Array.from({ length: 10_000 }, (_, i) => r(`rule-${i}`));
  const next = rules.map((x) => ({ ...x }));
  next[5000] = r("rule-5000", { direction: "in" });
  const d = diffPolicies(p(...rules), p(...next));
  assert.deepEqual(d.changed, ["rule-5000"]);
  assert.equal(d.unchanged.length, 9_999);
});

Deno.test("policyDigest() depends on meaning, not on how it was written", () => {
  const one = parsePolicyText(
    `{"name": "d", "rules": [{"id": "a", "action": "block",
      "direction": "out", "protocol": "tcp",
      "remote": ["10.0.0.0/25", "10.0.0.128/25"], "remotePorts": [81, 80]}]}`,
    "one.jsonc",
  ).policy;
  const two = parsePolicyText(
    `// same rule, other spelling
    {"rules": [{"remotePorts": ["80-81"], "remote": ["10.0.0.0/24"],
      "protocol": "tcp", "direction": "out", "action": "block",
      "id": "a"},], "name": "d"}`,
    "two.jsonc",
  ).policy;
  assert.match(policyDigest(one), /^[0-9a-f]{64}$/);
  assert.equal(policyDigest(one), policyDigest(two));
  assert.equal(ruleDigest(one.rules[0]), ruleDigest(two.rules[0]));
  assert.equal(
    canonicalRuleJson(one.rules[0]),
    canonicalRuleJson(two.rules[0]),
  );

  assert.notEqual(policyDigest(one), policyDigest({ ...one, name: "e" }));
  assert.notEqual(
    ruleDigest(one.rules[0]),
    ruleDigest({ ...one.rules[0], action: "permit" }),
  );
  // Order matters: the first match decides.
  assert.notEqual(
    policyDigest(p(r("a"), r("b"))),
    policyDigest(p(r("b"), r("a"))),
  );
});
