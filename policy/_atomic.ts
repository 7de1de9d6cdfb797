/**
 * The file operations the generation store needs, behind a small
 * interface so that tests can inject a failing or read-only disk, and
 * the one place that turns an OS write error into a
 * {@linkcode StateWriteError}.
 *
 * @module
 */

/** Why a state write failed, as an operator would fix it. */
export type StateWriteCode = "read-only" | "disk-full" | "io";

/**
 * A write to the state directory failed. `code` says what to fix: a
 * read-only mount or missing permission, a full disk, or another I/O
 * error; `path` is the file that could not be written.
 */
export class StateWriteError extends Error {
  readonly code: StateWriteCode;
  readonly path: string;

  constructor(
    message: string,
    opts: { code: StateWriteCode; path: string; cause?: unknown },
  ) {
    super(message, { cause: opts.cause });
    this.name = "StateWriteError";
    this.code = opts.code;
    this.path = opts.path;
  }
}

/**
 * File operations on the state directory. Paths are absolute or relative
 * to the working directory; `writeAtomic` either replaces the file whole
 * or leaves it as it was.
 */
export interface StateFs {
  /** Reads a whole file. */
  readFile(path: string): Promise<Uint8Array>;
  /** Names of the entries of a directory (not recursive). */
  readDir(path: string): Promise<string[]>;
  /** Creates a directory and its parents when missing. */
  ensureDir(path: string): Promise<void>;
  /** Replaces `path` with `data`: temp file, fsync, rename, dir fsync. */
  writeAtomic(path: string, data: Uint8Array): Promise<void>;
  /** Removes a file; a missing file is not an error. */
  remove(path: string): Promise<void>;
}

const OS_CODES: Record<string, StateWriteCode> = {
  EROFS: "read-only",
  EACCES: "read-only",
  EPERM: "read-only",
  ENOSPC: "disk-full",
  EDQUOT: "disk-full",
};

/** Turns an error from a write to `path` into a StateWriteError. */
export function toStateWriteError(
  error: unknown,
  path: string,
): StateWriteError {
  if (error instanceof StateWriteError) return error;
  const os = (error as { code?: unknown })?.code;
  let code: StateWriteCode = typeof os === "string"
    ? OS_CODES[os] ?? "io"
    : "io";
  if (
    error instanceof Deno.errors.PermissionDenied ||
    error instanceof Deno.errors.NotCapable
  ) {
    code = "read-only";
  }
  const why = (error as Error)?.message ?? String(error);
  const fix = {
    "read-only":
      "the state directory is read-only or not writable by the service; " +
      "remount it read-write or grant write access",
    "disk-full": "the disk is full; free space on the state volume",
    "io": "an I/O error occurred; check the disk and the path",
  }[code];
  return new StateWriteError(
    `Cannot write state file ${path}: ${fix} (${why})`,
    { code, path, cause: error },
  );
}

function dirOf(path: string): string {
  const at = path.lastIndexOf("/");
  if (at < 0) return ".";
  return at === 0 ? "/" : path.slice(0, at);
}

function baseOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The prefix every temporary file of an atomic write starts with. */
export const TEMP_PREFIX = ".tmp-";

async function writeAll(file: Deno.FsFile, data: Uint8Array) {
  let done = 0;
  while (done < data.length) {
    const n = await file.write(data.subarray(done));
    if (n <= 0) {
      throw new Error("Cannot write file: the write made no progress");
    }
    done += n;
  }
}

/**
 * Replaces `path` with `data` atomically: a temporary file beside it,
 * written in full and fsynced, renamed over `path`, then the folder
 * fsynced so the rename itself survives a crash.
 *
 * @param opts.mode the new file's permission bits
 * @param opts.wrap turns a failure and the path it concerns (temporary
 *   file, target or folder) into the error thrown; the error as raised
 *   by default
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array,
  opts: { mode: number; wrap?: (error: unknown, path: string) => Error },
): Promise<void> {
  const wrap = opts.wrap ?? ((error: unknown) => error as Error);
  const dir = dirOf(path);
  const tmp = `${dir}/${TEMP_PREFIX}${baseOf(path)}-${randomHex(6)}`;
  try {
    using file = await Deno.open(tmp, {
      write: true,
      createNew: true,
      mode: opts.mode,
    });
    await writeAll(file, data);
    file.syncSync();
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw wrap(error, tmp);
  }

  try {
    await Deno.rename(tmp, path);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw wrap(error, path);
  }

  // The rename is durable only once the directory entry is on disk.
  // Limitation: directories cannot be opened for fsync on Windows, so
  // there the rename is as durable as the file system makes it.
  if (Deno.build.os === "windows") return;
  try {
    using handle = await Deno.open(dir, { read: true });
    handle.syncSync();
  } catch (error) {
    throw wrap(error, dir);
  }
}

/** The state file operations on the real file system. */
export const denoStateFs: StateFs = {
  readFile(path) {
    return Deno.readFile(path);
  },

  async readDir(path) {
    const names: string[] = [];
    for await (const entry of Deno.readDir(path)) names.push(entry.name);
    return names;
  },

  async ensureDir(path) {
    try {
      await Deno.mkdir(path, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw toStateWriteError(error, path);
    }
  },

  writeAtomic(path, data) {
    return writeFileAtomic(path, data, {
      mode: 0o600,
      wrap: toStateWriteError,
    });
  },

  async remove(path) {
    try {
      await Deno.remove(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw toStateWriteError(error, path);
    }
  },
};
