import assert from "node:assert/strict";
import {
  coversAllPorts,
  formatPortRange,
  mergePorts,
  parsePortItem,
  readPortItem,
} from "./ports.ts";

Deno.test("parsePortItem() reads ports and ranges", () => {
  assert.deepEqual(parsePortItem(443), { first: 443, last: 443 });
  assert.deepEqual(parsePortItem("137-139"), { first: 137, last: 139 });
  assert.deepEqual(parsePortItem("1-65535"), { first: 1, last: 65535 });
  assert.deepEqual(parsePortItem("80-80"), { first: 80, last: 80 });
});

Deno.test("readPortItem() refuses bad entries with what to write", () => {
  const cases: [unknown, RegExp][] = [
    [0, /port 0 is outside 1-65535; write a port from 1 to 65535/],
    [65536, /port 65536 is outside 1-65535/],
    [-1, /port -1 is outside/],
    [80.5, /80.5 is not a whole number/],
    ["139-137", /range "139-137" is reversed; write "137-139"/],
    ["0-10", /port 0 in "0-10" is outside 1-65535/],
    ["1-70000", /port 70000 in "1-70000" is outside/],
    ["443", /single port as a number \(443\)/],
    ["http", /"http" is not a port range; write a range as "FIRST-LAST"/],
    [null, /not null/],
    [true, /not a boolean/],
  ];
  for (const [item, reason] of cases) {
    const read = readPortItem(item);
    assert.equal(typeof read, "string", String(item));
    assert.match(read as string, reason);
  }
  assert.throws(() => parsePortItem(0), RangeError);
});

Deno.test("mergePorts() joins overlapping and adjacent ranges", () => {
  assert.deepEqual(
    mergePorts([
      { first: 445, last: 445 },
      { first: 137, last: 139 },
      { first: 140, last: 140 },
      { first: 138, last: 138 },
      { first: 447, last: 450 },
    ]),
    [{ first: 137, last: 140 }, { first: 445, last: 445 }, {
      first: 447,
      last: 450,
    }],
  );
  const input = [{ first: 2, last: 3 }, { first: 1, last: 1 }];
  mergePorts(input);
  assert.deepEqual(input, [{ first: 2, last: 3 }, { first: 1, last: 1 }]);
});

Deno.test("formatPortRange() and coversAllPorts() read back ranges", () => {
  assert.equal(formatPortRange({ first: 443, last: 443 }), 443);
  assert.equal(formatPortRange({ first: 1, last: 2 }), "1-2");
  assert.equal(coversAllPorts([{ first: 1, last: 65535 }]), true);
  assert.equal(coversAllPorts([{ first: 2, last: 65535 }]), false);
  assert.equal(coversAllPorts([]), false);
});
