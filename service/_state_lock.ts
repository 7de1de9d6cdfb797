/**
 * The single-instance lock of the service: an exclusive `flock` on
 * `<stateDir>/lock`, taken before the engine is touched, so that a
 * second service on the same state folder refuses to start instead of
 * re-applying or failing open under the running one. The kernel drops
 * the lock when the holder exits, even on SIGKILL.
 *
 * @module
 */

/** Time allowed to take the lock before the start is refused. */
export const LOCK_TIMEOUT_MS = 1_500;

/** Another service holds the lock; the start is refused. */
export class StateLockError extends Error {
  /** The lock file. */
  readonly path: string;

  constructor(message: string, path: string) {
    super(message);
    this.name = "StateLockError";
    this.path = path;
  }
}

/** A held (or, on a read-only folder without a lock file, absent) lock. */
export interface StateLock extends Disposable {
  readonly path: string;
  /** False when no lock could be taken (read-only folder, no file). */
  readonly held: boolean;
  /** Why the lock is not held, or null. */
  readonly warning: string | null;
  /** Releases the lock; safe to call twice. */
  close(): void;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isWriteRefusal(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return error instanceof Deno.errors.PermissionDenied ||
    error instanceof Deno.errors.NotCapable ||
    code === "EROFS" || code === "EACCES" || code === "EPERM";
}

async function openLockFile(
  path: string,
): Promise<{ file: Deno.FsFile; writable: boolean } | null> {
  try {
    const file = await Deno.open(path, {
      read: true,
      write: true,
      create: true,
      mode: 0o600,
    });
    return { file, writable: true };
  } catch (error) {
    if (!isWriteRefusal(error) && !(error instanceof Deno.errors.NotFound)) {
      throw error;
    }
  }
  // A read-only state folder: an existing lock file can still be locked.
  try {
    return { file: await Deno.open(path, { read: true }), writable: false };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

async function holderOf(path: string): Promise<string> {
  try {
    const text = (await Deno.readTextFile(path)).trim();
    const value = JSON.parse(text) as { pid?: unknown; listen?: unknown };
    const parts: string[] = [];
    if (typeof value.pid === "number") parts.push(`pid ${value.pid}`);
    if (typeof value.listen === "string") {
      parts.push(`listening on ${value.listen}`);
    }
    return parts.length > 0 ? ` (${parts.join(", ")})` : "";
  } catch {
    return "";
  }
}

/**
 * Takes the exclusive lock on `<stateDir>/lock`, waiting at most
 * `timeoutMs`. On a read-only state folder an existing lock file is
 * opened read-only and locked; when there is none, it returns a lock
 * with `held: false` and a warning.
 *
 * @param stateDir the state folder (created when missing and writable)
 * @param info written into the lock file to name this instance
 * @throws {StateLockError} another service holds the lock
 * @throws {Error} the lock file cannot be opened for another reason
 */
export async function acquireStateLock(
  stateDir: string,
  info: { listen: string },
  timeoutMs: number = LOCK_TIMEOUT_MS,
): Promise<StateLock> {
  const path = `${stateDir}/lock`;
  try {
    await Deno.mkdir(stateDir, { recursive: true, mode: 0o700 });
  } catch {
    // A read-only or missing-grant folder: opening the file decides.
  }
  let opened;
  try {
    opened = await openLockFile(path);
  } catch (error) {
    throw new Error(
      `Cannot open the single-instance lock ${path}: ${messageOf(error)}`,
      { cause: error },
    );
  }
  if (opened === null) {
    return {
      path,
      held: false,
      warning: `the state folder is read-only and has no lock file ${path}; ` +
        "a second service on this folder cannot be detected",
      close() {},
      [Symbol.dispose]() {},
    };
  }
  const { file, writable } = opened;

  let timer: ReturnType<typeof setTimeout> | undefined;
  let failure: unknown = null;
  const outcome = await Promise.race([
    // Never rejects: a late outcome after the timeout is dropped.
    file.lock(true).then(() => "locked" as const, (error) => {
      failure = error;
      return "failed" as const;
    }),
    new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    }),
  ]).finally(() => clearTimeout(timer));
  if (outcome === "failed") {
    file.close();
    throw new Error(
      `Cannot take the single-instance lock ${path}: ${messageOf(failure)}`,
      { cause: failure },
    );
  }
  if (outcome === "timeout") {
    file.close();
    throw new StateLockError(
      `Cannot start: another Palisade service${await holderOf(path)} ` +
        `holds the single-instance lock ${path} of state folder ` +
        `${stateDir}; stop it first (this service changed nothing)`,
      path,
    );
  }

  if (writable) {
    try {
      await file.truncate(0);
      await file.write(
        new TextEncoder().encode(
          JSON.stringify({
            pid: Deno.pid,
            listen: info.listen,
            since: new Date().toISOString(),
          }) + "\n",
        ),
      );
    } catch {
      // The lock itself holds; the holder's name is a courtesy.
    }
  }

  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      file.close();
    } catch {
      // Already closed.
    }
  };
  return {
    path,
    held: true,
    warning: null,
    close,
    [Symbol.dispose]: close,
  };
}
