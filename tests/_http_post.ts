/**
 * A one-shot HTTP client for tests that run inside a namespace:
 * `_http_post.ts URL [FILE]` sends FILE with POST (or GETs without one)
 * over a new connection and prints `{ status, body, ms }` as JSON.
 *
 * @module
 */
if (import.meta.main) {
  const [url, file] = Deno.args;
  const body = file === undefined ? undefined : await Deno.readFile(file);
  using client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  const started = performance.now();
  try {
    const response = await fetch(url, {
      method: body === undefined ? "GET" : "POST",
      body,
      client,
      signal: AbortSignal.timeout(15_000),
    });
    const text = await response.text();
    const ms = performance.now() - started;
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON: print the text.
    }
    console.log(JSON.stringify({ status: response.status, body: parsed, ms }));
  } catch (error) {
    console.log(
      JSON.stringify({ status: 0, body: (error as Error).message, ms: -1 }),
    );
  }
}
