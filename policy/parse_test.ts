import assert from "node:assert/strict";
import {
  DEFAULT_MAX_RULES,
  parsePolicyText,
  PolicyError,
  validateNormalPolicy,
  validatePolicyValue,
} from "./parse.ts";

type Rule = Record<string, unknown>;

const RULE: Rule = {
  id: "r1",
  action: "block",
  direction: "out",
  protocol: "tcp",
  remote: ["203.0.113.0/24"],
};

function text(rules: Rule[], top: Record<string, unknown> = {}): string {
  return JSON.stringify({ name: "test", rules, ...top }, null, 2);
}

function refuse(
  input: string,
  problem: RegExp,
  where: { path: string; ruleId?: string; line?: number; column?: number },
): PolicyError {
  let caught: unknown;
  try {
    parsePolicyText(input, "t.jsonc");
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof PolicyError, `expected a PolicyError`);
  assert.match(caught.problem, problem);
  assert.equal(caught.path, where.path);
  assert.equal(caught.ruleId, where.ruleId);
  assert.equal(caught.source, "t.jsonc");
  assert.equal(typeof caught.line, "number");
  assert.equal(typeof caught.column, "number");
  if (where.line !== undefined) assert.equal(caught.line, where.line);
  if (where.column !== undefined) assert.equal(caught.column, where.column);
  const place = `t.jsonc:${caught.line}:${caught.column}`;
  assert.ok(caught.message.startsWith(`Cannot use policy: ${place}`));
  if (where.ruleId !== undefined) {
    assert.ok(caught.message.includes(`rule "${where.ruleId}"`));
  }
  if (where.path !== "") {
    assert.ok(caught.message.includes(`at ${where.path}:`));
  }
  return caught;
}

function rule(extra: Rule, drop: string[] = []): Rule {
  const out: Rule = { ...RULE, ...extra };
  for (const key of drop) delete out[key];
  return out;
}

const EDGE = `{
  "$schema": "./schema/policy.schema.json",
  "name": "edge-baseline",
  "rules": [
    {
      "id": "block-smb-out", // stable
      "action": "block",
      "direction": "out",
      "protocol": "tcp",
      "remote": ["203.0.113.0/24", "2001:db8::/32"],
      "remotePorts": [445, "137-139"],
      /* a block
         comment */
      "comment": "no SMB to the internet",
    },
    { "id": "web-in", "action": "permit", "direction": "in",
      "protocol": "tcp", "localPorts": [443] },
  ],
}
`;

Deno.test("parsePolicyText() normalises the contract's example", () => {
  const { policy, value, warnings } = parsePolicyText(EDGE, "edge.jsonc");
  assert.deepEqual(warnings, []);
  assert.deepEqual(policy, {
    name: "edge-baseline",
    rules: [
      {
        id: "block-smb-out",
        action: "block",
        direction: "out",
        protocol: "tcp",
        remote: ["203.0.113.0/24", "2001:db8::/32"],
        local: [],
        remotePorts: [{ first: 137, last: 139 }, { first: 445, last: 445 }],
        localPorts: [],
        comment: "no SMB to the internet",
      },
      {
        id: "web-in",
        action: "permit",
        direction: "in",
        protocol: "tcp",
        remote: [],
        local: [],
        remotePorts: [],
        localPorts: [{ first: 443, last: 443 }],
      },
    ],
  });
  // The value is the policy as written, comments dropped.
  const written = value as { $schema: string; rules: Rule[] };
  assert.equal(written.$schema, "./schema/policy.schema.json");
  assert.deepEqual(written.rules[0].remotePorts, [445, "137-139"]);
  assert.equal(JSON.stringify(value).includes("stable"), false);
});

