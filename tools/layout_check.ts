/**
 * Layout check: turns the WFP layout table of `ffi/wfp/layout.ts` into C
 * static assertions (size, alignment, offset and size of every field)
 * and compiles them with MinGW-w64 against the real `fwpmu.h`. The same
 * run checks the simulator's `SIM_` structs against the real ones, the
 * constants and status codes Palisade uses against the headers'
 * definitions, and every GUID Palisade uses that the headers define.
 * With a host `gcc`, it also checks the simulator's structs against the
 * table under the Linux ABI the simulator is built for.
 *
 * Run: `deno task check:layout`. Exit code 0 when every check holds.
 *
 * @module
 */
import {
  type FieldLayout,
  FWP_ACTION,
  FWP_DATA_TYPE,
  FWP_FILTER_ENUM_TYPE,
  FWP_MATCH_TYPE,
  FWPM_FLAGS,
  guidFields,
  layoutProblems,
  type LayoutTable,
  RPC_C_AUTHN,
  type StructName,
  WFP_CODES,
  WFP_CONDITIONS,
  WFP_LAYERS,
  WFP_LAYOUTS,
  WFP_SYMBOLS,
} from "../ffi/wfp/mod.ts";

/** Options of {@linkcode checkLayout}. */
export interface LayoutCheckOptions {
  /** The table to check; tests pass a deliberately broken copy. */
  table?: LayoutTable;
  /** Where `fwpmu.h` lives. */
  includeDir?: string;
  /** The simulator's struct header; null to skip it. */
  simHeader?: string | null;
  /** Folder for the generated C files. */
  workDir?: string;
  /** Cross compiler for Windows x64. */
  compiler?: string;
  /** Host compiler for the simulator-vs-table check; null to skip. */
  hostCompiler?: string | null;
  /** More GUIDs to compare with the headers' definitions, by name. */
  extraGuids?: Readonly<Record<string, string>>;
}

/** Outcome of {@linkcode checkLayout}. */
export interface LayoutCheckResult {
  ok: boolean;
  /** Number of static assertions generated. */
  assertions: number;
  /** Problems found, each on one line (compiler errors included). */
  problems: string[];
  /** Constants and GUIDs the headers do not define, so not checked. */
  unchecked: string[];
}

const DEFAULT_INCLUDE = "/usr/share/mingw-w64/include";
const GUID_HEADERS = [
  "fwpmu.h",
  "fwpmtypes.h",
  "fwptypes.h",
  "ipsectypes.h",
  "iketypes.h",
];

function cString(text: string): string {
  return JSON.stringify(text);
}

/** C expression naming a field (union members of SIM_ structs: `u.x`). */
function member(field: FieldLayout, inUnion: boolean, sim: boolean): string {
  return inUnion && sim ? `u.${field.name}` : field.name;
}

function fieldsOf(table: LayoutTable, name: StructName) {
  const out: { field: FieldLayout; inUnion: boolean }[] = [];
  for (const field of table[name].fields) {
    if (field.type === "PADDING") continue;
    if (field.type === "UNION") {
      for (const m of field.members ?? []) {
        out.push({ field: m, inUnion: true });
      }
    } else out.push({ field, inUnion: false });
  }
  return out;
}

/**
 * Static assertions that `prefix + struct` has the table's layout.
 * `prefix` is "" for the Windows headers, "SIM_" for the simulator.
 */
export function layoutAssertions(table: LayoutTable, prefix: string): string[] {
  const sim = prefix !== "";
  const lines: string[] = [];
  for (const name of Object.keys(table) as StructName[]) {
    const layout = table[name];
    const type = `${prefix}${name}`;
    lines.push(
      `_Static_assert(sizeof(${type}) == ${layout.size}, ${
        cString(`${type}: size is not ${layout.size}`)
      });`,
      `_Static_assert(_Alignof(${type}) == ${layout.align}, ${
        cString(`${type}: alignment is not ${layout.align}`)
      });`,
    );
    for (const { field, inUnion } of fieldsOf(table, name)) {
      const path = member(field, inUnion, sim);
      const where = `${type}.${field.name}`;
      lines.push(
        `_Static_assert(offsetof(${type}, ${path}) == ${field.offset}, ${
          cString(`${where}: offset is not ${field.offset}`)
        });`,
        `_Static_assert(sizeof(((${type} *)0)->${path}) == ${field.size}, ${
          cString(`${where}: size is not ${field.size}`)
        });`,
        `_Static_assert(_Alignof(__typeof__(((${type} *)0)->${path})) == ${field.align}, ${
          cString(`${where}: alignment is not ${field.align}`)
        });`,
      );
    }
  }
  return lines;
}

