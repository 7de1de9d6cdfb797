/**
 * Verification throughput: `deno bench --allow-read signing/verify_bench.ts`.
 * Tiny and 1 MB bundles through the full verifier, and raw Ed25519
 * verification of the same signed bytes by the native verifier the
 * product uses, by the @noble/ed25519 reference and by WebCrypto.
 */
import { bundleText, newKey, NOW, trustFor } from "./_testing.ts";
import { pae, PAYLOAD_TYPES } from "./dsse.ts";
import {
  signEd25519,
  verifyEd25519Native as verifyEd25519,
  verifyEd25519Noble,
} from "./ed25519.ts";
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

const webKey = await crypto.subtle.importKey(
  "raw",
  key.publicKey.bytes.slice(),
  { name: "Ed25519" },
  false,
  ["verify"],
);

for (const [size, payload] of [["tiny", tiny], ["1 MB", large]] as const) {
  const message = pae(PAYLOAD_TYPES.bundle, payload);
  const signature = signEd25519(message, key.seed);
  const group = `ed25519 ${size}`;

  Deno.bench({
    name: `Ed25519 verify ${size}, native node:crypto strict (product)`,
    group,
    baseline: true,
    fn: () => {
      if (verifyEd25519(signature, message, key.publicKey.bytes) !== "valid") {
        throw new Error("Cannot benchmark: the signature does not verify");
      }
    },
  });

  Deno.bench({
    name: `Ed25519 verify ${size}, @noble/ed25519 strict (reference)`,
    group,
    fn: () => {
      verifyEd25519Noble(signature, message, key.publicKey.bytes);
    },
  });

  Deno.bench({
    name: `Ed25519 verify ${size}, WebCrypto crypto.subtle`,
    group,
    fn: async () => {
      await crypto.subtle.verify(
        "Ed25519",
        webKey,
        signature.slice(),
        message.slice(),
      );
    },
  });
}
