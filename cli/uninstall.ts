/**
 * `palisade uninstall [--config PATH] [--dry-run]`: panic, then removes
 * the folders and the service unit Palisade installed, listing each.
 *
 * @module
 */
import { dirname, isAbsolute, join, normalize, sep } from "node:path";
import { parse as parseJsonc } from "jsonc-parser";
import {
  crashHookFromEnv,
  DEFAULT_CONFIG_PATH,
  openBackend,
  type OpenBackendOptions,
  parseConfig,
  removeEngineObjects,
} from "../mod.ts";
import { parseFlags, printError } from "./_common.ts";
import { checkLibrary, chooseEngine, describeRemoved } from "./_engine.ts";

const DEFAULT_UNIT = "/etc/systemd/system/palisade.service";
const DEFAULT_CONFIG_DIR = "/etc/palisade";
const DEFAULT_STATE_DIR = "/var/lib/palisade";
const DEFAULT_LOG_DIR = "/var/log/palisade";

const HELP =
  `Usage: palisade uninstall [--dry-run] [--config PATH] [--config-dir DIR]
                          [--state-dir DIR] [--log-dir DIR] [--unit PATH]
                          [--engine nft|wfp] [--wfp-library PATH]
                          [--nft-library PATH]

Removes every firewall object Palisade owns (as panic does), then the
state folder, the log folder, the config folder and the systemd unit,
listing each path removed. Folders and engine come from the config
when it can be read, else from the defaults; flags override both.
Relative paths are taken from the working folder. Running it again is
harmless ("nothing left").

Flags:
  --dry-run           only list what it would remove; change nothing
  --config PATH       service config (default ${DEFAULT_CONFIG_PATH});
                      its folder is the config folder unless
                      --config-dir says otherwise
  --config-dir DIR    config folder (default /etc/palisade)
  --state-dir DIR     state folder (default: config, else /var/lib/palisade)
  --log-dir DIR       log folder (default: config, else /var/log/palisade)
  --unit PATH         systemd unit (default ${DEFAULT_UNIT})
  --engine nft|wfp    engine to clean (default: the one a library flag
                      names, else the config's, else this OS's)
  --wfp-library PATH  fwpuclnt.dll or the WFP simulator; implies wfp
  --nft-library PATH  libnftables; implies nft
  --yes               accepted for older scripts; removing is the default
  --help              show this help

Exit codes: 0 removed, listed (--dry-run) or nothing left, 1 anything
else.`;

/** A path uninstall removes, and how the operator names another one. */
interface Target {
  path: string;
  /** The flag that names it, with its value: "--unit PATH". */
  flag: string;
  /** Neither a flag nor the config named it. */
  isDefault: boolean;
}

/** What the config says, as far as it can be read. */
interface InstalledPaths {
  stateDir?: string;
  logDir?: string;
  engine?: string;
  wfpLibrary?: string;
  nftLibrary?: string;
  note?: string;
}

/** Runs the `uninstall` command and returns its exit code. */
export async function uninstall(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    "dry-run": { type: "boolean" },
    yes: { type: "boolean" },
    config: { type: "string" },
    "config-dir": { type: "string" },
    "state-dir": { type: "string" },
    "log-dir": { type: "string" },
    unit: { type: "string" },
    engine: { type: "string" },
    "wfp-library": { type: "string" },
    "nft-library": { type: "string" },
    help: { type: "boolean" },
  }, { min: 0, max: 0, names: "no arguments" });
  if (values.help) {
    console.log(HELP);
    return 0;
  }

  const configPath = resolve(values.config ?? DEFAULT_CONFIG_PATH);
  const installed = await readInstalled(configPath);
  if (installed.note) console.log(installed.note);
  const configDir = values["config-dir"] ??
    (values.config === undefined ? DEFAULT_CONFIG_DIR : dirname(configPath));
  const target = (
    value: string | undefined,
    fromConfig: string | undefined,
    fallback: string,
    flag: string,
  ): Target => ({
    path: resolve(value ?? fromConfig ?? fallback),
    flag,
    isDefault: value === undefined && fromConfig === undefined,
  });
  const wanted: Target[] = [
    target(
      values["state-dir"],
      installed.stateDir,
      DEFAULT_STATE_DIR,
      "--state-dir DIR",
    ),
    target(
      values["log-dir"],
      installed.logDir,
      DEFAULT_LOG_DIR,
      "--log-dir DIR",
    ),
    target(
      values["config-dir"],
      values.config === undefined ? undefined : configDir,
      DEFAULT_CONFIG_DIR,
      "--config-dir DIR",
    ),
    target(values.config, undefined, DEFAULT_CONFIG_PATH, "--config PATH"),
    target(values.unit, undefined, DEFAULT_UNIT, "--unit PATH"),
  ];
  const listed = wanted.filter((t, i) =>
    wanted.findIndex((other) => other.path === t.path) === i &&
    !wanted.some((other) => other.path !== t.path && inside(t.path, other.path))
  );
  const present: string[] = [];
  let skipped = 0;
  try {
    for (const { path, flag, isDefault } of listed) {
      const unsafe = unsafePath(path);
      if (unsafe !== null) throw new Error(`Cannot remove ${path}: ${unsafe}`);
      const found = await exists(path);
      if (found === "not granted") {
        const grant = `--allow-read=${path} --allow-write=${path}`;
        if (!isDefault) {
          throw new Error(
            `Cannot check ${path}: this command may not read it; run ` +
              `'deno run ${grant} …' to include it`,
          );
        }
        console.log(
          `skipped ${path}: not granted to this command (name the real ` +
            `one with ${flag}, or grant ${grant})`,
        );
        skipped++;
      } else if (found) present.push(path);
    }
  } catch (error) {
    printError("uninstall", error);
    return 1;
  }

  const flags = {
    engine: values.engine,
    wfpLibrary: values["wfp-library"],
    nftLibrary: values["nft-library"],
  };
  let engine: "nft" | "wfp";
  try {
    engine = chooseEngine(flags, installed.engine);
    checkLibrary("--wfp-library", flags.wfpLibrary);
    checkLibrary("--nft-library", flags.nftLibrary);
  } catch (error) {
    printError("uninstall", error);
    return 1;
  }
  const library = {
    wfpLibrary: flags.wfpLibrary ?? installed.wfpLibrary,
    nftLibrary: flags.nftLibrary ?? installed.nftLibrary,
  };
  if (values["dry-run"]) {
    let holds: boolean;
    try {
      holds = engineHoldsObjects({ engine, ...library });
    } catch (error) {
      printError(
        "uninstall",
        new Error(
          `Cannot look into the ${engine} engine: ${(error as Error).message}`,
        ),
      );
      return 1;
    }
    console.log(
      holds
        ? `would remove every Palisade object from the ${engine} engine`
        : `no Palisade objects in the ${engine} engine`,
    );
    for (const path of present) console.log(`would remove ${path}`);
    if (present.length === 0) console.log("no files to remove");
    return 0;
  }

  let objects: number;
  try {
    const removed = removeEngineObjects({
      engine,
      ...library,
      crashPoint: crashHookFromEnv(),
    });
    objects = removed.count;
    if (removed.count > 0) console.log(describeRemoved(removed));
  } catch (error) {
    // Files stay, so that a later attempt still finds the config.
    printError("uninstall", error);
    return 1;
  }

  for (const path of present) {
    try {
      await Deno.remove(path, { recursive: true });
    } catch (error) {
      printError(
        "uninstall",
        new Error(`Cannot remove ${path}: ${(error as Error).message}`),
      );
      return 1;
    }
    console.log(`removed ${path}`);
  }
  if (objects === 0 && present.length === 0) {
    const unchecked = skipped === 0
      ? ""
      : ` (${skipped} default path(s) not checked, see above)`;
    console.log(
      `nothing left: no Palisade objects in the ${engine} engine and ` +
        `none of its files${unchecked}`,
    );
  } else if (objects === 0) {
    console.log(`no Palisade objects left in the ${engine} engine`);
  } else if (present.length === 0) {
    console.log("no files to remove");
  }
  // Limitation: a running service is not stopped and systemd is not
  // reloaded; run `systemctl disable --now palisade` first.
  return 0;
}

