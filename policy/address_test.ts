import assert from "node:assert/strict";
import fc from "fast-check";
import {
  AddressSet,
  cidrToRange,
  coversFamily,
  formatAddress,
  formatCidr,
  mergeCidrs,
  mergeRanges,
  parseCidr,
  rangesOf,
  rangeToCidrs,
  readCidr,
} from "./address.ts";

Deno.test("parseCidr() reads IPv4 and IPv6 addresses and prefixes", () => {
  assert.deepEqual(parseCidr("192.0.2.7"), {
    family: 4,
    bytes: new Uint8Array([192, 0, 2, 7]),
    prefix: 32,
  });
  assert.deepEqual(parseCidr("10.0.0.0/8").prefix, 8);
  assert.deepEqual(parseCidr("0.0.0.0/0").prefix, 0);
  const v6 = parseCidr("2001:DB8::1/64");
  assert.equal(v6.family, 6);
  assert.equal(v6.prefix, 64);
  assert.deepEqual([...v6.bytes.slice(0, 4)], [0x20, 0x01, 0x0d, 0xb8]);
  assert.equal(v6.bytes[15], 1);
  assert.deepEqual(parseCidr("::").bytes, new Uint8Array(16));
  assert.deepEqual(
    [...parseCidr("::ffff:192.0.2.1").bytes.slice(10)],
    [0xff, 0xff, 192, 0, 2, 1],
  );
  assert.equal(parseCidr("1:2:3:4:5:6:7:8").bytes[15], 8);
  assert.equal(parseCidr("1:2:3:4:5:6:7::").bytes[15], 0);
});

