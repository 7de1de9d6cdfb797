import assert from "node:assert/strict";
import { withDir } from "./_signing_testing.ts";
import { serve } from "./serve.ts";

Deno.test("serve() names a missing config file plainly", () =>
  withDir(async (dir) => {
    await assert.rejects(
      serve(["--config", `${dir}/none.jsonc`]),
      new RegExp(
        `^Error: Cannot read config ${dir}/none\\.jsonc: no such file$`,
      ),
    );
    await assert.rejects(
      serve(["--config", dir]),
      /Cannot read config .*: is a folder$/,
    );
  }));
