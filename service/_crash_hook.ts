/**
 * The crash-point test hook. It exists for the reliability harness,
 * which SIGKILLs the service at a named step of apply, confirm, revert
 * or start-up. It is armed only when the process may read the
 * `PALISADE_CRASHPOINT` variable: the `serve` permission set grants no
 * environment access, so a production service never arms it.
 *
 * @module
 */

/** The variable naming the step at which the process kills itself. */
export const CRASHPOINT_ENV = "PALISADE_CRASHPOINT";

/**
 * A hook for the manager's `crashPoint` option that SIGKILLs this
 * process when called with the step named by `PALISADE_CRASHPOINT`, or
 * undefined when that variable is unset or may not be read.
 *
 * @example
 * ```ts
 * import { crashHookFromEnv } from "./_crash_hook.ts";
 *
 * // Without the variable (or the grant to read it) there is no hook.
 * const hook = crashHookFromEnv();
 * if (hook !== undefined) hook("not-a-step");
 * ```
 */
export function crashHookFromEnv(): ((name: string) => void) | undefined {
  const query = { name: "env", variable: CRASHPOINT_ENV } as const;
  if (Deno.permissions.querySync(query).state !== "granted") return undefined;
  const target = Deno.env.get(CRASHPOINT_ENV);
  if (target === undefined || target === "") return undefined;
  return (name: string) => {
    if (name === target) Deno.kill(Deno.pid, "SIGKILL");
  };
}
