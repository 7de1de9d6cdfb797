import assert from "node:assert/strict";
import { encodePrivateKeyPem, generateKeyPair } from "../mod.ts";
import { FakeManager } from "../service/_fake_manager.ts";
import { startControlServer } from "../service/server.ts";
import { UsageError } from "./_common.ts";
import { apply } from "./apply.ts";
import { formatStatus } from "./status.ts";

async function withHost(fn: (url: string, dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  const manager = new FakeManager(5000);
  try {
    await using server = startControlServer({
      manager,
      host: "web-1",
      listen: { kind: "tcp", hostname: "127.0.0.1", port: 0, text: "" },
    });
    await Deno.writeTextFile(`${dir}/bundle.json`, "{}");
    await Deno.writeTextFile(
      `${dir}/k.key`,
      encodePrivateKeyPem(generateKeyPair().privateKey),
    );
    const port = (server.addr as Deno.NetAddr).port;
    await fn(`http://127.0.0.1:${port}`, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("apply() exits 0 after a signed heartbeat is accepted", async () => {
  await withHost(async (url, dir) => {
    const code = await apply([
      `${dir}/bundle.json`,
      "--to",
      url,
      "--key",
      `${dir}/k.key`,
    ]);
    assert.equal(code, 0);
  });
});

Deno.test("apply() refuses bad flags with a usage error", async () => {
  await assert.rejects(apply(["b.json"]), UsageError);
  await assert.rejects(
    apply(["b.json", "--to", "http://x", "--check", "ftp://x"]),
    /Invalid --check 'ftp:\/\/x'/,
  );
  await assert.rejects(
    apply(["b.json", "--to", "http://x", "--timeout", "0"]),
    /Invalid --timeout/,
  );
  await assert.rejects(apply(["--to", "http://x"]), /Expected one BUNDLE/);
  await assert.rejects(
    apply(["b.json", "--to", "localhost:7443", "--no-confirm"]),
    /^UsageError: Cannot use --to localhost:7443: give a URL such as http:\/\/HOST:PORT$/,
  );
});

Deno.test("formatStatus() shows generation, window, LKG and last error", () => {
  const text = formatStatus({
    host: "web-1",
    state: "pending",
    active: { generation: 4, serial: 9, name: "edge", rules: 3 },
    pending: {
      generation: 4,
      serial: 9,
      name: "edge",
      deadline: "2026-01-01T00:02:00.000Z",
      secondsLeft: 85,
    },
    lastKnownGood: { generation: 3, serial: 8, name: "edge" },
    lastError: null,
    stateWritable: false,
  });
  assert.match(text, /^pending: +generation 4 \(serial 9, edge\), 85 s left/m);
  assert.match(text, /^last known good: generation 3 \(serial 8, edge\)$/m);
  assert.match(text, /^last error: +none$/m);
  assert.match(text, /^state folder: +not writable/m);
});
