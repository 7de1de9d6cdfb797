/**
 * Counters and gauges of the service, rendered in the Prometheus text
 * exposition format. Counters are fed by the policy manager's events;
 * gauges are read from its status when the endpoint is scraped.
 *
 * @module
 */

/** Upper bounds (seconds) of the apply latency histogram buckets. */
export const APPLY_BUCKETS = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/** What {@linkcode Metrics.render} reads at scrape time. */
export interface MetricsSnapshot {
  state: string;
  activeGeneration: number | null;
  activeRules: number;
  pending: boolean;
  secondsLeft: number | null;
  stateWritable: boolean;
  counters: { id: string; packets: bigint; bytes: bigint }[];
}

/** The service's metrics. */
export class Metrics {
  applies = 0;
  aborts = 0;
  reverts = 0;
  confirms = 0;
  failOpens = 0;
  readBackMismatches = 0;
  drifts = 0;
  readonly refusals = new Map<string, number>();
  readonly httpResponses = new Map<string, number>();
  readonly #buckets = APPLY_BUCKETS.map(() => 0);
  #applyCount = 0;
  #applySum = 0;

  /**
   * Counts one manager event (`apply.commit`, `apply.abort`, `revert`,
   * `confirm`, `failopen`, `readback.mismatch`, `drift`, `refused`); other events
   * are ignored.
   */
  observe(event: { event: string; [field: string]: unknown }): void {
    switch (event.event) {
      case "apply.commit": {
        this.applies++;
        const ms = Number(event.durationMs);
        if (Number.isFinite(ms)) this.observeApply(ms / 1000);
        break;
      }
      case "apply.abort":
        this.aborts++;
        break;
      case "revert":
        this.reverts++;
        break;
      case "confirm":
        this.confirms++;
        break;
      case "failopen":
        this.failOpens++;
        break;
      case "readback.mismatch":
        this.readBackMismatches++;
        break;
      case "drift":
        this.drifts++;
        break;
      case "refused": {
        const reason = String(event.code ?? event.reason ?? "unknown");
        this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
        break;
      }
    }
  }

  /** Adds one apply duration in seconds to the histogram. */
  observeApply(seconds: number): void {
    this.#applyCount++;
    this.#applySum += seconds;
    for (const [i, bound] of APPLY_BUCKETS.entries()) {
      if (seconds <= bound) this.#buckets[i]++;
    }
  }

  /** Counts one HTTP response by route and status. */
  observeResponse(route: string, status: number): void {
    const key = `${route} ${status}`;
    this.httpResponses.set(key, (this.httpResponses.get(key) ?? 0) + 1);
  }

  /**
   * Renders every metric as Prometheus text.
   *
   * @example
   * ```ts
   * import { Metrics } from "./metrics.ts";
   * const metrics = new Metrics();
   * metrics.observe({ event: "refused", code: "bad-signature" });
   * const text = metrics.render({
   *   state: "idle", activeGeneration: null, activeRules: 0,
   *   pending: false, secondsLeft: null, stateWritable: true, counters: [],
   * });
   * if (!text.includes('palisade_refusals_total{reason="bad-signature"} 1')) {
   *   throw new Error(text);
   * }
   * ```
   */
  render(snapshot: MetricsSnapshot): string {
    const out: string[] = [];
    const metric = (
      name: string,
      type: string,
      help: string,
      samples: [string, number | bigint][],
    ) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) {
        out.push(`${name}${labels} ${value}`);
      }
    };

    metric("palisade_applies_total", "counter", "Transactions committed.", [[
      "",
      this.applies,
    ]]);
    metric("palisade_apply_aborts_total", "counter", "Transactions aborted.", [
      ["", this.aborts],
    ]);
    metric(
      "palisade_reverts_total",
      "counter",
      "Reverts to the last known good or to empty.",
      [["", this.reverts]],
    );
    metric("palisade_confirms_total", "counter", "Generations confirmed.", [[
      "",
      this.confirms,
    ]]);
    metric(
      "palisade_failopen_total",
      "counter",
      "Times every Palisade object was removed as a last resort.",
      [["", this.failOpens]],
    );
    metric(
      "palisade_readback_mismatches_total",
      "counter",
      "Read-backs where the engine did not hold the expected policy.",
      [["", this.readBackMismatches]],
    );
    metric(
      "palisade_drift_total",
      "counter",
      "Periodic read-backs that found the engine changed from outside.",
      [["", this.drifts]],
    );
    metric(
      "palisade_engine_drifted",
      "gauge",
      "1 while the live engine differs from the active policy.",
      [["", snapshot.state === "drifted" ? 1 : 0]],
    );
    metric(
      "palisade_refusals_total",
      "counter",
      "Requests refused, by reason.",
      [...this.refusals].sort().map(([reason, n]) => [
        `{reason="${escapeLabel(reason)}"}`,
        n,
      ]),
    );

    out.push(
      "# HELP palisade_apply_duration_seconds Time to apply one transaction.",
      "# TYPE palisade_apply_duration_seconds histogram",
    );
    for (const [i, bound] of APPLY_BUCKETS.entries()) {
      out.push(
        `palisade_apply_duration_seconds_bucket{le="${bound}"} ${
          this.#buckets[i]
        }`,
      );
    }
    out.push(
      `palisade_apply_duration_seconds_bucket{le="+Inf"} ${this.#applyCount}`,
      `palisade_apply_duration_seconds_sum ${this.#applySum}`,
      `palisade_apply_duration_seconds_count ${this.#applyCount}`,
    );

    metric("palisade_active_rules", "gauge", "Rules of the active policy.", [[
      "",
      snapshot.activeRules,
    ]]);
    metric(
      "palisade_active_generation",
      "gauge",
      "Active generation number (0: none).",
      [["", snapshot.activeGeneration ?? 0]],
    );
    metric("palisade_pending", "gauge", "1 while a commit window is open.", [[
      "",
      snapshot.pending ? 1 : 0,
    ]]);
    metric(
      "palisade_window_seconds_left",
      "gauge",
      "Seconds left in the open commit window (0: none).",
      [["", snapshot.secondsLeft ?? 0]],
    );
    metric(
      "palisade_failed_open",
      "gauge",
      "1 when the service has removed its objects after a failure.",
      [["", snapshot.state === "failed-open" ? 1 : 0]],
    );
    metric(
      "palisade_state_writable",
      "gauge",
      "1 when the state folder accepts writes.",
      [["", snapshot.stateWritable ? 1 : 0]],
    );
    metric(
      "palisade_rule_packets_total",
      "counter",
      "Packets matched per rule ID.",
      snapshot.counters.map((
        c,
      ) => [`{rule="${escapeLabel(c.id)}"}`, c.packets]),
    );
    metric(
      "palisade_rule_bytes_total",
      "counter",
      "Bytes matched per rule ID.",
      snapshot.counters.map((c) => [`{rule="${escapeLabel(c.id)}"}`, c.bytes]),
    );
    metric(
      "palisade_http_responses_total",
      "counter",
      "Control API responses by route and status.",
      [...this.httpResponses].sort().map(([key, n]) => {
        const [route, status] = key.split(" ");
        return [
          `{route="${escapeLabel(route)}",status="${status}"}`,
          n,
        ];
      }),
    );
    return out.join("\n") + "\n";
  }
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(
    /\n/g,
    "\\n",
  );
}
