/**
 * The Windows Filtering Platform engine behind the {@linkcode Backend}
 * interface. Palisade's filters live in its own sublayer under its own
 * provider (both named `palisade`, keys fixed in `ffi/wfp/guids.ts`),
 * at the ALE connect (out) and receive/accept (in) layers, v4 and v6.
 * Objects are persistent unless `dynamic` is set, so enforcement
 * survives a crash of the service; Palisade never installs a
 * default-deny, so what survives is explicit rules only.
 *
 * @module
 */
import {
  type FilterId,
  FWPM_FLAGS,
  layerName,
  PALISADE_OBJECT_NAME,
  PALISADE_PROVIDER_KEY,
  PALISADE_SUBLAYER_KEY,
  WFP_E,
  WFP_LAYERS,
  type WfpConditionValue,
  WfpEngine,
  WfpError,
  type WfpFilter,
  WfpLibrary,
} from "../ffi/wfp/mod.ts";
import {
  type ApplyStats,
  type Backend,
  EngineError,
  type ReadBack,
  type RuleCounter,
} from "./backend.ts";
import {
  type CompiledFilter,
  compileRule,
  filterSignature,
  freshWeights,
  planWeights,
} from "./_wfp_compile.ts";
import type { NormalPolicy, NormalRule } from "./types.ts";

/** Options of {@linkcode openWfpBackend}. */
export interface WfpBackendOptions {
  /** `fwpuclnt.dll` on Windows; the simulator's path in tests. */
  library: string;
  /**
   * Dynamic session: every object vanishes when the service's engine
   * handle closes (a crash included), so nothing enforces while the
   * service is down. Default false (persistent objects).
   */
  dynamic?: boolean;
}

/** Weight of Palisade's sublayer among all sublayers (middle of UINT16). */
export const PALISADE_SUBLAYER_WEIGHT = 0x8000;

const LAYER_KEYS = Object.values(WFP_LAYERS);

/** What the engine holds that concerns Palisade. */
interface LiveState {
  providerPresent: boolean;
  subLayerPresent: boolean;
  /** Filters under Palisade's provider. */
  ours: WfpFilter[];
  /**
   * Filters of other providers inside Palisade's sublayer; searched for
   * only when the sublayer is to be deleted (remove-all, panic).
   */
  foreign: WfpFilter[];
}

/** A rule's JSON text; memoised for the length of one operation. */
type RuleText = (rule: NormalRule) => string;

/** A fresh {@linkcode RuleText} (callers' rules may change between calls). */
function ruleTexts(): RuleText {
  const texts = new Map<NormalRule, string>();
  return (rule) => {
    let text = texts.get(rule);
    if (text === undefined) {
      text = JSON.stringify(rule);
      texts.set(rule, text);
    }
    return text;
  };
}

/** Signatures of compiled filters, computed once per filter object. */
const SIGNATURES = new WeakMap<CompiledFilter, string>();

function signatureOf(filter: CompiledFilter): string {
  let text = SIGNATURES.get(filter);
  if (text === undefined) {
    text = filterSignature({ ...filter, name: filter.ruleId });
    SIGNATURES.set(filter, text);
  }
  return text;
}

function toEngineError(error: unknown, ruleId?: string): unknown {
  if (error instanceof WfpError) {
    return new EngineError(error.message, {
      call: error.call,
      code: error.code,
      codeName: error.codeName,
      ruleId,
      transient: error.transient,
      cause: error,
    });
  }
  return error;
}

