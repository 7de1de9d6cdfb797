import assert from "node:assert/strict";
import { parseConfig } from "./config.ts";
import { preflight, PreflightError, requiredPermissions } from "./preflight.ts";

const config = parseConfig(
  JSON.stringify({
    host: "h",
    listen: "[::]:7443",
    trust: "/etc/palisade/trust.jsonc",
    stateDir: "/srv/x",
    engine: "nft",
    tls: { cert: "/etc/palisade/c.pem", key: "/etc/palisade/k.pem" },
  }),
  "/etc/palisade/config.jsonc",
);

/** A fake grant table in the shape of the `serve` permission set. */
function serveSet(d: Deno.PermissionDescriptor): Deno.PermissionState {
  const under = (path: string, roots: string[]) =>
    roots.some((root) => path === root || path.startsWith(root + "/"));
  switch (d.name) {
    case "read":
      return under(String(d.path), [
          "/etc/palisade",
          "/var/lib/palisade",
          "/var/log/palisade",
        ])
        ? "granted"
        : "prompt";
    case "write":
      return under(String(d.path), ["/var/lib/palisade", "/var/log/palisade"])
        ? "granted"
        : "prompt";
    case "net":
      return ["0.0.0.0:7443", "127.0.0.1:7443", "[::]:7443"].includes(
          String(d.host),
        )
        ? "granted"
        : "prompt";
    case "ffi":
      return d.path === "/usr/lib/x86_64-linux-gnu/libnftables.so.1"
        ? "granted"
        : "prompt";
    default:
      return "denied";
  }
}

Deno.test("requiredPermissions() lists every path and address", () => {
  const needs = requiredPermissions(config);
  assert.deepEqual(needs.map((n) => `${n.key}:${n.kinds.join("+")}`), [
    "trust:read",
    "stateDir:read+write",
    "logDir:read+write",
    "listen:net",
    "tls.cert:read",
    "tls.key:read",
    "nftLibrary:ffi",
  ]);
});

Deno.test("preflight() names a state folder outside the grants and its flags", () => {
  let caught: unknown;
  try {
    preflight(config, serveSet);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof PreflightError);
  assert.equal(
    caught.message,
    "Cannot start: stateDir /srv/x is outside the granted paths; " +
      "run with --allow-read=/srv/x --allow-write=/srv/x\n" +
      "  logDir /srv/x/logs is outside the granted paths; " +
      "run with --allow-read=/srv/x/logs --allow-write=/srv/x/logs",
  );
  assert.deepEqual(caught.missing.map((m) => m.need.key), [
    "stateDir",
    "logDir",
  ]);
});

Deno.test("preflight() names a listen address and library outside the grants", () => {
  const other = { ...config, stateDir: "/var/lib/palisade" };
  other.logDir = "/var/log/palisade";
  other.listen = {
    kind: "tcp",
    hostname: "10.0.0.1",
    port: 9000,
    text: "10.0.0.1:9000",
  };
  other.nftLibrary = "/opt/libnftables.so.1";
  assert.throws(
    () => preflight(other, serveSet),
    (error: Error) =>
      error.message.includes(
        "listen 10.0.0.1:9000 is outside the granted addresses; " +
          "run with --allow-net=10.0.0.1:9000",
      ) &&
      error.message.includes(
        "nftLibrary /opt/libnftables.so.1 is outside the granted libraries; " +
          "run with --allow-ffi=/opt/libnftables.so.1",
      ),
  );
});

Deno.test("preflight() passes when every grant is present", () => {
  const ok = { ...config, stateDir: "/var/lib/palisade" };
  ok.logDir = "/var/log/palisade";
  preflight(ok, serveSet);
  preflight(ok);
});

Deno.test("preflight() asks for net unix:PATH besides read and write for a socket", () => {
  const socket = parseConfig(
    JSON.stringify({
      host: "h",
      listen: "/var/lib/palisade/ctl.sock",
      trust: "/etc/palisade/trust.jsonc",
      stateDir: "/var/lib/palisade",
      engine: "nft",
    }),
    "/etc/palisade/config.jsonc",
  );
  const listen = requiredPermissions(socket).filter((n) => n.key === "listen");
  assert.deepEqual(listen.map((n) => [n.target, n.kinds]), [
    ["/var/lib/palisade/ctl.sock", ["read", "write"]],
    ["unix:/var/lib/palisade/ctl.sock", ["net"]],
  ]);
  assert.throws(
    () => preflight(socket, serveSet),
    (error: unknown) =>
      error instanceof PreflightError &&
      error.message.includes("--allow-net=unix:/var/lib/palisade/ctl.sock"),
  );
});
