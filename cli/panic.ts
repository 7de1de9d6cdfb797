/**
 * `palisade panic [--engine nft|wfp] [--wfp-library PATH]`: removes
 * every firewall object Palisade owns, without the service, its config
 * or its state.
 *
 * @module
 */
import { crashHookFromEnv, removeEngineObjects } from "../mod.ts";
import { parseFlags, printError } from "./_common.ts";
import { checkLibrary, chooseEngine, describeRemoved } from "./_engine.ts";

const HELP = `Usage: palisade panic [--engine nft|wfp] [--wfp-library PATH]
                      [--nft-library PATH]

Removes every firewall object Palisade owns in one transaction: on
nftables the whole table inet palisade, on WFP every object under
Palisade's provider. Reads no config and no state and needs no running
service. Running it again is harmless ("nothing to remove").

Flags:
  --engine nft|wfp     engine to clean (default: the one a library flag
                       names, else this OS's own: nft on Linux, wfp on
                       Windows)
  --wfp-library PATH   fwpuclnt.dll or the WFP simulator library;
                       implies --engine wfp
  --nft-library PATH   libnftables (default: the system library);
                       implies --engine nft
  --help               show this help

Exit codes: 0 removed or nothing to remove, 1 anything else.`;

/** Runs the `panic` command and returns its exit code. */
export function panic(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    engine: { type: "string" },
    "wfp-library": { type: "string" },
    "nft-library": { type: "string" },
    help: { type: "boolean" },
  }, { min: 0, max: 0, names: "no arguments" });
  if (values.help) {
    console.log(HELP);
    return Promise.resolve(0);
  }
  try {
    const flags = {
      engine: values.engine,
      wfpLibrary: values["wfp-library"],
      nftLibrary: values["nft-library"],
    };
    const engine = chooseEngine(flags);
    checkLibrary("--wfp-library", flags.wfpLibrary);
    checkLibrary("--nft-library", flags.nftLibrary);
    const removed = removeEngineObjects({
      ...flags,
      engine,
      // Armed only where the environment may be read: never under the
      // panic permission set, which grants none.
      crashPoint: crashHookFromEnv(),
    });
    console.log(describeRemoved(removed));
    return Promise.resolve(0);
  } catch (error) {
    printError("panic", error);
    return Promise.resolve(1);
  }
}
