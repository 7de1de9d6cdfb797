import assert from "node:assert/strict";
import { join } from "node:path";
import { LOG_FILE, Logger } from "./logger.ts";

Deno.test("Logger writes JSON lines with ts, level, event and fields", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const lines: string[] = [];
    const log = Logger.open({
      dir,
      maxBytes: 1 << 20,
      files: 3,
      console: (line) => lines.push(line),
      now: () => new Date("2026-01-02T03:04:05.000Z"),
    });
    log.info("apply.commit", { generation: 4, ruleIds: ["a", "b"] });
    log.error("apply.abort", { code: 22, big: 5n, cause: new Error("no") });
    log.close();
    log.close();
    const file = Deno.readTextFileSync(join(dir, LOG_FILE)).trim().split("\n");
    assert.deepEqual(file, lines);
    assert.deepEqual(JSON.parse(lines[0]), {
      ts: "2026-01-02T03:04:05.000Z",
      level: "info",
      event: "apply.commit",
      generation: 4,
      ruleIds: ["a", "b"],
    });
    const second = JSON.parse(lines[1]);
    assert.equal(second.big, "5");
    assert.deepEqual(second.cause, { name: "Error", message: "no" });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("Logger rotates by size and keeps a bounded number of files", () => {
  const dir = Deno.makeTempDirSync();
  try {
    using log = Logger.open({ dir, maxBytes: 4096, files: 3, console: null });
    for (let i = 0; i < 500; i++) {
      log.info("tick", { i, pad: "x".repeat(40) });
    }
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, [LOG_FILE, `${LOG_FILE}.1`, `${LOG_FILE}.2`]);
    for (const name of names) {
      assert.ok(Deno.statSync(join(dir, name)).size <= 4096, name);
    }
    const newest = Deno.readTextFileSync(join(dir, LOG_FILE)).trim().split(
      "\n",
    );
    assert.equal(JSON.parse(newest.at(-1) as string).i, 499);
    const older = Deno.readTextFileSync(join(dir, `${LOG_FILE}.1`)).trim()
      .split("\n");
    assert.equal(
      JSON.parse(older.at(-1) as string).i + 1,
      JSON.parse(newest[0]).i,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("Logger survives a log folder it cannot create", () => {
  const dir = Deno.makeTempDirSync();
  try {
    // A regular file where the folder should be stops even root.
    const blocker = join(dir, "file");
    Deno.writeTextFileSync(blocker, "");
    const lines: string[] = [];
    using log = Logger.open({
      dir: join(blocker, "logs"),
      maxBytes: 4096,
      files: 2,
      console: (line) => lines.push(line),
    });
    log.info("start");
    assert.match(log.fileError ?? "", /^Cannot write log file in /);
    assert.equal(JSON.parse(lines[0]).event, "log.file-unavailable");
    assert.equal(JSON.parse(lines[0]).level, "warn");
    assert.equal(JSON.parse(lines[1]).event, "start");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
