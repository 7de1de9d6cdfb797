/**
 * `palisade panic` and `palisade uninstall` as an operator runs them,
 * each in a network namespace this file creates (the commands run as
 * child processes inside it; this process never opens libnftables).
 *
 * @module
 */
import assert from "node:assert/strict";
import { nftText, nsSpawn, requireRoot, withNetns } from "./_netns.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;
const CONFIG = `${ROOT}deno.json`;

const TABLES = `
table inet other {
  set friends { type ipv4_addr; flags interval; elements = { 10.9.0.0/16 } }
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr @friends tcp dport 22 counter accept comment "other-rule"
  }
}
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "lo" masquerade
  }
}
table inet palisade {
  set block-x.remote4 { type ipv4_addr; flags interval; elements = { 192.0.2.0/24 } }
  chain input {
    type filter hook input priority filter - 10; policy accept;
    ip saddr @block-x.remote4 counter drop comment "block-x"
  }
  chain output {
    type filter hook output priority filter - 10; policy accept;
  }
}
`;

async function loadTables(ns: string): Promise<string> {
  const script = `nft -f - <<'EOF'\n${TABLES}\nEOF`;
  const result = await nsSpawn(ns, ["sh", "-c", script]);
  assert.equal(result.code, 0, result.stderr);
  return await otherTables(ns);
}

async function otherTables(ns: string): Promise<string> {
  return await nftText(ns, ["-s", "list", "table", "inet", "other"]) +
    await nftText(ns, ["-s", "list", "table", "ip", "nat"]);
}

async function tables(ns: string): Promise<string> {
  return await nftText(ns, ["list", "tables"]);
}

function palisade(ns: string, permissions: string[], args: string[]) {
  return nsSpawn(ns, [
    Deno.execPath(),
    "run",
    "--config",
    CONFIG,
    ...permissions,
    MAIN,
    ...args,
  ]);
}

Deno.test("palisade panic removes table inet palisade, leaves other tables byte-identical and says nothing to remove the second time", async (t) => {
  if (!requireRoot(t)) return;
  await withNetns("panic", async (ns) => {
    const others = await loadTables(ns);
    assert.match(await tables(ns), /table inet palisade/);

    const first = await palisade(ns, ["-P=panic"], ["panic"]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(
      first.stdout,
      /^removed table inet palisade \(5 objects: the table, its chains, sets and rules\)$/m,
    );
    assert.doesNotMatch(await tables(ns), /palisade/);
    assert.equal(await otherTables(ns), others);

    const second = await palisade(ns, ["-P=panic"], ["panic"]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.trim(), "nothing to remove");
    assert.equal(await otherTables(ns), others);
  });
});

Deno.test("palisade panic refuses an unknown engine", async (t) => {
  if (!requireRoot(t)) return;
  await withNetns("panic-bad", async (ns) => {
    const result = await palisade(ns, ["-P=panic"], [
      "panic",
      "--engine",
      "iptables",
    ]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /Unknown engine 'iptables': use nft or wfp/);
  });
});

Deno.test("palisade uninstall lists without --yes, then panics and removes every path it names", async (t) => {
  if (!requireRoot(t)) return;
  const dir = await Deno.makeTempDir({ prefix: "palisade-uninstall-" });
  try {
    const etc = `${dir}/etc`;
    const state = `${dir}/state`;
    const logs = `${dir}/logs`;
    const unit = `${dir}/palisade.service`;
    await Deno.mkdir(etc);
    await Deno.mkdir(`${state}/generations`, { recursive: true });
    await Deno.mkdir(logs);
    await Deno.writeTextFile(`${state}/generations/1.json`, "{}");
    await Deno.writeTextFile(`${logs}/palisade.log`, "{}\n");
    await Deno.writeTextFile(unit, "[Unit]\nDescription=Palisade\n");
    await Deno.writeTextFile(
      `${etc}/config.jsonc`,
      JSON.stringify({
        host: "web-1",
        listen: "127.0.0.1:7443",
        trust: `${etc}/trust.jsonc`,
        stateDir: state,
        logDir: logs,
        engine: "nft",
      }),
    );
    const args = [
      "uninstall",
      "--config",
      `${etc}/config.jsonc`,
      "--config-dir",
      etc,
      "--unit",
      unit,
    ];
    const permissions = [
      "--allow-read",
      `--allow-write=${dir}`,
      "--allow-ffi",
    ];

    await withNetns("uninstall", async (ns) => {
      const others = await loadTables(ns);

      const dry = await palisade(ns, permissions, args);
      assert.equal(dry.code, 1, dry.stderr);
      for (const path of [state, logs, etc, unit]) {
        assert.match(dry.stdout, new RegExp(`^would remove ${path}$`, "m"));
        await Deno.lstat(path);
      }
      assert.match(await tables(ns), /table inet palisade/);

      const run = await palisade(ns, permissions, [...args, "--yes"]);
      assert.equal(run.code, 0, run.stderr);
      const lines = run.stdout.trim().split("\n");
      assert.match(lines[0], /^removed table inet palisade/);
      assert.deepEqual(lines.slice(1), [
        `removed ${state}`,
        `removed ${logs}`,
        `removed ${etc}`,
        `removed ${unit}`,
      ]);
      for (const path of [state, logs, etc, unit]) {
        await assert.rejects(Deno.lstat(path), Deno.errors.NotFound);
      }
      assert.doesNotMatch(await tables(ns), /palisade/);
      assert.equal(await otherTables(ns), others);

      const again = await palisade(ns, permissions, [...args, "--yes"]);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(again.stdout.trim().split("\n"), [
        "nothing to remove",
        "no files to remove",
      ]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
