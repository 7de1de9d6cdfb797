import assert from "node:assert/strict";
import { SCHEMA_PATH, schemaText } from "./gen_schema.ts";

Deno.test("gen_schema: the committed policy schema is up to date", async () => {
  const committed = await Deno.readTextFile(SCHEMA_PATH);
  assert.deepEqual(
    JSON.parse(committed),
    JSON.parse(schemaText()),
    "schema/policy.schema.json is stale; run " +
      "deno run --allow-write=schema tools/gen_schema.ts",
  );
  assert.equal(committed, schemaText(), "same content, other formatting");
});

Deno.test("gen_schema: the schema is draft 2020-12 and refuses unknown fields", () => {
  const schema = JSON.parse(schemaText());
  assert.equal(schema.$schema, "https://json-schema.org/draft/2020-12/schema");
  assert.equal(schema.additionalProperties, false);
  assert.deepEqual(schema.required, ["name", "rules"]);
  const rule = schema.properties.rules.items;
  assert.equal(rule.additionalProperties, false);
  assert.deepEqual(rule.required, ["id", "action", "direction", "protocol"]);
  assert.equal(rule.properties.id.pattern, "^[a-z0-9][a-z0-9-]{0,62}$");
  assert.deepEqual(rule.properties.action.enum, ["permit", "block"]);
  assert.equal(rule.properties.remote.minItems, 1);
  assert.deepEqual(rule.properties.remotePorts.items.anyOf[0], {
    type: "integer",
    minimum: 1,
    maximum: 65535,
  });
  assert.ok("$schema" in schema.properties, "policies may carry $schema");
});

Deno.test("gen_schema: every example policy points at the schema and passes", async () => {
  const { parsePolicyText } = await import("../policy/parse.ts");
  const dir = new URL("../examples/", import.meta.url);
  let count = 0;
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".jsonc")) continue;
    const text = await Deno.readTextFile(new URL(entry.name, dir));
    const { value, warnings } = parsePolicyText(text, entry.name);
    assert.equal(
      (value as { $schema?: string }).$schema,
      "../schema/policy.schema.json",
    );
    assert.deepEqual(warnings, [], entry.name);
    count++;
  }
  assert.ok(count >= 2, "examples/ holds at least two policies");
});
