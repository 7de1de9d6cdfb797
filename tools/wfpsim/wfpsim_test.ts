/**
 * Builds the WFP simulator with the `build:wfpsim` task's own command into
 * a temporary folder, runs its C behaviour tests, checks its structures
 * against MinGW-w64's Windows headers, and drives it through Deno.dlopen.
 *
 * Needs gcc (and x86_64-w64-mingw32-gcc for the layout tests): skipped
 * with a message when missing, failed when `CI` is set.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { readWfpsimDump } from "../wfpsim_dump.ts";

const HERE = new URL(".", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;
const CI = Boolean(Deno.env.get("CI"));

function hasTool(name: string): boolean {
  try {
    const out = new Deno.Command(name, { args: ["--version"] }).outputSync();
    return out.success;
  } catch {
    return false;
  }
}

const HAVE_GCC = hasTool("gcc");
const HAVE_MINGW = hasTool("x86_64-w64-mingw32-gcc");
if (!HAVE_GCC) {
  console.warn("wfpsim tests skipped: gcc is not installed");
}
if (!HAVE_MINGW) {
  console.warn(
    "wfpsim layout tests skipped: x86_64-w64-mingw32-gcc is not installed",
  );
}

function needTool(present: boolean, name: string): void {
  if (!present) throw new Error(`Cannot run under CI: ${name} is missing`);
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program built by these tests; `sh` is in the test permission set,
 * the temporary binaries are not. */
function runBuilt(exe: string, args: string[]): Promise<Run> {
  return run("sh", ["-c", 'exec "$0" "$@"', exe, ...args]);
}

async function run(
  cmd: string,
  args: string[],
  env?: Record<string, string>,
): Promise<Run> {
  const out = await new Deno.Command(cmd, { args, cwd: ROOT, env }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/** The `build:wfpsim` command line with its output redirected. */
async function buildCommand(output: string): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const task = config.tasks["build:wfpsim"];
  const line: string = typeof task === "string" ? task : task.command;
  const words = line.split(/\s+/);
  const at = words.indexOf("-o");
  assert(at > 0, "the build:wfpsim task names its output with -o");
  words[at + 1] = output;
  return words;
}

let built: Promise<string> | undefined;
let builtDir: string | undefined;

globalThis.addEventListener("unload", () => {
  if (builtDir) Deno.removeSync(builtDir, { recursive: true });
});

/** Builds libwfpsim.so once per test run; returns its folder. */
function buildOnce(): Promise<string> {
  built ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "palisade-wfpsim-" });
    builtDir = dir;
    const [cmd, ...args] = await buildCommand(`${dir}/libwfpsim.so`);
    const out = await run(cmd, args);
    assertEquals(out.code, 0, `build failed:\n${out.stderr}`);
    assertEquals(out.stderr.trim(), "", "the build must be warning-free");
    return dir;
  })();
  return built;
}

const gccTest = { ignore: !HAVE_GCC && !CI, sanitizeResources: false };

Deno.test({
  name: "build:wfpsim compiles the simulator warning-free with -Werror",
  ...gccTest,
  async fn() {
    needTool(HAVE_GCC, "gcc");
    const dir = await buildOnce();
    const stat = await Deno.stat(`${dir}/libwfpsim.so`);
    assert(stat.isFile && stat.size > 0);
    const nm = await run("sh", ["-c", `nm -D --defined-only ${dir}/*.so`]);
    for (
      const name of [
        "FwpmEngineOpen0",
        "FwpmFilterEnum0",
        "FwpmGetAppIdFromFileName0",
        "WfpsimInjectFault",
        "WfpsimDump",
      ]
    ) {
      assertMatch(nm.stdout, new RegExp(` T ${name}\\n`));
    }
    // Internal helpers stay private to the library.
    assert(!nm.stdout.includes("sim_store_clone"));
  },
});