function describeForeign(filter: WfpFilter): string {
  return `filter ${filter.filterId} "${filter.name}" (provider ${
    filter.providerKey ?? "none"
  }, layer ${layerName(filter.layerKey)})`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameValue(a: WfpConditionValue, b: WfpConditionValue): boolean {
  switch (a.type) {
    case "empty":
      return b.type === "empty";
    case "uint8":
    case "uint16":
    case "uint32":
    case "uint64":
      return b.type === a.type && b.value === a.value;
    case "byteArray16":
    case "byteBlob":
      return b.type === a.type && sameBytes(a.value, b.value);
    case "v4AddrMask":
      return b.type === a.type && b.addr === a.addr && b.mask === a.mask;
    case "v6AddrMask":
      return b.type === a.type && b.prefixLength === a.prefixLength &&
        sameBytes(a.addr, b.addr);
    case "range":
      return b.type === a.type && sameValue(a.low, b.low) &&
        sameValue(a.high, b.high);
  }
}

/**
 * Whether a live filter is the compiled one (same as comparing their
 * {@linkcode filterSignature}s, without building them when the engine
 * kept the conditions in the order they were added).
 */
function matches(found: WfpFilter, expected: CompiledFilter): boolean {
  if (
    found.key !== expected.key || found.name !== expected.ruleId ||
    found.layerKey !== expected.layerKey ||
    found.action !== expected.action ||
    found.conditions.length !== expected.conditions.length
  ) {
    return false;
  }
  const inOrder = found.conditions.every((condition, i) => {
    const other = expected.conditions[i];
    return condition.field === other.field &&
      condition.match === other.match &&
      sameValue(condition.value, other.value);
  });
  // An engine may return the conditions in another order.
  return inOrder || filterSignature(found) === signatureOf(expected);
}

function weightOf(filter: WfpFilter): bigint | undefined {
  return filter.weight.type === "uint64" ? filter.weight.value : undefined;
}

class WfpBackend implements Backend {
  readonly engine = "wfp" as const;
  readonly #library: WfpLibrary;
  readonly #dynamic: boolean;
  #session: WfpEngine | null;
  /** Filters compiled by the last apply, by rule text and app ID. */
  #compiled = new Map<string, CompiledFilter[]>();

  constructor(library: WfpLibrary, session: WfpEngine, dynamic: boolean) {
    this.#library = library;
    this.#session = session;
    this.#dynamic = dynamic;
  }

  /** The engine session, reopened if an abort failure closed it. */
  #open(): WfpEngine {
    if (this.#library.closed) {
      throw new TypeError("Cannot use WFP backend: it is closed");
    }
    if (this.#session === null || this.#session.closed) {
      this.#session = WfpEngine.open(this.#library, { dynamic: this.#dynamic });
    }
    return this.#session;
  }

  /**
   * Reads provider, sublayer and Palisade's filters from the engine,
   * decoding each filter once. With `foreign`, also the filters of other
   * providers inside Palisade's sublayer (which block its deletion).
   */
  #readLive(engine: WfpEngine, foreign: boolean): LiveState {
    const provider = engine.getProvider(PALISADE_PROVIDER_KEY);
    if (provider && provider.name !== PALISADE_OBJECT_NAME) {
      throw new EngineError(
        `Cannot use WFP provider ${PALISADE_PROVIDER_KEY}: it is held by a foreign provider named "${provider.name}"; Palisade never deletes or adopts it`,
        {
          call: "FwpmProviderGetByKey0",
          code: WFP_E.FWP_E_ALREADY_EXISTS,
          codeName: "FWP_E_ALREADY_EXISTS",
        },
      );
    }
    const subLayer = engine.getSubLayer(PALISADE_SUBLAYER_KEY);
    if (subLayer && subLayer.name !== PALISADE_OBJECT_NAME) {
      throw new EngineError(
        `Cannot use WFP sublayer ${PALISADE_SUBLAYER_KEY}: it is held by a foreign sublayer named "${subLayer.name}"; Palisade never deletes or adopts it`,
        {
          call: "FwpmSubLayerGetByKey0",
          code: WFP_E.FWP_E_ALREADY_EXISTS,
          codeName: "FWP_E_ALREADY_EXISTS",
        },
      );
    }

    // Enumerate rather than remember, one enumeration per layer
    // Palisade uses: by provider, or every filter of the layer when
    // foreign filters in Palisade's sublayer are wanted too.
    const ours: WfpFilter[] = [];
    const others: WfpFilter[] = [];
    const everything = foreign && subLayer !== null;
    for (const layerKey of LAYER_KEYS) {
      // Limitation: only the four layers Palisade uses are searched for
      // foreign filters in its sublayer.
      const filters = engine.enumFilters(
        everything ? { layerKey } : {
          layerKey,
          providerKey: PALISADE_PROVIDER_KEY,
        },
      );
      for (const filter of filters) {
        if (filter.providerKey === PALISADE_PROVIDER_KEY) {
          ours.push(filter);
        } else if (filter.subLayerKey === PALISADE_SUBLAYER_KEY) {
          others.push(filter);
        }
      }
    }
    return {
      providerPresent: provider !== null,
      subLayerPresent: subLayer !== null,
      ours,
      foreign: others,
    };
  }

  /**
   * Application IDs of the `app` rules of `policy`. With `lenient`, an
   * application that cannot be resolved is left out instead of thrown.
   */
  #resolveApps(
    policy: NormalPolicy | null,
    lenient = false,
  ): Map<string, Uint8Array> {
    const ids = new Map<string, Uint8Array>();
    for (const rule of policy?.rules ?? []) {
      if (rule.app === undefined || ids.has(rule.app)) continue;
      try {
        ids.set(rule.app, this.#library.appIdFromFileName(rule.app));
      } catch (error) {
        if (!lenient) throw toEngineError(error, rule.id);
      }
    }
    return ids;
  }

  /**
   * Compiles `policy` with the application IDs `appIds`, reusing the
   * filters of identical rules compiled by the previous applies (a rule
   * compiles the same way wherever it sits; only its index changes).
   *
   * @throws {TypeError} a rule cannot be expressed on WFP
   */
  #compile(
    policy: NormalPolicy,
    appIds: ReadonlyMap<string, Uint8Array>,
    used: Map<string, CompiledFilter[]>,
    ruleText: RuleText,
  ): CompiledFilter[] {
    const out: CompiledFilter[] = [];
    policy.rules.forEach((rule, index) => {
      const appId = rule.app === undefined ? undefined : appIds.get(rule.app);
      const key = appId === undefined
        ? ruleText(rule)
        : `${ruleText(rule)}\0${appId.join(",")}`;
      let filters = used.get(key) ?? this.#compiled.get(key);
      if (filters === undefined) filters = compileRule(rule, index, appId);
      used.set(key, filters);
      for (const filter of filters) {
        if (filter.ruleIndex === index) {
          out.push(filter);
          continue;
        }
        const moved = { ...filter, ruleIndex: index };
        SIGNATURES.set(moved, signatureOf(filter));
        out.push(moved);
      }
    });
    return out;
  }

  /**
   * Compiles the policy the caller believes is installed; null when it
   * cannot be compiled any more (e.g. an application was uninstalled),
   * which makes the apply a full one. Rules that `next` has unchanged
   * take the application IDs just resolved for `next`.
   */
  #compileCurrent(
    current: NormalPolicy | null,
    next: NormalPolicy,
    nextApps: ReadonlyMap<string, Uint8Array>,
    used: Map<string, CompiledFilter[]>,
    ruleText: RuleText,
  ): CompiledFilter[] | null {
    if (current === null) return null;
    const nextRules = new Map(next.rules.map((r) => [r.id, r]));
    const changed = current.rules.filter((rule) => {
      const same = nextRules.get(rule.id);
      return same === undefined ||
        ruleText(same) !== ruleText(rule);
    });
    try {
      const apps = new Map(nextApps);
      const resolved = this.#resolveApps({ ...current, rules: changed }, true);
      for (const [app, id] of resolved) apps.set(app, id);
      return this.#compile(current, apps, used, ruleText);
    } catch {
      return null;
    }
  }

  /**
   * Whether the live filters are exactly the compiled `current`, with
   * one weight per rule, falling in rule order. Returns those weights.
   */
  #liveWeights(
    live: LiveState,
    current: CompiledFilter[],
    currentRules: NormalRule[],
  ): Map<string, bigint> | null {
    if (!live.providerPresent || !live.subLayerPresent) return null;
    if (live.ours.length !== current.length) return null;
    const byKey = new Map(live.ours.map((f) => [f.key as string, f]));
    const weights = new Map<string, bigint>();
    for (const expected of current) {
      const found = byKey.get(expected.key);
      if (!found || found.subLayerKey !== PALISADE_SUBLAYER_KEY) return null;
      if (!matches(found, expected)) return null;
      const weight = weightOf(found);
      if (weight === undefined) return null;
      const seen = weights.get(expected.ruleId);
      if (seen !== undefined && seen !== weight) return null;
      weights.set(expected.ruleId, weight);
    }
    let previous: bigint | undefined;
    for (const rule of currentRules) {
      const weight = weights.get(rule.id);
      if (weight === undefined) continue;
      if (previous !== undefined && weight >= previous) return null;
      previous = weight;
    }
    return weights;
  }

  #toFilter(compiled: CompiledFilter, weight: bigint): WfpFilter {
    return {
      key: compiled.key,
      name: compiled.ruleId,
      description: "palisade",
      flags: this.#dynamic ? 0 : FWPM_FLAGS.FWPM_FILTER_FLAG_PERSISTENT,
      providerKey: PALISADE_PROVIDER_KEY,
      layerKey: compiled.layerKey,
      subLayerKey: PALISADE_SUBLAYER_KEY,
      weight: { type: "uint64", value: weight },
      conditions: compiled.conditions,
      action: compiled.action,
    };
  }

  /**
   * Compiles `policy` to filters without opening a transaction; see
   * {@linkcode Backend.validate}. Application paths are resolved by
   * `apply` itself (a placeholder ID stands in for each here).
   *
   * @throws {TypeError} a rule cannot be expressed as WFP filters
   */
  validate(policy: NormalPolicy): void {
    const placeholder = new Uint8Array([0, 0]);
    policy.rules.forEach((rule, index) =>
      compileRule(rule, index, rule.app === undefined ? undefined : placeholder)
    );
  }

  apply(next: NormalPolicy, current: NormalPolicy | null): ApplyStats {
    const nextApps = this.#resolveApps(next);
    const used = new Map<string, CompiledFilter[]>();
    const ruleText = ruleTexts();
    const nextFilters = this.#compile(next, nextApps, used, ruleText);
    const currentFilters = this.#compileCurrent(
      current,
      next,
      nextApps,
      used,
      ruleText,
    );
    // Keep what this apply compiled (both policies) for the next one.
    this.#compiled = used;
    const stats = ruleDiff(next, current, ruleText);

    let ruleId: string | undefined;
    try {
      const engine = this.#open();
      return engine.transaction(() => {
        const live = this.#readLive(engine, false);
        const weights = current && currentFilters
          ? this.#liveWeights(live, currentFilters, current.rules)
          : null;
        if (weights && currentFilters) {
          const done = this.#incremental(
            engine,
            next,
            nextFilters,
            currentFilters,
            weights,
            (id) => ruleId = id,
          );
          if (done !== null) {
            return { ...stats, incremental: true, objects: done };
          }
        }

        let objects = 0;
        for (const filter of live.ours) {
          ruleId = filter.name;
          engine.deleteFilterById(filter.filterId as FilterId);
          objects++;
        }
        ruleId = undefined;
        objects += this.#ensureContainers(engine, live);
        const fresh = freshWeights(next.rules.length);
        for (const compiled of nextFilters) {
          ruleId = compiled.ruleId;
          engine.addFilter(this.#toFilter(compiled, fresh[compiled.ruleIndex]));
          objects++;
        }
        return { ...stats, incremental: false, objects };
      });
    } catch (error) {
      throw toEngineError(error, ruleId);
    }
  }

  /** Adds the provider and sublayer when missing; returns how many. */
  #ensureContainers(engine: WfpEngine, live: LiveState): number {
    let added = 0;
    if (!live.providerPresent) {
      engine.addProvider({
        key: PALISADE_PROVIDER_KEY,
        name: PALISADE_OBJECT_NAME,
        description: "Palisade host firewall",
        flags: this.#dynamic ? 0 : FWPM_FLAGS.FWPM_PROVIDER_FLAG_PERSISTENT,
      });
      added++;
    }
    if (!live.subLayerPresent) {
      engine.addSubLayer({
        key: PALISADE_SUBLAYER_KEY,
        name: PALISADE_OBJECT_NAME,
        description: "Palisade host firewall rules",
        flags: this.#dynamic ? 0 : FWPM_FLAGS.FWPM_SUBLAYER_FLAG_PERSISTENT,
        providerKey: PALISADE_PROVIDER_KEY,
        weight: PALISADE_SUBLAYER_WEIGHT,
      });
      added++;
    }
    return added;
  }

  /**
   * Deletes and adds only the filters of rules that changed, moved or
   * came and went. Returns null (nothing done) when the weight gaps are
   * used up, so the caller does a full apply in the same transaction.
   */
  #incremental(
    engine: WfpEngine,
    next: NormalPolicy,
    nextFilters: CompiledFilter[],
    currentFilters: CompiledFilter[],
    liveWeights: Map<string, bigint>,
    track: (ruleId: string | undefined) => void,
  ): number | null {
    const signatures = (filters: CompiledFilter[]) => {
      const out = new Map<string, string>();
      for (const f of filters) {
        out.set(f.ruleId, (out.get(f.ruleId) ?? "") + signatureOf(f));
      }
      return out;
    };
    const before = signatures(currentFilters);
    const after = signatures(nextFilters);

    const kept = new Map<string, bigint>();
    for (const [id, weight] of liveWeights) {
      if (before.get(id) === after.get(id)) kept.set(id, weight);
    }
    const ids = next.rules.map((r) => r.id);
    const weights = planWeights(ids, kept);
    if (weights === null) return null;
    const weightOfRule = new Map(ids.map((id, i) => [id, weights[i]]));

    const rewrite = new Set<string>();
    for (const id of ids) {
      if (liveWeights.get(id) !== weightOfRule.get(id)) rewrite.add(id);
      else if (before.get(id) !== after.get(id)) rewrite.add(id);
    }
    for (const id of before.keys()) if (!after.has(id)) rewrite.add(id);

    let objects = 0;
    for (const filter of currentFilters) {
      if (!rewrite.has(filter.ruleId)) continue;
      track(filter.ruleId);
      engine.deleteFilterByKey(filter.key);
      objects++;
    }
    for (const filter of nextFilters) {
      if (!rewrite.has(filter.ruleId)) continue;
      track(filter.ruleId);
      engine.addFilter(
        this.#toFilter(filter, weightOfRule.get(filter.ruleId)!),
      );
      objects++;
    }
    track(undefined);
    return objects;
  }

  /**
   * Deletes every filter under Palisade's provider, then its sublayer and
   * provider, in one transaction. When another product's filter sits in
   * Palisade's sublayer, Palisade's own filters are still deleted (fail
   * open), the sublayer and provider are kept, and an EngineError naming
   * the foreign filter is thrown after the commit.
   */
  removeAll(): number {
    let blocked: EngineError | null = null;
    let removed: number;
    try {
      const engine = this.#open();
      removed = engine.transaction(() => {
        const live = this.#readLive(engine, true);
        let count = 0;
        for (const filter of live.ours) {
          engine.deleteFilterById(filter.filterId as FilterId);
          count++;
        }
        if (live.foreign.length > 0) {
          // Keep Palisade's own filters deleted (fail open) but leave the
          // sublayer, which the foreign filter still needs.
          const names = live.foreign.map(describeForeign).join(", ");
          blocked = new EngineError(
            `Cannot delete WFP sublayer "${PALISADE_OBJECT_NAME}" (key ${PALISADE_SUBLAYER_KEY}): FWP_E_IN_USE (0x8032000A) — foreign ${names} is inside it; Palisade never deletes another product's filter: remove it with its owner's tools, then run panic again`,
            {
              call: "FwpmSubLayerDeleteByKey0",
              code: WFP_E.FWP_E_IN_USE,
              codeName: "FWP_E_IN_USE",
            },
          );
          return count;
        }
        if (live.subLayerPresent) {
          engine.deleteSubLayer(PALISADE_SUBLAYER_KEY);
          count++;
        }
        if (live.providerPresent) {
          engine.deleteProvider(PALISADE_PROVIDER_KEY);
          count++;
        }
        return count;
      });
    } catch (error) {
      throw toEngineError(error);
    }
    if (blocked) throw blocked;
    return removed;
  }

  readBack(expected: NormalPolicy | null): ReadBack {
    try {
      const engine = this.#open();
      const live = this.#readLive(engine, false);
      const want = expected
        ? this.#compile(
          expected,
          this.#resolveApps(expected),
          new Map(),
          ruleTexts(),
        )
        : [];
      const problems: string[] = [];
      if (want.length > 0 && (!live.providerPresent || !live.subLayerPresent)) {
        problems.push("Palisade's provider or sublayer is missing");
      }
      const byKey = new Map(live.ours.map((f) => [f.key as string, f]));
      const ruleWeights = new Map<string, bigint>();
      for (const filter of want) {
        const found = byKey.get(filter.key);
        byKey.delete(filter.key);
        if (!found) {
          problems.push(
            `rule "${filter.ruleId}": no filter at ${filter.layer}`,
          );
          continue;
        }
        const same = matches(found, filter);
        if (!same || found.subLayerKey !== PALISADE_SUBLAYER_KEY) {
          problems.push(
            `rule "${filter.ruleId}": filter at ${filter.layer} differs`,
          );
        }
        const weight = weightOf(found);
        const seen = ruleWeights.get(filter.ruleId);
        if (weight === undefined || (seen !== undefined && seen !== weight)) {
          problems.push(`rule "${filter.ruleId}": inconsistent weights`);
        } else ruleWeights.set(filter.ruleId, weight);
      }
      for (const extra of byKey.values()) {
        problems.push(
          `unexpected filter "${extra.name}" (key ${extra.key}) at ${
            layerName(extra.layerKey)
          }`,
        );
      }
      let previous: bigint | undefined;
      for (const rule of expected?.rules ?? []) {
        const weight = ruleWeights.get(rule.id);
        if (weight === undefined) continue;
        if (previous !== undefined && weight >= previous) {
          problems.push(`rule "${rule.id}": weight out of rule order`);
        }
        previous = weight;
      }
      return problems.length === 0
        ? { ok: true }
        : { ok: false, detail: problems.join("; ") };
    } catch (error) {
      throw toEngineError(error);
    }
  }

  counters(): RuleCounter[] {
    // WFP keeps no per-filter hit counters; only net events (audit
    // drops) could provide them.
    // Limitation: no per-rule counters on WFP (net-event enumeration is not bound).
    return [];
  }

  close(): void {
    try {
      this.#session?.close();
    } finally {
      this.#session = null;
      this.#library.close();
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function ruleDiff(
  next: NormalPolicy,
  current: NormalPolicy | null,
  ruleText: RuleText,
): Omit<ApplyStats, "incremental" | "objects"> {
  const before = new Map(
    (current?.rules ?? []).map((r) => [r.id, ruleText(r)]),
  );
  const after = new Map(next.rules.map((r) => [r.id, ruleText(r)]));
  const added = [...after.keys()].filter((id) => !before.has(id));
  const removed = [...before.keys()].filter((id) => !after.has(id));
  const changed = [...after.keys()].filter((id) =>
    before.has(id) && before.get(id) !== after.get(id)
  );
  return { added, removed, changed };
}

/**
 * Opens the WFP engine backend: loads the library and opens a session
 * (dynamic when `dynamic` is set).
 *
 * @throws {EngineError} the engine refused the session
 * @throws {Error} the library cannot be loaded
 * @example
 * ```ts ignore
 * using backend = openWfpBackend({ library: "fwpuclnt.dll" });
 * backend.apply(policy, null);
 * ```
 */
export function openWfpBackend(opts: WfpBackendOptions): Backend {
  const library = WfpLibrary.open(opts.library);
  try {
    const dynamic = opts.dynamic ?? false;
    const session = WfpEngine.open(library, { dynamic });
    return new WfpBackend(library, session, dynamic);
  } catch (error) {
    library.close();
    throw toEngineError(error);
  }
}
