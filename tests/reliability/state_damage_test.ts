/**
 * Damaged state at start-up, on the WFP simulator: corrupt, truncated
 * and tampered generation files, a revoked signing key, a damaged
 * serial floor and a missing trust store. The design's table: refuse
 * the damaged file, fall back to an older last known good, else fail
 * open; the service still starts (a missing trust store stops it before
 * the engine is touched).
 */
import assert from "node:assert/strict";
import { SIM_LIBRARY, simTest } from "../../ffi/wfp/_sim_fixture.ts";
import type { WfpSimulatorHooks } from "../../ffi/wfp/simulator.ts";
import {
  bundle,
  FakeClock,
  heartbeat,
  type Keys,
} from "../../policy/_fixture.ts";
import { PolicyManager, RefusedError } from "../../policy/manager.ts";
import { openWfpBackend } from "../../policy/wfp_backend.ts";
import { startService } from "../../service/service.ts";
import {
  generateKeyPair,
  parseTrustStore,
  type PrivateKey,
  type TrustStore,
} from "../../signing/mod.ts";
import { makeHostDir, normalizeWfp, policyFor, trustText } from "./_kit.ts";

const OLD = [8001];
const NEW = [8002, 8003];
const EMPTY = { providers: [], sublayers: [], filters: [] };

function trustOf(keys: PrivateKey[]): TrustStore {
  return parseTrustStore(trustText(keys), "trust.jsonc");
}

async function open(stateDir: string, trust: TrustStore, clock: FakeClock) {
  const backend = openWfpBackend({ library: SIM_LIBRARY });
  const manager = await PolicyManager.open({
    backend,
    stateDir,
    trust,
    host: "web-1",
    groups: [],
    commitWindow: { default: 30, max: 3600 },
    retry: { attempts: 2, baseMs: 1, maxMs: 1 },
    now: clock.clock,
    timers: clock.timers,
  });
  return {
    manager,
    async [Symbol.asyncDispose]() {
      await manager.close();
      backend.close();
    },
  };
}

/** Generation 1 (OLD, key one) and 2 (NEW, key two), both confirmed. */
async function twoGenerations(
  stateDir: string,
  hooks: WfpSimulatorHooks,
) {
  const one = generateKeyPair().privateKey;
  const two = generateKeyPair().privateKey;
  const trust = trustOf([one, two]);
  const clock = new FakeClock();
  await using host = await open(stateDir, trust, clock);
  let serial = 0;
  const dumps: string[] = [];
  for (const [key, ports] of [[one, OLD], [two, NEW]] as const) {
    const keys: Keys = { key, trust };
    const pushed = await host.manager.push(
      bundle(keys, { serial: ++serial, policy: policyFor("p", ports) }),
    );
    await host.manager.confirm(
      heartbeat(keys, pushed.generation, pushed.nonce),
    );
    dumps.push(normalizeWfp(hooks.dumpText()));
  }
  return { one, two, trust, clock, older: dumps[0], newest: dumps[1] };
}

type Damage = (path: string) => Promise<void>;

const DAMAGES: Record<string, Damage> = {
  "truncated": async (path) => {
    const bytes = await Deno.readFile(path);
    await Deno.writeFile(path, bytes.subarray(0, bytes.length >> 1));
  },
  "replaced by garbage": async (path) => {
    await Deno.writeFile(path, crypto.getRandomValues(new Uint8Array(300)));
  },
  "emptied": async (path) => {
    await Deno.writeFile(path, new Uint8Array(0));
  },
  "deleted": async (path) => {
    await Deno.remove(path);
  },
  "tampered (one payload byte)": async (path) => {
    const envelope = JSON.parse(await Deno.readTextFile(path));
    if (typeof envelope.payload === "string") {
      const text = atob(envelope.payload).replace("8002", "8009");
      envelope.payload = btoa(text);
    } else {
      envelope.status = "confirmed";
      envelope.serial = 99;
    }
    await Deno.writeTextFile(path, JSON.stringify(envelope));
  },
};

function genFile(stateDir: string, generation: number, kind: string) {
  return `${stateDir}/generations/${
    String(generation).padStart(8, "0")
  }.${kind}.json`;
}

