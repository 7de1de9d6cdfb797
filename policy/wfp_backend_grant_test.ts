import assert from "node:assert/strict";
import { SIM_LIBRARY, simAvailable } from "../ffi/wfp/_sim_fixture.ts";

const CHILD = new URL("./_wfp_grant_child.ts", import.meta.url).pathname;
const NAME =
  "openWfpBackend() runs a whole lifecycle under --allow-ffi for the engine library only";

if (!simAvailable()) {
  if (Deno.env.get("CI") && Deno.build.os !== "windows") {
    Deno.test(NAME, () => {
      throw new Error(`Cannot run: ${SIM_LIBRARY} is missing`);
    });
  } else {
    Deno.test({ name: NAME, ignore: true, fn: () => {} });
  }
} else {
  Deno.test(NAME, async () => {
    const library = Deno.realPathSync(SIM_LIBRARY);
    const dir = Deno.makeTempDirSync({ prefix: "palisade-wfp-grant-" });
    try {
      const output = await new Deno.Command("deno", {
        args: [
          "run",
          "--no-prompt",
          "--allow-read",
          `--allow-ffi=${library}`,
          "--allow-env=WFPSIM_STORE",
          CHILD,
          library,
        ],
        env: { WFPSIM_STORE: `${dir}/store.bin` },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, `child failed:\n${stderr}`);
      const report = JSON.parse(new TextDecoder().decode(output.stdout));
      assert.deepEqual(report, {
        // The grant really is narrow: pointer APIs would be refused.
        ffiUnrestricted: "prompt",
        ffiLibrary: "granted",
        firstIncremental: false,
        firstReadBack: { ok: true },
        secondIncremental: true,
        secondReadBack: { ok: true },
        provider: "palisade",
        enumerated: [
          "block-smb-out",
          "block-smb-out",
          "no-telemetry",
          "no-telemetry",
          "ssh-in",
          "web-in",
          "web-in",
        ],
        removed: 9,
        emptyReadBack: { ok: true },
        left: 0,
        openHandles: 0,
        unfreed: "0",
      });
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}
