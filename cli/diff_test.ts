import assert from "node:assert/strict";
import {
  generateKeyPair,
  makeBundleStatement,
  parsePolicyText,
  serializeEnvelope,
  signStatement,
} from "../mod.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Runs `palisade <args>` as its own process, bounded to 60 s. */
async function palisade(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("deno", {
    args: [
      "run",
      "--quiet",
      "--allow-read",
      "--allow-net=127.0.0.1",
      MAIN,
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return {
    code: out.code,
    stdout: decode(out.stdout),
    stderr: decode(out.stderr),
  };
}

const OLD = `{ "name": "edge", "rules": [
  { "id": "keep", "action": "permit", "direction": "in", "protocol": "tcp",
    "localPorts": [22] },
  { "id": "drop", "action": "block", "direction": "out", "protocol": "tcp",
    "remote": ["192.0.2.0/24"] },
  { "id": "edit", "action": "block", "direction": "out", "protocol": "udp",
    "remote": ["198.51.100.0/24"] },
  { "id": "last", "action": "permit", "direction": "out", "protocol": "any",
    "remote": ["203.0.113.1"] },
] }`;

const NEW = `{ "name": "edge", "rules": [
  { "id": "last", "action": "permit", "direction": "out", "protocol": "any",
    "remote": ["203.0.113.1"] },
  { "id": "keep", "action": "permit", "direction": "in", "protocol": "tcp",
    "localPorts": [22] },
  { "id": "edit", "action": "block", "direction": "out", "protocol": "udp",
    "remote": ["198.51.100.0/24"], "remotePorts": [53] },
  { "id": "add", "action": "block", "direction": "in", "protocol": "tcp",
    "localPorts": [23] },
] }`;

async function withFiles(
  run: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "palisade-diff-" });
  try {
    await Deno.writeTextFile(`${dir}/old.jsonc`, OLD);
    await Deno.writeTextFile(`${dir}/new.jsonc`, NEW);
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function bundleOf(text: string, serial: number): string {
  const { value } = parsePolicyText(text, "policy.jsonc");
  const { privateKey } = generateKeyPair();
  const statement = makeBundleStatement({ policy: value, serial });
  return serializeEnvelope(signStatement("bundle", statement, [privateKey]));
}

Deno.test("diff A B prints added, removed, changed and moved rule IDs", async () => {
  await withFiles(async (dir) => {
    const { code, stdout, stderr } = await palisade([
      "diff",
      `${dir}/old.jsonc`,
      `${dir}/new.jsonc`,
    ]);
    assert.equal(code, 0, stderr);
    const lines = stdout.trimEnd().split("\n");
    assert.match(
      lines[0],
      /^--- .*old\.jsonc: policy "edge", sha256:[0-9a-f]{16}$/,
    );
    assert.match(lines[1], /^\+\+\+ .*new\.jsonc: policy "edge"/);
    assert.deepEqual(lines.slice(2), [
      "added (1):",
      "  add",
      "removed (1):",
      "  drop",
      "changed (1):",
      "  edit",
      "moved (1):",
      "  last",
      "unchanged: 1 rule(s)",
    ]);
  });
});

Deno.test("diff exits 0 and says so when policies do not differ", async () => {
  await withFiles(async (dir) => {
    const { code, stdout } = await palisade([
      "diff",
      `${dir}/old.jsonc`,
      `${dir}/old.jsonc`,
    ]);
    assert.equal(code, 0);
    assert.match(stdout, /no differences \(4 rule\(s\) unchanged\)/);
  });
});

Deno.test("diff --json prints the diff as JSON", async () => {
  await withFiles(async (dir) => {
    const { code, stdout } = await palisade([
      "diff",
      `${dir}/old.jsonc`,
      `${dir}/new.jsonc`,
      "--json",
    ]);
    assert.equal(code, 0);
    const result = JSON.parse(stdout);
    assert.deepEqual(result.added, ["add"]);
    assert.deepEqual(result.moved, ["last"]);
    assert.equal(result.a.kind, "policy");
    assert.match(result.b.digest, /^[0-9a-f]{64}$/);
  });
});

Deno.test("diff reads bundles without verifying and says unverified", async () => {
  await withFiles(async (dir) => {
    await Deno.writeTextFile(`${dir}/new.bundle.json`, bundleOf(NEW, 7));
    const { code, stdout, stderr } = await palisade([
      "diff",
      `${dir}/old.jsonc`,
      `${dir}/new.bundle.json`,
    ]);
    assert.equal(code, 0, stderr);
    assert.match(
      stdout,
      /\+\+\+ .*new\.bundle\.json: policy "edge", bundle serial 7, unverified: signatures not checked/,
    );
    assert.match(stdout, /changed \(1\):\n {2}edit\n/);

    // A bundle whose payload policy is invalid is refused with the path.
    const bad = JSON.parse(bundleOf(NEW, 8));
    const statement = JSON.parse(atob(bad.payload));
    statement.policy.rules[0].remote = ["300.0.0.1"];
    bad.payload = btoa(JSON.stringify(statement));
    await Deno.writeTextFile(`${dir}/bad.bundle.json`, JSON.stringify(bad));
    const refused = await palisade([
      "diff",
      `${dir}/old.jsonc`,
      `${dir}/bad.bundle.json`,
    ]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /bad\.bundle\.json \(bundle payload\) rule "last" at rules\[0\]\.remote\[0\]: IPv4 part 300 is above 255/,
    );
  });
});

Deno.test("diff refuses envelopes of other payload types", async () => {
  await withFiles(async (dir) => {
    const envelope = JSON.parse(bundleOf(NEW, 7));
    envelope.payloadType = "application/vnd.palisade.confirm+json";
    await Deno.writeTextFile(`${dir}/c.json`, JSON.stringify(envelope));
    const { code, stderr } = await palisade([
      "diff",
      `${dir}/old.jsonc`,
      `${dir}/c.json`,
    ]);
    assert.equal(code, 1);
    assert.match(
      stderr,
      /payload type is application\/vnd\.palisade\.confirm\+json, not a bundle/,
    );
  });
});

Deno.test("diff A --host URL compares with the policy a host runs", async () => {
  const { policy } = parsePolicyText(OLD, "old.jsonc");
  let active: unknown = { generation: 4, serial: 9, name: "edge", policy };
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const path = new URL(request.url).pathname;
      if (path !== "/v1/policy") return new Response("no", { status: 500 });
      if (active === null) {
        return Response.json({
          error: { code: "no-policy", message: "Cannot show policy" },
        }, { status: 404 });
      }
      return Response.json(active);
    },
  );
  const url = `http://127.0.0.1:${server.addr.port}`;

  await withFiles(async (dir) => {
    const { code, stdout, stderr } = await palisade([
      "diff",
      `${dir}/new.jsonc`,
      "--host",
      `${url}/`,
    ]);
    assert.equal(code, 0, stderr);
    // The host is the old side: the diff is what pushing A would change.
    assert.match(
      stdout,
      new RegExp(`^--- host ${url}: policy "edge", generation 4, serial 9`),
    );
    assert.match(stdout, /added \(1\):\n {2}add\nremoved \(1\):\n {2}drop\n/);

    active = null;
    const empty = await palisade(["diff", `${dir}/new.jsonc`, "--host", url]);
    assert.equal(empty.code, 0, empty.stderr);
    assert.match(empty.stdout, /--- host .*: no policy/);
    assert.match(empty.stdout, /added \(4\)/);

    active = { generation: 1, serial: 1, name: "x", policy: { name: "x" } };
    const broken = await palisade(["diff", `${dir}/new.jsonc`, "--host", url]);
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /rules is missing/);
  });
});

