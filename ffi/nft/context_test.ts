import assert from "node:assert/strict";
import {
  assertInPrivateNetns,
  currentNetns,
  netnsSuite,
  nftText,
} from "../../tests/_netns.ts";
import { NftContext, NftError } from "./mod.ts";

const inside = netnsSuite(
  "NftContext tests pass inside a fresh network namespace",
  import.meta.url,
);

const TABLE = { family: "inet", name: "ffi-test" };

if (inside) {
  assertInPrivateNetns();
  const ns = currentNetns();

  Deno.test("NftContext.run() returns JSON listings with handles", () => {
    using nft = new NftContext();
    nft.run({ nftables: [{ add: { table: TABLE } }] });
    const listing = nft.runJson("list tables") as {
      nftables: {
        metainfo?: unknown;
        table?: { name: string; handle: number };
      }[];
    };
    assert.ok(listing.nftables[0].metainfo);
    const table = listing.nftables.find((i) => i.table?.name === "ffi-test");
    assert.equal(typeof table?.table?.handle, "number");
    nft.run({ nftables: [{ delete: { table: TABLE } }] });
  });

  Deno.test("NftContext.run() throws NftError with the error buffer verbatim and leaves the ruleset unchanged when the kernel refuses one command of a batch", async () => {
    using nft = new NftContext();
    const before = await nftText(ns, ["-j", "-s", "list", "ruleset"]);
    const commands: unknown[] = [{ add: { table: TABLE } }];
    for (let i = 0; i < 100; i++) {
      commands.push({ add: { chain: { ...chain(`c${i}`) } } });
    }
    // The handle does not exist: libnftables cannot know, the kernel
    // refuses it, and the whole batch is discarded.
    const rule = {
      family: "inet",
      table: TABLE.name,
      chain: "c7",
      handle: 999999,
    };
    commands.push({ delete: { rule } });
    const command = JSON.stringify({ nftables: commands });

    const error = thrown(() => nft.run(command)) as NftError;
    assert.ok(error instanceof NftError);
    assert.equal(error.call, "nft_run_cmd_from_buffer");
    assert.notEqual(error.code, 0);
    assert.equal(error.command, command);
    assert.match(
      error.errorText,
      /Error: Could not process rule: No such file or directory\n/,
    );
    assert.equal(
      error.message,
      `Cannot run nftables commands: ${error.errorText.trim()}`,
    );
    assert.equal(await nftText(ns, ["-j", "-s", "list", "ruleset"]), before);
  });

  Deno.test("NftContext.run() refuses what libnftables cannot parse", () => {
    using nft = new NftContext();
    assert.throws(
      () =>
        nft.run({
          nftables: [{
            add: {
              set: { ...TABLE, table: "x", name: "s", type: "no_such_type" },
            },
          }],
        }),
      (error: unknown) =>
        error instanceof NftError && error.errorText.includes("Error"),
    );
  });

  Deno.test("NftContext dry-run mode checks a batch without changing anything", async () => {
    using nft = new NftContext();
    const before = await nftText(ns, ["list", "ruleset"]);
    nft.dryRun = true;
    assert.equal(nft.dryRun, true);
    nft.run({ nftables: [{ add: { table: TABLE } }] });
    assert.equal(await nftText(ns, ["list", "ruleset"]), before);
    nft.dryRun = false;
    nft.run({ nftables: [{ add: { table: TABLE } }] });
    assert.match(await nftText(ns, ["list", "tables"]), /ffi-test/);
    nft.run({ nftables: [{ delete: { table: TABLE } }] });
  });

  Deno.test("NftContext.close() is safe twice and run() after it throws", () => {
    const nft = new NftContext();
    assert.equal(nft.closed, false);
    nft.close();
    nft.close();
    assert.equal(nft.closed, true);
    assert.throws(() => nft.run("list tables"), {
      message: "Cannot run nftables commands: the nftables context is closed",
    });
  });

  Deno.test("NftContext refuses a missing library", () => {
    assert.throws(
      () => new NftContext({ library: "/nonexistent/libnftables.so.1" }),
      Error,
    );
  });
}

function chain(name: string) {
  return { family: TABLE.family, table: TABLE.name, name };
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error("Expected a throw");
}