/** Assertions that each `SIM_` struct equals the real one, field by field. */
function simEqualsReal(table: LayoutTable): string[] {
  const lines: string[] = [];
  for (const name of Object.keys(table) as StructName[]) {
    lines.push(
      `_Static_assert(sizeof(SIM_${name}) == sizeof(${name}), ${
        cString(`SIM_${name}: size differs from ${name}`)
      });`,
      `_Static_assert(_Alignof(SIM_${name}) == _Alignof(${name}), ${
        cString(`SIM_${name}: alignment differs from ${name}`)
      });`,
    );
    for (const { field, inUnion } of fieldsOf(table, name)) {
      lines.push(
        `_Static_assert(offsetof(SIM_${name}, ${
          member(field, inUnion, true)
        }) == offsetof(${name}, ${field.name}), ${
          cString(`SIM_${name}.${field.name}: offset differs from ${name}`)
        });`,
      );
    }
  }
  return lines;
}

/** Every numeric constant Palisade uses, by header name. */
function constants(): [string, number][] {
  const out: [string, number][] = [];
  for (
    const group of [
      FWP_DATA_TYPE,
      FWP_MATCH_TYPE,
      FWP_ACTION,
      FWP_FILTER_ENUM_TYPE,
      RPC_C_AUTHN,
    ]
  ) {
    out.push(...Object.entries(group));
  }
  return out;
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).toUpperCase()}u`;
}

/** Generates the C file compiled with MinGW-w64. */
export function mingwSource(
  table: LayoutTable,
  headerGuids: string[],
  withSim: boolean,
  extraGuids: Readonly<Record<string, string>> = {},
): { source: string; assertions: number } {
  const lines: string[] = [
    "/* Generated by tools/layout_check.ts from ffi/wfp/layout.ts. */",
    "#include <windows.h>",
    "#include <stddef.h>",
    "#undef DEFINE_GUID",
    "#define DEFINE_GUID(n, l, w1, w2, b1, b2, b3, b4, b5, b6, b7, b8) \\",
    '  _Static_assert(PAL_GUID_##n(l, w1, w2, b1, b2, b3, b4, b5, b6, b7, b8), #n ": value is not the one Palisade uses")',
  ];
  const ours = new Map<string, string>([
    ...Object.entries(WFP_LAYERS),
    ...Object.entries(WFP_CONDITIONS),
    ...Object.entries(extraGuids),
  ]);
  for (const name of headerGuids) {
    const value = ours.get(name);
    if (value === undefined) {
      lines.push(`#define PAL_GUID_${name}(...) 1`);
      continue;
    }
    const g = guidFields(value);
    const checks = [
      `(l) == ${hex(g.data1)}`,
      `(w1) == ${g.data2}`,
      `(w2) == ${g.data3}`,
      ...g.data4.map((b, i) => `(b${i + 1}) == ${b}`),
    ];
    lines.push(
      `#define PAL_GUID_${name}(l, w1, w2, b1, b2, b3, b4, b5, b6, b7, b8) (${
        checks.join(" && ")
      })`,
    );
  }
  lines.push("#include <fwpmu.h>");
  lines.push("#include <rpcdce.h>");
  if (withSim) {
    // The simulator declares the same functions with its SIM_ types;
    // rename them while its header is read so they do not clash.
    const names = Object.keys(WFP_SYMBOLS).filter((n) => n.startsWith("Fwpm"));
    for (const n of names) lines.push(`#define ${n} PAL_SIM_${n}`);
    lines.push('#include "wfpsim_types.h"');
    for (const n of names) lines.push(`#undef ${n}`);
  }
  lines.push("");

  lines.push(...layoutAssertions(table, ""));
  if (withSim) lines.push(...simEqualsReal(table));

  for (const [code, info] of WFP_CODES) {
    lines.push(
      `_Static_assert((DWORD)(${info.name}) == ${hex(code)}, ${
        cString(`${info.name}: value is not ${hex(code)}`)
      });`,
    );
  }
  for (const [name, value] of constants()) {
    lines.push(
      `_Static_assert((UINT32)(${name}) == ${hex(value)}, ${
        cString(`${name}: value is not ${hex(value)}`)
      });`,
    );
  }
  for (const [name, value] of Object.entries(FWPM_FLAGS)) {
    lines.push(
      `#ifdef ${name}`,
      `_Static_assert((${name}) == ${hex(value)}, ${
        cString(`${name} differs`)
      });`,
      "#else",
      `#pragma message ${cString(`unchecked: ${name} (not in these headers)`)}`,
      "#endif",
    );
  }
  if (withSim) {
    for (
      const [name, value] of [...constants(), ...Object.entries(FWPM_FLAGS)]
    ) {
      lines.push(
        `#ifdef SIM_${name}`,
        `_Static_assert((SIM_${name}) == ${hex(value)}, ${
          cString(`SIM_${name}: value is not ${hex(value)}`)
        });`,
        "#endif",
      );
    }
  }
  const source = lines.join("\n") + "\n";
  const assertions = source.split("_Static_assert(").length - 2;
  return { source, assertions };
}

