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
  type LayerKey,
  layerName,
  PALISADE_OBJECT_NAME,
  PALISADE_PROVIDER_KEY,
  PALISADE_SUBLAYER_KEY,
  type SubLayerKey,
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
  ForeignObjectsError,
  type ReadBack,
  type RuleCounter,
} from "./backend.ts";
import { ALL_WFP_LAYERS } from "./_wfp_layers.ts";
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
  /**
   * Called at each engine step of `apply` and `removeAll`, with the
   * names of `ENGINE_CRASH_POINTS` in `policy/backend.ts`:
   * `engine.after-begin`, `engine.after-provider` and
   * `engine.after-sublayer` (added by apply, deleted by removeAll),
   * `engine.after-deletes`, `engine.after-adds`, `engine.before-commit`,
   * `engine.after-commit`. A step that does not happen in a transaction
   * (nothing to delete, provider already there) is not called; removeAll
   * runs up to three transactions (filters, sublayer, provider), each
   * with its own begin and commit. For the crash tests only.
   */
  crashPoint?: (name: string) => void;
}

/** Weight of Palisade's sublayer among all sublayers (middle of UINT16). */
export const PALISADE_SUBLAYER_WEIGHT = 0x8000;

const LAYER_KEYS = Object.values(WFP_LAYERS);

/** `FWP_E_LAYER_NOT_FOUND`: the engine does not know an enumerated layer. */
const FWP_E_LAYER_NOT_FOUND = 0x80320004;

/** What the engine holds that concerns Palisade. */
interface LiveState {
  providerPresent: boolean;
  subLayerPresent: boolean;
  /** Filters under Palisade's provider. */
  ours: WfpFilter[];
}

/** What removeAll finds at every layer the engine knows. */
interface Survey extends LiveState {
  /** Filters of other providers inside Palisade's sublayer. */
  foreign: WfpFilter[];
  /** Every other sublayer some filter sits in (may use the provider). */
  subLayers: Set<string>;
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

function inUseFailure(error: unknown): boolean {
  return error instanceof WfpError && error.code === WFP_E.FWP_E_IN_USE;
}

function describeForeign(filter: WfpFilter): string {
  return `filter ${filter.filterId} "${filter.name}" (provider ${
    filter.providerKey ?? "none"
  }, layer ${
    ALL_WFP_LAYERS.get(filter.layerKey as LayerKey) ??
      layerName(filter.layerKey)
  })`;
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
  readonly #crashPoint: (name: string) => void;
  #session: WfpEngine | null;
  /** Filters compiled by the last apply, by rule text and app ID. */
  #compiled = new Map<string, CompiledFilter[]>();

  constructor(
    library: WfpLibrary,
    session: WfpEngine,
    dynamic: boolean,
    crashPoint?: (name: string) => void,
  ) {
    this.#library = library;
    this.#session = session;
    this.#dynamic = dynamic;
    this.#crashPoint = crashPoint ?? (() => {});
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
   * Reads Palisade's provider and sublayer, refusing either when its key
   * is held by an object that is not Palisade's: another name, or (for
   * the sublayer) another provider.
   *
   * @throws {EngineError} FWP_E_ALREADY_EXISTS for a foreign object
   */
  #readContainers(engine: WfpEngine): {
    providerPresent: boolean;
    subLayerPresent: boolean;
  } {
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
    if (
      subLayer && (subLayer.name !== PALISADE_OBJECT_NAME ||
        subLayer.providerKey !== PALISADE_PROVIDER_KEY)
    ) {
      throw new EngineError(
        `Cannot use WFP sublayer ${PALISADE_SUBLAYER_KEY}: it is held by a foreign sublayer named "${subLayer.name}" (provider ${
          subLayer.providerKey ?? "none"
        }); Palisade never deletes or adopts it`,
        {
          call: "FwpmSubLayerGetByKey0",
          code: WFP_E.FWP_E_ALREADY_EXISTS,
          codeName: "FWP_E_ALREADY_EXISTS",
        },
      );
    }
    return {
      providerPresent: provider !== null,
      subLayerPresent: subLayer !== null,
    };
  }

