/**
 * POSIX and Windows path helpers for config paths, without pulling the
 * Node type definitions into the service's type graph.
 *
 * @module
 */

const WINDOWS = Deno.build.os === "windows";

/** True for `/x`, `C:\x`, `C:/x` and `\\server\share`. */
export function isAbsolutePath(path: string): boolean {
  if (path.startsWith("/")) return true;
  return WINDOWS && /^([A-Za-z]:[\\/]|\\\\)/.test(path);
}

/** Joins segments with `/` and normalises `.` and `..`. */
export function joinPath(...parts: string[]): string {
  return normalizePath(parts.filter((p) => p !== "").join("/"));
}

/** Resolves `path` against `base` unless it is already absolute. */
export function resolvePath(base: string, path: string): string {
  return isAbsolutePath(path) ? normalizePath(path) : joinPath(base, path);
}

/** The folder part of `path`. */
export function dirnameOf(path: string): string {
  const normal = normalizePath(path);
  const cut = normal.lastIndexOf("/");
  if (cut < 0) return ".";
  return cut === 0 ? "/" : normal.slice(0, cut);
}

/** Collapses repeated separators, `.` and `..` segments. */
export function normalizePath(path: string): string {
  const text = WINDOWS ? path.replaceAll("\\", "/") : path;
  const absolute = text.startsWith("/");
  const out: string[] = [];
  for (const segment of text.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      if (out.length > 0 && out.at(-1) !== "..") out.pop();
      else if (!absolute) out.push("..");
      continue;
    }
    out.push(segment);
  }
  const joined = out.join("/");
  if (absolute) return "/" + joined;
  return joined === "" ? "." : joined;
}