Deno.test("parsePolicyText() merges address and port lists", () => {
  const { policy } = parsePolicyText(
    text([rule({
      remote: [
        "2001:db8:8000::/33",
        "10.0.0.128/25",
        "2001:db8::/33",
        "10.0.0.0/25",
        "10.0.0.7",
      ],
      local: ["192.0.2.1", "192.0.2.0"],
      remotePorts: ["1000-2000", 80, "1500-2500", 81, 2501],
    })]),
    "t.jsonc",
  );
  const r = policy.rules[0];
  assert.deepEqual(r.remote, ["10.0.0.0/24", "2001:db8::/32"]);
  assert.deepEqual(r.local, ["192.0.2.0/31"]);
  assert.deepEqual(r.remotePorts, [
    { first: 80, last: 81 },
    { first: 1000, last: 2501 },
  ]);
});

Deno.test("parsePolicyText() warns about host bits with the normalised form", () => {
  const { policy, warnings } = parsePolicyText(
    text([rule({ remote: ["10.1.2.3/8", "2001:db8::1/32"] })]),
    "t.jsonc",
  );
  assert.deepEqual(policy.rules[0].remote, ["10.0.0.0/8", "2001:db8::/32"]);
  assert.equal(warnings.length, 2);
  assert.match(
    warnings[0],
    /^t\.jsonc:\d+:\d+ rule "r1" at rules\[0\]\.remote\[0\]: 10\.1\.2\.3\/8 has host bits set; using 10\.0\.0\.0\/8$/,
  );
  assert.match(
    warnings[1],
    /2001:db8::1\/32 has host bits set; using 2001:db8::\/32/,
  );
});

Deno.test("parsePolicyText() sums up host-bit warnings past three", () => {
  const remote = ["10.0.0.1/24", "10.0.1.1/24", "10.0.2.1/24", "10.0.3.1/24"];
  const { warnings } = parsePolicyText(text([rule({ remote })]), "t.jsonc");
  assert.equal(warnings.length, 4);
  assert.match(warnings[3], /1 more entries of remote have host bits set/);
});

Deno.test("parsePolicyText() warns about app, empty policies and mixed ICMP", () => {
  const app = parsePolicyText(
    text([rule({ app: "C:\\Program Files\\x.exe" })]),
    "t.jsonc",
  );
  assert.equal(app.policy.rules[0].app, "C:\\Program Files\\x.exe");
  assert.match(
    app.warnings[0],
    /app applies only with the Windows \(WFP\) engine; the nftables engine refuses this rule/,
  );

  const empty = parsePolicyText(text([]), "t.jsonc");
  assert.deepEqual(empty.policy.rules, []);
  assert.match(
    empty.warnings[0],
    /no rules; applying it removes every Palisade rule/,
  );

  const mixed = parsePolicyText(
    text([
      rule({ protocol: "icmp", remote: ["192.0.2.0/24", "2001:db8::/32"] }),
    ]),
    "t.jsonc",
  );
  assert.match(
    mixed.warnings[0],
    /"icmp" never matches the IPv6 addresses in remote/,
  );
});

Deno.test("parsePolicyText() accepts what the language allows", () => {
  const ok = [
    rule({ action: "permit", remote: undefined }),
    rule({ protocol: "udp", remotePorts: [53] }, ["remote"]),
    rule({ local: ["192.0.2.10"] }, ["remote"]),
    rule({ protocol: "icmpv6", remote: ["2001:db8::/32"] }),
    rule({
      action: "block",
      protocol: "any",
      remote: ["0.0.0.0/0"],
      local: ["192.0.2.1"],
    }),
    rule({ app: "C:\\x.exe" }, ["remote"]),
    rule({ comment: "" }),
  ];
  for (const r of ok) {
    const { policy } = parsePolicyText(text([r]), "t.jsonc");
    assert.equal(policy.rules.length, 1, JSON.stringify(r));
  }
});

Deno.test("parsePolicyText() refuses JSONC syntax errors at their place", () => {
  refuse(
    `{\n  "name": "x",\n  "rules": [\n    {"id": }\n  ]\n}`,
    /expected a value/,
    {
      path: "",
      line: 4,
      column: 12,
    },
  );
  refuse(`{ "name": "x" "rules": [] }`, /expected "," between entries/, {
    path: "",
    line: 1,
    column: 15,
  });
  refuse(`{ "name": 'x', "rules": [] }`, /unexpected character/, { path: "" });
  refuse(`{ "name": "x", "rules": [] } {}`, /unexpected text after/, {
    path: "",
  });
  refuse(`{ "name": "x", /* open`, /comment not closed/, { path: "" });
  refuse(``, /expected a value/, { path: "", line: 1, column: 1 });
});

