// The rules engine of the detection worker: turns the confirmed tracks of each frame into rule events.
// Pure and deterministic: all time comes from frame.timestampMs (expected non-decreasing), and all state lives in
// the engine object, so replaying the same frames gives the same events with the same ids.
// A person is a tracker id, except that a new id continuing one the tracker just lost keeps that person
// (carry-over.ts): at 1–3 fps trackers churn ids, and every new id would otherwise be a new alarm.
import type { CameraDetectionSpec } from "../../operator/api/camera-detection.ts";
import { type CarryOverOptions, DEFAULT_CARRY_OVER, type LostTrack, matchHeirs } from "./carry-over.ts";
import { type Box, boxAnchor, boxOverlap, type Polygon, PPE_MIN_OVERLAP, pointInPolygon } from "./geometry.ts";

export { type CarryOverOptions, DEFAULT_CARRY_OVER } from "./carry-over.ts";

export type Zone = CameraDetectionSpec["zones"][number];
export type Rule = CameraDetectionSpec["rules"][number];
export type RuleSpec = { readonly zones: readonly Zone[]; readonly rules: readonly Rule[] };
export type RuleKind = "presence" | "dwell" | "count" | "ppeMissing" | "sequence";
export type Severity = Rule["severity"];

export type RuleTrack = {
  readonly id: number;
  readonly classId: number;
  /** x1, y1, x2, y2 in source-frame pixels. */
  readonly box: readonly [number, number, number, number];
  readonly score: number;
};

export type RuleFrame = {
  readonly timestampMs: number;
  readonly width: number;
  readonly height: number;
  /** Confirmed tracks of this frame, all classes. */
  readonly tracks: readonly RuleTrack[];
};

export type RuleEvent = {
  /** `${rule}:${trackId}:${startedAtMs}`: the same episode always gets the same id, so consumers can deduplicate. */
  id: string;
  rule: string;
  severity: Severity;
  kind: RuleKind;
  /**
   * The person the event is about: the tracker id under which the engine first saw them. After a carry-over (see
   * CarryOverOptions) the person keeps that id while the tracker calls them something else, so a carried stay keeps
   * its event id and the alarm dedup key (camera, rule, track) stays one person's. 0 for count events, which concern
   * the rule, not one track.
   */
  trackId: number;
  zone?: string;
  /** x1, y1, x2, y2 in source-frame pixels, of the track the event is about. */
  box?: [number, number, number, number];
  /** Start of the episode: entry time, start of the stay, or since when the condition has held. */
  startedAtMs: number;
  timestampMs: number;
  detail: string;
};

export type RuleEngine = { evaluate(frame: RuleFrame): RuleEvent[] };

export type RuleEngineOptions = {
  /** Forget a track this long after its last frame (default DEFAULT_TRACK_TTL_MS). */
  trackTtlMs?: number;
  /**
   * When a new tracker id continues a person the tracker lost (default DEFAULT_CARRY_OVER); false turns it off, and
   * every new id is a new person, as the tracker says.
   */
  carryOver?: CarryOverOptions | false;
};

/**
 * A track unseen for this long is forgotten, which bounds memory on a busy camera. Until then a missing track
 * keeps its state, so a person occluded for a few seconds neither restarts a dwell nor re-enters a zone. Trackers
 * do not reuse ids, so a forgotten id never comes back to find its history gone. Cooldowns are kept apart from
 * track state and outlive it, until they expire.
 */
export const DEFAULT_TRACK_TTL_MS = 30_000;

export type RuleProblem = { rule: string; message: string };

const RULE_KINDS: readonly RuleKind[] = ["presence", "dwell", "count", "ppeMissing", "sequence"];
const PERSON = "person";

/**
 * What would stop a rule from working as written: the CRD's CEL checks the same shape, but the worker also has
 * to know the model's classes, and a ppeMissing rule over a class the model cannot see would fire for every
 * person. Callers that would rather run the remaining rules than none drop the named ones and report them.
 */
