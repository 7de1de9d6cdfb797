/**
 * Engine faults on the WFP simulator: every engine call of an apply, a
 * revert and a panic is failed in turn (the 1st, 2nd, … call of each
 * function until the operation no longer reaches it). Each failure must
 * abort the transaction, keep the previous policy in force byte for
 * byte, and log one event naming the call, the code and the rule ID.
 */
import assert from "node:assert/strict";
import { SIM_LIBRARY, simTest } from "../../ffi/wfp/_sim_fixture.ts";
import type { WfpSimulatorHooks } from "../../ffi/wfp/simulator.ts";
import {
  bundle,
  FakeClock,
  heartbeat,
  type Keys,
  makeKeys,
  rollbackCommand,
  tempStateDir,
} from "../../policy/_fixture.ts";
import { EngineError } from "../../policy/backend.ts";
import {
  type ManagerEvent,
  PolicyManager,
  RefusedError,
} from "../../policy/manager.ts";
import { validatePolicyValue } from "../../policy/parse.ts";
import { openWfpBackend } from "../../policy/wfp_backend.ts";
import { policyFor } from "./_kit.ts";
import { normalizeWfp } from "./_kit.ts";

/** Every engine function Palisade's WFP backend may call. */
const FUNCTIONS = [
  "FwpmEngineOpen0",
  "FwpmTransactionBegin0",
  "FwpmTransactionCommit0",
  "FwpmTransactionAbort0",
  "FwpmProviderAdd0",
  "FwpmProviderDeleteByKey0",
  "FwpmProviderGetByKey0",
  "FwpmSubLayerAdd0",
  "FwpmSubLayerDeleteByKey0",
  "FwpmSubLayerGetByKey0",
  "FwpmFilterAdd0",
  "FwpmFilterDeleteById0",
  "FwpmFilterDeleteByKey0",
  "FwpmFilterGetByKey0",
  "FwpmFilterCreateEnumHandle0",
  "FwpmFilterEnum0",
  "FwpmFilterDestroyEnumHandle0",
];

/** ERROR_ACCESS_DENIED: a permanent failure, never retried. */
const PERMANENT = 5;
/** FWP_E_TIMEOUT: the engine's transient "try again". */
const TIMEOUT = 0x80320012;

/** Bound on the calls of one function tried per operation. */
const MAX_NTH = 200;

const OLD = [8001];
const NEW = [8002, 8003, 8004];

interface Host extends AsyncDisposable {
  manager: PolicyManager;
  events: ManagerEvent[];
  clock: FakeClock;
  keys: Keys;
}

/** A manager on the simulator with OLD confirmed as last known good. */
async function hostWithLkg(): Promise<Host> {
  const state = await tempStateDir();
  const backend = openWfpBackend({ library: SIM_LIBRARY });
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
    events,
    clock,
    keys,
    async [Symbol.asyncDispose]() {
      await manager.close();
      backend.close();
      await state[Symbol.asyncDispose]();
    },
  };
}

function newBundle(keys: Keys): Uint8Array {
  return bundle(keys, { serial: 2, policy: policyFor("new", NEW) });
}

/** The normalised dump of `ports` applied to an empty simulator. */
function reference(hooks: WfpSimulatorHooks, ports: number[] | null) {
  hooks.reset();
  using backend = openWfpBackend({ library: SIM_LIBRARY });
  if (ports) {
    const { policy } = validatePolicyValue(policyFor("x", ports), "ref");
    backend.apply(policy, null);
  }
  const text = normalizeWfp(hooks.dumpText());
  backend.removeAll();
  hooks.reset();
  return text;
}

simTest(
  "push aborts, keeps the previous policy and logs call, code and rule when each engine call of an apply fails (wfp)",
  async ({ hooks }) => {
    const tried: Record<string, number> = {};
    for (const fn of FUNCTIONS) {
      for (let nth = 1; nth <= MAX_NTH; nth++) {
        hooks.reset();
        await using host = await hostWithLkg();
        const before = hooks.dumpText();
        hooks.injectFault(fn, nth, PERMANENT);
        let refused: RefusedError | null = null;
        try {
          await host.manager.push(newBundle(host.keys));
        } catch (error) {
          if (!(error instanceof RefusedError)) throw error;
          refused = error;
        }
        hooks.clearFaults();
        if (refused === null) break;

        tried[fn] = nth;
        const where = `${fn} call ${nth}`;
        assert.equal(refused.code, "engine-failed", where);
        assert.equal(hooks.dumpText(), before, `${where}: engine changed`);
        const aborts = host.events.filter((e) => e.event === "apply.abort");
        assert.equal(aborts.length, 1, `${where}: one abort event`);
        assert.equal(aborts[0].call, fn, where);
        assert.equal(aborts[0].code, PERMANENT, where);
        assert.equal(aborts[0].retry, false, where);
        if (fn === "FwpmFilterAdd0") {
          assert.match(String(aborts[0].ruleId), /^block-800[234]$/, where);
        }
        const status = host.manager.status();
        assert.equal(status.active?.generation, 1, where);
        assert.equal(status.pending, null, where);
      }
    }
    console.log(`apply calls failed in turn: ${JSON.stringify(tried)}`);
    for (const fn of ["FwpmTransactionBegin0", "FwpmTransactionCommit0"]) {
      assert.ok(tried[fn] >= 1, `${fn} was never failed`);
    }
    assert.ok(tried.FwpmFilterAdd0 >= NEW.length, "each filter add failed");
  },
);

