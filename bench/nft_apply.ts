/**
 * Times the nftables backend in a fresh network namespace: full applies
 * of 1,000 and 50,000 addresses and of 10,000 rules, and one-rule edits
 * of a 10,000-rule policy (a content change, a rule added at the end,
 * one removed, one inserted in the middle), each written incrementally
 * and as a full batch.
 *
 * Run as root: `deno run -A bench/nft_apply.ts` (it re-runs itself
 * inside a namespace it creates and deletes; the host's ruleset is never
 * touched). Prints one JSON object of medians in milliseconds.
 *
 * @module
 */
import { NftBackend } from "../policy/nft_backend.ts";
import type { NormalPolicy, NormalRule } from "../policy/types.ts";
import {
  assertInPrivateNetns,
  inPrivateNetns,
  nsSpawn,
  withNetns,
} from "../tests/_netns.ts";

const RUNS = 5;
const RUNS_10K = 5;

function rule(id: string, fields: Partial<NormalRule>): NormalRule {
  return {
    id,
    action: "block",
    direction: "in",
    protocol: "any",
    remote: [],
    local: [],
    remotePorts: [],
    localPorts: [],
    ...fields,
  };
}

/** `count` distinct, non-adjacent IPv4 /32 addresses. */
function addresses(count: number, salt = 0): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const n = i * 4 + salt;
    out.push(`10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}/32`);
  }
  return out;
}

/**
 * `count` rules like the suite's `rulesPolicyValue`: one /24 each (an
 * inline match), alternating direction, TCP port 443.
 */
function bigRules(count: number): NormalPolicy {
  const rules: NormalRule[] = [];
  for (let i = 0; i < count; i++) rules.push(bigRule(`rule-${i}`, i));
  return { name: `rules-${count}`, rules };
}

function bigRule(id: string, i: number): NormalRule {
  return rule(id, {
    direction: i % 2 ? "in" : "out",
    protocol: "tcp",
    remote: [`10.${(i >> 8) & 255}.${i & 255}.0/24`],
    remotePorts: [{ first: 443, last: 443 }],
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.floor(sorted.length / 2)] * 10) / 10;
}

function time(fn: () => void): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

function measure(): Record<string, number> {
  assertInPrivateNetns();
  using backend = new NftBackend();
  backend.removeAll();
  const results: Record<string, number> = {};

  for (const count of [1_000, 50_000]) {
    const policy = {
      name: `addresses-${count}`,
      rules: [rule("blocklist", { remote: addresses(count) })],
    };
    const runs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      backend.removeAll();
      runs.push(time(() => backend.apply(policy, null)));
    }
    results[`full apply, ${count} addresses (1 rule + 1 set)`] = median(runs);
    const check = backend.readBack(policy);
    if (!check.ok) throw new Error(check.detail);
  }

  const count = 10_000;
  const base = bigRules(count);
  const middle = count / 2;
  const edits: [string, NormalPolicy][] = [
    ["one-rule content change", {
      ...base,
      rules: base.rules.map((r, i) =>
        i === middle ? { ...r, remotePorts: [{ first: 8443, last: 8443 }] } : r
      ),
    }],
    ["one rule added at the end", {
      ...base,
      rules: [...base.rules, bigRule("added", count)],
    }],
    ["one rule removed", {
      ...base,
      rules: base.rules.filter((_, i) => i !== middle),
    }],
    ["one rule inserted in the middle", {
      ...base,
      rules: [
        ...base.rules.slice(0, middle),
        bigRule("inserted", count + 1),
        ...base.rules.slice(middle),
      ],
    }],
  ];
  backend.removeAll();
  const fullRuns = [time(() => backend.apply(base, null))];
  for (const [label, edited] of edits) {
    const incremental: number[] = [];
    const full: number[] = [];
    let small = true;
    for (let i = 0; i < RUNS_10K; i++) {
      backend.apply(base, null);
      incremental.push(time(() => {
        small &&= backend.apply(edited, base).incremental;
      }));
      if (i === 0) {
        const check = backend.readBack(edited);
        if (!check.ok) throw new Error(check.detail);
      }
      backend.apply(base, null);
      full.push(time(() => backend.apply(edited, null)));
      fullRuns.push(full[full.length - 1]);
    }
    const what = `${label}, ${count} rules`;
    results[`${what}, incremental${small ? "" : " (fell back to full)"}`] =
      median(incremental);
    results[`${what}, full batch`] = median(full);
    results[`${what}, ratio full/incremental`] =
      Math.round(median(full) / median(incremental) * 10) / 10;
  }
  results[`full apply, ${count} rules`] = median(fullRuns);
  results[`readBack, ${count} rules`] = median([
    time(() => backend.readBack(base)),
  ]);
  results[`counters, ${count} rules`] = median([
    time(() => backend.counters()),
  ]);
  results[`removeAll, ${count} rules`] = median([
    time(() => backend.removeAll()),
  ]);
  backend.removeAll();
  return results;
}

if (import.meta.main) {
  if (inPrivateNetns()) {
    console.log(JSON.stringify(measure(), null, 2));
  } else {
    await withNetns("bench", async (ns) => {
      const result = await nsSpawn(ns, [
        Deno.execPath(),
        "run",
        "--allow-read",
        "--allow-ffi",
        "--allow-env",
        "--allow-run=ip,nft",
        new URL(import.meta.url).pathname,
      ], { timeoutMs: 600_000 });
      console.log(result.stdout.trim());
      if (result.code !== 0) {
        console.error(result.stderr);
        Deno.exitCode = 1;
      }
    });
  }
}