async function readInstalled(path: string): Promise<InstalledPaths> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return {};
    if (error instanceof Deno.errors.NotCapable) {
      return {
        note: `cannot read ${path}: not granted to this command; using ` +
          `the flags and the defaults`,
      };
    }
    return { note: `cannot read ${path}: ${(error as Error).message}` };
  }
  try {
    const config = parseConfig(text, path);
    return {
      stateDir: config.stateDir,
      logDir: config.logDir,
      engine: config.engine,
      wfpLibrary: config.wfpLibrary,
      nftLibrary: config.nftLibrary,
    };
  } catch (error) {
    // A broken config must not stop an uninstall: take what is legible.
    const value = parseJsonc(text) as Record<string, unknown> | undefined;
    const field = (key: string) =>
      typeof value?.[key] === "string" ? value[key] as string : undefined;
    const stateDir = field("stateDir");
    return {
      stateDir,
      logDir: field("logDir") ??
        (stateDir === undefined ? undefined : `${stateDir}/logs`),
      engine: field("engine"),
      wfpLibrary: field("wfpLibrary"),
      nftLibrary: field("nftLibrary"),
      note: `config ${path} is not valid (${
        (error as Error).message
      }); using the paths it names`,
    };
  }
}

/** Why removing `path` (absolute) recursively would be reckless, or null. */
function unsafePath(path: string): string | null {
  const parts = path.split(/[\\/]/).filter((p) => p !== "");
  if (parts.length < 2) return "refusing to remove a top-level folder";
  const cwd = workingFolder();
  if (cwd !== null && (path === cwd || inside(cwd, path))) {
    return "refusing to remove the working folder or a folder holding it";
  }
  return null;
}

/** Makes `path` absolute against the working folder, normalised. */
function resolve(path: string): string {
  const full = normalize(isAbsolute(path) ? path : join(Deno.cwd(), path));
  return full.length > 1 && full.endsWith(sep) ? full.slice(0, -1) : full;
}

/** The working folder, or null when this command may not read it. */
function workingFolder(): string | null {
  try {
    return Deno.cwd();
  } catch {
    return null; // then no relative path was resolved against it either
  }
}

/** Whether `path` lies below `folder` (both absolute and normalised). */
function inside(path: string, folder: string): boolean {
  return path.startsWith(folder.endsWith(sep) ? folder : folder + sep);
}

/**
 * Whether `path` exists, or "not granted" when this command's
 * permissions do not let it look.
 */
async function exists(path: string): Promise<boolean | "not granted"> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    if (error instanceof Deno.errors.NotCapable) return "not granted";
    throw error;
  }
}

/**
 * Whether the engine holds any Palisade object, read without changing
 * anything.
 */
function engineHoldsObjects(opts: OpenBackendOptions): boolean {
  using backend = openBackend(opts);
  // Limitation: on WFP this sees filters only; a provider or sublayer
  // left without filters reads as nothing to remove.
  return !backend.readBack(null).ok;
}
