import assert from "node:assert/strict";
import { verifyBundle } from "../signing/mod.ts";
import { validatePolicyValue } from "./parse.ts";
import { GenerationStore, StateWriteError } from "./store.ts";
import { toStateWriteError } from "./_atomic.ts";
import {
  bundle,
  FaultyFs,
  HOST,
  type Keys,
  makeKeys,
  rejects,
  T0,
  tempStateDir,
} from "./_fixture.ts";

const keys = makeKeys();

function load(
  dir: string,
  extra: Partial<Parameters<typeof GenerationStore.load>[1]> = {},
) {
  return GenerationStore.load(dir, { trust: keys.trust, host: HOST, ...extra });
}

/** Verifies and records `bytes` as the next pending generation. */
async function add(store: GenerationStore, bytes: Uint8Array, k: Keys = keys) {
  const { statement } = verifyBundle(bytes, {
    trust: k.trust,
    now: new Date(T0),
  });
  const { policy } = validatePolicyValue(statement.policy, "test");
  return await store.addPending(bytes, statement, policy, new Date(T0));
}

function path(dir: string, n: number, kind: "bundle" | "status") {
  return `${dir}/generations/${String(n).padStart(8, "0")}.${kind}.json`;
}

Deno.test("GenerationStore.load() starts empty on a missing directory without creating it", async () => {
  await using tmp = await tempStateDir();
  const dir = `${tmp.dir}/absent`;
  const store = await load(dir);
  assert.deepStrictEqual(store.list(), []);
  assert.deepStrictEqual(store.highestSerial, 0);
  assert.deepStrictEqual(store.lastKnownGood(), null);
  assert.deepStrictEqual(store.problems.length, 1);
  assert.deepStrictEqual(store.problems[0].file, dir);
  await assert.rejects(() => Deno.stat(dir), Deno.errors.NotFound);
});

Deno.test("GenerationStore records, confirms and reloads a generation", async () => {
  await using tmp = await tempStateDir();
  const store = await load(tmp.dir);
  const gen = await add(store, bundle(keys, { serial: 7 }));
  assert.deepStrictEqual(gen.generation, 1);
  assert.deepStrictEqual(gen.record.status, "pending");
  await store.update(1, {
    status: "confirmed",
    confirmedAt: new Date(T0).toISOString(),
  });

  const again = await load(tmp.dir);
  assert.deepStrictEqual(again.problems, []);
  assert.deepStrictEqual(again.highestSerial, 7);
  assert.deepStrictEqual(again.lastKnownGood()?.generation, 1);
  assert.deepStrictEqual(
    again.lastKnownGood()?.policy.rules[0].id,
    "block-8080",
  );
  const floor = JSON.parse(await Deno.readTextFile(`${tmp.dir}/floor.json`));
  assert.deepStrictEqual(floor, { highestSerial: 7, highestGeneration: 1 });
});

Deno.test("GenerationStore keeps the envelope bytes exactly as received", async () => {
  await using tmp = await tempStateDir();
  const store = await load(tmp.dir);
  const bytes = bundle(keys, { serial: 1 });
  await add(store, bytes);
  assert.deepStrictEqual(
    await Deno.readFile(path(tmp.dir, 1, "bundle")),
    bytes,
  );
});

Deno.test("GenerationStore.load() skips a corrupt status record and falls back to the older confirmed one", async () => {
  await using tmp = await tempStateDir();
  const store = await load(tmp.dir);
  await add(store, bundle(keys, { serial: 1 }));
  await store.update(1, { status: "confirmed" });
  await add(store, bundle(keys, { serial: 2 }));
  await store.update(2, { status: "confirmed" });
  await Deno.writeTextFile(path(tmp.dir, 2, "status"), '{"generation": 2,');

  const again = await load(tmp.dir);
  assert.deepStrictEqual(again.lastKnownGood()?.generation, 1);
  assert.deepStrictEqual(again.problems.length, 1);
  assert.deepStrictEqual(again.problems[0].file, path(tmp.dir, 2, "status"));
  assert(again.problems[0].reason.startsWith("unusable status record"));
  // Its envelope still verifies, so its serial still counts.
  assert.deepStrictEqual(again.highestSerial, 2);
});

