import assert from "node:assert/strict";
import { UsageError } from "./_common.ts";
import { status } from "./status.ts";

Deno.test("status() refuses --to without a scheme and says what to give", async () => {
  await assert.rejects(
    status(["--to", "localhost:7443"]),
    (e: Error) =>
      e instanceof UsageError &&
      e.message ===
        "Cannot use --to localhost:7443: give a URL such as http://HOST:PORT",
  );
});
