import assert from "node:assert/strict";
import {
  ConfigError,
  DEFAULT_SERVICE_NFT_LIBRARY,
  parseConfig,
} from "./config.ts";

const SOURCE = "/etc/palisade/config.jsonc";
const BASE = {
  host: "web-1",
  listen: "127.0.0.1:7443",
  trust: "trust.jsonc",
  stateDir: "/var/lib/palisade",
  engine: "nft",
};

function text(extra: Record<string, unknown> = {}, drop: string[] = []) {
  const value: Record<string, unknown> = { ...BASE, ...extra };
  for (const key of drop) delete value[key];
  return JSON.stringify(value, null, 2);
}

function refusal(input: string): ConfigError {
  try {
    parseConfig(input, SOURCE);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  assert.fail("the config was accepted");
}

Deno.test("parseConfig() fills in the Contract's defaults", () => {
  const config = parseConfig(text(), SOURCE);
  assert.equal(config.host, "web-1");
  assert.deepEqual(config.listen, {
    kind: "tcp",
    hostname: "127.0.0.1",
    port: 7443,
    text: "127.0.0.1:7443",
  });
  assert.equal(config.trust, "/etc/palisade/trust.jsonc");
  assert.equal(config.logDir, "/var/lib/palisade/logs");
  assert.equal(config.wfpLibrary, "fwpuclnt.dll");
  assert.equal(config.nftLibrary, DEFAULT_SERVICE_NFT_LIBRARY);
  assert.deepEqual(config.commitWindow, { default: 120, max: 3600 });
  assert.equal(config.tls, null);
  assert.deepEqual(config.groups, []);
  assert.equal(config.wfpMode, "persistent");
});

Deno.test("parseConfig() accepts comments, IPv6, Unix sockets and TLS", () => {
  const input = `{
    // the host
    "host": "web-1", "listen": "[::]:7443", "trust": "/t.jsonc",
    "stateDir": "state", "engine": "wfp", "groups": ["edge", "eu"],
    "tls": { "cert": "c.pem", "key": "k.pem" },
    "commitWindow": { "default": 30, "max": 600 },
    "log": { "maxBytes": 65536, "files": 3 }, "wfpMode": "dynamic",
  }`;
  const config = parseConfig(input, SOURCE);
  assert.deepEqual(config.listen, {
    kind: "tcp",
    hostname: "::",
    port: 7443,
    text: "[::]:7443",
  });
  assert.equal(config.stateDir, "/etc/palisade/state");
  assert.deepEqual(config.tls, {
    cert: "/etc/palisade/c.pem",
    key: "/etc/palisade/k.pem",
  });
  assert.deepEqual(config.groups, ["edge", "eu"]);
  assert.deepEqual(config.commitWindow, { default: 30, max: 600 });
  assert.deepEqual(config.log, { maxBytes: 65536, files: 3 });
  const unix = parseConfig(text({ listen: "/run/palisade.sock" }), SOURCE);
  assert.deepEqual(unix.listen, {
    kind: "unix",
    path: "/run/palisade.sock",
    text: "/run/palisade.sock",
  });
});

Deno.test("parseConfig() refuses a missing required key by name", () => {
  for (const key of ["host", "listen", "trust", "stateDir", "engine"]) {
    const error = refusal(text({}, [key]));
    assert.equal(error.key, key);
    assert.match(error.message, new RegExp(`key "${key}" is required`));
  }
});

Deno.test("parseConfig() refuses an unknown key with its position", () => {
  const error = refusal(`{\n  "host": "h",\n  "lisen": "1.2.3.4:1"\n}`);
  assert.equal(error.key, "lisen");
  assert.equal(error.line, 3);
  assert.equal(error.column, 3);
  assert.match(
    error.message,
    /^Cannot load config \/etc\/palisade\/config\.jsonc:3:3: key "lisen" is not a known key/,
  );
});

Deno.test("parseConfig() refuses a duplicate key", () => {
  const error = refusal(`{ "host": "a", "host": "b" }`);
  assert.match(error.message, /:1:16: duplicate key "host"/);
});

Deno.test("parseConfig() refuses invalid JSONC with its position", () => {
  const error = refusal(`{ "host": "a",\n  "listen" 7 }`);
  assert.equal(error.line, 2);
  assert.match(error.message, /invalid JSONC \(ColonExpected\)/);
  assert.match(refusal("").message, /the file is empty/);
  assert.match(refusal("[]").message, /must be an object/);
});

Deno.test("parseConfig() refuses bad values naming the key and reason", () => {
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ host: "" }, "host", /must not be empty/],
    [{ host: "a b" }, "host", /must be a host name/],
    [{ listen: "localhost:80" }, "listen", /must be IPv4:PORT/],
    [{ listen: "300.1.1.1:80" }, "listen", /invalid IPv4 address/],
    [{ listen: "[zz::1]:80" }, "listen", /invalid IPv6 address/],
    [{ listen: "127.0.0.1:0" }, "listen", /port must be between 1 and 65535/],
    [{ listen: 7443 }, "listen", /must be a string/],
    [{ engine: "iptables" }, "engine", /must be "nft" or "wfp"/],
    [{ groups: "edge" }, "groups", /must be an array/],
    [{ groups: ["a", "a"] }, "groups[1]", /repeats "a"/],
    [{ commitWindow: { max: 1 } }, "commitWindow.max", /between 2 and 86400/],
    [
      { commitWindow: { default: 900, max: 600 } },
      "commitWindow.default",
      /between 2 and 600, got 900/,
    ],
    [{ commitWindow: { maximum: 9 } }, "commitWindow.maximum", /not a known/],
    [{ commitWindow: { max: 2.5 } }, "commitWindow.max", /must be an integer/],
    [{ tls: { cert: "c.pem" } }, "tls.key", /is required/],
    [{ wfpMode: "sticky" }, "wfpMode", /"persistent" or "dynamic"/],
    [{ log: { files: 0 } }, "log.files", /between 1 and 100/],
    [{ maxGenerations: 1 }, "maxGenerations", /between 2 and 10000/],
  ];
  for (const [extra, key, reason] of cases) {
    const error = refusal(text(extra));
    assert.equal(error.key, key, JSON.stringify(extra));
    assert.match(error.message, reason);
  }
});

Deno.test("parseConfig() takes a wfpLibrary path relative to the config folder", () => {
  const relative = parseConfig(
    text({ wfpLibrary: "tools/wfpsim/libwfpsim.so" }),
    SOURCE,
  );
  assert.equal(relative.wfpLibrary, "/etc/palisade/tools/wfpsim/libwfpsim.so");
  const absolute = parseConfig(text({ wfpLibrary: "/opt/sim.so" }), SOURCE);
  assert.equal(absolute.wfpLibrary, "/opt/sim.so");
  const bare = parseConfig(text({ wfpLibrary: "fwpuclnt.dll" }), SOURCE);
  assert.equal(bare.wfpLibrary, "fwpuclnt.dll");
});

Deno.test("parseConfig() reads driftCheckSeconds with a default of 60", () => {
  assert.equal(parseConfig(text(), SOURCE).driftCheckSeconds, 60);
  assert.equal(
    parseConfig(text({ driftCheckSeconds: 0 }), SOURCE).driftCheckSeconds,
    0,
  );
  const error = refusal(text({ driftCheckSeconds: -1 }));
  assert.equal(error.key, "driftCheckSeconds");
});