  /**
   * Reads provider, sublayer and Palisade's filters from the engine,
   * enumerating (not remembering) by provider at each layer Palisade
   * writes to.
   */
  #readLive(engine: WfpEngine): LiveState {
    const containers = this.#readContainers(engine);
    const ours: WfpFilter[] = [];
    for (const layerKey of LAYER_KEYS) {
      const filters = engine.enumFilters({
        layerKey,
        providerKey: PALISADE_PROVIDER_KEY,
      });
      for (const filter of filters) {
        if (filter.providerKey === PALISADE_PROVIDER_KEY) ours.push(filter);
      }
    }
    return { ...containers, ours };
  }

  /**
   * Reads every filter at every layer `fwpmu.h` defines (layers this
   * engine does not know are skipped): Palisade's own, other products'
   * inside Palisade's sublayer, and the other sublayers in use, so that
   * whatever blocks the sublayer's or provider's deletion can be named.
   */
  #survey(engine: WfpEngine): Survey {
    const containers = this.#readContainers(engine);
    const ours: WfpFilter[] = [];
    const foreign: WfpFilter[] = [];
    const subLayers = new Set<string>();
    for (const layerKey of ALL_WFP_LAYERS.keys()) {
      let filters: WfpFilter[];
      try {
        filters = engine.enumFilters({ layerKey });
      } catch (error) {
        if (
          error instanceof WfpError &&
          error.code === FWP_E_LAYER_NOT_FOUND
        ) continue;
        throw error;
      }
      for (const filter of filters) {
        if (filter.providerKey === PALISADE_PROVIDER_KEY) {
          ours.push(filter);
        } else if (filter.subLayerKey === PALISADE_SUBLAYER_KEY) {
          foreign.push(filter);
        } else subLayers.add(filter.subLayerKey);
      }
    }
    return { ...containers, ours, foreign, subLayers };
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
    const step = this.#crashPoint;
    try {
      const engine = this.#open();
      const result = engine.transaction((): ApplyStats => {
        step("engine.after-begin");
        const live = this.#readLive(engine);
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
            step("engine.before-commit");
            return { ...stats, incremental: true, objects: done };
          }
        }

        let objects = this.#ensureContainers(engine, live);
        for (const filter of live.ours) {
          ruleId = filter.name;
          engine.deleteFilterById(filter.filterId as FilterId);
          objects++;
        }
        ruleId = undefined;
        if (live.ours.length > 0) step("engine.after-deletes");
        const fresh = freshWeights(next.rules.length);
        for (const compiled of nextFilters) {
          ruleId = compiled.ruleId;
          engine.addFilter(this.#toFilter(compiled, fresh[compiled.ruleIndex]));
          objects++;
        }
        ruleId = undefined;
        if (nextFilters.length > 0) step("engine.after-adds");
        step("engine.before-commit");
        return { ...stats, incremental: false, objects };
      });
      step("engine.after-commit");
      return result;
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
      this.#crashPoint("engine.after-provider");
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
      this.#crashPoint("engine.after-sublayer");
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

    let deleted = 0;
    for (const filter of currentFilters) {
      if (!rewrite.has(filter.ruleId)) continue;
      track(filter.ruleId);
      engine.deleteFilterByKey(filter.key);
      deleted++;
    }
    track(undefined);
    if (deleted > 0) this.#crashPoint("engine.after-deletes");
    let added = 0;
    for (const filter of nextFilters) {
      if (!rewrite.has(filter.ruleId)) continue;
      track(filter.ruleId);
      engine.addFilter(
        this.#toFilter(filter, weightOfRule.get(filter.ruleId)!),
      );
      added++;
    }
    track(undefined);
    if (added > 0) this.#crashPoint("engine.after-adds");
    return deleted + added;
  }

  /**
   * Deletes every filter under Palisade's provider at every layer, then
   * its sublayer and provider, in one transaction. When an object of
   * another product keeps the sublayer or provider in use (a filter in
   * Palisade's sublayer, a sublayer under Palisade's provider), Palisade's
   * own filters are still deleted, in a transaction of their own that is
   * committed first, so nothing of Palisade's is enforced; then the
   * sublayer and the provider are deleted each in its own transaction if
   * they can be. The foreign object is never deleted: it is named in a
   * {@linkcode ForeignObjectsError} thrown after the commits.
   *
   * @throws {ForeignObjectsError} own filters gone, containers kept
   * @throws {EngineError} the engine refused; the failed transaction
   * left the engine as before it
   */
  removeAll(): number {
    try {
      const engine = this.#open();
      const survey = this.#survey(engine);
      if (survey.foreign.length === 0) {
        try {
          return this.#removeAtOnce(engine, survey);
        } catch (error) {
          // Something the survey could not see holds the sublayer or
          // provider: remove step by step, so Palisade's filters go.
          if (!inUseFailure(error)) throw error;
        }
      }
      return this.#removeStepwise(engine, survey);
    } catch (error) {
      throw toEngineError(error);
    }
  }

  /** Deletes filters, sublayer and provider in one transaction. */
  #removeAtOnce(engine: WfpEngine, survey: Survey): number {
    if (
      survey.ours.length === 0 && !survey.subLayerPresent &&
      !survey.providerPresent
    ) return 0;
    let removed = 0;
    this.#removeStep(engine, () => {
      for (const filter of survey.ours) {
        engine.deleteFilterById(filter.filterId as FilterId);
        removed++;
      }
      if (removed > 0) this.#crashPoint("engine.after-deletes");
      if (survey.subLayerPresent) {
        engine.deleteSubLayer(PALISADE_SUBLAYER_KEY);
        removed++;
        this.#crashPoint("engine.after-sublayer");
      }
      if (survey.providerPresent) {
        engine.deleteProvider(PALISADE_PROVIDER_KEY);
        removed++;
        this.#crashPoint("engine.after-provider");
      }
    });
    return removed;
  }

  /**
   * Commits the deletion of Palisade's filters first, then deletes the
   * sublayer and the provider each in its own transaction, and names
   * whatever foreign object keeps one of them.
   *
   * @throws {ForeignObjectsError} a container had to stay
   */
  #removeStepwise(engine: WfpEngine, survey: Survey): number {
    let removed = 0;
    if (survey.ours.length > 0) {
      this.#removeStep(engine, () => {
        for (const filter of survey.ours) {
          engine.deleteFilterById(filter.filterId as FilterId);
        }
        this.#crashPoint("engine.after-deletes");
      });
      removed += survey.ours.length;
    }

    if (survey.foreign.length > 0) {
      const names = survey.foreign.map(describeForeign);
      throw new ForeignObjectsError(
        `Cannot delete WFP sublayer "${PALISADE_OBJECT_NAME}" (key ${PALISADE_SUBLAYER_KEY}): FWP_E_IN_USE (0x8032000A) — foreign ${
          names.join(", ")
        } ${
          names.length === 1 ? "is" : "are"
        } inside it; Palisade removed its own ${removed} filters (none of its rules is enforced) and kept the empty sublayer and provider; it never deletes another product's object: remove it with its owner's tools, then run panic again`,
        "FwpmSubLayerDeleteByKey0",
        removed,
        names,
      );
    }
    if (survey.subLayerPresent) {
      this.#deleteContainer(engine, "sublayer", removed, () => []);
      removed++;
    }
    if (survey.providerPresent) {
      this.#deleteContainer(
        engine,
        "provider",
        removed,
        () => this.#subLayersOfProvider(engine, survey.subLayers),
      );
      removed++;
    }
    return removed;
  }

  /** One removeAll transaction, with its crash points. */
  #removeStep(engine: WfpEngine, fn: () => void): void {
    const step = this.#crashPoint;
    engine.transaction(() => {
      step("engine.after-begin");
      fn();
      step("engine.before-commit");
    });
    step("engine.after-commit");
  }

  /**
   * Deletes Palisade's sublayer or provider in its own transaction. On
   * FWP_E_IN_USE throws a {@linkcode ForeignObjectsError} naming what
   * `blockers()` finds.
   */
  #deleteContainer(
    engine: WfpEngine,
    kind: "sublayer" | "provider",
    removed: number,
    blockers: () => string[],
  ): void {
    const call = kind === "sublayer"
      ? "FwpmSubLayerDeleteByKey0"
      : "FwpmProviderDeleteByKey0";
    const key = kind === "sublayer"
      ? PALISADE_SUBLAYER_KEY
      : PALISADE_PROVIDER_KEY;
    try {
      this.#removeStep(engine, () => {
        if (kind === "sublayer") {
          engine.deleteSubLayer(PALISADE_SUBLAYER_KEY);
          this.#crashPoint("engine.after-sublayer");
        } else {
          engine.deleteProvider(PALISADE_PROVIDER_KEY);
          this.#crashPoint("engine.after-provider");
        }
      });
    } catch (error) {
      if (!inUseFailure(error)) throw error;
      const found = blockers();
      // Limitation: an empty sublayer of another product under Palisade's provider, or a filter at a layer fwpmu.h does not list, cannot be found: the binding enumerates filters only, layer by layer.
      const what = found.length > 0
        ? `foreign ${found.join(", ")} ${
          found.length === 1 ? "uses" : "use"
        } it`
        : "an object of another product that Palisade cannot enumerate uses it";
      throw new ForeignObjectsError(
        `Cannot delete WFP ${kind} "${PALISADE_OBJECT_NAME}" (key ${key}): FWP_E_IN_USE (0x8032000A) — ${what}; Palisade removed its own ${removed} objects (none of its rules is enforced) and kept the ${kind}; it never deletes another product's object: remove it with its owner's tools, then run panic again`,
        call,
        removed,
        found,
        error,
      );
    }
  }

  /** Sublayers among `keys` whose provider is Palisade's, described. */
  #subLayersOfProvider(engine: WfpEngine, keys: Set<string>): string[] {
    const found: string[] = [];
    for (const key of keys) {
      if (key === PALISADE_SUBLAYER_KEY) continue;
      const subLayer = engine.getSubLayer(key as SubLayerKey);
      if (subLayer?.providerKey === PALISADE_PROVIDER_KEY) {
        found.push(`sublayer ${key} "${subLayer.name}"`);
      }
    }
    return found;
  }

  readBack(expected: NormalPolicy | null): ReadBack {
    try {
      const engine = this.#open();
      const live = this.#readLive(engine);
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
    return new WfpBackend(library, session, dynamic, opts.crashPoint);
  } catch (error) {
    library.close();
    throw toEngineError(error);
  }
}