export function validateRules(spec: RuleSpec, classNames: readonly string[]): RuleProblem[] {
  const problems: RuleProblem[] = [];
  const zones = new Set(spec.zones.map((z) => z.name));
  const known = new Set(classNames);
  const seen = new Set<string>();
  for (const r of spec.rules) {
    const bad = (message: string) => problems.push({ rule: r.name, message });
    if (seen.has(r.name)) bad("duplicate rule name");
    seen.add(r.name);
    const kinds = RULE_KINDS.filter((k) => r[k] !== undefined);
    if (kinds.length !== 1) {
      bad(`a rule sets exactly one of ${RULE_KINDS.join(", ")} (found ${kinds.length})`);
      continue;
    }
    const zone = (name: string | undefined) => {
      if (name !== undefined && !zones.has(name)) bad(`zone "${name}" is not defined`);
    };
    const cls = (name: string) => {
      if (!known.has(name)) bad(`class "${name}" is not one the model detects`);
    };
    if (r.presence) {
      zone(r.presence.zone);
      r.presence.classes.forEach(cls);
    } else if (r.dwell) {
      zone(r.dwell.zone);
    } else if (r.count) {
      zone(r.count.zone);
      cls(r.count.class);
      const { min, max } = r.count;
      if (min === undefined && max === undefined) bad("count needs min or max");
      if (min !== undefined && max !== undefined && min > max) bad("count.min must not exceed count.max");
    } else if (r.ppeMissing) {
      zone(r.ppeMissing.zone);
      cls(PERSON);
      r.ppeMissing.required.forEach(cls);
    } else if (r.sequence) {
      zone(r.sequence.from);
      zone(r.sequence.to);
      if (r.sequence.from === r.sequence.to) bad("sequence.from and sequence.to must differ");
    }
  }
  return problems;
}

type Compiled =
  | { kind: "presence"; rule: Rule; zone: string; classIds: ReadonlySet<number> }
  | { kind: "dwell"; rule: Rule; zone: string; ms: number }
  | {
      kind: "count";
      rule: Rule;
      zone: string | undefined;
      className: string;
      classIds: ReadonlySet<number>;
      min: number | undefined;
      max: number | undefined;
      ms: number;
    }
  | {
      kind: "ppeMissing";
      rule: Rule;
      zone: string | undefined;
      required: readonly { name: string; classIds: ReadonlySet<number> }[];
      ms: number;
    }
  | { kind: "sequence"; rule: Rule; from: string; to: string; ms: number };

type Episode = { startedAtMs: number; fired: boolean };

/**
 * What the engine knows about one person. `id` is the tracker id they were first seen under, which events name;
 * `key` is the one they go by now, which differs after a carry-over.
 */
type TrackState = {
  id: number;
  key: number;
  classId: number;
  lastSeenMs: number;
  /** The last box, in source pixels: where carry-over looks for this person if the tracker loses them. */
  lastBox: Box;
  /** A sighting 1–2 s before the last (or the first one), for the way this person was moving. */
  motionFrom: { box: Box; ms: number };
  /** Zone → when the current stay began. */
  inside: Map<string, number>;
  /** Zone → last frame the track was seen inside it (for sequence). */
  lastInside: Map<string, number>;
  /** Rule name → open episode of a per-track condition (dwell, ppeMissing). */
  episodes: Map<string, Episode>;
};

type CountEpisode = Episode & { dir: "above" | "below" };

/** A track as seen in the current frame, with its zone memberships worked out once for all rules. */
type Seen = {
  track: RuleTrack;
  name: string;
  state: TrackState | undefined;
  zones: ReadonlySet<string>;
  entered: ReadonlySet<string>;
};