Deno.test("parseCidr() refuses malformed text with the reason", () => {
  const cases: [string, RegExp][] = [
    ["10.0.0.256", /IPv4 part 256 is above 255/],
    ["10.0.0.01", /without leading zeros/],
    ["10.0.0", /is not an IPv4 address/],
    ["10.0.0.0/33", /longer than 32 bits/],
    ["10.0.0.0/08", /prefix length "08"/],
    ["10.0.0.0/", /prefix length ""/],
    ["2001:db8::/129", /longer than 128 bits/],
    ["fe80::1%eth0", /zone IDs/],
    ["1::2::3", /more than once/],
    ["1:2:3:4:5:6:7", /has 7 groups/],
    ["1:2:3:4:5:6:7:8:9", /has 9 groups/],
    ["1:2:3:4:5:6:7::8", /too many groups/],
    ["12345::", /not 1-4 hex digits/],
    ["1.2.3.4::", /not 1-4 hex digits/],
    [":1::2", /not 1-4 hex digits/],
    ["", /is not an IPv4 address/],
    ["example.com", /is not an IPv4 address/],
  ];
  for (const [text, reason] of cases) {
    assert.throws(() => parseCidr(text), (error: unknown) => {
      assert.ok(error instanceof SyntaxError, text);
      assert.match(error.message, /^Cannot parse address "/);
      assert.match(error.message, reason, text);
      return true;
    });
  }
});

Deno.test("formatAddress() writes IPv6 in the RFC 5952 form", () => {
  const cases = [
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["2001:DB8:00AA::", "2001:db8:aa::"],
  ];
  for (const [input, want] of cases) {
    const range = cidrToRange(input);
    assert.equal(formatAddress(range.first, 6), want);
  }
  assert.equal(formatAddress(0xc0000201n, 4), "192.0.2.1");
  assert.throws(() => formatAddress(1n << 32n, 4), RangeError);
});

Deno.test("formatCidr() clears host bits", () => {
  assert.equal(formatCidr(parseCidr("10.1.2.3/8")), "10.0.0.0/8");
  assert.equal(formatCidr(parseCidr("2001:db8::1/32")), "2001:db8::/32");
  assert.equal(formatCidr(parseCidr("192.0.2.7")), "192.0.2.7/32");
  const read = readCidr("10.1.2.3/8");
  assert.ok(typeof read !== "string");
  assert.equal(formatCidr(read), "10.0.0.0/8");
});

Deno.test("cidrToRange() gives the first and last address", () => {
  assert.deepEqual(cidrToRange("10.0.0.0/8"), {
    family: 4,
    first: 0x0a000000n,
    last: 0x0affffffn,
  });
  assert.deepEqual(cidrToRange("::/0"), {
    family: 6,
    first: 0n,
    last: (1n << 128n) - 1n,
  });
});

Deno.test("mergeCidrs() merges overlaps and neighbours, IPv4 first", () => {
  assert.deepEqual(
    mergeCidrs([
      "2001:db8::/33",
      "10.0.0.128/25",
      "2001:db8:8000::/33",
      "10.0.0.0/25",
      "10.0.0.5",
      "192.0.2.0/24",
      "192.0.2.0/26",
    ]),
    ["10.0.0.0/24", "192.0.2.0/24", "2001:db8::/32"],
  );
  assert.deepEqual(mergeCidrs(["0.0.0.0/1", "128.0.0.0/1"]), ["0.0.0.0/0"]);
  assert.deepEqual(mergeCidrs(["::/1", "8000::/1"]), ["::/0"]);
  assert.deepEqual(mergeCidrs(["10.1.2.3/8"]), ["10.0.0.0/8"]);
  assert.deepEqual(mergeCidrs(["10.0.0.1", "10.0.0.2"]), [
    "10.0.0.1/32",
    "10.0.0.2/32",
  ]);
  assert.deepEqual(mergeCidrs([]), []);
  assert.throws(() => mergeCidrs(["10.0.0.0/8", "nope"]), SyntaxError);
});

Deno.test("rangeToCidrs() splits a range into the fewest prefixes", () => {
  assert.deepEqual(
    rangeToCidrs({ first: 0x0a000001n, last: 0x0a000006n }, 4),
    ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"],
  );
  assert.deepEqual(
    rangeToCidrs({ first: 0n, last: (1n << 32n) - 1n }, 4),
    ["0.0.0.0/0"],
  );
});

Deno.test("rangesOf() returns merged ranges of one family", () => {
  const list = ["10.0.0.0/25", "10.0.0.128/25", "10.0.2.0/24", "::1"];
  assert.deepEqual(rangesOf(list, 4), [
    { first: 0x0a000000n, last: 0x0a0000ffn },
    { first: 0x0a000200n, last: 0x0a0002ffn },
  ]);
  assert.deepEqual(rangesOf(list, 6), [{ first: 1n, last: 1n }]);
});

Deno.test("AddressSet.add() reports host bits and errors", () => {
  const set = new AddressSet();
  assert.equal(set.add("10.0.0.0/8"), undefined);
  assert.deepEqual(set.add("10.1.2.3/8"), { hostBits: "10.0.0.0/8" });
  assert.deepEqual(set.add("2001:db8::1/32"), { hostBits: "2001:db8::/32" });
  const bad = set.add("10.0.0.300");
  assert.ok(bad !== undefined && "error" in bad);
  assert.match(bad.error, /above 255/);
  assert.deepEqual(set.count, { 4: 2, 6: 1 });
  assert.equal(set.covers(4), false);
  set.add("0.0.0.0/0");
  assert.equal(set.covers(4), true);
  assert.equal(set.covers(6), false);
});

/** Every address in a small universe: the brute-force reference. */
function members(
  cidrs: string[],
  base: bigint,
  size: number,
  family: 4 | 6,
): boolean[] {
  const out = new Array<boolean>(size).fill(false);
  for (const text of cidrs) {
    const r = cidrToRange(text);
    if (r.family !== family) continue;
    for (let i = 0; i < size; i++) {
      const a = base + BigInt(i);
      if (a >= r.first && a <= r.last) out[i] = true;
    }
  }
  return out;
}

/** Fewest aligned blocks covering exactly the members, by dynamic
 * programming: independent of the merge's greedy walk. */
function fewestBlocks(set: boolean[]): number {
  const n = set.length;
  const best = new Array<number>(n + 1).fill(Infinity);
  best[n] = 0;
  for (let i = n - 1; i >= 0; i--) {
    if (!set[i]) {
      best[i] = best[i + 1];
      continue;
    }
    for (let size = 1; size <= n && i % size === 0; size *= 2) {
      if (i + size > n || set.slice(i, i + size).includes(false)) break;
      best[i] = Math.min(best[i], 1 + best[i + size]);
    }
  }
  return best[0];
}

// Prefix 33 stands for a bare address, which takes its own parse path.
const v4InUniverse = fc.tuple(
  fc.integer({ min: 0, max: 255 }),
  fc.integer({ min: 24, max: 33 }),
).map(([host, prefix]) =>
  prefix === 33 ? `198.51.100.${host}` : `198.51.100.${host}/${prefix}`
);

Deno.test("mergeCidrs() covers exactly the input addresses (IPv4, property)", () => {
  const base = 0xc6336400n; // 198.51.100.0
  fc.assert(
    fc.property(fc.array(v4InUniverse, { maxLength: 12 }), (list) => {
      const merged = mergeCidrs(list);
      const want = members(list, base, 256, 4);
      assert.deepEqual(members(merged, base, 256, 4), want);
      assert.equal(merged.length, fewestBlocks(want));
      for (const cidr of merged) {
        assert.equal(formatCidr(parseCidr(cidr)), cidr, "canonical");
      }
    }),
    { numRuns: 500 },
  );
});

Deno.test("mergeCidrs() covers exactly the input addresses (IPv6, property)", () => {
  const base = 0x20010db8000000000000000000000000n;
  const item = fc.tuple(
    fc.integer({ min: 0, max: 255 }),
    fc.integer({ min: 120, max: 128 }),
  ).map(([host, prefix]) => `2001:db8::${host.toString(16)}/${prefix}`);
  fc.assert(
    fc.property(fc.array(item, { maxLength: 12 }), (list) => {
      const merged = mergeCidrs(list);
      const want = members(list, base, 256, 6);
      assert.deepEqual(members(merged, base, 256, 6), want);
      assert.equal(merged.length, fewestBlocks(want));
    }),
    { numRuns: 300 },
  );
});

Deno.test("mergeCidrs() handles 50,000 addresses", () => {
  const list: string[] = [];
  for (let i = 0; i < 50_000; i++) {
    list.push(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  }
  // Consecutive addresses from 10.0.0.0: one /17 minus the tail.
  const merged = mergeCidrs(list.reverse());
  assert.deepEqual(
    merged,
    rangeToCidrs({
      first: 0x0a000000n,
      last: 0x0a000000n + 49_999n,
    }, 4),
  );
});

Deno.test("parseCidr() and formatAddress() agree on any IPv6 address (property)", () => {
  const group = fc.oneof(
    fc.constant(0),
    fc.integer({ min: 0, max: 0xffff }),
  );
  fc.assert(
    fc.property(
      fc.array(group, { minLength: 8, maxLength: 8 }),
      fc.boolean(),
      (groups, upper) => {
        let want = 0n;
        for (const g of groups) want = (want << 16n) | BigInt(g);
        const canonical = formatAddress(want, 6);
        let full = groups.map((g) => g.toString(16).padStart(4, "0"))
          .join(":");
        if (upper) full = full.toUpperCase();
        for (const text of [canonical, full, `${canonical}/128`]) {
          const range = cidrToRange(text);
          assert.equal(range.first, want, text);
          assert.equal(range.family, 6);
        }
        // The canonical form never has a run of zero groups left
        // uncompressed when a longer or equal one was compressed.
        assert.equal(formatAddress(cidrToRange(canonical).first, 6), canonical);
        assert.ok(
          !/(^|:)0(:0)+(:|$)/.test(canonical) || canonical.includes("::"),
        );
      },
    ),
    { numRuns: 1000 },
  );
});

Deno.test("AddressSet merges IPv6 like the bigint reference across words (property)", () => {
  // Values with few set bits, placed anywhere in 128 bits, so that
  // prefixes straddle the 32-bit word boundaries.
  const value = fc.array(fc.integer({ min: 0, max: 127 }), { maxLength: 6 })
    .map((bits) => bits.reduce((v, b) => v | (1n << BigInt(b)), 0n));
  const prefix = fc.oneof(
    fc.constantFrom(0, 1, 31, 32, 33, 63, 64, 65, 95, 96, 97, 127, 128),
    fc.integer({ min: 0, max: 128 }),
  );
  const item = fc.tuple(value, prefix).map(([v, p]) =>
    `${formatAddress(v, 6)}/${p}`
  );
  fc.assert(
    fc.property(fc.array(item, { maxLength: 10 }), (list) => {
      const set = new AddressSet();
      for (const text of list) set.add(text);
      const ranges = mergeRanges(list.map((text) => cidrToRange(text)));
      assert.deepEqual(set.ranges(6), ranges);
      assert.deepEqual(
        set.cidrs(),
        ranges.flatMap((r) => rangeToCidrs(r, 6)),
      );
      assert.equal(set.covers(6), coversFamily(ranges, 6));
    }),
    { numRuns: 2000 },
  );
});