Deno.test("diff --host reports an unreachable host clearly", async () => {
  // A port that was just free: nothing listens there.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await withFiles(async (dir) => {
    const { code, stderr } = await palisade([
      "diff",
      `${dir}/new.jsonc`,
      "--host",
      `http://127.0.0.1:${port}`,
    ]);
    assert.equal(code, 1);
    assert.match(
      stderr,
      new RegExp(
        `Cannot reach http://127\\.0\\.0\\.1:${port}/v1/policy: connection refused: nothing listens there \\(is 'palisade serve' running`,
      ),
    );
    const scheme = await palisade([
      "diff",
      `${dir}/new.jsonc`,
      "--host",
      "ftp://127.0.0.1/",
    ]);
    assert.equal(scheme.code, 1);
    assert.match(
      scheme.stderr,
      /--host must be an http:\/\/ or https:\/\/ URL/,
    );
  });
});

Deno.test("diff exits 1 on usage errors and invalid policies", async () => {
  const one = await palisade(["diff", "a.jsonc"]);
  assert.equal(one.code, 1);
  assert.match(one.stderr, /Expected two policies or bundles/);
  await withFiles(async (dir) => {
    await Deno.writeTextFile(`${dir}/bad.jsonc`, `{"name": "x", "rules": [1]}`);
    const bad = await palisade([
      "diff",
      `${dir}/old.jsonc`,
      `${dir}/bad.jsonc`,
    ]);
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      /bad\.jsonc:1:25 at rules\[0\]: each rule must be an object/,
    );
    const missing = await palisade([
      "diff",
      `${dir}/old.jsonc`,
      `${dir}/none.jsonc`,
    ]);
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /Cannot read policy or bundle .*none\.jsonc: no such file\n?$/,
    );
  });
});

Deno.test("diff A --host https://… trusts the CA given with --ca", async () => {
  const { policy } = parsePolicyText(OLD, "old.jsonc");
  const certs = await Deno.makeTempDir({ prefix: "palisade-diff-ca-" });
  try {
    const made = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        `${certs}/key.pem`,
        "-out",
        `${certs}/cert.pem`,
        "-days",
        "1",
        "-subj",
        "/CN=palisade-test",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    assert.ok(made.success, "openssl could not make a test certificate");
    await using server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      cert: await Deno.readTextFile(`${certs}/cert.pem`),
      key: await Deno.readTextFile(`${certs}/key.pem`),
      onListen() {},
    }, () => Response.json({ generation: 4, serial: 9, name: "edge", policy }));
    const url = `https://127.0.0.1:${server.addr.port}`;

    await withFiles(async (dir) => {
      const untrusted = await palisade([
        "diff",
        `${dir}/new.jsonc`,
        "--host",
        url,
      ]);
      assert.equal(untrusted.code, 1);
      assert.match(untrusted.stderr, /--ca CA\.pem/);

      const trusted = await palisade([
        "diff",
        `${dir}/new.jsonc`,
        "--host",
        url,
        "--ca",
        `${certs}/cert.pem`,
      ]);
      assert.equal(trusted.code, 0, trusted.stderr);
      assert.match(trusted.stdout, /generation 4, serial 9/);
    });
  } finally {
    await Deno.remove(certs, { recursive: true });
  }
});
