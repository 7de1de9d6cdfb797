/**
 * Engine faults on nftables, inside a fresh network namespace: the
 * kernel refuses a batch that carries one bad element (a port above
 * 65535 slipped into one rule behind the validator's back). Every rule
 * position of an apply and of a revert is made to fail in turn.
 */
import assert from "node:assert/strict";
import {
  bundle,
  FakeClock,
  heartbeat,
  type Keys,
  makeKeys,
  rollbackCommand,
  tempStateDir,
} from "../../policy/_fixture.ts";
import type {
  ApplyStats,
  Backend,
  ReadBack,
  RuleCounter,
} from "../../policy/backend.ts";
import {
  type ManagerEvent,
  PolicyManager,
  RefusedError,
} from "../../policy/manager.ts";
import { NftBackend } from "../../policy/nft_backend.ts";
import { validatePolicyValue } from "../../policy/parse.ts";
import type { NormalPolicy } from "../../policy/types.ts";
import {
  assertInPrivateNetns,
  currentNetns,
  netnsSuite,
  nftText,
} from "../_netns.ts";
import { normalizeNft, policyFor } from "./_kit.ts";

const OLD = [8001];
const NEW = [8002, 8003, 8004];

/**
 * The real nft backend, with a bad element slipped into rule `rule` of
 * the next `times` applies: the kernel refuses those batches whole.
 */
class BadElementBackend implements Backend {
  readonly engine = "nft" as const;
  readonly inner = new NftBackend();
  times = 0;
  rule = 0;

  apply(next: NormalPolicy, current: NormalPolicy | null): ApplyStats {
    if (this.times > 0) {
      this.times--;
      const bad = structuredClone(next);
      const index = Math.min(this.rule, bad.rules.length - 1);
      bad.rules[index].localPorts.push({ first: 70000, last: 70000 });
      return this.inner.apply(bad, current);
    }
    return this.inner.apply(next, current);
  }

  removeAll(): number {
    return this.inner.removeAll();
  }

  readBack(expected: NormalPolicy | null): ReadBack {
    return this.inner.readBack(expected);
  }

  counters(): RuleCounter[] {
    return this.inner.counters();
  }

  close(): void {
    this.inner.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

const inside = netnsSuite(
  "engine faults on nftables hold inside a fresh network namespace",
  import.meta.url,
);

if (inside) {
  assertInPrivateNetns();
  const ns = currentNetns();
  const dump = () => nftText(ns, ["-j", "-s", "list", "ruleset"]);

  interface Host extends AsyncDisposable {
    manager: PolicyManager;
    backend: BadElementBackend;
    events: ManagerEvent[];
    clock: FakeClock;
    keys: Keys;
  }

  const hostWithLkg = async (): Promise<Host> => {
    const state = await tempStateDir();
    const backend = new BadElementBackend();
    backend.removeAll();
    const clock = new FakeClock();
    const events: ManagerEvent[] = [];
    const keys = makeKeys();
    const manager = await PolicyManager.open({
      backend,
      stateDir: state.dir,
      trust: keys.trust,
      host: "web-1",
      groups: [],
      commitWindow: { default: 30, max: 3600 },
      retry: { attempts: 3, baseMs: 1, maxMs: 2 },
      now: clock.clock,
      timers: clock.timers,
      onEvent: (e) => events.push(e),
    });
    const pushed = await manager.push(
      bundle(keys, { serial: 1, policy: policyFor("old", OLD) }),
    );
    await manager.confirm(heartbeat(keys, pushed.generation, pushed.nonce));
    events.length = 0;
    return {
      manager,
      backend,
      events,
      clock,
      keys,
      async [Symbol.asyncDispose]() {
        await manager.close();
        backend.removeAll();
        backend.close();
        await state[Symbol.asyncDispose]();
      },
    };
  };

  const reference = async (ports: number[]) => {
    using backend = new NftBackend();
    backend.removeAll();
    const { policy } = validatePolicyValue(policyFor("x", ports), "ref");
    backend.apply(policy, null);
    const text = normalizeNft(await dump());
    backend.removeAll();
    return text;
  };

  const newBundle = (keys: Keys) =>
    bundle(keys, { serial: 2, policy: policyFor("new", NEW) });

  Deno.test("push aborts, keeps the previous ruleset byte for byte and names the rule when the kernel refuses the batch at each rule (nft)", async () => {
    for (let rule = 0; rule < NEW.length; rule++) {
      await using host = await hostWithLkg();
      const before = await dump();
      host.backend.times = 1;
      host.backend.rule = rule;
      const refused = await host.manager.push(newBundle(host.keys)).then(
        () => null,
        (error) => error,
      );
      assert.ok(refused instanceof RefusedError, String(refused));
      assert.equal(refused.code, "engine-failed");
      assert.equal(await dump(), before, `rule ${rule}: ruleset changed`);
      const aborts = host.events.filter((e) => e.event === "apply.abort");
      assert.equal(aborts.length, 1, "one abort event, no retry");
      assert.equal(aborts[0].call, "nft_run_cmd_from_buffer");
      assert.equal(aborts[0].ruleId, `block-${NEW[rule]}`);
      assert.equal(typeof aborts[0].code, "number");
      assert.equal(aborts[0].retry, false);
      assert.equal(host.manager.status().active?.generation, 1);
    }
  });

  Deno.test("revert survives a refused batch at each rule and restores the last known good in full (nft)", async () => {
    const old = await reference(OLD);
    for (let rule = 0; rule < OLD.length; rule++) {
      await using host = await hostWithLkg();
      await host.manager.push(newBundle(host.keys));
      host.events.length = 0;
      host.backend.times = 1;
      host.backend.rule = rule;
      await host.clock.advance(31_000);
      assert.equal(normalizeNft(await dump()), old);
      const failed = host.events.filter((e) => e.event === "revert.failed");
      assert.equal(failed.length, 1);
      assert.equal(failed[0].call, "nft_run_cmd_from_buffer");
      assert.equal(failed[0].ruleId, `block-${OLD[rule]}`);
      assert.equal(host.manager.status().active?.generation, 1);
    }
  });

  Deno.test("revert refused on every attempt fails open: no Palisade table, never half a ruleset (nft)", async () => {
    for (const via of ["expiry", "rollback"]) {
      await using host = await hostWithLkg();
      await host.manager.push(newBundle(host.keys));
      host.backend.times = 3;
      if (via === "expiry") await host.clock.advance(31_000);
      else await host.manager.rollback(rollbackCommand(host.keys));
      const text = await dump();
      assert.doesNotMatch(text, /"palisade"/, via);
      assert.equal(host.manager.status().state, "failed-open", via);
      assert.equal(
        host.events.filter((e) => e.event === "failopen").length,
        1,
      );
    }
  });

  Deno.test("panic removes the Palisade table and is idempotent (nft)", async () => {
    await using _host = await hostWithLkg();
    using panic = new NftBackend();
    assert.ok(panic.removeAll() > 0);
    assert.equal(panic.removeAll(), 0);
    assert.doesNotMatch(await dump(), /"palisade"/);
  });
}
