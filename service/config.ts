/**
 * The service config: a JSONC file read once at start. Unknown and
 * duplicate keys are refused, and every refusal names the key, the
 * reason and the file:line:col it was found at.
 *
 * @module
 */
import type { Node } from "jsonc-parser";
import { parseJsoncTree, positionOf } from "./_jsonc.ts";
import { dirnameOf, joinPath, resolvePath } from "./_path.ts";

/** Where `serve` looks for its config when `--config` is not given. */
export const DEFAULT_CONFIG_PATH = "/etc/palisade/config.jsonc";

/** Default library path of libnftables on Debian and Ubuntu (x86-64). */
export const DEFAULT_SERVICE_NFT_LIBRARY =
  "/usr/lib/x86_64-linux-gnu/libnftables.so.1";

/** The address the control API listens on. */
export type ListenAddress =
  | { kind: "tcp"; hostname: string; port: number; text: string }
  | { kind: "unix"; path: string; text: string };

/** A validated config with every default filled in and paths absolute. */
export interface ServiceConfig {
  /** Path of the file this config was read from. */
  source: string;
  /** This host's name as bundles target it. */
  host: string;
  listen: ListenAddress;
  /** Trust store path. */
  trust: string;
  stateDir: string;
  engine: "nft" | "wfp";
  /** Groups this host belongs to (`group:NAME` targets). */
  groups: string[];
  /** Log folder; default `<stateDir>/logs`. */
  logDir: string;
  /** WFP library: a bare name (`fwpuclnt.dll`) as given, a value with
   * a path separator relative to the config folder. */
  wfpLibrary: string;
  nftLibrary: string;
  /** WFP objects survive the service (`persistent`) or vanish with its
   * engine handle (`dynamic`). */
  wfpMode: "persistent" | "dynamic";
  /** Commit window in seconds: used when a bundle names none, and the
   * largest a bundle may ask for. */
  commitWindow: { default: number; max: number };
  tls: { cert: string; key: string } | null;
  /** Log file rotation: size of one file and how many files are kept. */
  log: { maxBytes: number; files: number };
  /** How many generations the state folder keeps. */
  maxGenerations: number;
  /** Seconds between read-backs of the live engine (0: off). */
  driftCheckSeconds: number;
}

/** A config that cannot be used; `key` is the dotted key at fault. */
export class ConfigError extends Error {
  /** Dotted key path (`commitWindow.max`), or null for the whole file. */
  readonly key: string | null;
  readonly source: string;
  readonly line: number;
  readonly column: number;

  constructor(
    message: string,
    opts: { key: string | null; source: string; line: number; column: number },
  ) {
    super(message);
    this.name = "ConfigError";
    this.key = opts.key;
    this.source = opts.source;
    this.line = opts.line;
    this.column = opts.column;
  }
}

const KNOWN_KEYS = [
  "$schema",
  "host",
  "listen",
  "trust",
  "stateDir",
  "engine",
  "groups",
  "logDir",
  "wfpLibrary",
  "nftLibrary",
  "wfpMode",
  "commitWindow",
  "tls",
  "log",
  "maxGenerations",
  "driftCheckSeconds",
];
const REQUIRED_KEYS = ["host", "listen", "trust", "stateDir", "engine"];
const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,252})$/;
const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const IPV4 =
  /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Largest commit window a config may allow: one day. */
const WINDOW_CEILING = 86_400;

class Reader {
  constructor(readonly text: string, readonly source: string) {}

  fail(node: Node | undefined, key: string | null, why: string): never {
    const { line, column } = positionOf(this.text, node?.offset ?? 0);
    const where = `${this.source}:${line}:${column}`;
    const what = key === null ? why : `key "${key}" ${why}`;
    throw new ConfigError(`Cannot load config ${where}: ${what}`, {
      key,
      source: this.source,
      line,
      column,
    });
  }

  properties(node: Node, key: string | null, known: string[]) {
    if (node.type !== "object") this.fail(node, key, "must be an object");
    const out = new Map<string, Node>();
    for (const property of node.children ?? []) {
      const [keyNode, valueNode] = property.children ?? [];
      const name = String(keyNode.value);
      const path = key === null ? name : `${key}.${name}`;
      if (!known.includes(name)) {
        this.fail(
          keyNode,
          path,
          `is not a known key (known: ${known.join(", ")})`,
        );
      }
      out.set(name, valueNode);
    }
    return out;
  }