Deno.test({
  name: "wfpsim_test.c passes every behaviour check against the library",
  ...gccTest,
  async fn() {
    needTool(HAVE_GCC, "gcc");
    const dir = await buildOnce();
    const exe = `${dir}/wfpsim_test`;
    const cc = await run("gcc", [
      "-O1",
      "-Wall",
      "-Wextra",
      "-Werror",
      "-o",
      exe,
      `${HERE}wfpsim_test.c`,
      `-L${dir}`,
      "-lwfpsim",
      `-Wl,-rpath,${dir}`,
    ]);
    assertEquals(cc.code, 0, cc.stderr);
    const scratch = await Deno.makeTempDir({ prefix: "palisade-wfpsim-" });
    try {
      const out = await runBuilt(exe, [scratch]);
      assertEquals(out.code, 0, `${out.stdout}\n${out.stderr}`);
      assertMatch(out.stdout, /wfpsim_test: \d+ checks, 0 failed/);
    } finally {
      await Deno.remove(scratch, { recursive: true });
    }
  },
});

Deno.test({
  name: "bench_add.c adds filters in one transaction and reports a rate",
  ...gccTest,
  async fn() {
    needTool(HAVE_GCC, "gcc");
    const dir = await buildOnce();
    const exe = `${dir}/bench_add`;
    const cc = await run("gcc", [
      "-O2",
      "-Wall",
      "-Wextra",
      "-Werror",
      "-o",
      exe,
      `${HERE}bench_add.c`,
      `-L${dir}`,
      "-lwfpsim",
      `-Wl,-rpath,${dir}`,
    ]);
    assertEquals(cc.code, 0, cc.stderr);
    const out = await runBuilt(exe, ["2000"]);
    assertEquals(out.code, 0, out.stderr);
    const result = JSON.parse(out.stdout);
    assertEquals(result.filters, 2000);
    assert(result.filtersPerSecond > 0);
  },
});

const mingwTest = {
  ignore: (!HAVE_MINGW || !HAVE_GCC) && !CI,
  sanitizeResources: false,
};

Deno.test({
  name: "wfpsim_types.h matches the MinGW-w64 Windows headers",
  ...mingwTest,
  async fn() {
    needTool(HAVE_MINGW, "x86_64-w64-mingw32-gcc");
    const alone = await run("x86_64-w64-mingw32-gcc", [
      "-std=c11",
      "-Wall",
      "-Wextra",
      "-Werror",
      "-fsyntax-only",
      "-x",
      "c",
      `${HERE}wfpsim_types.h`,
    ]);
    assertEquals(alone.code, 0, alone.stderr);
    const check = await run("x86_64-w64-mingw32-gcc", [
      "-std=c11",
      "-Wall",
      "-Wextra",
      "-Werror",
      "-fsyntax-only",
      `${HERE}layout_mingw.c`,
    ]);
    assertEquals(check.code, 0, check.stderr);
  },
});

