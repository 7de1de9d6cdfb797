/**
 * Real packets against the nftables backend: two namespaces joined by a
 * veth pair, servers in one, probes from the other, rules installed in
 * namespace B by this file re-run inside it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { NftBackend } from "../policy/nft_backend.ts";
import type { NormalPolicy, NormalRule } from "../policy/types.ts";
import {
  assertInPrivateNetns,
  currentPair,
  netnsSuite,
  tcpListen,
  tcpProbe,
  udpListen,
  udpProbe,
} from "./_netns.ts";

const inside = netnsSuite(
  "nft traffic tests pass inside a fresh namespace pair",
  import.meta.url,
  { pair: true },
);

const TCP_PORT = 8080;
const UDP_PORT = 8081;
/** Long enough for a round trip on a veth pair, short enough for CI. */
const PROBE_MS = 1500;

function rule(id: string, fields: Partial<NormalRule>): NormalRule {
  return {
    id,
    action: "block",
    direction: "in",
    protocol: "tcp",
    remote: [],
    local: [],
    remotePorts: [],
    localPorts: [],
    ...fields,
  };
}

if (inside) {
  assertInPrivateNetns();
  const pair = currentPair();
  const reach = async (from: string, v4: string, v6: string) => ({
    tcp4: await tcpProbe(from, v4, TCP_PORT, PROBE_MS),
    tcp6: await tcpProbe(from, v6, TCP_PORT, PROBE_MS),
    udp4: await udpProbe(from, v4, UDP_PORT, PROBE_MS),
    udp6: await udpProbe(from, v6, UDP_PORT, PROBE_MS),
  });
  const all = (value: boolean) => ({
    tcp4: value,
    tcp6: value,
    udp4: value,
    udp6: value,
  });

  Deno.test("NftBackend blocks inbound TCP and UDP over IPv4 and IPv6 and allows them again after removal", async () => {
    await using _tcp = await tcpListen(pair.b, TCP_PORT);
    await using _udp = await udpListen(pair.b, UDP_PORT);
    using backend = new NftBackend();
    assert.deepEqual(await reach(pair.a, pair.v4b, pair.v6b), all(true));

    const policy: NormalPolicy = {
      name: "block-a",
      rules: [
        rule("block-a-tcp", {
          remote: [`${pair.v4a}/32`, `${pair.v6a}/128`],
          localPorts: [{ first: TCP_PORT, last: TCP_PORT }],
        }),
        rule("block-a-udp", {
          protocol: "udp",
          remote: [`${pair.v4a}/32`, `${pair.v6a}/128`],
          localPorts: [{ first: UDP_PORT, last: UDP_PORT }],
        }),
      ],
    };
    backend.apply(policy, null);
    // UDP is dropped by the second rule: a packet the first rule's chain
    // does not match returns to the base chain and the next jump runs.
    assert.deepEqual(await reach(pair.a, pair.v4b, pair.v6b), all(false));
    const counters = new Map(backend.counters().map((c) => [c.id, c]));
    assert.ok(counters.get("block-a-tcp")!.packets >= 2n);
    assert.ok(counters.get("block-a-udp")!.packets >= 2n);
    assert.ok(counters.get("block-a-tcp")!.bytes > 0n);

    // Removing one rule by an incremental apply re-opens UDP only, and
    // the rule it does not name keeps its counter.
    const tcpOnly = { ...policy, rules: [policy.rules[0]] };
    assert.equal(backend.apply(tcpOnly, policy).incremental, true);
    assert.deepEqual(backend.counters(), [counters.get("block-a-tcp")]);
    assert.deepEqual(await reach(pair.a, pair.v4b, pair.v6b), {
      tcp4: false,
      tcp6: false,
      udp4: true,
      udp6: true,
    });

    assert.ok(backend.removeAll() > 0);
    assert.deepEqual(await reach(pair.a, pair.v4b, pair.v6b), all(true));
  });

  Deno.test("NftBackend rejects outbound traffic at once and the first matching rule decides", async () => {
    await using _tcp = await tcpListen(pair.a, TCP_PORT);
    await using _udp = await udpListen(pair.a, UDP_PORT);
    using backend = new NftBackend();
    const policy: NormalPolicy = {
      name: "out",
      rules: [
        rule("permit-v4-tcp", {
          action: "permit",
          direction: "out",
          remote: [`${pair.v4a}/32`],
          remotePorts: [{ first: TCP_PORT, last: TCP_PORT }],
        }),
        rule("block-a-out", {
          direction: "out",
          protocol: "any",
          remote: [`${pair.v4a}/32`, `${pair.v6a}/128`],
          remotePorts: [{ first: TCP_PORT, last: UDP_PORT }],
        }),
      ],
    };
    backend.apply(policy, null);
    // TCP over IPv4 passes: the accept in the first rule's chain ends
    // the evaluation, so the block rule after it never sees the packet.
    assert.deepEqual(await reach(pair.b, pair.v4a, pair.v6a), {
      tcp4: true,
      tcp6: false,
      udp4: false,
      udp6: false,
    });
    const counters = new Map(backend.counters().map((c) => [c.id, c]));
    assert.ok(counters.get("permit-v4-tcp")!.packets > 0n);
    assert.ok(counters.get("block-a-out")!.packets >= 3n);

    assert.ok(backend.removeAll() > 0);
    assert.deepEqual(await reach(pair.b, pair.v4a, pair.v6a), all(true));
  });
}