  string(node: Node, key: string): string {
    if (node.type !== "string") this.fail(node, key, "must be a string");
    const value = node.value as string;
    if (value.length === 0) this.fail(node, key, "must not be empty");
    return value;
  }

  integer(node: Node, key: string, min: number, max: number): number {
    const value = node.value;
    if (node.type !== "number" || !Number.isSafeInteger(value)) {
      this.fail(node, key, "must be an integer");
    }
    if (value < min || value > max) {
      this.fail(node, key, `must be between ${min} and ${max}, got ${value}`);
    }
    return value;
  }

  path(node: Node, key: string): string {
    const value = this.string(node, key);
    if (value.includes("\0")) this.fail(node, key, "contains a NUL byte");
    return resolvePath(dirnameOf(this.source), value);
  }
}

/**
 * Parses and validates the text of a config file.
 *
 * Relative paths are taken relative to the folder of `source`.
 *
 * @param text the JSONC text
 * @param source the file name used in messages and for relative paths
 * @throws {ConfigError} naming the key, the reason and file:line:col
 *
 * @example
 * ```ts
 * import { parseConfig } from "./config.ts";
 * const config = parseConfig(
 *   `{ "host": "web-1", "listen": "127.0.0.1:7443", "trust": "trust.jsonc",
 *      "stateDir": "/var/lib/palisade", "engine": "nft" }`,
 *   "/etc/palisade/config.jsonc",
 * );
 * if (config.logDir !== "/var/lib/palisade/logs") throw new Error();
 * ```
 */
export function parseConfig(text: string, source: string): ServiceConfig {
  const r: Reader = new Reader(text, source);
  const parsed = parseJsoncTree(text);
  if ("problem" in parsed) {
    r.fail(
      { offset: parsed.problem.offset } as Node,
      null,
      parsed.problem.message,
    );
  }
  const root = parsed.tree;
  const props = r.properties(root, null, KNOWN_KEYS);
  for (const key of REQUIRED_KEYS) {
    if (!props.has(key)) r.fail(root, key, "is required but missing");
  }
  const get = (key: string) => props.get(key) as Node;

  const host = r.string(get("host"), "host");
  if (!HOST_NAME.test(host)) {
    r.fail(get("host"), "host", "must be a host name ([A-Za-z0-9._-])");
  }
  const listen = parseListen(r, get("listen"));
  const trust = r.path(get("trust"), "trust");
  const stateDir = r.path(get("stateDir"), "stateDir");
  const engineNode = get("engine");
  const engine = r.string(engineNode, "engine");
  if (engine !== "nft" && engine !== "wfp") {
    r.fail(engineNode, "engine", `must be "nft" or "wfp", got "${engine}"`);
  }

  const groups: string[] = [];
  const groupsNode = props.get("groups");
  if (groupsNode !== undefined) {
    if (groupsNode.type !== "array") {
      r.fail(groupsNode, "groups", "must be an array of group names");
    }
    for (const [i, item] of (groupsNode.children ?? []).entries()) {
      const name = r.string(item, `groups[${i}]`);
      if (!GROUP_NAME.test(name)) {
        r.fail(item, `groups[${i}]`, "must be a group name ([A-Za-z0-9._-])");
      }
      if (groups.includes(name)) {
        r.fail(item, `groups[${i}]`, `repeats "${name}"`);
      }
      groups.push(name);
    }
  }

  const logDirNode = props.get("logDir");
  const logDir = logDirNode === undefined
    ? joinPath(stateDir, "logs")
    : r.path(logDirNode, "logDir");
  const wfpLibraryNode = props.get("wfpLibrary");
  const wfpLibrary = wfpLibraryNode === undefined
    ? "fwpuclnt.dll"
    : /[\\/]/.test(r.string(wfpLibraryNode, "wfpLibrary"))
    ? r.path(wfpLibraryNode, "wfpLibrary")
    : r.string(wfpLibraryNode, "wfpLibrary");
  const nftLibraryNode = props.get("nftLibrary");
  const nftLibrary = nftLibraryNode === undefined
    ? DEFAULT_SERVICE_NFT_LIBRARY
    : r.path(nftLibraryNode, "nftLibrary");
  const wfpModeNode = props.get("wfpMode");
  let wfpMode: "persistent" | "dynamic" = "persistent";
  if (wfpModeNode !== undefined) {
    const mode = r.string(wfpModeNode, "wfpMode");
    if (mode !== "persistent" && mode !== "dynamic") {
      r.fail(wfpModeNode, "wfpMode", `must be "persistent" or "dynamic"`);
    }
    wfpMode = mode;
  }

  const commitWindow = { default: 120, max: 3600 };
  const windowNode = props.get("commitWindow");
  if (windowNode !== undefined) {
    const w = r.properties(windowNode, "commitWindow", ["default", "max"]);
    const maxNode = w.get("max");
    if (maxNode !== undefined) {
      commitWindow.max = r.integer(
        maxNode,
        "commitWindow.max",
        2,
        WINDOW_CEILING,
      );
    }
    const defaultNode = w.get("default");
    if (defaultNode !== undefined) {
      commitWindow.default = r.integer(
        defaultNode,
        "commitWindow.default",
        2,
        commitWindow.max,
      );
    } else if (commitWindow.default > commitWindow.max) {
      commitWindow.default = commitWindow.max;
    }
  }

  let tls: ServiceConfig["tls"] = null;
  const tlsNode = props.get("tls");
  if (tlsNode !== undefined) {
    const t = r.properties(tlsNode, "tls", ["cert", "key"]);
    const certNode = t.get("cert");
    const keyNode = t.get("key");
    if (certNode === undefined) r.fail(tlsNode, "tls.cert", "is required");
    if (keyNode === undefined) r.fail(tlsNode, "tls.key", "is required");
    tls = {
      cert: r.path(certNode, "tls.cert"),
      key: r.path(keyNode, "tls.key"),
    };
  }

  const log = { maxBytes: 10 * 1024 * 1024, files: 5 };
  const logNode = props.get("log");
  if (logNode !== undefined) {
    const l = r.properties(logNode, "log", ["maxBytes", "files"]);
    const maxBytesNode = l.get("maxBytes");
    if (maxBytesNode !== undefined) {
      log.maxBytes = r.integer(maxBytesNode, "log.maxBytes", 4096, 2 ** 32);
    }
    const filesNode = l.get("files");
    if (filesNode !== undefined) {
      log.files = r.integer(filesNode, "log.files", 1, 100);
    }
  }

  const maxGenerationsNode = props.get("maxGenerations");
  const maxGenerations = maxGenerationsNode === undefined
    ? 20
    : r.integer(maxGenerationsNode, "maxGenerations", 2, 10_000);

  const driftNode = props.get("driftCheckSeconds");
  const driftCheckSeconds = driftNode === undefined
    ? 60
    : r.integer(driftNode, "driftCheckSeconds", 0, 86_400);

  return {
    source,
    host,
    listen,
    trust,
    stateDir,
    engine,
    groups,
    logDir,
    wfpLibrary,
    nftLibrary,
    wfpMode,
    commitWindow,
    tls,
    log,
    maxGenerations,
    driftCheckSeconds,
  };
}

