/**
 * Crash points of the real service: `palisade serve` runs under its
 * narrow permission flags (plus the grant to read `PALISADE_CRASHPOINT`)
 * inside a fresh network namespace with nftables, is driven over its
 * HTTP API, SIGKILLed at every named step and restarted. The complete
 * ruleset must then equal the last known good or the new policy, and
 * `/v1/status` must name the same generation.
 */
import assert from "node:assert/strict";
import { CRASH_POINTS } from "../../policy/manager.ts";
import { NftBackend } from "../../policy/nft_backend.ts";
import { validatePolicyValue } from "../../policy/parse.ts";
import {
  assertInPrivateNetns,
  currentNetns,
  netnsSuite,
  nftText,
} from "../_netns.ts";
import {
  makeServiceKit,
  serveArgv,
  type ServiceKit,
  signedBundle,
  signedHeartbeat,
  signedRollback,
} from "../_service_kit.ts";
import { normalizeNft, policyFor } from "./_kit.ts";

const LISTEN = "127.0.0.1:7443";
const OLD = policyFor("old", [8001]);
const NEW = policyFor("new", [8002, 8003]);

/** A `serve` process whose JSON log lines are collected. */
class Serve {
  readonly lines: Record<string, unknown>[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  readonly #child: Deno.ChildProcess;
  #exited = false;

  constructor(kit: ServiceKit, crashPoint?: string) {
    const argv = serveArgv(kit);
    // The narrow serve flags, plus the one grant the crash hook needs.
    const args = [
      "run",
      "--allow-env=PALISADE_CRASHPOINT",
      ...argv.slice(2),
    ];
    this.#child = new Deno.Command("deno", {
      args,
      env: {
        NO_COLOR: "1",
        ...(crashPoint ? { PALISADE_CRASHPOINT: crashPoint } : {}),
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).spawn();
    this.status = this.#child.status;
    this.status.then(() => this.#exited = true);
    this.#collect();
    this.#child.stderr.cancel().catch(() => {});
  }

  async #collect() {
    let buffer = "";
    for await (
      const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      buffer += chunk;
      let cut;
      while ((cut = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 1);
        try {
          this.lines.push(JSON.parse(line));
        } catch {
          this.lines.push({ event: "non-json", text: line });
        }
      }
    }
  }

  /** Waits (bounded) for `listening`; false when the process exited. */
  async listening(): Promise<boolean> {
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      if (this.lines.some((l) => l.event === "listening")) return true;
      if (this.#exited) return false;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error("Cannot see serve listen within 30 s");
  }

  async stop(signal: Deno.Signal = "SIGKILL") {
    if (!this.#exited) {
      try {
        this.#child.kill(signal);
      } catch {
        // Already gone.
      }
    }
    return await this.status;
  }
}

/** One request over a new connection; a dropped connection is status 0. */
async function call(
  path: string,
  body?: Uint8Array<ArrayBuffer>,
): Promise<{ status: number; json: Record<string, unknown> }> {
  using client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    const reply = await fetch(`http://${LISTEN}${path}`, {
      method: body ? "POST" : "GET",
      body,
      client,
      signal: AbortSignal.timeout(20_000),
    });
    return { status: reply.status, json: await reply.json() };
  } catch (error) {
    return { status: 0, json: { error: String(error) } };
  }
}

const inside = netnsSuite(
  "crash points of the real service on nftables hold inside a fresh network namespace",
  import.meta.url,
);

if (inside) {
  assertInPrivateNetns();
  const ns = currentNetns();
  const dump = async () =>
    normalizeNft(await nftText(ns, ["-j", "-s", "list", "ruleset"]));

  let refs: Promise<Record<string, string>> | null = null;
  const references = async () => {
    using backend = new NftBackend();
    const out: Record<string, string> = {};
    for (const [name, value] of [["old", OLD], ["new", NEW]] as const) {
      backend.removeAll();
      backend.apply(validatePolicyValue(value, name).policy, null);
      out[name] = await dump();
    }
    backend.removeAll();
    out.empty = await dump();
    return out;
  };

  for (const point of CRASH_POINTS) {
    const expect = point === "confirm.after-write" ? "new" : "old";
    Deno.test(
      `palisade serve SIGKILLed at ${point} (nft) restarts into the ${
        expect === "new" ? "new policy" : "last known good"
      } in full`,
      async () => {
        refs ??= references();
        const expected = await refs;
        const kit = await makeServiceKit({
          listen: LISTEN,
          commitWindow: { default: 30, max: 60 },
        });
        let serve: Serve | null = null;
        try {
          // The last known good.
          serve = new Serve(kit);
          assert.ok(await serve.listening(), JSON.stringify(serve.lines));
          const first = await call(
            "/v1/bundles",
            signedBundle(kit, { serial: 1, policy: OLD, window: 30 }),
          );
          assert.equal(first.status, 200, JSON.stringify(first.json));
          const ok = await call(
            "/v1/heartbeat",
            signedHeartbeat(
              kit,
              first.json.generation as number,
              first.json.nonce as string,
            ),
          );
          assert.equal(ok.status, 200, JSON.stringify(ok.json));
          assert.equal(await dump(), expected.old);
          await serve.stop("SIGTERM");

          // The run that is killed at `point`.
          const push = signedBundle(kit, {
            serial: 2,
            policy: NEW,
            window: 30,
          });
          if (point.startsWith("start.")) {
            serve = new Serve(kit, "push.after-status-write");
            assert.ok(await serve.listening());
            await call("/v1/bundles", push);
            assert.equal((await serve.status).signal, "SIGKILL");
            serve = new Serve(kit, point);
            assert.equal(await serve.listening(), false);
          } else {
            serve = new Serve(kit, point);
            assert.ok(await serve.listening());
            const pushed = await call("/v1/bundles", push);
            if (point.startsWith("confirm.")) {
              assert.equal(pushed.status, 200);
              await call(
                "/v1/heartbeat",
                signedHeartbeat(
                  kit,
                  pushed.json.generation as number,
                  pushed.json.nonce as string,
                ),
              );
            } else if (point.startsWith("revert.")) {
              assert.equal(pushed.status, 200);
              await call("/v1/rollback", signedRollback(kit));
            }
          }
          const killed = await serve.status;
          assert.equal(killed.signal, "SIGKILL", `not killed at ${point}`);

          // The restart.
          serve = new Serve(kit);
          assert.ok(await serve.listening(), JSON.stringify(serve.lines));
          const now = await dump();
          const matches = Object.entries(expected).filter(([, d]) => d === now)
            .map(([k]) => k);
          assert.deepEqual(matches, [expect], now);
          const status = await call("/v1/status");
          assert.equal(status.status, 200);
          const active = status.json.active as { generation: number } | null;
          assert.equal(active?.generation, expect === "new" ? 2 : 1);
          assert.equal(status.json.pending, null);
          assert.equal(status.json.state, "idle");
        } finally {
          await serve?.stop();
          using cleaner = new NftBackend();
          cleaner.removeAll();
          await Deno.remove(kit.dir, { recursive: true }).catch(() => {});
        }
      },
    );
  }
}
