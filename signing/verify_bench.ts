/**
 * Verification throughput: `deno bench --allow-read signing/verify_bench.ts`.
 * Tiny and 1 MB bundles through the full verifier, and raw Ed25519
 * verification by @noble/ed25519 (what bundles use) next to WebCrypto.
 */
import { bundleText, newKey, NOW, trustFor } from "./_testing.ts";
import { pae } from "./dsse.ts";
import { signEd25519, verifyEd25519 } from "./ed25519.ts";
import { verifyBundle } from "./verify.ts";

const key = newKey();
const trust = trustFor([{ key }]);
const tiny = new TextEncoder().encode(bundleText([key]));

// About 1 MB of policy: rules with address lists.
const rules = Array.from({ length: 3000 }, (_, i) => ({
  id: `rule-${i}`,
  action: "block",
  direction: "out",
  protocol: "tcp",
  remote: Array.from(
    { length: 12 },
    (_, j) => `198.51.${i % 256}.${j * 16}/28`,
  ),
  remotePorts: [445, "137-139"],
}));
const large = new TextEncoder().encode(
  bundleText([key], { policy: { name: "large", rules } }),
);

Deno.bench({
  name: `verifyBundle() tiny bundle (${tiny.length} bytes)`,
  group: "bundle",
  fn: () => {
    verifyBundle(tiny, { trust, now: NOW });
  },
});

Deno.bench({
  name: `verifyBundle() 1 MB bundle (${large.length} bytes)`,
  group: "bundle",
  fn: () => {
    verifyBundle(large, { trust, now: NOW });
  },
});

const message = pae("application/vnd.palisade.bundle+json", tiny);
const signature = signEd25519(message, key.seed);
const webKey = await crypto.subtle.importKey(
  "raw",
  key.publicKey.bytes.slice(),
  { name: "Ed25519" },
  false,
  ["verify"],
);

Deno.bench({
  name: "Ed25519 verify, @noble/ed25519 strict",
  group: "ed25519",
  baseline: true,
  fn: () => {
    verifyEd25519(signature, message, key.publicKey.bytes);
  },
});

Deno.bench({
  name: "Ed25519 verify, WebCrypto crypto.subtle",
  group: "ed25519",
  fn: async () => {
    await crypto.subtle.verify(
      "Ed25519",
      webKey,
      signature.slice(),
      message.slice(),
    );
  },
});