for (const kind of ["bundle", "status"]) {
  for (const [how, damage] of Object.entries(DAMAGES)) {
    simTest(
      `start-up with the newest generation's ${kind} file ${how} falls back to the older last known good in full`,
      async ({ hooks }) => {
        await using dir = await makeHostDir();
        const { trust, clock, older, newest } = await twoGenerations(
          dir.stateDir,
          hooks,
        );
        assert.equal(normalizeWfp(hooks.dumpText()), newest);
        assert.notEqual(older, newest);

        const file = genFile(dir.stateDir, 2, kind);
        await damage(file);
        await using host = await open(dir.stateDir, trust, clock);
        const status = host.manager.status();
        assert.equal(status.active?.generation, 1);
        assert.equal(status.lastKnownGood?.generation, 1);
        assert.notEqual(status.state, "failed-open");
        assert.equal(normalizeWfp(hooks.dumpText()), older);
        if (how !== "deleted" || kind === "bundle") {
          assert.ok(
            status.problems.some((p) => p.file.includes("00000002")),
            JSON.stringify(status.problems),
          );
        }
      },
    );
  }
}

simTest(
  "start-up with every generation damaged fails open: no Palisade object, state says why",
  async ({ hooks }) => {
    await using dir = await makeHostDir();
    const { trust, clock } = await twoGenerations(dir.stateDir, hooks);
    for (const generation of [1, 2]) {
      await DAMAGES["replaced by garbage"](
        genFile(dir.stateDir, generation, "bundle"),
      );
    }
    await using host = await open(dir.stateDir, trust, clock);
    const status = host.manager.status();
    assert.equal(status.state, "failed-open");
    assert.equal(status.active, null);
    assert.equal(status.lastError?.code, "no-last-known-good");
    assert.match(status.lastError!.message, /^Cannot restore/);
    assert.deepEqual(JSON.parse(hooks.dumpText()), EMPTY);
  },
);

simTest(
  "start-up after the newest generation's signing key was revoked falls back to the generation signed by a trusted key",
  async ({ hooks }) => {
    await using dir = await makeHostDir();
    const { one, clock } = await twoGenerations(dir.stateDir, hooks);
    await using host = await open(dir.stateDir, trustOf([one]), clock);
    const status = host.manager.status();
    assert.equal(status.active?.generation, 1);
    assert.ok(status.problems.some((p) => p.file.includes("00000002")));
    assert.equal(JSON.parse(hooks.dumpText()).filters.length > 0, true);
    const names = JSON.parse(hooks.dumpText()).filters.map((
      f: { name: string },
    ) => f.name);
    assert.deepEqual([...new Set(names)], ["block-8001"]);
  },
);

simTest(
  "start-up after every signing key was revoked fails open",
  async ({ hooks }) => {
    await using dir = await makeHostDir();
    const { clock } = await twoGenerations(dir.stateDir, hooks);
    const stranger = generateKeyPair().privateKey;
    await using host = await open(dir.stateDir, trustOf([stranger]), clock);
    assert.equal(host.manager.status().state, "failed-open");
    assert.deepEqual(JSON.parse(hooks.dumpText()), EMPTY);
  },
);

simTest(
  "start-up with a damaged serial floor keeps the last known good and still refuses a replayed serial",
  async ({ hooks }) => {
    await using dir = await makeHostDir();
    const { two, trust, clock } = await twoGenerations(dir.stateDir, hooks);
    const before = normalizeWfp(hooks.dumpText());
    await Deno.writeTextFile(`${dir.stateDir}/floor.json`, "{ garbage");
    await using host = await open(dir.stateDir, trust, clock);
    assert.equal(host.manager.status().active?.generation, 2);
    assert.equal(normalizeWfp(hooks.dumpText()), before);
    const replay = await host.manager.push(
      bundle({ key: two, trust }, { serial: 2, policy: policyFor("r", [9]) }),
    ).then(() => null, (e) => e);
    assert.ok(replay instanceof RefusedError);
    assert.equal(replay.code, "serial-too-low");
  },
);

simTest(
  "a missing trust store stops the service at start with a clear error and leaves the engine untouched",
  async ({ hooks }) => {
    await using dir = await makeHostDir();
    await twoGenerations(dir.stateDir, hooks);
    const before = hooks.dumpText();
    const configPath = `${dir.dir}/config.jsonc`;
    await Deno.writeTextFile(
      configPath,
      JSON.stringify({
        host: "web-1",
        listen: "127.0.0.1:7443",
        trust: `${dir.dir}/missing-trust.jsonc`,
        stateDir: dir.stateDir,
        logDir: dir.logDir,
        engine: "wfp",
        wfpLibrary: SIM_LIBRARY,
      }),
    );
    let opened = 0;
    const error = await startService({
      configPath,
      console: null,
      openBackend: () => {
        opened++;
        return openWfpBackend({ library: SIM_LIBRARY });
      },
    }).then(() => null, (e) => e);
    assert.ok(error instanceof Error);
    assert.match(error.message, /^Cannot load trust store/);
    assert.match(error.message, /missing-trust\.jsonc/);
    assert.equal(opened, 0);
    assert.equal(hooks.dumpText(), before);
  },
);
