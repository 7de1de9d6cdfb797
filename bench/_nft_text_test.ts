import assert from "node:assert/strict";
import type { NormalPolicy, NormalRule } from "../policy/types.ts";
import { nftScript } from "./_nft_text.ts";

function rule(overrides: Partial<NormalRule>): NormalRule {
  return {
    id: "r",
    action: "block",
    direction: "out",
    protocol: "tcp",
    remote: [],
    local: [],
    remotePorts: [],
    localPorts: [],
    ...overrides,
  };
}

const policy = (rules: NormalRule[]): NormalPolicy => ({ name: "p", rules });

Deno.test("nftScript() replaces table inet palisade in one script", () => {
  const text = nftScript(policy([]));
  assert.match(text, /^add table inet palisade\ndelete table inet palisade\n/);
  assert.match(
    text,
    /chain input \{\n {4}type filter hook input priority filter - 10; policy accept;/,
  );
  assert.match(text, /chain output \{/);
});

Deno.test("nftScript() writes one set and one rule per address family", () => {
  const text = nftScript(policy([rule({
    id: "mixed",
    remote: [
      "192.0.2.0/24",
      "198.51.100.7/32",
      "2001:db8::/32",
      "2001:db9::1/128",
    ],
    remotePorts: [{ first: 443, last: 443 }],
  })]));
  assert.match(
    text,
    /set mixed\.remote4 \{\n {4}type ipv4_addr; flags interval;/,
  );
  assert.match(text, /elements = \{ 192\.0\.2\.0\/24, 198\.51\.100\.7 \}/);
  assert.match(text, /elements = \{ 2001:db8::\/32, 2001:db9::1 \}/);
  assert.match(
    text,
    /ip daddr @mixed\.remote4 tcp dport 443 counter reject with tcp reset comment "mixed"/,
  );
  assert.match(text, /ip6 daddr @mixed\.remote6 tcp dport 443/);
});

Deno.test("nftScript() drops inbound blocks and accepts permits", () => {
  const text = nftScript(policy([
    rule({ id: "in", direction: "in", remote: ["10.0.0.0/8"] }),
    rule({
      id: "ok",
      action: "permit",
      direction: "in",
      protocol: "any",
      localPorts: [{ first: 80, last: 81 }, { first: 443, last: 443 }],
    }),
  ]));
  assert.match(text, /ip saddr 10\.0\.0\.0\/8 meta l4proto tcp counter drop/);
  assert.match(
    text,
    /meta l4proto \{ tcp, udp \} th dport \{ 80-81, 443 \} counter accept/,
  );
});

Deno.test("nftScript() matches one range inline and a whole family in a set", () => {
  const text = nftScript(policy([
    rule({ id: "range", remote: ["10.0.0.1/32", "10.0.0.2/31"] }),
    rule({
      id: "all",
      local: ["0.0.0.0/0"],
      remotePorts: [{ first: 1, last: 1 }],
    }),
  ]));
  assert.match(text, /ip daddr 10\.0\.0\.1-10\.0\.0\.3 meta l4proto tcp/);
  assert.match(text, /set all\.local4 \{[^}]*elements = \{ 0\.0\.0\.0\/0 \}/);
  assert.match(text, /ip saddr @all\.local4 tcp dport 1/);
});

Deno.test("nftScript() refuses a rule with an application", () => {
  assert.throws(
    () =>
      nftScript(policy([rule({ app: "C:\\x.exe", remote: ["1.2.3.4/32"] })])),
    /names an application/,
  );
});
