/**
 * Writes the published JSON Schema of policies,
 * `schema/policy.schema.json`, from the zod schema in
 * `policy/schema.ts`. Run it after changing the language:
 *
 * ```sh
 * deno run --allow-write=schema tools/gen_schema.ts
 * ```
 *
 * `tools/gen_schema_test.ts` fails while the committed file is stale.
 *
 * @module
 */
import { policyJsonSchema } from "../policy/schema.ts";

/** Where the schema is written, relative to the repository root. */
export const SCHEMA_PATH = new URL(
  "../schema/policy.schema.json",
  import.meta.url,
);

/** The file's exact text: the schema as 2-space JSON and a newline. */
export function schemaText(): string {
  return `${JSON.stringify(policyJsonSchema(), null, 2)}\n`;
}

if (import.meta.main) {
  await Deno.writeTextFile(SCHEMA_PATH, schemaText());
  console.log(`Wrote ${SCHEMA_PATH.pathname}`);
}