Deno.test("parsePolicyText() refuses duplicate keys", () => {
  const input = `{
  "name": "x",
  "rules": [
    { "id": "a", "action": "block", "action": "permit",
      "direction": "in", "protocol": "tcp", "localPorts": [22] }
  ]
}`;
  const error = refuse(
    input,
    /field "action" appears twice in the same object \(first at line 4\); remove one/,
    {
      path: "rules[0].action",
      ruleId: "a",
      line: 4,
      column: 37,
    },
  );
  assert.match(
    error.message,
    /^Cannot use policy: t\.jsonc:4:37 rule "a" at rules\[0\]\.action: /,
  );
  refuse(
    `{"name": "x", "name": "y", "rules": []}`,
    /field "name" appears twice/,
    {
      path: "name",
    },
  );
});

Deno.test("parsePolicyText() refuses unknown fields, suggesting the right one", () => {
  refuse(
    text([rule({ remotePort: [1] })]),
    /unknown field "remotePort" \(did you mean "remotePorts"\?\); remove it or fix its spelling/,
    {
      path: "rules[0].remotePort",
      ruleId: "r1",
    },
  );
  // A misspelt required field is reported as unknown, not as missing.
  refuse(
    text([rule({ acton: "block" }, ["action"])]),
    /unknown field "acton" \(did you mean "action"\?\)/,
    {
      path: "rules[0].acton",
      ruleId: "r1",
    },
  );
  refuse(
    text([RULE], { owner: "me" }),
    /unknown field "owner"; .*allowed here: \$schema, name, rules/,
    {
      path: "owner",
    },
  );
  refuse(
    `{"name": "x", "rules": [{"id": "a", "action": "block",
      "direction": "in", "protocol": "tcp", "localPorts": [22],
      "__proto__": {"polluted": 1}}]}`,
    /unknown field "__proto__"/,
    { path: `rules[0].__proto__`, ruleId: "a" },
  );
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("parsePolicyText() refuses missing and mistyped fields", () => {
  refuse(
    text([rule({}, ["protocol"])]),
    /protocol is missing; add "protocol": "tcp", "udp", "icmp", "icmpv6" or "any"/,
    {
      path: "rules[0].protocol",
      ruleId: "r1",
    },
  );
  refuse(
    text([rule({ action: "allow" })]),
    /"allow" is not a valid action; use "permit" or "block"/,
    {
      path: "rules[0].action",
      ruleId: "r1",
    },
  );
  refuse(
    text([rule({ direction: "both" })]),
    /"both" is not a valid direction; use "in" or "out"/,
    {
      path: "rules[0].direction",
      ruleId: "r1",
    },
  );
  refuse(text([rule({ protocol: "sctp" })]), /"sctp" is not a valid protocol/, {
    path: "rules[0].protocol",
    ruleId: "r1",
  });
  refuse(
    text([rule({ remote: "10.0.0.0/8" })]),
    /remote must be a list of IPv4 or IPv6 addresses or CIDR prefixes, not the string "10\.0\.0\.0\/8"/,
    {
      path: "rules[0].remote",
      ruleId: "r1",
    },
  );
  refuse(
    text([rule({ comment: 5 })]),
    /comment must be a string, not number 5/,
    {
      path: "rules[0].comment",
      ruleId: "r1",
    },
  );
  refuse(text([rule({ app: "" })]), /app is empty/, {
    path: "rules[0].app",
    ruleId: "r1",
  });
  refuse(text(["x" as unknown as Rule]), /each rule must be an object/, {
    path: "rules[0]",
  });
  refuse(
    `[]`,
    /a policy must be a JSON object with "name" and "rules", not a list/,
    {
      path: "",
    },
  );
  refuse(`{"rules": []}`, /name is missing/, { path: "name" });
});

Deno.test("parsePolicyText() refuses bad rule IDs and policy names", () => {
  for (const id of ["Web", "-web", "web_in", "", "a".repeat(64)]) {
    refuse(
      text([rule({ id })]),
      /is not a valid rule ID; use 1-63 lowercase letters, digits and hyphens/,
      {
        path: "rules[0].id",
        ruleId: id,
      },
    );
  }
  refuse(
    text([RULE], { name: "Edge Baseline" }),
    /"Edge Baseline" is not a valid policy name/,
    {
      path: "name",
    },
  );
});

Deno.test("parsePolicyText() refuses duplicate rule IDs", () => {
  refuse(
    text([RULE, rule({ id: "r2" }), rule({ action: "permit" })]),
    /rule ID "r1" is already used by rules\[0\] \(line \d+\); give each rule a unique ID/,
    { path: "rules[2].id", ruleId: "r1" },
  );
});

Deno.test("parsePolicyText() refuses bad addresses with the reason", () => {
  refuse(
    text([rule({ remote: ["10.0.0.0/8", "10.0.0.256"] })]),
    /IPv4 part 256 is above 255; write an IPv4 or IPv6 address or CIDR prefix/,
    {
      path: "rules[0].remote[1]",
      ruleId: "r1",
    },
  );
  refuse(
    text([rule({ local: ["2001:db8::/200"] })]),
    /prefix length \/200 is longer than 128 bits/,
    {
      path: "rules[0].local[0]",
      ruleId: "r1",
    },
  );
  refuse(
    text([rule({ remote: ["host.example"] })]),
    /"host\.example" is not an IPv4 address/,
    {
      path: "rules[0].remote[0]",
      ruleId: "r1",
    },
  );
  refuse(
    text([rule({ remote: [10] })]),
    /an address must be a string, not number 10/,
    {
      path: "rules[0].remote[0]",
      ruleId: "r1",
    },
  );
});

Deno.test("parsePolicyText() refuses bad ports and reversed ranges", () => {
  refuse(
    text([rule({ remotePorts: [445, 70000] })]),
    /port 70000 is outside 1-65535; write a port from 1 to 65535/,
    {
      path: "rules[0].remotePorts[1]",
      ruleId: "r1",
    },
  );
  refuse(text([rule({ localPorts: [0] })]), /port 0 is outside 1-65535/, {
    path: "rules[0].localPorts[0]",
    ruleId: "r1",
  });
  refuse(
    text([rule({ remotePorts: ["139-137"] })]),
    /range "139-137" is reversed; write "137-139"/,
    {
      path: "rules[0].remotePorts[0]",
      ruleId: "r1",
    },
  );
  refuse(
    text([rule({ remotePorts: ["1-99999"] })]),
    /port 99999 in "1-99999" is outside 1-65535/,
    {
      path: "rules[0].remotePorts[0]",
      ruleId: "r1",
    },
  );
  refuse(
    text([rule({ remotePorts: ["443"] })]),
    /write a single port as a number \(443\)/,
    {
      path: "rules[0].remotePorts[0]",
      ruleId: "r1",
    },
  );
  refuse(text([rule({ remotePorts: [22.5] })]), /not a whole number/, {
    path: "rules[0].remotePorts[0]",
    ruleId: "r1",
  });
});

Deno.test("parsePolicyText() refuses empty lists", () => {
  for (const field of ["remote", "local", "remotePorts", "localPorts"]) {
    refuse(
      text([rule({ [field]: [] })]),
      new RegExp(`${field} is an empty list, which would match nothing`),
      {
        path: `rules[0].${field}`,
        ruleId: "r1",
      },
    );
  }
});

Deno.test("parsePolicyText() refuses ports without tcp or udp", () => {
  refuse(
    text([rule({ protocol: "icmp", remotePorts: [1] })]),
    /ports need protocol "tcp" or "udp", but the rule's protocol is "icmp"/,
    {
      path: "rules[0].remotePorts",
      ruleId: "r1",
    },
  );
  refuse(
    text([rule({ protocol: "any", localPorts: [53] })]),
    /protocol is "any"; write one rule with "tcp" and one with "udp"/,
    {
      path: "rules[0].localPorts",
      ruleId: "r1",
    },
  );
});

Deno.test("parsePolicyText() refuses ICMP rules that can never match", () => {
  refuse(
    text([rule({ protocol: "icmp", remote: ["2001:db8::/32"] })]),
    /protocol "icmp" is IPv4 only, but remote lists only IPv6 addresses, so the rule can never match; use "icmpv6"/,
    {
      path: "rules[0].remote",
      ruleId: "r1",
    },
  );
  refuse(
    text([rule({ protocol: "icmpv6", local: ["192.0.2.1"] }, ["remote"])]),
    /protocol "icmpv6" is IPv6 only, but local lists only IPv4 addresses/,
    {
      path: "rules[0].local",
      ruleId: "r1",
    },
  );
  refuse(
    text([rule({ remote: ["192.0.2.0/24"], local: ["2001:db8::1"] })]),
    /remote lists only IPv4 addresses and local only IPv6 ones; a packet has one family/,
    {
      path: "rules[0].local",
      ruleId: "r1",
    },
  );
});

Deno.test("parsePolicyText() refuses catch-all block rules (fail-open)", () => {
  const catchAll = new RegExp(
    `block rule "r1" matches all .*no address, port or application ` +
      `condition\\. Palisade never installs a default-deny \\(it fails ` +
      `open by design\\), so a catch-all block rule is refused`,
  );
  const cases: Rule[] = [
    rule({}, ["remote"]),
    rule({ protocol: "any" }, ["remote"]),
    rule({ protocol: "icmp" }, ["remote"]),
    rule({ remote: ["0.0.0.0/0"] }),
    rule({ remote: ["::/0"] }),
    rule({ remote: ["0.0.0.0/1", "128.0.0.0/1"] }),
    rule({ remote: ["0.0.0.0/0", "2001:db8::/32"] }),
    rule({ remote: ["::/1", "8000::/1", "192.0.2.0/24"] }),
    rule({ local: ["0.0.0.0/0"], remote: ["0.0.0.0/0"] }),
    rule({ remotePorts: ["1-65535"] }, ["remote"]),
    rule({ remotePorts: ["1-1000", "1001-65535"] }, ["remote"]),
  ];
  for (const r of cases) {
    refuse(text([r]), catchAll, { path: "rules[0]", ruleId: "r1" });
  }
  const merged = refuse(
    text([rule({ remote: ["0.0.0.0/1", "128.0.0.0/1"] })]),
    catchAll,
    { path: "rules[0]", ruleId: "r1" },
  );
  assert.match(
    merged.problem,
    /merge to 0\.0\.0\.0\/0, which counts as no condition/,
  );
  assert.match(merged.problem, /all tcp IPv4 traffic from this host/);
  const bare = refuse(text([rule({}, ["remote"])]), catchAll, {
    path: "rules[0]",
    ruleId: "r1",
  });
  assert.match(bare.problem, /matches all tcp traffic from this host/);

  // The same shapes are fine for permit rules: they decide no default.
  const permit = parsePolicyText(
    text([rule({ action: "permit" }, ["remote"])]),
    "t.jsonc",
  );
  assert.equal(permit.policy.rules[0].action, "permit");
});

Deno.test("parsePolicyText() refuses more rules than the bound", () => {
  const rules = Array.from({ length: 4 }, (_, i) => rule({ id: `r${i}` }));
  const input = text(rules);
  assert.throws(
    () => parsePolicyText(input, "t.jsonc", { maxRules: 3 }),
    (error: unknown) => {
      assert.ok(error instanceof PolicyError);
      assert.equal(error.path, "rules");
      assert.match(
        error.problem,
        /the policy has 4 rules, more than the bound of 3; split it or raise the bound/,
      );
      return true;
    },
  );
  assert.equal(
    parsePolicyText(input, "t.jsonc", { maxRules: 4 }).policy.rules.length,
    4,
  );
  assert.equal(DEFAULT_MAX_RULES, 10_000);
});

Deno.test("parsePolicyText() refuses oversize and deeply nested text", () => {
  assert.throws(
    () => parsePolicyText(text([RULE]), "t.jsonc", { maxChars: 10 }),
    /more than the limit of 10/,
  );
  const deep = `{"name": "x", "rules": [], "$schema": ${"[".repeat(100)}${
    "]".repeat(100)
  }}`;
  assert.throws(() => parsePolicyText(deep, "t.jsonc"), (error: unknown) => {
    assert.ok(error instanceof PolicyError);
    assert.match(error.problem, /nested more than 64 levels/);
    return true;
  });
  const deeper = "[".repeat(200_000);
  assert.throws(() => parsePolicyText(deeper, "t.jsonc"), PolicyError);
});

Deno.test("parsePolicyText() accepts a byte order mark and CRLF lines", () => {
  const input = `\uFEFF{\r\n "name": "x",\r\n "rules": [ 5 ]\r\n}`;
  const error = refuse(input, /each rule must be an object/, {
    path: "rules[0]",
    line: 3,
    column: 13,
  });
  assert.equal(error.ruleId, undefined);
});

Deno.test("validatePolicyValue() names the path instead of line and column", () => {
  const { policy } = validatePolicyValue(
    { name: "v", rules: [rule({ remote: ["10.0.0.1", "10.0.0.0"] })] },
    "bundle.json (payload)",
  );
  assert.deepEqual(policy.rules[0].remote, ["10.0.0.0/31"]);

  assert.throws(
    () =>
      validatePolicyValue(
        { name: "v", rules: [rule({ remotePorts: [1, 0] })] },
        "bundle.json (payload)",
      ),
    (error: unknown) => {
      assert.ok(error instanceof PolicyError);
      assert.equal(error.line, undefined);
      assert.equal(error.column, undefined);
      assert.equal(error.path, "rules[0].remotePorts[1]");
      assert.equal(
        error.message,
        `Cannot use policy: bundle.json (payload) rule "r1" at rules[0].remotePorts[1]: port 0 is outside 1-65535; write a port from 1 to 65535`,
      );
      return true;
    },
  );
  assert.throws(() => validatePolicyValue(null, "b"), PolicyError);
  assert.throws(
    () => validatePolicyValue({ name: "v", rules: [RULE, RULE] }, "b"),
    /rule ID "r1" is already used by rules\[0\];/,
  );
});

Deno.test("validateNormalPolicy() reads a host's policy and re-normalises it", () => {
  const { policy } = parsePolicyText(EDGE, "edge.jsonc");
  assert.deepEqual(
    validateNormalPolicy(structuredClone(policy), "host"),
    policy,
  );
  const loose = validateNormalPolicy({
    name: "n",
    rules: [{
      id: "a",
      action: "block",
      direction: "in",
      protocol: "tcp",
      remote: ["10.0.0.1/32", "10.0.0.0/32"],
      local: [],
      remotePorts: [{ first: 2, last: 3 }, { first: 1, last: 1 }],
      localPorts: [],
    }],
  }, "host");
  assert.deepEqual(loose.rules[0].remote, ["10.0.0.0/31"]);
  assert.deepEqual(loose.rules[0].remotePorts, [{ first: 1, last: 3 }]);
  assert.throws(
    () => validateNormalPolicy({ name: "n", rules: [{ id: "a" }] }, "host"),
    (error: unknown) => {
      assert.ok(error instanceof PolicyError);
      assert.match(
        error.message,
        /^Cannot use policy: host rule "a" at rules\[0\]\.action: action is missing/,
      );
      return true;
    },
  );
  assert.throws(
    () =>
      validateNormalPolicy({
        name: "n",
        rules: [{ ...policy.rules[1], remotePorts: [{ first: 5, last: 4 }] }],
      }, "host"),
    /port range 5-4 is reversed/,
  );
});
