import assert from "node:assert/strict";
import { Metrics } from "./metrics.ts";

Deno.test("Metrics counts manager events and renders Prometheus text", () => {
  const metrics = new Metrics();
  metrics.observe({ event: "apply.commit", durationMs: 7 });
  metrics.observe({ event: "apply.commit", durationMs: 300 });
  metrics.observe({ event: "apply.abort" });
  metrics.observe({ event: "revert" });
  metrics.observe({ event: "refused", code: "replayed" });
  metrics.observe({ event: "refused", code: "replayed" });
  metrics.observe({ event: "watchdog.armed" });
  metrics.observeResponse("/v1/status", 200);
  const text = metrics.render({
    state: "pending",
    activeGeneration: 3,
    activeRules: 12,
    pending: true,
    secondsLeft: 40,
    stateWritable: true,
    counters: [{ id: "block-ssh", packets: 5n, bytes: 300n }],
  });
  for (
    const line of [
      "palisade_applies_total 2",
      "palisade_apply_aborts_total 1",
      "palisade_reverts_total 1",
      'palisade_refusals_total{reason="replayed"} 2',
      'palisade_apply_duration_seconds_bucket{le="0.005"} 0',
      'palisade_apply_duration_seconds_bucket{le="0.01"} 1',
      'palisade_apply_duration_seconds_bucket{le="0.5"} 2',
      'palisade_apply_duration_seconds_bucket{le="+Inf"} 2',
      "palisade_apply_duration_seconds_count 2",
      "palisade_active_rules 12",
      "palisade_pending 1",
      "palisade_window_seconds_left 40",
      'palisade_rule_packets_total{rule="block-ssh"} 5',
      'palisade_rule_bytes_total{rule="block-ssh"} 300',
      'palisade_http_responses_total{route="/v1/status",status="200"} 1',
    ]
  ) {
    assert.ok(text.split("\n").includes(line), `missing: ${line}`);
  }
  assert.ok(text.endsWith("\n"));
});

Deno.test("Metrics counts engine drift and shows it as a gauge", () => {
  const metrics = new Metrics();
  metrics.observe({ event: "drift", detail: "table missing" });
  const text = metrics.render({
    state: "drifted",
    activeGeneration: 1,
    activeRules: 1,
    pending: false,
    secondsLeft: null,
    stateWritable: true,
    counters: [],
  });
  assert.match(text, /^palisade_drift_total 1$/m);
  assert.match(text, /^palisade_engine_drifted 1$/m);
});