Deno.test("GenerationStore.load() skips a truncated envelope", async () => {
  await using tmp = await tempStateDir();
  const store = await load(tmp.dir);
  await add(store, bundle(keys, { serial: 1 }));
  await store.update(1, { status: "confirmed" });
  await add(store, bundle(keys, { serial: 2 }));
  await store.update(2, { status: "confirmed" });
  const bytes = await Deno.readFile(path(tmp.dir, 2, "bundle"));
  await Deno.writeFile(path(tmp.dir, 2, "bundle"), bytes.subarray(0, 100));

  const again = await load(tmp.dir);
  assert.deepStrictEqual(again.lastKnownGood()?.generation, 1);
  assert.deepStrictEqual(again.problems.map((p) => p.file), [
    path(tmp.dir, 2, "bundle"),
  ]);
  assert(again.problems[0].reason.startsWith("envelope does not verify"));
});

Deno.test("GenerationStore.load() skips a tampered envelope", async () => {
  await using tmp = await tempStateDir();
  const store = await load(tmp.dir);
  await add(store, bundle(keys, { serial: 1 }));
  await store.update(1, { status: "confirmed" });

  // Same shape, other payload: a policy swapped in behind the signature.
  const file = path(tmp.dir, 1, "bundle");
  const envelope = JSON.parse(await Deno.readTextFile(file));
  const other = JSON.parse(
    new TextDecoder().decode(bundle(keys, { serial: 1, ports: [22] })),
  );
  envelope.payload = other.payload;
  await Deno.writeTextFile(file, JSON.stringify(envelope));

  const again = await load(tmp.dir);
  assert.deepStrictEqual(again.lastKnownGood(), null);
  assert.deepStrictEqual(again.list(), []);
  assert(/bad-signature|does not verify/.test(again.problems[0].reason));
});

Deno.test("GenerationStore.load() skips an envelope signed by a key no longer trusted", async () => {
  await using tmp = await tempStateDir();
  const store = await load(tmp.dir);
  await add(store, bundle(keys, { serial: 1 }));
  await store.update(1, { status: "confirmed" });
  const other = makeKeys();
  const again = await GenerationStore.load(tmp.dir, { trust: other.trust });
  assert.deepStrictEqual(again.lastKnownGood(), null);
  assert.deepStrictEqual(again.problems.length, 1);
});

Deno.test("GenerationStore.load() skips a status record that names another serial", async () => {
  await using tmp = await tempStateDir();
  const store = await load(tmp.dir);
  await add(store, bundle(keys, { serial: 4 }));
  await store.update(1, { status: "confirmed" });
  const file = path(tmp.dir, 1, "status");
  const record = JSON.parse(await Deno.readTextFile(file));
  record.serial = 3;
  await Deno.writeTextFile(file, JSON.stringify(record));

  const again = await load(tmp.dir);
  assert.deepStrictEqual(again.list(), []);
  assert(again.problems[0].reason.includes("serial 3"));
  assert.deepStrictEqual(again.highestSerial, 4);
});

Deno.test("GenerationStore.load() refuses a status record with unknown fields or a bad status", async () => {
  await using tmp = await tempStateDir();
  const store = await load(tmp.dir);
  await add(store, bundle(keys, { serial: 1 }));
  await add(store, bundle(keys, { serial: 2 }));
  const one = JSON.parse(await Deno.readTextFile(path(tmp.dir, 1, "status")));
  await Deno.writeTextFile(
    path(tmp.dir, 1, "status"),
    JSON.stringify({ ...one, extra: true }),
  );
  const two = JSON.parse(await Deno.readTextFile(path(tmp.dir, 2, "status")));
  await Deno.writeTextFile(
    path(tmp.dir, 2, "status"),
    JSON.stringify({ ...two, status: "active" }),
  );

  const again = await load(tmp.dir);
  assert.deepStrictEqual(again.list(), []);
  assert(again.problems[0].reason.includes("unknown field 'extra'"));
  assert(again.problems[1].reason.includes("'status'"));
});

Deno.test("GenerationStore.load() keeps a confirmed generation whose bundle has since expired", async () => {
  await using tmp = await tempStateDir();
  const store = await load(tmp.dir);
  await add(
    store,
    bundle(keys, { serial: 1, expiresAt: T0 + 60_000 }),
  );
  await store.update(1, { status: "confirmed" });
  // Loading happens long after expiry; the time check is as received.
  const again = await load(tmp.dir);
  assert.deepStrictEqual(again.lastKnownGood()?.generation, 1);
});