Deno.test({
  name: "layout_mingw.c refuses a structure with a wrong field",
  ...mingwTest,
  async fn() {
    needTool(HAVE_MINGW, "x86_64-w64-mingw32-gcc");
    const dir = await Deno.makeTempDir({ prefix: "palisade-wfpsim-" });
    try {
      const header = await Deno.readTextFile(`${HERE}wfpsim_types.h`);
      const wrong = header.replace(
        "  uint16_t weight;\n} SIM_FWPM_SUBLAYER0;",
        "  uint32_t weight;\n} SIM_FWPM_SUBLAYER0;",
      );
      assert(wrong !== header, "the mutation applies");
      await Deno.writeTextFile(`${dir}/wfpsim_types.h`, wrong);
      await Deno.copyFile(`${HERE}layout_mingw.c`, `${dir}/layout_mingw.c`);
      const check = await run("x86_64-w64-mingw32-gcc", [
        "-std=c11",
        "-fsyntax-only",
        `${dir}/layout_mingw.c`,
      ]);
      assert(check.code !== 0, "a wrong field size must fail the check");
      assertMatch(check.stderr, /SIM_FWPM_SUBLAYER0\.weight size/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Windows x64 layouts the FFI test writes by hand (see wfpsim_types.h). */
function guidBytes(text: string): Uint8Array {
  const hex = text.replaceAll("-", "");
  const b = new Uint8Array(16);
  const view = new DataView(b.buffer);
  view.setUint32(0, parseInt(hex.slice(0, 8), 16), true);
  view.setUint16(4, parseInt(hex.slice(8, 12), 16), true);
  view.setUint16(6, parseInt(hex.slice(12, 16), 16), true);
  for (let i = 0; i < 8; i++) {
    b[8 + i] = parseInt(hex.slice(16 + 2 * i, 18 + 2 * i), 16);
  }
  return b;
}

function utf16z(text: string): Uint16Array {
  const out = new Uint16Array(text.length + 1);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

const ffiSymbols = {
  FwpmEngineOpen0: {
    parameters: ["pointer", "u32", "pointer", "pointer", "buffer"],
    result: "u32",
  },
  FwpmEngineClose0: { parameters: ["pointer"], result: "u32" },
  FwpmTransactionBegin0: { parameters: ["pointer", "u32"], result: "u32" },
  FwpmTransactionCommit0: { parameters: ["pointer"], result: "u32" },
  FwpmTransactionAbort0: { parameters: ["pointer"], result: "u32" },
  FwpmProviderAdd0: {
    parameters: ["pointer", "buffer", "pointer"],
    result: "u32",
  },
  FwpmProviderGetByKey0: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "u32",
  },
  FwpmProviderDeleteByKey0: {
    parameters: ["pointer", "buffer"],
    result: "u32",
  },
  FwpmSubLayerAdd0: {
    parameters: ["pointer", "buffer", "pointer"],
    result: "u32",
  },
  FwpmSubLayerDeleteByKey0: {
    parameters: ["pointer", "buffer"],
    result: "u32",
  },
  FwpmSubLayerGetByKey0: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "u32",
  },
  FwpmFilterAdd0: {
    parameters: ["pointer", "buffer", "pointer", "buffer"],
    result: "u32",
  },
  FwpmFilterDeleteById0: { parameters: ["pointer", "u64"], result: "u32" },
  FwpmFilterDeleteByKey0: { parameters: ["pointer", "buffer"], result: "u32" },
  FwpmFilterGetByKey0: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "u32",
  },
  FwpmFilterCreateEnumHandle0: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "u32",
  },
  FwpmFilterEnum0: {
    parameters: ["pointer", "pointer", "u32", "buffer", "buffer"],
    result: "u32",
  },
  FwpmFilterDestroyEnumHandle0: {
    parameters: ["pointer", "pointer"],
    result: "u32",
  },
  FwpmFreeMemory0: { parameters: ["buffer"], result: "void" },
  FwpmGetAppIdFromFileName0: {
    parameters: ["buffer", "buffer"],
    result: "u32",
  },
  WfpsimInjectFault: { parameters: ["buffer", "u32", "u32"], result: "u32" },
  WfpsimClearFaults: { parameters: [], result: "void" },
  WfpsimOpenHandles: { parameters: [], result: "u32" },
  WfpsimUnfreedAllocations: { parameters: [], result: "u64" },
  WfpsimReset: { parameters: [], result: "u32" },
  WfpsimDump: { parameters: ["buffer", "u64"], result: "u64" },
} as const satisfies Deno.ForeignLibraryInterface;

const PROVIDER = "5a1e5a1e-0000-4000-8000-000000000001";

Deno.test({
  name: "libwfpsim.so exports the agreed symbols and persists for wfpsim:dump",
  ...gccTest,
  async fn() {
    needTool(HAVE_GCC, "gcc");
    const dir = await buildOnce();
    const store = `${dir}/store.bin`;
    const previous = Deno.env.get("WFPSIM_STORE");
    Deno.env.set("WFPSIM_STORE", store);
    const lib = Deno.dlopen(`${dir}/libwfpsim.so`, ffiSymbols);
    try {
      const s = lib.symbols;
      assertEquals(s.WfpsimReset(), 0);
      const handleOut = new BigUint64Array(1);
      assertEquals(s.FwpmEngineOpen0(null, 10, null, null, handleOut), 0);
      const engine = Deno.UnsafePointer.create(handleOut[0]);
      assertEquals(s.WfpsimOpenHandles(), 1);

      // FWPM_PROVIDER0: key @0, name @16, description @24, flags @32,
      // providerData @40 (16 bytes), serviceName @56; 64 bytes.
      const name = utf16z("palisade");
      const provider = new Uint8Array(64);
      const view = new DataView(provider.buffer);
      provider.set(guidBytes(PROVIDER), 0);
      view.setBigUint64(
        16,
        BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(name))),
        true,
      );
      view.setUint32(32, 1, true); // FWPM_PROVIDER_FLAG_PERSISTENT
      assertEquals(s.FwpmProviderAdd0(engine, provider, null), 0);
      assertEquals(
        s.FwpmProviderAdd0(engine, provider, null),
        0x80320009, // FWP_E_ALREADY_EXISTS
      );

      const out = new BigUint64Array(1);
      assertEquals(
        s.FwpmProviderGetByKey0(engine, guidBytes(PROVIDER), out),
        0,
      );
      assertEquals(s.WfpsimUnfreedAllocations(), 1n);
      const got = new Deno.UnsafePointerView(
        Deno.UnsafePointer.create(out[0])!,
      );
      const namePtr = got.getPointer(16)!;
      assertEquals(
        new Deno.UnsafePointerView(namePtr).getUint16(0),
        "p".charCodeAt(0),
      );
      assertEquals(got.getUint32(32), 1);
      s.FwpmFreeMemory0(out);
      assertEquals(out[0], 0n);
      assertEquals(s.WfpsimUnfreedAllocations(), 0n);

      assertEquals(s.FwpmEngineClose0(engine), 0);
      assertEquals(s.WfpsimOpenHandles(), 0);
    } finally {
      lib.close();
      if (previous === undefined) Deno.env.delete("WFPSIM_STORE");
      else Deno.env.set("WFPSIM_STORE", previous);
    }

    // Another process reads the same store through the dump task's script.
    const dump = await run("deno", [
      "run",
      "--allow-read",
      "--allow-env=WFPSIM_STORE",
      `--allow-ffi=${dir}/libwfpsim.so`,
      `${ROOT}tools/wfpsim_dump.ts`,
      "--library",
      `${dir}/libwfpsim.so`,
    ], { WFPSIM_STORE: store });
    assertEquals(dump.code, 0, dump.stderr);
    const parsed = JSON.parse(dump.stdout);
    assertEquals(parsed.providers, [{
      key: PROVIDER,
      name: "palisade",
      description: null,
      flags: 1,
      persistent: true,
    }]);
    assertEquals(parsed.sublayers, []);
    assertEquals(parsed.filters, []);

    // The same read in this process, through the exported helper.
    const before = Deno.env.get("WFPSIM_STORE");
    Deno.env.set("WFPSIM_STORE", store);
    try {
      assertEquals(readWfpsimDump(`${dir}/libwfpsim.so`), parsed);
    } finally {
      if (before === undefined) Deno.env.delete("WFPSIM_STORE");
      else Deno.env.set("WFPSIM_STORE", before);
    }
  },
});

Deno.test({
  name: "wfpsim:dump explains a missing library",
  async fn() {
    const out = await run("deno", [
      "run",
      "--allow-read",
      "--allow-env=WFPSIM_STORE",
      "--allow-ffi",
      `${ROOT}tools/wfpsim_dump.ts`,
      "--library",
      "/nonexistent/libwfpsim.so",
    ]);
    assertEquals(out.code, 1);
    assertMatch(out.stderr, /Cannot load the WFP simulator/);
    assertMatch(out.stderr, /deno task build:wfpsim/);
  },
});