simTest(
  "push retries a transient engine failure with backoff and applies (wfp)",
  async ({ hooks }) => {
    await using host = await hostWithLkg();
    hooks.injectFault("FwpmTransactionCommit0", 1, TIMEOUT);
    const result = await host.manager.push(newBundle(host.keys));
    assert.equal(result.generation, 2);
    const aborts = host.events.filter((e) => e.event === "apply.abort");
    assert.equal(aborts.length, 1);
    assert.equal(aborts[0].retry, true);
    assert.equal(aborts[0].codeName, "FWP_E_TIMEOUT");
    assert.equal(aborts[0].level, "warn");
    assert.equal(
      host.events.filter((e) => e.event === "apply.commit").length,
      1,
    );
  },
);

simTest(
  "revert survives each engine call failing once and restores the last known good in full (wfp)",
  async ({ hooks }) => {
    const old = reference(hooks, OLD);
    const tried: Record<string, number> = {};
    for (const fn of FUNCTIONS) {
      for (let nth = 1; nth <= MAX_NTH; nth++) {
        hooks.reset();
        await using host = await hostWithLkg();
        await host.manager.push(newBundle(host.keys));
        host.events.length = 0;
        hooks.injectFault(fn, nth, PERMANENT);
        await host.clock.advance(31_000);
        hooks.clearFaults();
        const failed = host.events.filter((e) => e.event === "revert.failed");
        const where = `${fn} call ${nth}`;
        assert.equal(normalizeWfp(hooks.dumpText()), old, where);
        assert.equal(host.manager.status().active?.generation, 1, where);
        if (failed.length === 0) break;
        tried[fn] = nth;
        assert.equal(failed.length, 1, `${where}: one failure event`);
        assert.equal(failed[0].call, fn, where);
        assert.equal(failed[0].code, PERMANENT, where);
      }
    }
    console.log(`revert calls failed in turn: ${JSON.stringify(tried)}`);
    assert.ok(tried.FwpmTransactionCommit0 >= 1);
  },
);

simTest(
  "revert failing on every attempt fails open with no Palisade object left, never half a policy (wfp)",
  async ({ hooks }) => {
    for (const via of ["expiry", "rollback"]) {
      hooks.reset();
      await using host = await hostWithLkg();
      await host.manager.push(newBundle(host.keys));
      host.events.length = 0;
      for (let nth = 1; nth <= 3; nth++) {
        hooks.injectFault("FwpmFilterAdd0", nth, PERMANENT);
      }
      if (via === "expiry") await host.clock.advance(31_000);
      else await host.manager.rollback(rollbackCommand(host.keys));
      hooks.clearFaults();
      assert.deepEqual(
        JSON.parse(hooks.dumpText()),
        { providers: [], sublayers: [], filters: [] },
        via,
      );
      const status = host.manager.status();
      assert.equal(status.state, "failed-open", via);
      assert.equal(status.lastError?.code, "failed-open", via);
      assert.equal(host.events.filter((e) => e.event === "failopen").length, 1);
    }
  },
);

simTest(
  "revert and fail-open both failing leave one whole policy and name 'palisade panic' (wfp)",
  async ({ hooks }) => {
    const neu = reference(hooks, NEW);
    await using host = await hostWithLkg();
    await host.manager.push(newBundle(host.keys));
    for (let nth = 1; nth <= 6; nth++) {
      hooks.injectFault("FwpmTransactionCommit0", nth, PERMANENT);
    }
    await host.clock.advance(31_000);
    hooks.clearFaults();
    assert.equal(normalizeWfp(hooks.dumpText()), neu);
    const status = host.manager.status();
    assert.equal(status.lastError?.code, "failopen-failed");
    assert.match(status.lastError!.message, /palisade panic/);
  },
);

simTest(
  "panic leaves the engine unchanged when any of its engine calls fails and removes everything on retry (wfp)",
  ({ hooks }) => {
    const tried: Record<string, number> = {};
    const empty = { providers: [], sublayers: [], filters: [] };
    const { policy } = validatePolicyValue(policyFor("old", NEW), "panic");
    for (const fn of FUNCTIONS) {
      for (let nth = 1; nth <= MAX_NTH; nth++) {
        hooks.reset();
        {
          using installer = openWfpBackend({ library: SIM_LIBRARY });
          installer.apply(policy, null);
        }
        const before = hooks.dumpText();
        hooks.injectFault(fn, nth, PERMANENT);
        let failure: unknown = null;
        try {
          using panic = openWfpBackend({ library: SIM_LIBRARY });
          panic.removeAll();
        } catch (error) {
          failure = error;
        }
        hooks.clearFaults();
        const where = `${fn} call ${nth}`;
        if (failure === null) {
          assert.deepEqual(JSON.parse(hooks.dumpText()), empty, where);
          break;
        }
        tried[fn] = nth;
        assert.ok(failure instanceof EngineError, `${where}: ${failure}`);
        assert.equal(failure.call, fn, where);
        assert.equal(failure.code, PERMANENT, where);
        assert.equal(hooks.dumpText(), before, `${where}: engine changed`);
        using retry = openWfpBackend({ library: SIM_LIBRARY });
        assert.ok(retry.removeAll() > 0, where);
        assert.deepEqual(JSON.parse(hooks.dumpText()), empty, where);
      }
    }
    console.log(`panic calls failed in turn: ${JSON.stringify(tried)}`);
    assert.ok(tried.FwpmTransactionCommit0 >= 1);
    assert.ok(tried.FwpmEngineOpen0 >= 1);
  },
);
