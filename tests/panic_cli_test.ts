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

const SIM = `${ROOT}tools/wfpsim/libwfpsim.so`;

Deno.test("palisade panic --wfp-library implies the wfp engine and leaves nftables alone", async (t) => {
  if (!requireRoot(t)) return;
  await withNetns("panic-wfp", async (ns) => {
    await loadTables(ns);
    const before = await nftText(ns, ["-s", "list", "ruleset"]);
    const result = await palisade(ns, [`--allow-ffi=${SIM}`], [
      "panic",
      "--wfp-library",
      SIM,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), "nothing to remove");
    assert.equal(await nftText(ns, ["-s", "list", "ruleset"]), before);
  });
});

Deno.test("palisade panic refuses contradicting engine flags and names a missing library", async (t) => {
  if (!requireRoot(t)) return;
  await withNetns("panic-flags", async (ns) => {
    await loadTables(ns);
    const before = await nftText(ns, ["-s", "list", "ruleset"]);
    const contradiction = await palisade(ns, ["-P=panic"], [
      "panic",
      "--engine",
      "nft",
      "--wfp-library",
      SIM,
    ]);
    assert.equal(contradiction.code, 1);
    assert.match(
      contradiction.stderr,
      /--engine nft contradicts --wfp-library .*libwfpsim\.so, a library of the wfp engine/,
    );
    const both = await palisade(ns, ["-P=panic"], [
      "panic",
      "--wfp-library",
      SIM,
      "--nft-library",
      "/usr/lib/x86_64-linux-gnu/libnftables.so.1",
    ]);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /name different engines/);

    const readable = await palisade(ns, ["--allow-read", "--allow-ffi"], [
      "panic",
      "--wfp-library",
      "/nonexistent.so",
    ]);
    assert.equal(readable.code, 1);
    assert.match(
      readable.stderr,
      /Cannot use --wfp-library \/nonexistent\.so: no such file$/m,
    );
    const task = await palisade(ns, ["-P=panic"], [
      "panic",
      "--wfp-library",
      "/nonexistent.so",
    ]);
    assert.equal(task.code, 1);
    assert.match(
      task.stderr,
      /Cannot use --wfp-library \/nonexistent\.so: it may not exist, and this command's permissions do not allow loading it/,
    );
    assert.doesNotMatch(task.stderr, /Requires ffi access/);
    assert.equal(await nftText(ns, ["-s", "list", "ruleset"]), before);
  });
});

