/**
 * The host service: reads its config, checks its grants, opens the log,
 * takes the single-instance lock of the state folder, loads the trust
 * store, binds its listen address (answering 503 `starting` for now),
 * and only then opens the engine and the policy manager (which recovers
 * a window left open by a crash and restores the last known good). A
 * second instance or a taken port therefore fails before any engine
 * change. Stopping finishes the operation in flight, closes every
 * handle and leaves the active policy in force.
 *
 * @module
 */
import type { Backend } from "../policy/backend.ts";
import {
  type CrashPoint,
  type ManagerEvent,
  PolicyManager,
} from "../policy/manager.ts";
import { loadTrustStore } from "../signing/mod.ts";
import { crashHookFromEnv } from "./_crash_hook.ts";
import { loadConfig, type ServiceConfig } from "./config.ts";
import { Logger } from "./logger.ts";
import { Metrics } from "./metrics.ts";
import { preflight } from "./preflight.ts";
import {
  type ControlServer,
  createManagerGate,
  startControlServer,
} from "./server.ts";
import { acquireStateLock, type StateLock } from "./_state_lock.ts";

export { StateLockError } from "./_state_lock.ts";

/** Options of {@linkcode startService}. */
export interface ServiceOptions {
  /** Config file path; `/etc/palisade/config.jsonc` in production. */
  configPath: string;
  /** Where console log lines go; `console.log` by default. */
  console?: ((line: string) => void) | null;
  /** Opens the engine (test seam); the config's engine by default. */
  openBackend?: (config: ServiceConfig) => Backend;
  /** Permission query (test seam); Deno's own by default. */
  query?: (d: Deno.PermissionDescriptor) => Deno.PermissionState;
  /** Passed to the manager: a throw simulates a crash at that step. */
  crashPoint?: (name: CrashPoint) => void;
}

/** A started service. */
export interface RunningService extends AsyncDisposable {
  readonly config: ServiceConfig;
  readonly manager: PolicyManager;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The address the control API listens on. */
  readonly addr: Deno.NetAddr | Deno.UnixAddr;
  /** Stops the service (safe to call twice); `reason` goes to the log. */
  stop(reason: string): Promise<void>;
  /** Resolves when the service has stopped. */
  readonly finished: Promise<void>;
}

/**
 * Starts the service: config → permission preflight → logger →
 * single-instance lock → trust store → listen (503 `starting`) →
 * engine → policy manager (recovery) → ready.
 *
 * @throws {ConfigError} bad config, naming key and position
 * @throws {PreflightError} a path or address outside the grants
 * @throws {StateLockError} another service holds the state folder
 * @throws {Error} the trust store, engine or listen address failed;
 *   everything opened so far is closed again
 */
export async function startService(
  opts: ServiceOptions,
): Promise<RunningService> {
  const config = await loadConfig(opts.configPath);
  preflight(config, opts.query);

  const logger = Logger.open({
    dir: config.logDir,
    maxBytes: config.log.maxBytes,
    files: config.log.files,
    console: opts.console,
  });
  const metrics = new Metrics();
  let backend: Backend | null = null;
  let manager: PolicyManager | null = null;
  let server: ControlServer | null = null;
  let lock: StateLock | null = null;
  try {
    logger.info("config", {
      source: config.source,
      host: config.host,
      listen: config.listen.text,
      engine: config.engine,
      stateDir: config.stateDir,
      logDir: config.logDir,
      tls: config.tls !== null,
      commitWindow: config.commitWindow,
      driftCheckSeconds: config.driftCheckSeconds,
    });
    // Before the engine is touched: a second service must change nothing.
    lock = await acquireStateLock(config.stateDir, {
      listen: config.listen.text,
    });
    if (!lock.held) {
      logger.warn("lock.unavailable", {
        path: lock.path,
        reason: lock.warning,
      });
    }
    const trust = await loadTrustStore(config.trust);
    let tls: { cert: string; key: string } | null = null;
    if (config.tls !== null) {
      tls = {
        cert: await Deno.readTextFile(config.tls.cert),
        key: await Deno.readTextFile(config.tls.key),
      };
    }

    // Bound before recovery, so that a taken address fails the start
    // before any engine change.
    const gate = createManagerGate();
    try {
      server = startControlServer({
        manager: gate.manager,
        host: config.host,
        logger,
        metrics,
        listen: config.listen,
        tls,
      });
    } catch (error) {
      const why = error instanceof Deno.errors.AddrInUse
        ? "the address is in use (another Palisade service or another " +
          "program listens there)"
        : error instanceof Error
        ? error.message
        : String(error);
      throw new Error(
        `Cannot listen on ${config.listen.text}: ${why}; nothing was changed`,
        { cause: error },
      );
    }

    if (opts.openBackend !== undefined) {
      backend = opts.openBackend(config);
    } else {
      // Loaded here so that the engine's native binding is only
      // imported by a service that uses it.
      const { openBackend } = await import("../policy/open_backend.ts");
      backend = openBackend({
        engine: config.engine,
        wfpLibrary: config.wfpLibrary,
        nftLibrary: config.nftLibrary,
        dynamic: config.wfpMode === "dynamic",
        crashPoint: crashHookFromEnv(),
      });
    }
    const onEvent = (event: ManagerEvent) => {
      logger.log(event);
      metrics.observe(event);
    };
    manager = await PolicyManager.open({
      backend: backend as Backend,
      stateDir: config.stateDir,
      trust,
      host: config.host,
      groups: config.groups,
      commitWindow: config.commitWindow,
      maxGenerations: config.maxGenerations,
      driftCheckSeconds: config.driftCheckSeconds,
      onEvent,
      crashPoint: opts.crashPoint ?? crashHookFromEnv(),
    });
    gate.ready(manager);
  } catch (error) {
    logger.error("start.failed", {
      message: error instanceof Error ? error.message : String(error),
    });
    await server?.shutdown();
    await manager?.close();
    backend?.close();
    lock?.close();
    logger.close();
    throw error;
  }

  const addr = (server as ControlServer).addr;
  logger.info("listening", {
    address: "path" in addr ? addr.path : `${addr.hostname}:${addr.port}`,
    tls: config.tls !== null,
  });

  let stopping: Promise<void> | null = null;
  let resolveFinished: () => void = () => {};
  const finished = new Promise<void>((resolve) => {
    resolveFinished = resolve;
  });
  const running = {
    server: server as ControlServer,
    manager,
    backend: backend as Backend,
    lock: lock as StateLock,
  };
  const stop = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      logger.info("stopping", { reason });
      await running.server.shutdown();
      await running.manager.close();
      running.backend.close();
      running.lock.close();
      logger.info("stop", { reason });
      logger.close();
      resolveFinished();
    })();
    return stopping;
  };

  return {
    config,
    manager,
    metrics,
    logger,
    addr,
    stop,
    finished,
    [Symbol.asyncDispose]: () => stop("disposed"),
  };
}