/** Throws when validateRules finds a problem; validate first to run with only the good rules. */
export function createRuleEngine(
  spec: RuleSpec,
  classNames: readonly string[],
  options: RuleEngineOptions = {},
): RuleEngine {
  const problems = validateRules(spec, classNames);
  if (problems.length > 0) {
    throw new Error(`invalid rules: ${problems.map((p) => `${p.rule}: ${p.message}`).join("; ")}`);
  }
  const ttlMs = options.trackTtlMs ?? DEFAULT_TRACK_TTL_MS;
  const carry = options.carryOver === undefined ? DEFAULT_CARRY_OVER : options.carryOver;
  const idsOf = (names: readonly string[]): ReadonlySet<number> => {
    const ids = new Set<number>();
    classNames.forEach((n, i) => {
      if (names.includes(n)) ids.add(i);
    });
    return ids;
  };
  const compiled = spec.rules.map((rule): Compiled => {
    if (rule.presence) {
      return { kind: "presence", rule, zone: rule.presence.zone, classIds: idsOf(rule.presence.classes) };
    }
    if (rule.dwell) return { kind: "dwell", rule, zone: rule.dwell.zone, ms: rule.dwell.seconds * 1000 };
    if (rule.count) {
      const c = rule.count;
      return {
        kind: "count",
        rule,
        zone: c.zone,
        className: c.class,
        classIds: idsOf([c.class]),
        min: c.min,
        max: c.max,
        ms: c.forSeconds * 1000,
      };
    }
    if (rule.ppeMissing) {
      const p = rule.ppeMissing;
      return {
        kind: "ppeMissing",
        rule,
        zone: p.zone,
        required: p.required.map((name) => ({ name, classIds: idsOf([name]) })),
        ms: p.seconds * 1000,
      };
    }
    const s = rule.sequence as NonNullable<Rule["sequence"]>;
    return { kind: "sequence", rule, from: s.from, to: s.to, ms: s.withinSeconds * 1000 };
  });
  const zones: readonly { name: string; polygon: Polygon }[] = spec.zones;
  const personIds = idsOf([PERSON]);
  // Equipment rides on a person: letting a hairnet track dwell or skip the handwash would report that person twice.
  const equipmentIds = idsOf(spec.rules.flatMap((r) => r.ppeMissing?.required ?? []).filter((n) => n !== PERSON));

  /**
   * Tracker id → the person it belongs to. After a carry-over both the old id and the new one lead to the same
   * person, so the old id coming back is that person again, not a new one.
   */
  const tracks = new Map<number, TrackState>();
  /** Tracker id → its last frame, so an id a person no longer goes by is forgotten on its own ttl. */
  const keySeenMs = new Map<number, number>();
  const counts = new Map<string, CountEpisode>();
  /**
   * `${rule}\0${trackId}` → time from which the rule may fire again for that person (RuleEvent.trackId, so a
   * cooldown carries over with them; 0: count rules).
   */
  const cooldownUntil = new Map<string, number>();

  const nameOf = (classId: number) => classNames[classId] ?? `class ${classId}`;

  /**
   * Two ids of one person in the same frame are two people after all (a carry-over joined them wrongly, or the
   * tracker re-found the old id while the new one still follows someone). The person stays with the id events name
   * if it is there, else with the id it was last seen as; each other id becomes a new person from now on, under its
   * own id, which no person has had (ids that inherited never started a person), so event ids stay unique.
   */
  function splitShared(present: readonly number[]): void {
    const byPerson = new Map<TrackState, number[]>();
    for (const id of present) {
      const st = tracks.get(id);
      if (st) byPerson.set(st, [...(byPerson.get(st) ?? []), id]);
    }
    for (const [st, keys] of byPerson) {
      if (keys.length < 2) continue;
      const keeper = keys.includes(st.id) ? st.id : keys.includes(st.key) ? st.key : Math.min(...keys);
      for (const k of keys) if (k !== keeper) tracks.delete(k);
      st.key = keeper;
    }
  }

  /** New tracker id → the lost person it continues (carry-over.ts). */
  function heirsOf(
    opts: CarryOverOptions,
    frameTracks: readonly { track: RuleTrack; zones: ReadonlySet<string> }[],
    frame: RuleFrame,
  ): Map<number, TrackState> {
    const born = frameTracks.filter((f) => f.track.id !== 0 && f.zones.size > 0 && !tracks.has(f.track.id));
    if (born.length === 0) return new Map();
    const present = new Set<TrackState>();
    for (const f of frameTracks) {
      const st = tracks.get(f.track.id);
      if (st) present.add(st);
    }
    const people = new Map<number, TrackState>();
    const lost: LostTrack[] = [];
    for (const st of new Set(tracks.values())) {
      if (present.has(st)) continue;
      people.set(st.key, st);
      lost.push({
        key: st.key,
        classId: st.classId,
        lastSeenMs: st.lastSeenMs,
        lastBox: st.lastBox,
        motionFrom: st.motionFrom,
        zones: new Set(st.inside.keys()),
      });
    }
    const newborn = born.map((f) => ({ id: f.track.id, classId: f.track.classId, box: f.track.box, zones: f.zones }));
    const heirs = new Map<number, TrackState>();
    for (const [id, key] of matchHeirs(opts, newborn, lost, frame.timestampMs, frame.width, frame.height)) {
      heirs.set(id, people.get(key) as TrackState);
    }
    return heirs;
  }

  function evaluate(frame: RuleFrame): RuleEvent[] {
    const now = frame.timestampMs;
    const events: RuleEvent[] = [];

    const fire = (c: Compiled, trackId: number, startedAtMs: number, detail: string, extra: Partial<RuleEvent>) => {
      const key = `${c.rule.name}\0${trackId}`;
      const until = cooldownUntil.get(key);
      if (until !== undefined && now < until) return false;
      cooldownUntil.set(key, now + c.rule.cooldownSeconds * 1000);
      events.push({
        id: `${c.rule.name}:${trackId}:${startedAtMs}`,
        rule: c.rule.name,
        severity: c.rule.severity,
        kind: c.kind,
        trackId,
        ...extra,
        startedAtMs,
        timestampMs: now,
        detail,
      });
      return true;
    };

    const frameTracks: { track: RuleTrack; zones: Set<string> }[] = [];
    const ids = new Set<number>();
    for (const track of frame.tracks) {
      // Id 0 means untracked: it still counts and can be worn equipment, but has no identity to hold state on.
      if (track.id !== 0) {
        if (ids.has(track.id)) continue;
        ids.add(track.id);
      }
      const [ax, ay] = boxAnchor(track.box, frame.width, frame.height);
      const inZones = new Set<string>();
      for (const z of zones) if (pointInPolygon(ax, ay, z.polygon)) inZones.add(z.name);
      frameTracks.push({ track, zones: inZones });
    }
    splitShared([...ids]);
    const heirs = carry ? heirsOf(carry, frameTracks, frame) : new Map<number, TrackState>();

    const seen: Seen[] = [];
    for (const { track, zones: inZones } of frameTracks) {
      let state: TrackState | undefined;
      const entered = new Set<string>();
      if (track.id !== 0) {
        state = tracks.get(track.id);
        if (!state) {
          state = heirs.get(track.id) ?? {
            id: track.id,
            key: track.id,
            classId: track.classId,
            lastSeenMs: now,
            lastBox: track.box,
            motionFrom: { box: track.box, ms: now },
            inside: new Map(),
            lastInside: new Map(),
            episodes: new Map(),
          };
          tracks.set(track.id, state);
        }
        state.key = track.id;
        keySeenMs.set(track.id, now);
        // A baseline of 1–2 s: long enough that box jitter at 10 fps does not pass for motion, short enough to follow turns.
        if (now - state.motionFrom.ms > 2000) state.motionFrom = { box: state.lastBox, ms: state.lastSeenMs };
        state.lastSeenMs = now;
        state.lastBox = track.box;
        for (const z of state.inside.keys()) if (!inZones.has(z)) state.inside.delete(z);
        for (const z of inZones) {
          if (!state.inside.has(z)) {
            state.inside.set(z, now);
            entered.add(z);
          }
          state.lastInside.set(z, now);
        }
      }
      seen.push({ track, name: nameOf(track.classId), state, zones: inZones, entered });
    }

    const boxOf = (s: Seen): [number, number, number, number] => [...s.track.box];
    const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

    for (const c of compiled) {
      switch (c.kind) {
        case "presence":
          for (const s of seen) {
            if (!s.state || !c.classIds.has(s.track.classId) || !s.entered.has(c.zone)) continue;
            fire(c, s.state.id, now, `${s.name} entered zone ${c.zone}`, { zone: c.zone, box: boxOf(s) });
          }
          break;

        case "dwell":
          for (const s of seen) {
            if (!s.state || equipmentIds.has(s.track.classId)) continue;
            const since = s.state.inside.get(c.zone);
            if (since === undefined) {
              s.state.episodes.delete(c.rule.name);
              continue;
            }
            const ep = episodeOf(s.state, c.rule.name, since);
            if (ep.fired || now - since < c.ms) continue;
            ep.fired = fire(c, s.state.id, since, `${s.name} in zone ${c.zone} for ${secs(now - since)}`, {
              zone: c.zone,
              box: boxOf(s),
            });
          }
          break;

        case "count": {
          let n = 0;
          for (const s of seen) {
            if (c.classIds.has(s.track.classId) && (c.zone === undefined || s.zones.has(c.zone))) n++;
          }
          const dir =
            c.max !== undefined && n > c.max ? "above" : c.min !== undefined && n < c.min ? "below" : undefined;
          let ep = counts.get(c.rule.name);
          if (dir === undefined) {
            counts.delete(c.rule.name);
            break;
          }
          // Jumping from too many to too few without a frame in bounds is a new violation, not the same one.
          if (!ep || ep.dir !== dir) {
            ep = { startedAtMs: now, fired: false, dir };
            counts.set(c.rule.name, ep);
          }
          if (ep.fired || now - ep.startedAtMs < c.ms) break;
          const bound = dir === "above" ? `max ${c.max}` : `min ${c.min}`;
          const where = c.zone === undefined ? "in frame" : `in zone ${c.zone}`;
          ep.fired = fire(
            c,
            0,
            ep.startedAtMs,
            `${n} ${c.className} ${where} (${bound}) for ${secs(now - ep.startedAtMs)}`,
            c.zone === undefined ? {} : { zone: c.zone },
          );
          break;
        }

        case "ppeMissing":
          for (const s of seen) {
            if (!s.state || !personIds.has(s.track.classId)) continue;
            if (c.zone !== undefined && !s.zones.has(c.zone)) {
              s.state.episodes.delete(c.rule.name);
              continue;
            }
            const missing = c.required
              .filter(
                (r) =>
                  !seen.some(
                    (e) =>
                      e !== s &&
                      r.classIds.has(e.track.classId) &&
                      boxOverlap(e.track.box, s.track.box) >= PPE_MIN_OVERLAP,
                  ),
              )
              .map((r) => r.name);
            if (missing.length === 0) {
              s.state.episodes.delete(c.rule.name);
              continue;
            }
            const ep = episodeOf(s.state, c.rule.name, s.state.episodes.get(c.rule.name)?.startedAtMs ?? now);
            if (ep.fired || now - ep.startedAtMs < c.ms) continue;
            const where = c.zone === undefined ? "" : ` in zone ${c.zone}`;
            ep.fired = fire(
              c,
              s.state.id,
              ep.startedAtMs,
              `${s.name}${where} without ${missing.join(", ")} for ${secs(now - ep.startedAtMs)}`,
              c.zone === undefined ? { box: boxOf(s) } : { zone: c.zone, box: boxOf(s) },
            );
          }
          break;

        case "sequence":
          for (const s of seen) {
            if (!s.state || equipmentIds.has(s.track.classId) || !s.entered.has(c.to)) continue;
            // Read after this frame's update, so standing where the two zones overlap counts as having been in `from`.
            const last = s.state.lastInside.get(c.from);
            if (last !== undefined && now - last <= c.ms) continue;
            fire(
              c,
              s.state.id,
              now,
              `${s.name} entered zone ${c.to} without zone ${c.from} in the last ${secs(c.ms)}`,
              { zone: c.to, box: boxOf(s) },
            );
          }
          break;
      }
    }

    for (const [id, ms] of keySeenMs) {
      if (now - ms > ttlMs) {
        tracks.delete(id);
        keySeenMs.delete(id);
      }
    }
    for (const [key, until] of cooldownUntil) if (now >= until) cooldownUntil.delete(key);
    return events;
  }

  return { evaluate };
}

/**
 * The open episode of a per-track rule, opening one that starts at `startedAtMs` if there is none or the open one
 * started at another time (a new dwell stay). An episode fires at most once; one that comes due during a cooldown fires
 * when the cooldown ends, because the condition still holds: cooldowns limit the rate, they do not drop a
 * sustained violation. Edge-triggered rules (presence, sequence) have no episode, so an entry during a cooldown is
 * simply not reported.
 */
function episodeOf(state: TrackState, rule: string, startedAtMs: number): Episode {
  let ep = state.episodes.get(rule);
  if (!ep || ep.startedAtMs !== startedAtMs) {
    ep = { startedAtMs, fired: false };
    state.episodes.set(rule, ep);
  }
  return ep;
}
