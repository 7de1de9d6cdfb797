/**
 * The policy manager on the real nftables engine, with real TCP traffic
 * between two namespaces: a block pushed and left unconfirmed reverts
 * at the deadline, a restart inside a window reverts, a table deleted
 * behind the manager's back is re-applied at start, and a table that is
 * not Palisade's is never touched.
 *
 * The outer test (host namespace) builds the namespaces and runs this
 * file again inside namespace A, where the inner test drives the engine.
 *
 * @module
 */
import assert from "node:assert/strict";
import { NftBackend } from "../policy/nft_backend.ts";
import {
  type ManagerEvent,
  type ManagerOptions,
  PolicyManager,
} from "../policy/manager.ts";
import {
  bundle,
  FakeClock,
  heartbeat,
  HOST,
  makeKeys,
  tempStateDir,
} from "../policy/_fixture.ts";
import {
  mustRun,
  NETNS_ENV,
  nftText,
  requireRoot,
  rerunInNetns,
  tcpListen,
  tcpProbe,
  withNetnsPair,
} from "./_netns.ts";

const PORT = 7811;
const PROBE_MS = 1_500;
const inner = Deno.env.get(NETNS_ENV);

function echoBlock(name: string, remote: string) {
  return {
    name,
    rules: [{
      id: "block-echo",
      action: "block",
      direction: "in",
      protocol: "tcp",
      localPorts: [PORT],
      remote: [remote],
    }],
  };
}

function harmless(name: string) {
  return {
    name,
    rules: [{
      id: "block-discard",
      action: "block",
      direction: "in",
      protocol: "udp",
      localPorts: [9],
    }],
  };
}

if (!inner) {
  Deno.test("PolicyManager on nftables reverts real traffic blocks and leaves other tables alone", async (t) => {
    if (!requireRoot(t)) return;
    await withNetnsPair(async (pair) => {
      const result = await rerunInNetns(pair.a, import.meta.url, {
        PEER_NS: pair.b,
        PEER_V4: pair.v4b,
        OWN_V4: pair.v4a,
      });
      assert.equal(
        result.code,
        0,
        `inner test failed:\n${result.stdout}\n${result.stderr}`,
      );
      assert.match(result.stdout, /1 passed/);
    });
  });
} else {
  Deno.test("PolicyManager on nftables (inside the test namespace)", async () => {
    // Never drive the engine in the host's own namespace: `ip netns
    // identify` names the namespace this process (its child) lives in.
    const ns = inner;
    const here = (await mustRun(["ip", "netns", "identify"])).split(/\s+/);
    assert.ok(here.includes(ns), `Cannot run: not inside namespace ${ns}`);
    const peer = Deno.env.get("PEER_NS")!;
    const peerV4 = Deno.env.get("PEER_V4")!;
    const ownV4 = Deno.env.get("OWN_V4")!;

    const other = "table inet other";
    await nftText(ns, ["add table inet other"]);
    await nftText(ns, [
      "add chain inet other input { type filter hook input priority 0; }",
    ]);
    await nftText(ns, ["add rule inet other input udp dport 5 accept"]);
    const otherBefore = await nftText(ns, ["-s", "list", other]);

    const keys = makeKeys();
    const clock = new FakeClock();
    await using tmp = await tempStateDir();
    await using _listener = await tcpListen(ns, PORT);
    const events: ManagerEvent[] = [];
    const backend = new NftBackend();
    const options = (): ManagerOptions => ({
      backend,
      stateDir: tmp.dir,
      trust: keys.trust,
      host: HOST,
      groups: [],
      commitWindow: { default: 30, max: 600 },
      now: clock.clock,
      timers: clock.timers,
      onEvent: (e) => events.push(e),
      retry: { attempts: 3, baseMs: 5, maxMs: 20 },
    });
    const reachable = () => tcpProbe(peer, ownV4, PORT, PROBE_MS);

    try {
      assert.ok(await reachable(), "the echo port works before any push");
      let manager = await PolicyManager.open(options());

      // Generation 1, confirmed: the last known good.
      const one = await manager.push(
        bundle(keys, { serial: 1, policy: harmless("base") }),
      );
      await manager.confirm(heartbeat(keys, 1, one.nonce));

      // Generation 2 blocks the echo port and is never confirmed.
      await manager.push(
        bundle(keys, { serial: 2, policy: echoBlock("cut", peerV4) }),
      );
      assert.ok(!(await reachable()), "the block is enforced");
      await clock.advance(30_000);
      assert.ok(await reachable(), "the expiry reverted the block");
      assert.ok(backend.readBack(manager.current()!.policy).ok);
      const revert = events.find((e) => e.event === "revert")!;
      assert.deepEqual(revert.removed, ["block-echo"]);
      assert.deepEqual(revert.restored, ["block-discard"]);

      // Generation 3 blocks again; the service stops inside the window.
      await manager.push(
        bundle(keys, { serial: 3, policy: echoBlock("cut-2", peerV4) }),
      );
      assert.ok(!(await reachable()));
      await manager.close();
      manager = await PolicyManager.open(options());
      assert.ok(await reachable(), "the restart reverted the block");
      assert.equal(manager.status().active?.generation, 1);

      // Palisade's table deleted behind its back: start re-applies it.
      await manager.close();
      await nftText(ns, ["delete table inet palisade"]);
      manager = await PolicyManager.open(options());
      assert.match(
        await nftText(ns, ["list", "table", "inet", "palisade"]),
        /block-discard/,
      );
      assert.ok(backend.readBack(manager.current()!.policy).ok);
      await manager.close();

      assert.equal(await nftText(ns, ["-s", "list", other]), otherBefore);
    } finally {
      backend.close();
    }
  });
}
