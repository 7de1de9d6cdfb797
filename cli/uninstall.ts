/**
 * `palisade uninstall [--config PATH] [--yes]`: panic, then removes the
 * folders and the service unit Palisade installed, listing each.
 *
 * @module
 */
import { parse as parseJsonc } from "jsonc-parser";
import {
  DEFAULT_CONFIG_PATH,
  parseConfig,
  removeEngineObjects,
} from "../mod.ts";
import { parseFlags, printError } from "./_common.ts";
import { describeRemoved, engineFlag } from "./_engine.ts";

const DEFAULT_UNIT = "/etc/systemd/system/palisade.service";
const DEFAULT_CONFIG_DIR = "/etc/palisade";
const DEFAULT_STATE_DIR = "/var/lib/palisade";
const DEFAULT_LOG_DIR = "/var/log/palisade";

const HELP =
  `Usage: palisade uninstall [--yes] [--config PATH] [--config-dir DIR]
                          [--state-dir DIR] [--log-dir DIR] [--unit PATH]
                          [--engine nft|wfp] [--wfp-library PATH]
                          [--nft-library PATH]

Removes every firewall object Palisade owns (as panic does), then the
state folder, the log folder, the config folder and the systemd unit,
listing each path removed. Folders and engine come from the config
when it can be read, else from the defaults; flags override both.
Without --yes it only lists what it would remove.

Flags:
  --yes               remove without asking
  --config PATH       service config (default ${DEFAULT_CONFIG_PATH})
  --config-dir DIR    config folder (default /etc/palisade)
  --state-dir DIR     state folder (default: config, else /var/lib/palisade)
  --log-dir DIR       log folder (default: config, else /var/log/palisade)
  --unit PATH         systemd unit (default ${DEFAULT_UNIT})
  --engine nft|wfp    engine to clean (default: config, else this OS's)
  --wfp-library PATH  fwpuclnt.dll or the WFP simulator library
  --nft-library PATH  libnftables
  --help              show this help

Exit codes: 0 removed (or nothing left), 1 anything else.`;

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

  const configPath = values.config ?? DEFAULT_CONFIG_PATH;
  const installed = await readInstalled(configPath);
  if (installed.note) console.log(installed.note);
  const paths = [
    values["state-dir"] ?? installed.stateDir ?? DEFAULT_STATE_DIR,
    values["log-dir"] ?? installed.logDir ?? DEFAULT_LOG_DIR,
    values["config-dir"] ?? DEFAULT_CONFIG_DIR,
    configPath,
    values.unit ?? DEFAULT_UNIT,
  ];
  const present: string[] = [];
  for (const path of new Set(paths)) {
    const unsafe = unsafePath(path);
    if (unsafe !== null) {
      printError("uninstall", new Error(`Cannot remove ${path}: ${unsafe}`));
      return 1;
    }
    if (await exists(path)) present.push(path);
  }

  const engine = engineFlag(values.engine ?? installed.engine);
  if (!values.yes) {
    console.log(`would remove every Palisade object from the ${engine} engine`);
    for (const path of present) console.log(`would remove ${path}`);
    console.log("run again with --yes to remove them");
    return 1;
  }

  try {
    const removed = removeEngineObjects({
      engine,
      wfpLibrary: values["wfp-library"] ?? installed.wfpLibrary,
      nftLibrary: values["nft-library"] ?? installed.nftLibrary,
    });
    console.log(describeRemoved(removed));
  } catch (error) {
    // Files stay, so that a later attempt still finds the config.
    printError("uninstall", error);
    return 1;
  }

  for (const path of present) {
    if (!(await exists(path))) continue; // inside a folder removed before
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
  if (present.length === 0) console.log("no files to remove");
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

/** Why removing `path` recursively would be reckless, or null. */
function unsafePath(path: string): string | null {
  if (!path.startsWith("/")) return "the path is not absolute";
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) return "the path contains ..";
  if (parts.length < 2) return "refusing to remove a top-level folder";
  return null;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
