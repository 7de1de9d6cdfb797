/**
 * Structured logging for the service: one JSON object per line, to the
 * console and to `<logDir>/palisade.log`, rotated by size into a fixed
 * number of files. Logging never throws: a log folder that cannot be
 * written turns file output off with one warning, and the service runs
 * on with console output only.
 *
 * @module
 */
import { joinPath as join } from "./_path.ts";

/** Severity of a log line. */
export type LogLevel = "info" | "warn" | "error";

/** One structured log line before its timestamp is added. */
export interface LogRecord {
  level: LogLevel;
  event: string;
  [field: string]: unknown;
}

/** Options of {@linkcode Logger.open}. */
export interface LoggerOptions {
  /** Folder of `palisade.log`; null logs to the console only. */
  dir: string | null;
  /** Size in bytes at which the current file is rotated. */
  maxBytes: number;
  /** Files kept, the current one included (`palisade.log`, `.1`, …). */
  files: number;
  /** Where console lines go; `console.log` by default. */
  console?: ((line: string) => void) | null;
  /** Clock for the `ts` field. */
  now?: () => Date;
}

/** Name of the current log file inside the log folder. */
export const LOG_FILE = "palisade.log";

const encoder = new TextEncoder();

/** A JSON-lines logger with size-based rotation. */
export class Logger implements Disposable {
  #file: Deno.FsFile | null = null;
  #size = 0;
  #fileError: string | null = null;
  #closed = false;
  readonly #opts: LoggerOptions;
  readonly #console: ((line: string) => void) | null;

  private constructor(opts: LoggerOptions) {
    this.#opts = opts;
    this.#console = opts.console === undefined
      ? (line) => console.log(line)
      : opts.console;
  }

  /**
   * Opens the logger. When the folder cannot be created or the file
   * cannot be opened, it logs a `log.file-unavailable` warning and keeps
   * to the console.
   *
   * @example
   * ```ts
   * import { Logger } from "./logger.ts";
   * const lines: string[] = [];
   * using log = Logger.open({
   *   dir: null, maxBytes: 4096, files: 2, console: (l) => lines.push(l),
   * });
   * log.info("start", { generation: 3 });
   * if (JSON.parse(lines[0]).event !== "start") throw new Error();
   * ```
   */
  static open(opts: LoggerOptions): Logger {
    const logger = new Logger(opts);
    if (opts.dir !== null) logger.#openFile();
    return logger;
  }

  /** Why file output is off, or null when it is on (or never asked). */
  get fileError(): string | null {
    return this.#fileError;
  }

  /** Path of the current log file, or null with console output only. */
  get path(): string | null {
    return this.#opts.dir === null ? null : join(this.#opts.dir, LOG_FILE);
  }

  /** Writes one record; never throws. */
  log(record: LogRecord): void {
    const { level, event, ...fields } = record;
    const ts = (this.#opts.now?.() ?? new Date()).toISOString();
    let line: string;
    try {
      line = JSON.stringify({ ts, level, event, ...fields }, replacer);
    } catch (error) {
      line = JSON.stringify({
        ts,
        level,
        event,
        logError: `Cannot serialise log fields: ${(error as Error).message}`,
      });
    }
    try {
      this.#console?.(line);
    } catch {
      // A closed stdout must not stop the service.
    }
    if (this.#file !== null) this.#write(line + "\n");
  }

  /** Logs an `info` event. */
  info(event: string, fields: Record<string, unknown> = {}): void {
    this.log({ ...fields, level: "info", event });
  }

  /** Logs a `warn` event. */
  warn(event: string, fields: Record<string, unknown> = {}): void {
    this.log({ ...fields, level: "warn", event });
  }

  /** Logs an `error` event. */
  error(event: string, fields: Record<string, unknown> = {}): void {
    this.log({ ...fields, level: "error", event });
  }

  /** Closes the log file; safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeFile();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #openFile(): void {
    const dir = this.#opts.dir as string;
    try {
      Deno.mkdirSync(dir, { recursive: true, mode: 0o750 });
      const path = join(dir, LOG_FILE);
      this.#file = Deno.openSync(path, {
        append: true,
        create: true,
        mode: 0o640,
      });
      this.#size = this.#file.statSync().size;
    } catch (error) {
      this.#disableFile(dir, error);
    }
  }

  #closeFile(): void {
    try {
      this.#file?.close();
    } catch {
      // Already closed.
    }
    this.#file = null;
  }

  #disableFile(where: string, error: unknown): void {
    this.#closeFile();
    this.#fileError = `Cannot write log file in ${where}: ${
      (error as Error).message
    }`;
    this.log({
      level: "warn",
      event: "log.file-unavailable",
      message: `${this.#fileError}; logging to the console only`,
    });
  }

  #write(text: string): void {
    const bytes = encoder.encode(text);
    try {
      if (this.#size > 0 && this.#size + bytes.length > this.#opts.maxBytes) {
        this.#rotate();
      }
      const file = this.#file as Deno.FsFile;
      let written = 0;
      while (written < bytes.length) {
        written += file.writeSync(bytes.subarray(written));
      }
      this.#size += bytes.length;
    } catch (error) {
      this.#disableFile(this.#opts.dir as string, error);
    }
  }

  #rotate(): void {
    const dir = this.#opts.dir as string;
    const name = (i: number) =>
      join(dir, i === 0 ? LOG_FILE : `${LOG_FILE}.${i}`);
    this.#closeFile();
    const last = this.#opts.files - 1;
    if (last === 0) {
      Deno.truncateSync(name(0), 0);
    } else {
      try {
        Deno.removeSync(name(last));
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      for (let i = last - 1; i >= 0; i--) {
        try {
          Deno.renameSync(name(i), name(i + 1));
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        }
      }
    }
    this.#file = Deno.openSync(name(0), {
      append: true,
      create: true,
      mode: 0o640,
    });
    this.#size = 0;
  }
}

function replacer(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Error) {
    return { name: value.name, message: value.message };
  }
  return value;
}
