/**
 * Times the nftables backend in a fresh network namespace: full applies
 * of 1,000 and 50,000 addresses, and a one-rule change in a
 * 10,000-rule policy written incrementally and as a full batch.
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

/** `count` rules of `perRule` addresses each (2+: a named set each). */
function bigRules(count: number, perRule = 1): NormalPolicy {
  const rules: NormalRule[] = [];
  for (let i = 0; i < count; i++) {
    rules.push(rule(`r${i}`, {
      protocol: "tcp",
      remote: addresses(perRule, i * 4 * perRule + 1),
      localPorts: [{ first: 1 + (i % 65000), last: 1 + (i % 65000) }],
    }));
  }
  return { name: `rules-${count}`, rules };
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

  for (const [count, perRule, runs] of [[10_000, 1, RUNS], [1_000, 2, 3]]) {
    const label = `${count} rules of ${perRule} address(es)`;
    const base = bigRules(count, perRule);
    // A port change rewrites the rule; an address change in a set only
    // touches elements.
    const ports = structuredClone(base);
    ports.rules[count / 2].localPorts = [{ first: 4242, last: 4242 }];
    const changes: [string, NormalPolicy][] = [["port", ports]];
    if (perRule > 1) {
      const address = structuredClone(base);
      address.rules[count / 2].remote = addresses(perRule, 3);
      changes.push(["address", address]);
    }
    backend.removeAll();
    results[`full apply, ${label}`] = median([
      time(() => backend.apply(base, null)),
    ]);
    for (const [kind, changed] of changes) {
      const incremental: number[] = [];
      const full: number[] = [];
      for (let i = 0; i < runs; i++) {
        backend.apply(base, null);
        incremental.push(time(() => {
          const stats = backend.apply(changed, base);
          if (!stats.incremental) throw new Error("expected incremental");
        }));
        backend.apply(base, null);
        full.push(time(() => backend.apply(changed, null)));
      }
      const what = `one-rule ${kind} change, ${label}`;
      results[`${what}, incremental`] = median(incremental);
      results[`${what}, full batch`] = median(full);
    }
    results[`readBack, ${label}`] = median([
      time(() => backend.readBack(ports)),
    ]);
  }
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
