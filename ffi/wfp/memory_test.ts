import assert from "node:assert/strict";
import { addressOf, Arena, memoryLibraryFor, NativeMemory } from "./memory.ts";

/** Where the tests bind `memcpy` from (any library that reaches it). */
const C_LIBRARY = Deno.build.os === "windows" ? "ntdll.dll" : "libc.so.6";

Deno.test("NativeMemory.addressOf() and read() round-trip a buffer's bytes", () => {
  using memory = NativeMemory.open(C_LIBRARY);
  const buffer = new Uint8Array(new ArrayBuffer(64));
  buffer.set([1, 2, 3, 4, 5, 6, 7, 8], 16);
  const base = memory.addressOf(buffer);
  assert.notEqual(base, 0n);
  assert.equal(memory.addressOf(buffer.subarray(16)), base + 16n);
  assert.deepEqual(memory.read(base + 18n, 4), new Uint8Array([3, 4, 5, 6]));
  assert.deepEqual(memory.read(base, 0), new Uint8Array(0));
});

Deno.test("NativeMemory.read() refuses a null pointer", () => {
  using memory = NativeMemory.open(C_LIBRARY);
  assert.throws(() => memory.read(0n, 4), /^TypeError: Cannot read native/);
});

Deno.test("NativeMemory.pointerAt() gives null for 0 and a pointer otherwise", () => {
  using memory = NativeMemory.open(C_LIBRARY);
  assert.equal(memory.pointerAt(0n), null);
  const buffer = new Uint8Array(new ArrayBuffer(8));
  assert.equal(typeof memory.pointerAt(memory.addressOf(buffer)), "object");
  assert.notEqual(memory.pointerAt(memory.addressOf(buffer)), null);
});

Deno.test("NativeMemory.readWide() reads across a page boundary", () => {
  using memory = NativeMemory.open(C_LIBRARY);
  const buffer = new Uint8Array(new ArrayBuffer(3 * 4096));
  const base = memory.addressOf(buffer);
  // Start 6 bytes before a page boundary: "pal" | "isade" NUL.
  const pageEnd = (base / 4096n + 1n) * 4096n;
  const start = Number(pageEnd - base) - 6;
  const text = "palisade ✓";
  const view = new DataView(buffer.buffer);
  for (let i = 0; i < text.length; i++) {
    view.setUint16(start + i * 2, text.charCodeAt(i), true);
  }
  assert.equal(memory.readWide(base + BigInt(start)), text);
  assert.equal(memory.readWide(base + BigInt(start + 2 * text.length)), "");
  assert.equal(memory.readWide(0n), undefined);
});

Deno.test("NativeMemory.readWide() refuses a string without a terminator", () => {
  using memory = NativeMemory.open(C_LIBRARY);
  const buffer = new Uint8Array(new ArrayBuffer(70_000)).fill(0x41);
  assert.throws(
    () => memory.readWide(memory.addressOf(buffer)),
    /^RangeError: Cannot read wide string: no terminator within 32768/,
  );
});

Deno.test("NativeMemory.close() is safe twice and refuses later use", () => {
  const memory = NativeMemory.open(C_LIBRARY);
  memory.close();
  memory.close();
  assert.ok(memory.closed);
  assert.throws(
    () => memory.read(8n, 1),
    /Cannot access native memory through ".+": it is closed/,
  );
});

Deno.test("NativeMemory.open() names the library it cannot bind from", () => {
  assert.throws(
    () => NativeMemory.open("/nonexistent/ntdll.dll"),
    /^Error: Cannot bind memcpy from "\/nonexistent\/ntdll.dll"/,
  );
});

Deno.test("Arena knows the address of every buffer it allocates", () => {
  using memory = NativeMemory.open(C_LIBRARY);
  using arena = new Arena(memory);
  const small = arena.alloc(12);
  const large = arena.alloc(10_000);
  small.set([9, 8, 7]);
  assert.deepEqual(memory.read(addressOf(small), 3), new Uint8Array([9, 8, 7]));
  assert.equal(addressOf(large), memory.addressOf(large));
  const wide = arena.wide("ab");
  assert.equal(memory.readWide(wide), "ab");
});

Deno.test("addressOf() refuses a buffer no arena allocated", () => {
  assert.throws(
    () => addressOf(new Uint8Array(new ArrayBuffer(16))),
    /^TypeError: Cannot take the address of a buffer no arena allocated/,
  );
});

Deno.test("memoryLibraryFor() binds memcpy from ntdll.dll beside fwpuclnt.dll", () => {
  assert.equal(
    memoryLibraryFor("C:\\Windows\\System32\\fwpuclnt.dll", "windows"),
    "C:\\Windows\\System32\\ntdll.dll",
  );
  assert.equal(memoryLibraryFor("fwpuclnt.dll", "windows"), "ntdll.dll");
  assert.equal(
    memoryLibraryFor("tools/wfpsim/libwfpsim.so", "linux"),
    "tools/wfpsim/libwfpsim.so",
  );
});