Deno.test("GenerationStore.load() keeps the serial floor of reverted and pruned generations", async () => {
  await using tmp = await tempStateDir();
  const store = await GenerationStore.load(tmp.dir, {
    trust: keys.trust,
    maxGenerations: 2,
  });
  for (const serial of [10, 11, 12]) {
    const gen = await add(store, bundle(keys, { serial }));
    await store.update(gen.generation, { status: "reverted" });
  }
  assert.deepStrictEqual(await store.prune(), [1]);
  await Deno.remove(`${tmp.dir}/generations`, { recursive: true });
  const again = await load(tmp.dir);
  assert.deepStrictEqual(again.highestSerial, 12);
});

Deno.test("GenerationStore.load() takes the floor from the generations when floor.json is corrupt", async () => {
  await using tmp = await tempStateDir();
  const store = await load(tmp.dir);
  await add(store, bundle(keys, { serial: 5 }));
  await Deno.writeTextFile(`${tmp.dir}/floor.json`, "{ nope");
  const again = await load(tmp.dir);
  assert.deepStrictEqual(again.highestSerial, 5);
  assert.deepStrictEqual(again.problems[0].file, `${tmp.dir}/floor.json`);
});

Deno.test("GenerationStore.load() reports leftovers of an interrupted write", async () => {
  await using tmp = await tempStateDir();
  await Deno.mkdir(`${tmp.dir}/generations`);
  await Deno.writeTextFile(
    `${tmp.dir}/generations/.tmp-00000001.status.json-ab`,
    "{",
  );
  const store = await load(tmp.dir);
  assert.deepStrictEqual(store.list(), []);
  assert(store.problems[0].reason.includes("interrupted write"));
});

Deno.test("GenerationStore.prune() keeps the last known good and the pending generation", async () => {
  await using tmp = await tempStateDir();
  const store = await GenerationStore.load(tmp.dir, {
    trust: keys.trust,
    maxGenerations: 2,
  });
  await add(store, bundle(keys, { serial: 1 }));
  await store.update(1, { status: "confirmed" });
  for (const serial of [2, 3]) {
    const gen = await add(store, bundle(keys, { serial }));
    await store.update(gen.generation, { status: "reverted" });
  }
  await add(store, bundle(keys, { serial: 4 }));

  assert.deepStrictEqual(await store.prune(), [2, 3]);
  assert.deepStrictEqual(store.onDisk(), [1, 4]);
  const again = await load(tmp.dir);
  assert.deepStrictEqual(again.lastKnownGood()?.generation, 1);
  assert.deepStrictEqual(again.pending().map((g) => g.generation), [4]);
  assert.deepStrictEqual(again.problems, []);
});

Deno.test("GenerationStore.addPending() on a read-only disk throws and leaves nothing behind", async () => {
  await using tmp = await tempStateDir();
  const fs = new FaultyFs();
  const store = await load(tmp.dir, { fs });
  fs.failWith = "read-only";
  const error = await rejects(
    () => add(store, bundle(keys, { serial: 1 })),
    StateWriteError,
  );
  assert.deepStrictEqual(error.code, "read-only");
  assert(error.message.includes(tmp.dir));
  assert.deepStrictEqual(store.list(), []);
  assert.deepStrictEqual(store.highestSerial, 0);
});

Deno.test("GenerationStore.addPending() removes the envelope when the status write fails", async () => {
  await using tmp = await tempStateDir();
  const fs = new FaultyFs();
  const store = await load(tmp.dir, { fs });
  fs.failOneWrite("disk-full", 1);
  const error = await rejects(
    () => add(store, bundle(keys, { serial: 1 })),
    StateWriteError,
  );
  assert.deepStrictEqual(error.code, "disk-full");
  assert.deepStrictEqual(
    await Array.fromAsync(Deno.readDir(`${tmp.dir}/generations`)),
    [],
  );
  const again = await load(tmp.dir);
  assert.deepStrictEqual(again.list(), []);
  assert.deepStrictEqual(again.highestSerial, 0);
});

Deno.test("GenerationStore.load() writes nothing", async () => {
  await using tmp = await tempStateDir();
  const writer = await load(tmp.dir);
  await add(writer, bundle(keys, { serial: 1 }));
  const fs = new FaultyFs();
  fs.failWith = "read-only";
  const store = await load(tmp.dir, { fs });
  assert.deepStrictEqual(store.pending().length, 1);
  assert.deepStrictEqual(fs.writes, 0);
  await assert.rejects(() => store.probe(), StateWriteError);
});

