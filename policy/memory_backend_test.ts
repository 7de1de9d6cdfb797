import assert from "node:assert/strict";
import { EngineError } from "./backend.ts";
import { MemoryBackend } from "./memory_backend.ts";

Deno.test("MemoryBackend fails the nth apply and leaves the policy unchanged", () => {
  const backend = new MemoryBackend();
  const policy = (name: string) => ({ name, rules: [] });
  backend.apply(policy("a"), null);
  backend.inject("apply", { nth: 2 });
  backend.apply(policy("b"), policy("a"));
  assert.throws(() => backend.apply(policy("c"), policy("b")), EngineError);
  assert.equal(backend.installed?.name, "b");
  backend.apply(policy("c"), policy("b"));
  assert.equal(backend.installed?.name, "c");
  assert.equal(backend.readBack(policy("c")).ok, true);
  assert.equal(backend.readBack(policy("b")).ok, false);
  backend.inject("removeAll");
  assert.throws(() => backend.removeAll(), EngineError);
  assert.equal(backend.removeAll(), 1);
  assert.equal(backend.removeAll(), 0);
  backend.close();
  backend.close();
  assert.throws(() => backend.removeAll(), /closed/);
});

Deno.test("MemoryBackend refuses an application path like the nft engine", () => {
  using backend = new MemoryBackend();
  const rule = {
    id: "app",
    action: "block" as const,
    direction: "out" as const,
    protocol: "tcp" as const,
    remote: [],
    local: [],
    remotePorts: [{ first: 25, last: 25 }],
    localPorts: [],
    app: "C:\\app.exe",
  };
  assert.throws(
    () => backend.apply({ name: "p", rules: [rule] }, null),
    (e) => e instanceof TypeError && /rule app/.test(e.message),
  );
  assert.equal(backend.installed, null);
  using wfp = new MemoryBackend({ engine: "wfp" });
  wfp.apply({ name: "p", rules: [rule] }, null);
  assert.deepEqual(wfp.counters(), [{ id: "app", packets: 0n, bytes: 0n }]);
});

Deno.test("MemoryBackend reports an incremental apply only when it holds the given current policy", () => {
  using backend = new MemoryBackend();
  const empty = { name: "a", rules: [] };
  const stats = backend.apply(empty, null);
  assert.equal(stats.incremental, true);
  backend.setInstalled({ name: "drift", rules: [] });
  assert.equal(backend.apply(empty, empty).incremental, false);
});