Deno.test("palisade uninstall panics and removes every path it names, lists with --dry-run, and is idempotent", async (t) => {
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
    // --config implies its folder; --unit is relative to the working
    // folder, as a person types it.
    const args = [
      "uninstall",
      "--config",
      `${etc}/config.jsonc`,
      "--unit",
      "palisade.service",
    ];
    const permissions = [
      "--allow-read",
      `--allow-write=${dir}`,
      "--allow-ffi",
    ];
    const run = (ns: string, extra: string[]) =>
      nsSpawn(ns, [
        "sh",
        "-c",
        `cd "$0" && exec "$@"`,
        dir,
        Deno.execPath(),
        "run",
        "--config",
        CONFIG,
        ...permissions,
        MAIN,
        ...args,
        ...extra,
      ]);

    await withNetns("uninstall", async (ns) => {
      const others = await loadTables(ns);

      const dry = await run(ns, ["--dry-run"]);
      assert.equal(dry.code, 0, dry.stderr);
      assert.deepEqual(dry.stdout.trim().split("\n"), [
        "would remove every Palisade object from the nft engine",
        `would remove ${state}`,
        `would remove ${logs}`,
        `would remove ${etc}`,
        `would remove ${unit}`,
      ]);
      for (const path of [state, logs, etc, unit]) await Deno.lstat(path);
      assert.match(await tables(ns), /table inet palisade/);

      const first = await run(ns, []);
      assert.equal(first.code, 0, first.stderr);
      const lines = first.stdout.trim().split("\n");
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

      const again = await run(ns, []);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout.trim(), /^nothing left: /);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("palisade uninstall under its permission set says nothing left when nothing is installed", async (t) => {
  if (!requireRoot(t)) return;
  for (
    const path of ["/etc/palisade", "/var/lib/palisade", "/var/log/palisade"]
  ) {
    try {
      await Deno.lstat(path);
      console.warn(`SKIPPED "${t.name}": ${path} exists on this machine`);
      return;
    } catch {
      // absent, as the test needs
    }
  }
  await withNetns("uninstall-empty", async (ns) => {
    const result = await palisade(ns, ["-P=uninstall"], ["uninstall"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout.trim(), /^nothing left: /);
  });
});

Deno.test("palisade uninstall refuses top-level folders", async (t) => {
  if (!requireRoot(t)) return;
  await withNetns("uninstall-root", async (ns) => {
    for (const dir of ["/", "/etc", "/var/../tmp"]) {
      const result = await palisade(ns, ["--allow-read", "--allow-ffi"], [
        "uninstall",
        "--state-dir",
        dir,
      ]);
      assert.equal(result.code, 1, dir);
      assert.match(result.stderr, /refusing to remove a top-level folder/);
    }
  });
});

Deno.test("palisade uninstall with a scoped grant skips ungranted default paths, says what the engine holds, and is idempotent", async (t) => {
  if (!requireRoot(t)) return;
  const dir = await Deno.makeTempDir({ prefix: "palisade-uninstall-scoped-" });
  try {
    const etc = `${dir}/etc`;
    const state = `${dir}/state`;
    const logs = `${dir}/logs`;
    await Deno.mkdir(etc);
    await Deno.mkdir(state);
    await Deno.mkdir(logs);
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
    const unit = "/etc/systemd/system/palisade.service";
    const skippedUnit = `skipped ${unit}: not granted to this command ` +
      `(name the real one with --unit PATH, or grant ` +
      `--allow-read=${unit} --allow-write=${unit})`;
    const run = (ns: string, extra: string[]) =>
      palisade(ns, [
        `--allow-read=${dir}`,
        `--allow-write=${dir}`,
        "--allow-ffi",
      ], ["uninstall", "--config", `${etc}/config.jsonc`, ...extra]);

    await withNetns("uninstall-scoped", async (ns) => {
      const dry = await run(ns, ["--dry-run"]);
      assert.equal(dry.code, 0, dry.stderr);
      assert.deepEqual(dry.stdout.trim().split("\n"), [
        skippedUnit,
        "no Palisade objects in the nft engine",
        `would remove ${state}`,
        `would remove ${logs}`,
        `would remove ${etc}`,
      ]);

      await loadTables(ns);
      const dryWithTable = await run(ns, ["--dry-run"]);
      assert.equal(dryWithTable.code, 0, dryWithTable.stderr);
      assert.match(
        dryWithTable.stdout,
        /^would remove every Palisade object from the nft engine$/m,
      );
      assert.match(await tables(ns), /table inet palisade/);

      const first = await run(ns, []);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /^removed table inet palisade/m);
      assert.match(first.stdout, new RegExp(`^removed ${etc}$`, "m"));
      await assert.rejects(Deno.lstat(etc), Deno.errors.NotFound);

      // The config is gone: the default folders come back, ungranted.
      const again = await run(ns, []);
      assert.equal(again.code, 0, again.stderr);
      const lines = again.stdout.trim().split("\n");
      assert.deepEqual(lines.slice(0, 3).map((l) => l.split(":")[0]), [
        "skipped /var/lib/palisade",
        "skipped /var/log/palisade",
        `skipped ${unit}`,
      ]);
      assert.match(
        lines[3],
        /^nothing left: .*\(3 default path\(s\) not checked/,
      );
      assert.equal(lines.length, 4);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("palisade uninstall refuses a path it was told to remove but may not read", async (t) => {
  if (!requireRoot(t)) return;
  const dir = await Deno.makeTempDir({ prefix: "palisade-uninstall-named-" });
  try {
    await withNetns("uninstall-named", async (ns) => {
      const result = await palisade(ns, [
        `--allow-read=${dir}`,
        `--allow-write=${dir}`,
        "--allow-ffi",
      ], [
        "uninstall",
        "--dry-run",
        "--config",
        `${dir}/config.jsonc`,
        "--unit",
        "/etc/systemd/system/other.service",
      ]);
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        /Cannot check \/etc\/systemd\/system\/other\.service: this command may not read it; run 'deno run --allow-read=\/etc\/systemd\/system\/other\.service/,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