Deno.test("toStateWriteError() names the path and what to fix", () => {
  const ro = toStateWriteError(
    Object.assign(new Error("os error 30"), { code: "EROFS" }),
    "/var/lib/palisade/floor.json",
  );
  assert.deepStrictEqual(ro.code, "read-only");
  assert(
    ro.message.startsWith(
      "Cannot write state file /var/lib/palisade/floor.json: ",
    ),
  );
  const full = toStateWriteError(
    Object.assign(new Error("os error 28"), { code: "ENOSPC" }),
    "/x",
  );
  assert.deepStrictEqual(full.code, "disk-full");
  assert(full.message.includes("free space"));
  assert.deepStrictEqual(toStateWriteError(new Error("odd"), "/x").code, "io");
});

async function run(...cmd: string[]) {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `${cmd.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

function needRoot(t: Deno.TestContext): boolean {
  if (Deno.uid() === 0) return true;
  if (Deno.env.get("CI")) throw new Error("This test needs root under CI");
  console.log(`${t.name}: skipped, needs root to mount a tmpfs`);
  return false;
}

Deno.test("GenerationStore on a real read-only tmpfs loads and refuses writes", async (t) => {
  if (!needRoot(t)) return;
  await using tmp = await tempStateDir();
  await run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", tmp.dir);
  try {
    const store = await load(tmp.dir);
    await add(store, bundle(keys, { serial: 3 }));
    await store.update(1, { status: "confirmed" });
    await run("mount", "-o", "remount,ro", tmp.dir);

    const again = await load(tmp.dir);
    assert.deepStrictEqual(again.lastKnownGood()?.serial, 3);
    const error = await rejects(() => again.probe(), StateWriteError);
    assert.deepStrictEqual(error.code, "read-only");
  } finally {
    await run("umount", tmp.dir);
  }
});

Deno.test("GenerationStore on a real full tmpfs reports disk-full", async (t) => {
  if (!needRoot(t)) return;
  await using tmp = await tempStateDir();
  await run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", tmp.dir);
  try {
    const store = await load(tmp.dir);
    const big = bundle(keys, {
      serial: 1,
      ports: Array.from({ length: 1500 }, (_, i) => i + 1),
    });
    const error = await rejects(() => add(store, big), StateWriteError);
    assert.deepStrictEqual(error.code, "disk-full");
    assert.deepStrictEqual(store.list(), []);
  } finally {
    await run("umount", tmp.dir);
  }
});

Deno.test("GenerationStore keeps a withdrawal and used rollback nonces across loads", async () => {
  await using tmp = await tempStateDir();
  const store = await load(tmp.dir);
  assert.equal(store.withdrawn, null);
  await store.setWithdrawn({ since: new Date(T0).toISOString(), reason: "r" });
  await store.saveRollbackNonces(new Map([["n-1", T0 + 60_000]]));

  const again = await load(tmp.dir);
  assert.deepEqual(again.withdrawn, {
    since: new Date(T0).toISOString(),
    reason: "r",
  });
  assert.deepEqual([...again.rollbackNonces()], [["n-1", T0 + 60_000]]);
  await again.setWithdrawn(null);
  assert.equal((await load(tmp.dir)).withdrawn, null);
});

Deno.test("GenerationStore.load() keeps a withdrawal whose file is damaged", async () => {
  await using tmp = await tempStateDir();
  await Deno.mkdir(tmp.dir, { recursive: true });
  await Deno.writeTextFile(`${tmp.dir}/withdrawn.json`, '{"since": ');
  await Deno.writeTextFile(`${tmp.dir}/rollback-nonces.json`, "{");
  const store = await load(tmp.dir);
  assert.ok(store.withdrawn !== null);
  const files = store.problems.map((p) => p.file);
  assert.ok(files.includes(`${tmp.dir}/withdrawn.json`));
  assert.ok(files.includes(`${tmp.dir}/rollback-nonces.json`));
  assert.equal(store.rollbackNonces().size, 0);
});

Deno.test("GenerationStore.addPending() drops the 'no generations stored yet' problem", async () => {
  await using tmp = await tempStateDir();
  const store = await load(`${tmp.dir}/fresh`);
  assert.ok(store.problems.some((p) => /no generations/.test(p.reason)));
  await add(store, bundle(keys, { serial: 1 }));
  assert.deepEqual(store.problems, []);
});
