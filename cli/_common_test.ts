import assert from "node:assert/strict";
import { hostUrl, parseFlags, UsageError } from "./_common.ts";

Deno.test("parseFlags() names an unknown flag in one balanced sentence", () => {
  for (const max of [0, 1]) {
    const error = (() => {
      try {
        parseFlags(["--bogus"], { to: { type: "string" } }, {
          min: 0,
          max,
          names: "one FILE",
        });
      } catch (e) {
        return e as Error;
      }
      return null;
    })();
    assert.ok(error instanceof UsageError, "no usage error");
    assert.equal(
      error.message,
      "Unknown flag '--bogus'; run with --help for the flags (a value " +
        "that starts with '-' goes after '--')",
    );
    assert.equal((error.message.match(/'/g) ?? []).length % 2, 0);
    assert.doesNotMatch(error.message, /"/);
  }
});

Deno.test("hostUrl() accepts http and https URLs and refuses the rest with the URL to give", () => {
  assert.equal(hostUrl("http://10.0.0.1:7443"), "http://10.0.0.1:7443");
  assert.equal(hostUrl("https://web-1:7443/"), "https://web-1:7443/");
  for (const bad of ["localhost:7443", "10.0.0.1:7443", "ftp://x", "web-1"]) {
    assert.throws(
      () => hostUrl(bad),
      (e: Error) =>
        e instanceof UsageError &&
        e.message ===
          `Cannot use --to ${bad}: give a URL such as http://HOST:PORT`,
    );
  }
  assert.throws(() => hostUrl(undefined), /Missing required flag --to/);
});
