/**
 * Tiny traffic endpoints for namespace tests, run as a child process:
 *
 * - `serve tcp|udp PORT`: echo server on `[::]:PORT` (v4 and v6), prints
 *   `ready` once bound and runs until killed.
 * - `probe tcp|udp ADDR PORT TIMEOUT_MS`: one echo round trip, prints
 *   `ok` (exit 0) or `fail: <why>` (exit 1), never longer than the
 *   timeout.
 *
 * @module
 */
import dgram from "node:dgram";
import { isIPv6 } from "node:net";

const PAYLOAD = "palisade-probe";

async function serveTcp(port: number): Promise<void> {
  const listener = Deno.listen({ hostname: "::", port });
  console.log("ready");
  for await (const conn of listener) {
    (async () => {
      const buffer = new Uint8Array(256);
      const n = await conn.read(buffer).catch(() => null);
      if (n) await conn.write(buffer.subarray(0, n)).catch(() => 0);
      conn.close();
    })();
  }
}

function serveUdp(port: number): void {
  const socket = dgram.createSocket({ type: "udp6" });
  socket.on("message", (message, remote) => {
    socket.send(message, remote.port, remote.address);
  });
  socket.bind(port, "::", () => console.log("ready"));
}

async function probeTcp(addr: string, port: number): Promise<string> {
  const conn = await Deno.connect({ hostname: addr, port });
  try {
    await conn.write(new TextEncoder().encode(PAYLOAD));
    const buffer = new Uint8Array(256);
    const n = await conn.read(buffer);
    return new TextDecoder().decode(buffer.subarray(0, n ?? 0));
  } finally {
    conn.close();
  }
}

function probeUdp(addr: string, port: number): Promise<string> {
  const socket = dgram.createSocket({ type: isIPv6(addr) ? "udp6" : "udp4" });
  return new Promise((resolve, reject) => {
    socket.on("error", reject);
    socket.on("message", (message) => resolve(message.toString()));
    socket.send(PAYLOAD, port, addr);
  });
}

async function main(args: string[]): Promise<void> {
  const [mode, transport, ...rest] = args;
  if (mode === "serve") {
    const port = Number(rest[0]);
    if (transport === "tcp") await serveTcp(port);
    else serveUdp(port);
    return;
  }
  const [addr, port, timeout] = [rest[0], Number(rest[1]), Number(rest[2])];
  setTimeout(() => {
    console.log("fail: timed out");
    Deno.exit(1);
  }, timeout);
  try {
    const reply = transport === "tcp"
      ? await probeTcp(addr, port)
      : await probeUdp(addr, port);
    console.log(reply === PAYLOAD ? "ok" : `fail: reply ${reply}`);
    Deno.exit(reply === PAYLOAD ? 0 : 1);
  } catch (error) {
    console.log(`fail: ${(error as Error).message}`);
    Deno.exit(1);
  }
}

if (import.meta.main) await main(Deno.args);
