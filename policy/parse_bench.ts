/**
 * Speed of the policy language on large inputs:
 * `deno bench policy/parse_bench.ts`.
 *
 * @module
 */
import { mergeCidrs } from "./address.ts";
import { diffPolicies, policyDigest } from "./diff.ts";
import { parsePolicyText } from "./parse.ts";

function v4List(count: number): string[] {
  // Scattered single addresses: nothing merges, the worst case for size.
  return Array.from({ length: count }, (_, i) => {
    const n = (i * 2654435761) >>> 0;
    return `${(n >>> 24) % 223 + 1}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${
      n & 255
    }`;
  });
}

function v6List(count: number): string[] {
  return Array.from(
    { length: count },
    (_, i) =>
      `2001:db8:${(i * 7919 % 65536).toString(16)}::${i.toString(16)}/128`,
  );
}

function blocklist(addresses: string[]): string {
  return JSON.stringify({
    name: "blocklist",
    rules: [{
      id: "bl",
      action: "block",
      direction: "out",
      protocol: "any",
      remote: addresses,
    }],
  });
}

const v4k1 = blocklist(v4List(1_000));
const v4k50 = blocklist(v4List(50_000));
const v6k50 = blocklist(v6List(50_000));
const addresses = v4List(50_000);

const rules = Array.from({ length: 10_000 }, (_, i) => ({
  id: `rule-${i}`,
  action: "block",
  direction: i % 2 ? "in" : "out",
  protocol: "tcp",
  remote: [`10.${i >> 8}.${i & 255}.0/24`],
  remotePorts: [443],
}));
const rulesText = JSON.stringify({ name: "big", rules });
const big = parsePolicyText(rulesText, "big.json").policy;
const edited = structuredClone(big);
edited.rules[5000].remotePorts = [{ first: 80, last: 80 }];

Deno.bench("parsePolicyText(): 1,000 IPv4 addresses", () => {
  parsePolicyText(v4k1, "b.json");
});

Deno.bench("parsePolicyText(): 50,000 IPv4 addresses", () => {
  parsePolicyText(v4k50, "b.json");
});

Deno.bench("parsePolicyText(): 50,000 IPv6 addresses", () => {
  parsePolicyText(v6k50, "b.json");
});

Deno.bench("mergeCidrs(): 50,000 IPv4 addresses", () => {
  mergeCidrs(addresses);
});

Deno.bench("parsePolicyText(): 10,000 rules", () => {
  parsePolicyText(rulesText, "big.json");
});

Deno.bench("diffPolicies(): one change in 10,000 rules", () => {
  diffPolicies(big, edited);
});

Deno.bench("policyDigest(): 10,000 rules", () => {
  policyDigest(big);
});