function parseListen(r: Reader, node: Node): ListenAddress {
  const text = r.string(node, "listen");
  if (text.startsWith("/") || text.startsWith(".")) {
    return { kind: "unix", path: r.path(node, "listen"), text };
  }
  const v6 = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text);
  const v4 = /^([0-9.]+):(\d{1,5})$/.exec(text);
  const match = v6 ?? v4;
  if (match === null) {
    r.fail(
      node,
      "listen",
      `must be IPv4:PORT, [IPv6]:PORT or a Unix socket path, got "${text}"`,
    );
  }
  const hostname = match[1];
  if (v4 !== null && !IPV4.test(hostname)) {
    r.fail(node, "listen", `has an invalid IPv4 address "${hostname}"`);
  }
  if (v6 !== null && !isIpv6(hostname)) {
    r.fail(node, "listen", `has an invalid IPv6 address "${hostname}"`);
  }
  const port = Number(match[2]);
  if (port < 1 || port > 65535) {
    r.fail(node, "listen", `port must be between 1 and 65535, got ${port}`);
  }
  return { kind: "tcp", hostname, port, text };
}

function isIpv6(text: string): boolean {
  try {
    return new URL(`http://[${text}]/`).hostname.length > 2;
  } catch {
    return false;
  }
}

/**
 * Reads and validates the config file at `path`.
 *
 * @throws {ConfigError} unreadable file or invalid content
 */
export async function loadConfig(path: string): Promise<ServiceConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    const why = error instanceof Deno.errors.NotCapable
      ? `reading it is not granted; run with --allow-read=${path}`
      : (error as Error).message;
    throw new ConfigError(`Cannot load config ${path}: ${why}`, {
      key: null,
      source: path,
      line: 0,
      column: 0,
    });
  }
  return parseConfig(text, path);
}