/** Generates the C file compiled with the host compiler. */
export function hostSource(table: LayoutTable): string {
  return [
    "/* Generated by tools/layout_check.ts: simulator vs table, host ABI. */",
    "#include <stddef.h>",
    '#include "wfpsim_types.h"',
    ...layoutAssertions(table, "SIM_"),
    "",
  ].join("\n");
}

async function headerGuidNames(includeDir: string): Promise<string[]> {
  const names = new Set<string>();
  for (const file of GUID_HEADERS) {
    let text;
    try {
      text = await Deno.readTextFile(`${includeDir}/${file}`);
    } catch {
      continue;
    }
    for (const match of text.matchAll(/DEFINE_GUID\(\s*(\w+)\s*,/g)) {
      names.add(match[1]);
    }
  }
  return [...names];
}

async function compile(
  compiler: string,
  args: string[],
): Promise<{ ok: boolean; stderr: string }> {
  const out = await new Deno.Command(compiler, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { ok: out.success, stderr: new TextDecoder().decode(out.stderr) };
}

function compilerErrors(stderr: string): string[] {
  return stderr.split("\n")
    .filter((line) => line.includes("error:"))
    .map((line) => line.replace(/^.*?error: /, ""));
}

/**
 * Runs every check and returns what failed. Nothing is printed.
 *
 * @throws {Deno.errors.NotFound} a compiler is not installed
 */
export async function checkLayout(
  options: LayoutCheckOptions = {},
): Promise<LayoutCheckResult> {
  const table = options.table ?? WFP_LAYOUTS;
  const includeDir = options.includeDir ?? DEFAULT_INCLUDE;
  const workDir = options.workDir ?? ".tmp/layout_check";
  const compiler = options.compiler ?? "x86_64-w64-mingw32-gcc";
  const simHeader = options.simHeader === undefined
    ? "tools/wfpsim/wfpsim_types.h"
    : options.simHeader;
  const withSim = simHeader !== null && await exists(simHeader);
  const simDir = withSim ? simHeader!.replace(/\/[^/]*$/, "") : "";

  const problems = layoutProblems(table).map((p) => `table: ${p}`);
  const unchecked: string[] = [];

  const guidNames = await headerGuidNames(includeDir);
  for (
    const name of [...Object.keys(WFP_LAYERS), ...Object.keys(WFP_CONDITIONS)]
  ) {
    if (!guidNames.includes(name)) {
      unchecked.push(`${name} (GUID not defined by ${includeDir})`);
    }
  }

  await Deno.mkdir(workDir, { recursive: true });
  const { source, assertions } = mingwSource(
    table,
    guidNames,
    withSim,
    options.extraGuids,
  );
  const mingwFile = `${workDir}/layout_mingw_check.c`;
  await Deno.writeTextFile(mingwFile, source);
  const args = ["-std=c11", "-fsyntax-only", "-I", includeDir];
  if (withSim) args.push("-I", simDir);
  const cross = await compile(compiler, [...args, mingwFile]);
  for (const line of cross.stderr.split("\n")) {
    const note = line.match(/#pragma message: unchecked: (.*)’?$/);
    if (note) unchecked.push(note[1].replace(/’$/, ""));
  }
  if (!cross.ok) {
    const errors = compilerErrors(cross.stderr);
    problems.push(
      ...(errors.length ? errors : [cross.stderr.trim()]).map((e) =>
        `${compiler}: ${e}`
      ),
    );
  }

  let total = assertions;
  const hostCompiler = options.hostCompiler === undefined
    ? "gcc"
    : options.hostCompiler;
  if (withSim && hostCompiler !== null) {
    const hostFile = `${workDir}/layout_host_check.c`;
    const host = hostSource(table);
    total += host.split("_Static_assert(").length - 1;
    await Deno.writeTextFile(hostFile, host);
    const native = await compile(hostCompiler, [
      "-std=c11",
      "-fsyntax-only",
      "-I",
      simDir,
      hostFile,
    ]);
    if (!native.ok) {
      problems.push(
        ...compilerErrors(native.stderr).map((e) => `${hostCompiler}: ${e}`),
      );
    }
  } else if (!withSim) {
    unchecked.push(`simulator structs (${simHeader ?? "skipped"} not found)`);
  }

  return { ok: problems.length === 0, assertions: total, problems, unchecked };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

if (import.meta.main) {
  const result = await checkLayout();
  for (const line of result.unchecked) console.log(`unchecked: ${line}`);
  for (const line of result.problems) console.error(`FAIL ${line}`);
  console.log(
    result.ok
      ? `layout check passed: ${result.assertions} static assertions`
      : `layout check failed: ${result.problems.length} problem(s)`,
  );
  Deno.exit(result.ok ? 0 : 1);
}
