import { describe, expect, it } from "vitest";
import { rule as ruleSchema, zone as zoneSchema } from "../../operator/api/camera-detection.ts";
import {
  createRuleEngine,
  type Rule,
  type RuleEngineOptions,
  type RuleEvent,
  type RuleFrame,
  type RuleTrack,
  validateRules,
} from "../../worker/rules/engine.ts";
import { boxAnchor, boxOverlap, pointInPolygon } from "../../worker/rules/geometry.ts";

const CLASSES = ["person", "hairnet", "car", "glove"] as const;
const PERSON = 0;
const HAIRNET = 1;
const CAR = 2;
const GLOVE = 3;
const W = 1000;
const H = 1000;

// Two zones with a gap between them, so x = 0.5 is in neither.
const ZONES = [
  zoneSchema.parse({
    name: "a",
    polygon: [
      [0, 0],
      [0.4, 0],
      [0.4, 1],
      [0, 1],
    ],
  }),
  zoneSchema.parse({
    name: "b",
    polygon: [
      [0.6, 0],
      [1, 0],
      [1, 1],
      [0.6, 1],
    ],
  }),
];
const A = 0.2;
const B = 0.8;
const OUT = 0.5;

/** A track whose feet are at normalized (x, 0.9): a 40x200 px box standing there. */
function at(id: number, x: number, classId = PERSON): RuleTrack {
  const cx = x * W;
  return { id, classId, box: [cx - 20, 700, cx + 20, 900], score: 0.9 };
}

/** An equipment track lying inside the box of `wearer`'s head. */
function worn(id: number, wearer: RuleTrack, classId: number): RuleTrack {
  const [x1, y1, x2] = wearer.box;
  return { id, classId, box: [x1 + 5, y1, x2 - 5, y1 + 20], score: 0.8 };
}

const frame = (seconds: number, ...tracks: RuleTrack[]): RuleFrame => ({
  timestampMs: seconds * 1000,
  width: W,
  height: H,
  tracks,
});

function engine(rules: unknown[], options?: RuleEngineOptions) {
  const parsed: Rule[] = rules.map((r) => ruleSchema.parse(r));
  return createRuleEngine({ zones: ZONES, rules: parsed }, CLASSES, options);
}

/** Feeds frames in order; returns every event with the second it came out at. */
function run(e: ReturnType<typeof engine>, frames: RuleFrame[]): RuleEvent[] {
  return frames.flatMap((f) => e.evaluate(f));
}

/** One frame per second from `from` to `to` inclusive, built by `tracksAt`. */
function seconds(from: number, to: number, tracksAt: (t: number) => RuleTrack[]): RuleFrame[] {
  const out: RuleFrame[] = [];
  for (let t = from; t <= to; t++) out.push(frame(t, ...tracksAt(t)));
  return out;
}

const firedAt = (events: RuleEvent[]) => events.map((e) => e.timestampMs / 1000);

describe("geometry", () => {
  // An L: the notch at the top right (x > 0.4, y > 0.4) is outside.
  const L = [
    [0, 0],
    [1, 0],
    [1, 0.4],
    [0.4, 0.4],
    [0.4, 1],
    [0, 1],
  ];

  it("pointInPolygon follows a concave polygon", () => {
    expect(pointInPolygon(0.2, 0.8, L)).toBe(true);
    expect(pointInPolygon(0.8, 0.2, L)).toBe(true);
    expect(pointInPolygon(0.2, 0.4, L)).toBe(true);
    expect(pointInPolygon(0.8, 0.8, L)).toBe(false);
    expect(pointInPolygon(0.41, 0.41, L)).toBe(false);
    expect(pointInPolygon(1.1, 0.2, L)).toBe(false);
    // A ray along the notch's edge, through two vertices, must not flip the result.
    expect(pointInPolygon(-0.1, 0.4, L)).toBe(false);
  });

  it("pointInPolygon counts the boundary as inside", () => {
    expect(pointInPolygon(1, 0.2, L)).toBe(true);
    expect(pointInPolygon(0.4, 0.7, L)).toBe(true);
    expect(pointInPolygon(0.4, 0.4, L)).toBe(true);
    expect(pointInPolygon(0, 1, L)).toBe(true);
    expect(pointInPolygon(0.2, 1, L)).toBe(true);
  });

  it("boxAnchor is the bottom centre, normalized and clamped into the frame", () => {
    expect(boxAnchor([100, 200, 300, 600], 1000, 800)).toEqual([0.2, 0.75]);
    expect(boxAnchor([-50, 700, 10, 820], 1000, 800)).toEqual([0, 1]);
  });

  it("boxOverlap is the fraction of the first box inside the second", () => {
    expect(boxOverlap([10, 10, 20, 20], [0, 0, 100, 100])).toBe(1);
    expect(boxOverlap([0, 0, 100, 100], [10, 10, 20, 20])).toBeCloseTo(0.01);
    expect(boxOverlap([0, 0, 10, 10], [5, 0, 100, 100])).toBe(0.5);
    expect(boxOverlap([0, 0, 10, 10], [10, 0, 20, 10])).toBe(0);
    expect(boxOverlap([5, 5, 5, 10], [0, 0, 100, 100])).toBe(0);
  });
});

describe("presence", () => {
  const presence = { name: "enter-a", presence: { zone: "a" }, cooldownSeconds: 0 };

  it("fires when a track of the class enters the zone, once per entry", () => {
    const e = engine([presence]);
    const events = run(e, [frame(0, at(1, OUT)), frame(1, at(1, A)), frame(2, at(1, A)), frame(3, at(1, A))]);
    expect(events).toEqual([
      {
        id: "enter-a:1:1000",
        rule: "enter-a",
        severity: "warning",
        kind: "presence",
        trackId: 1,
        zone: "a",
        box: [180, 700, 220, 900],
        startedAtMs: 1000,
        timestampMs: 1000,
        detail: "person entered zone a",
      },
    ]);
  });

  it("fires for a track first seen inside the zone", () => {
    expect(run(engine([presence]), [frame(5, at(1, A))]).map((e) => e.id)).toEqual(["enter-a:1:5000"]);
  });

  it("does not fire outside the zone, in another zone, or for another class", () => {
    const e = engine([presence]);
    const events = run(
      e,
      seconds(0, 5, () => [at(1, OUT), at(2, B), at(3, A, CAR)]),
    );
    expect(events).toEqual([]);
  });

  it("only considers the listed classes", () => {
    const e = engine([{ name: "cars", presence: { zone: "a", classes: ["car"] } }]);
    const events = run(e, [frame(0, at(1, A), at(2, A, CAR))]);
    expect(events.map((x) => x.trackId)).toEqual([2]);
  });

  it("cooldown suppresses a refire for the same track and allows it afterwards", () => {
    const e = engine([{ ...presence, cooldownSeconds: 10 }]);
    const inAndOut = (t: number) => [at(1, t % 2 === 0 ? OUT : A)]; // enters on every odd second
    const events = run(e, seconds(0, 14, inAndOut));
    expect(firedAt(events)).toEqual([1, 11]);
  });

  it("cooldown is per track", () => {
    const e = engine([{ ...presence, cooldownSeconds: 10 }]);
    const events = run(e, [frame(0, at(1, A)), frame(1, at(1, A), at(2, A))]);
    expect(events.map((x) => x.id)).toEqual(["enter-a:1:0", "enter-a:2:1000"]);
  });

  it("a short occlusion is not a new entry", () => {
    const e = engine([presence]);
    const events = run(e, [frame(0, at(1, A)), frame(1), frame(2), frame(3, at(1, A))]);
    expect(firedAt(events)).toEqual([0]);
  });

  it("forgets a track missing longer than the ttl", () => {
    const e = engine([presence], { trackTtlMs: 5000 });
    const events = run(e, [frame(0, at(1, A)), frame(3), frame(4, at(1, A)), frame(5), frame(10), frame(11, at(1, A))]);
    expect(firedAt(events)).toEqual([0, 11]);
  });
});

describe("dwell", () => {
  const dwell = { name: "loiter", dwell: { zone: "a", seconds: 5 }, cooldownSeconds: 0 };

  it("fires once the stay reaches the threshold, and once per stay", () => {
    const e = engine([dwell]);
    const events = run(
      e,
      seconds(0, 12, () => [at(1, A)]),
    );
    expect(firedAt(events)).toEqual([5]);
    expect(events[0]).toMatchObject({
      id: "loiter:1:0",
      kind: "dwell",
      trackId: 1,
      zone: "a",
      startedAtMs: 0,
      timestampMs: 5000,
      detail: "person in zone a for 5.0 s",
    });
  });

  it("does not fire before the threshold or outside the zone", () => {
    const e = engine([dwell]);
    expect(
      run(
        e,
        seconds(0, 4, () => [at(1, A)]),
      ),
    ).toEqual([]);
    expect(
      run(
        e,
        seconds(10, 30, () => [at(2, OUT), at(3, B)]),
      ),
    ).toEqual([]);
  });

  it("leaving restarts the stay", () => {
    const e = engine([dwell]);
    const events = run(
      e,
      seconds(0, 8, (t) => [at(1, t === 3 ? OUT : A)]),
    );
    expect(events).toEqual([]);
  });

  it("fires again after leaving and re-entering", () => {
    const e = engine([dwell]);
    const events = run(
      e,
      seconds(0, 20, (t) => [at(1, t === 8 ? OUT : A)]),
    );
    expect(events.map((x) => x.id)).toEqual(["loiter:1:0", "loiter:1:9000"]);
    expect(firedAt(events)).toEqual([5, 14]);
  });

  it("a stay that comes due during the cooldown fires when the cooldown ends", () => {
    const e = engine([{ ...dwell, cooldownSeconds: 30 }]);
    const events = run(
      e,
      seconds(0, 40, (t) => [at(1, t === 8 ? OUT : A)]),
    );
    expect(events.map((x) => x.id)).toEqual(["loiter:1:0", "loiter:1:9000"]);
    expect(firedAt(events)).toEqual([5, 35]);
  });

  it("a stay that ends inside the cooldown is not reported", () => {
    const e = engine([{ ...dwell, cooldownSeconds: 30 }]);
    const events = run(
      e,
      seconds(0, 40, (t) => [at(1, t === 8 || t >= 20 ? OUT : A)]),
    );
    expect(firedAt(events)).toEqual([5]);
  });
});

describe("count", () => {
  const crowd = { name: "crowd", count: { zone: "a", max: 2, forSeconds: 3 }, cooldownSeconds: 0 };
  const three = () => [at(1, A), at(2, A), at(3, A)];
  const two = () => [at(1, A), at(2, A), at(3, OUT)];

  it("fires once the count has been above max for forSeconds, once per episode", () => {
    const e = engine([crowd]);
    const events = run(e, seconds(0, 8, three));
    expect(events).toEqual([
      {
        id: "crowd:0:0",
        rule: "crowd",
        severity: "warning",
        kind: "count",
        trackId: 0,
        zone: "a",
        startedAtMs: 0,
        timestampMs: 3000,
        detail: "3 person in zone a (max 2) for 3.0 s",
      },
    ]);
  });

  it("does not fire within bounds, before forSeconds, or for tracks outside the zone or of another class", () => {
    const e = engine([crowd]);
    expect(run(e, seconds(0, 2, three))).toEqual([]);
    expect(run(e, seconds(3, 10, two))).toEqual([]);
    expect(
      run(
        e,
        seconds(11, 20, () => [at(1, A), at(2, A), at(4, B), at(5, A, CAR), at(6, A, CAR)]),
      ),
    ).toEqual([]);
  });

  it("needs the violation to hold continuously", () => {
    const e = engine([crowd]);
    expect(
      run(
        e,
        seconds(0, 10, (t) => (t % 3 === 2 ? two() : three())),
      ),
    ).toEqual([]);
  });

  it("re-arms when the count returns within bounds", () => {
    const e = engine([crowd]);
    const events = run(
      e,
      seconds(0, 15, (t) => (t === 6 ? two() : three())),
    );
    expect(events.map((x) => x.id)).toEqual(["crowd:0:0", "crowd:0:7000"]);
    expect(firedAt(events)).toEqual([3, 10]);
  });

  it("cooldown is per rule and defers a new episode until it ends", () => {
    const e = engine([{ ...crowd, cooldownSeconds: 20 }]);
    const events = run(
      e,
      seconds(0, 25, (t) => (t === 6 ? two() : three())),
    );
    expect(firedAt(events)).toEqual([3, 23]);
    expect(events[1]?.startedAtMs).toBe(7000);
  });

  it("going from too many to too few is a new episode", () => {
    const e = engine([{ name: "band", count: { min: 2, max: 3, forSeconds: 2 }, cooldownSeconds: 0 }]);
    const many = () => [at(1, A), at(2, A), at(3, B), at(4, B)];
    const events = run(
      e,
      seconds(0, 8, (t) => (t < 3 ? many() : [at(1, A)])),
    );
    expect(events.map((x) => [x.id, x.detail])).toEqual([
      ["band:0:0", "4 person in frame (max 3) for 2.0 s"],
      ["band:0:3000", "1 person in frame (min 2) for 2.0 s"],
    ]);
  });

  it("min over the whole frame fires when too few are seen", () => {
    const e = engine([{ name: "guard", count: { min: 1, forSeconds: 2 }, cooldownSeconds: 0 }]);
    const events = run(
      e,
      seconds(0, 6, (t) => (t < 2 ? [at(1, OUT)] : [])),
    );
    expect(events).toEqual([expect.objectContaining({ id: "guard:0:2000", timestampMs: 4000 })]);
    expect(events[0]?.zone).toBeUndefined();
    expect(events[0]?.detail).toBe("0 person in frame (min 1) for 2.0 s");
  });
});

describe("ppeMissing", () => {
  const ppe = { name: "hairnet", ppeMissing: { required: ["hairnet"], seconds: 3 }, cooldownSeconds: 0 };

  it("does not fire for a person wearing the equipment", () => {
    const e = engine([ppe]);
    const p = at(1, A);
    expect(
      run(
        e,
        seconds(0, 10, () => [p, worn(2, p, HAIRNET)]),
      ),
    ).toEqual([]);
  });

  it("fires for a person without it, after the threshold, once per episode", () => {
    const e = engine([ppe]);
    const events = run(
      e,
      seconds(0, 10, () => [at(1, A)]),
    );
    expect(events).toEqual([
      expect.objectContaining({
        id: "hairnet:1:0",
        kind: "ppeMissing",
        trackId: 1,
        box: [180, 700, 220, 900],
        startedAtMs: 0,
        timestampMs: 3000,
        detail: "person without hairnet for 3.0 s",
      }),
    ]);
  });

  it("equipment on someone else does not count", () => {
    const e = engine([ppe]);
    const other = at(3, B);
    const events = run(
      e,
      seconds(0, 5, () => [at(1, A), other, worn(2, other, HAIRNET)]),
    );
    expect(events.map((x) => x.trackId)).toEqual([1]);
  });

  it("seeing the equipment ends the episode", () => {
    const e = engine([ppe]);
    const p = at(1, A);
    const events = run(
      e,
      seconds(0, 10, (t) => (t === 2 ? [p, worn(2, p, HAIRNET)] : [p])),
    );
    expect(events.map((x) => x.id)).toEqual(["hairnet:1:3000"]);
    expect(firedAt(events)).toEqual([6]);
  });

  it("requires each required class", () => {
    const e = engine([{ ...ppe, ppeMissing: { required: ["hairnet", "glove"], seconds: 0 } }]);
    const p1 = at(1, A);
    const p2 = at(2, B);
    const events = run(e, [frame(0, p1, worn(11, p1, HAIRNET), worn(12, p1, GLOVE), p2, worn(21, p2, HAIRNET))]);
    expect(events.map((x) => [x.trackId, x.detail])).toEqual([[2, "person without glove for 0.0 s"]]);
  });

  it("with a zone, only people in the zone are checked", () => {
    const e = engine([{ ...ppe, ppeMissing: { zone: "b", required: ["hairnet"], seconds: 3 } }]);
    const events = run(
      e,
      seconds(0, 10, (t) => [at(1, A), at(2, t < 5 ? OUT : B)]),
    );
    expect(events).toEqual([
      expect.objectContaining({
        id: "hairnet:2:5000",
        zone: "b",
        detail: "person in zone b without hairnet for 3.0 s",
      }),
    ]);
  });

  it("does not fire for other classes", () => {
    const e = engine([ppe]);
    expect(
      run(
        e,
        seconds(0, 10, () => [at(1, A, CAR)]),
      ),
    ).toEqual([]);
  });
});

describe("sequence", () => {
  const seq = { name: "wash-first", sequence: { from: "a", to: "b", withinSeconds: 60 }, cooldownSeconds: 0 };

  it("passing through the from zone first is fine", () => {
    const e = engine([seq]);
    const path = [A, A, OUT, OUT, B, B, OUT, B];
    expect(
      run(
        e,
        path.map((x, t) => frame(t, at(1, x))),
      ),
    ).toEqual([]);
  });

  it("entering the to zone without the from zone fires", () => {
    const e = engine([seq]);
    const events = run(e, [frame(0, at(1, OUT)), frame(1, at(1, B)), frame(2, at(1, B))]);
    expect(events).toEqual([
      {
        id: "wash-first:1:1000",
        rule: "wash-first",
        severity: "warning",
        kind: "sequence",
        trackId: 1,
        zone: "b",
        box: [780, 700, 820, 900],
        startedAtMs: 1000,
        timestampMs: 1000,
        detail: "person entered zone b without zone a in the last 60.0 s",
      },
    ]);
  });

  it("a visit to the from zone too long ago does not count", () => {
    const e = engine([seq]);
    const events = run(e, [frame(0, at(1, A)), frame(10, at(1, OUT)), frame(70, at(1, OUT)), frame(71, at(1, B))]);
    expect(events.map((x) => x.id)).toEqual(["wash-first:1:71000"]);
  });

  it("the within window counts from the last moment in the from zone", () => {
    const e = engine([seq]);
    const events = run(e, [frame(0, at(1, A)), frame(10, at(1, A)), frame(11, at(1, OUT)), frame(70, at(1, B))]);
    expect(events).toEqual([]);
  });

  it("equipment tracks are not held to the sequence", () => {
    const e = engine([seq, { name: "ppe", ppeMissing: { required: ["hairnet"] } }]);
    const p = at(1, A);
    const q = at(3, B);
    const events = run(e, [frame(0, p, worn(2, p, HAIRNET)), frame(1, q, worn(4, q, HAIRNET))]);
    expect(events.map((x) => x.id)).toEqual(["wash-first:3:1000"]);
  });
});

describe("carry-over", () => {
  const presence = { name: "enter-a", presence: { zone: "a" }, cooldownSeconds: 0 };
  const enterB = { name: "enter-b", presence: { zone: "b" }, cooldownSeconds: 0 };
  const ids = (events: RuleEvent[]) => events.map((e) => e.id);
  /** A person `h` px tall with their feet at normalized (x, 0.9); reach is measured in such heights. */
  const person = (id: number, x: number, h = 200): RuleTrack => ({
    id,
    classId: PERSON,
    box: [x * W - 10, 900 - h, x * W + 10, 900],
    score: 0.9,
  });

  it("a new id born next to where a lost one was is the same person: presence does not fire again", () => {
    const frames = [frame(0, at(1, A)), frame(1, at(1, A)), frame(2, at(2, A + 0.05))];
    expect(ids(run(engine([presence]), frames))).toEqual(["enter-a:1:0"]);
    expect(ids(run(engine([presence], { carryOver: false }), frames))).toEqual(["enter-a:1:0", "enter-a:2:2000"]);
  });

  it("the stay carries over: dwell fires once, under the first id, timed from the first entry", () => {
    const dwell = { name: "loiter", dwell: { zone: "a", seconds: 5 }, cooldownSeconds: 0 };
    const frames = [...seconds(0, 2, () => [at(1, A)]), ...seconds(3, 10, () => [at(2, A + 0.02)])];
    const events = run(engine([dwell]), frames);
    expect(events).toEqual([
      expect.objectContaining({
        id: "loiter:1:0",
        trackId: 1,
        startedAtMs: 0,
        timestampMs: 5000,
        box: [200, 700, 240, 900],
        detail: "person in zone a for 5.0 s",
      }),
    ]);
    // Without it the new id starts a new stay, a second episode of the same one.
    expect(ids(run(engine([dwell], { carryOver: false }), frames))).toEqual(["loiter:2:3000"]);
  });

  it("sequence progress carries over: the from zone visited under the old id counts", () => {
    const seq = { name: "wash-first", sequence: { from: "a", to: "b", withinSeconds: 60 }, cooldownSeconds: 0 };
    // Washes as 1, walks into b and works there, is lost and found again as 2: as a new person, 2 never washed.
    const frames = [
      ...seconds(0, 1, () => [at(1, A)]),
      frame(2, at(1, OUT)),
      ...seconds(3, 6, () => [at(1, B)]),
      frame(7, at(2, B + 0.02)),
    ];
    expect(run(engine([seq]), frames)).toEqual([]);
    expect(ids(run(engine([seq], { carryOver: false }), frames))).toEqual(["wash-first:2:7000"]);
  });

  it("a sequence violation is not reported again by the new id", () => {
    const seq = { name: "wash-first", sequence: { from: "a", to: "b", withinSeconds: 60 }, cooldownSeconds: 0 };
    const frames = [frame(0, at(1, OUT)), ...seconds(1, 4, () => [at(1, B)]), frame(5, at(2, B))];
    expect(ids(run(engine([seq]), frames))).toEqual(["wash-first:1:1000"]);
    expect(ids(run(engine([seq], { carryOver: false }), frames))).toEqual(["wash-first:1:1000", "wash-first:2:5000"]);
  });

  it("cooldowns carry over with the person", () => {
    const e = engine([{ ...presence, cooldownSeconds: 10 }]);
    const frames = [
      frame(0, at(1, A)),
      frame(1, at(2, A)), // carried: no entry
      frame(2, at(2, OUT)),
      frame(3, at(2, A)), // re-entry inside person 1's cooldown
      frame(4, at(2, OUT)),
      frame(12, at(2, A)),
    ];
    expect(ids(run(e, frames))).toEqual(["enter-a:1:0", "enter-a:1:12000"]);
  });

  it("not when the new id is too far: the reach grows with the gap", () => {
    // 250 px apart, boxes 200 px tall: out of reach after 1 s (0.5 + 0.5 heights), within it after 2 s (0.5 + 1).
    expect(ids(run(engine([presence]), [frame(0, at(1, 0.05)), frame(1, at(2, 0.3))]))).toEqual([
      "enter-a:1:0",
      "enter-a:2:1000",
    ]);
    expect(ids(run(engine([presence]), [frame(0, at(1, 0.05)), frame(2, at(2, 0.3))]))).toEqual(["enter-a:1:0"]);
  });

  it("not when the old one has been gone too long", () => {
    expect(ids(run(engine([presence]), [frame(0, at(1, A)), frame(3, at(2, A))]))).toEqual([
      "enter-a:1:0",
      "enter-a:2:3000",
    ]);
    expect(ids(run(engine([presence]), [frame(0, at(1, A)), frame(2.5, at(2, A))]))).toEqual(["enter-a:1:0"]);
  });

  it("not across classes", () => {
    const e = engine([{ ...presence, presence: { zone: "a", classes: ["person", "car"] } }]);
    expect(ids(run(e, [frame(0, at(1, A)), frame(1, at(2, A, CAR))]))).toEqual(["enter-a:1:0", "enter-a:2:1000"]);
  });

  it("not into another zone", () => {
    // 240 px apart, within reach after 2 s, but 1 was lost in a and 2 is born in b.
    const events = run(engine([enterB]), [frame(0, at(1, 0.38)), frame(2, at(2, 0.62))]);
    expect(ids(events)).toEqual(["enter-b:2:2000"]);
  });

  it("not from a track that is still there", () => {
    const events = run(engine([presence]), [frame(0, at(1, A)), frame(1, at(1, A), at(2, A + 0.02))]);
    expect(ids(events)).toEqual(["enter-a:1:0", "enter-a:2:1000"]);
  });

  it("not from a track last seen at the border of the picture: it walked out", () => {
    const edge: RuleTrack = { id: 1, classId: PERSON, box: [0, 700, 40, 900], score: 0.9 };
    const inside: RuleTrack = { id: 2, classId: PERSON, box: [30, 700, 70, 900], score: 0.9 };
    expect(ids(run(engine([presence]), [frame(0, edge), frame(1, inside)]))).toEqual(["enter-a:1:0", "enter-a:2:1000"]);
  });

  it("a walking person is looked for ahead of where they were lost, not behind", () => {
    // 100 px tall, walking +100 px/s; lost after x = 300. One second later the reach is 100 px around x = 400.
    const walk = [frame(0, person(1, 0.1, 100)), frame(1, person(1, 0.2, 100)), frame(2, person(1, 0.3, 100))];
    expect(ids(run(engine([presence]), [...walk, frame(3, person(2, 0.39, 100))]))).toEqual(["enter-a:1:0"]);
    // 10 px behind the last sighting, but 110 px from where they would be: someone else.
    expect(ids(run(engine([presence]), [...walk, frame(3, person(2, 0.29, 100))]))).toEqual([
      "enter-a:1:0",
      "enter-a:2:3000",
    ]);
  });

  it("one lost track goes to one new track: the nearest, then the lower id", () => {
    const nearest = run(engine([presence]), [frame(0, at(1, A)), frame(1, at(2, A + 0.1), at(3, A + 0.03))]);
    expect(ids(nearest)).toEqual(["enter-a:1:0", "enter-a:2:1000"]);
    const tie = run(engine([presence]), [frame(0, at(1, A)), frame(1, at(3, A + 0.05), at(2, A - 0.05))]);
    expect(ids(tie)).toEqual(["enter-a:1:0", "enter-a:3:1000"]);
  });

  it("the old id coming back is the same person again", () => {
    const frames = [frame(0, at(1, A)), frame(1, at(2, A)), frame(2, at(1, A)), frame(3, at(1, A))];
    expect(ids(run(engine([presence]), frames))).toEqual(["enter-a:1:0"]);
  });

  it("the old id coming back while the new one is there: two people, and the new one is reported", () => {
    const dwell = { name: "loiter", dwell: { zone: "a", seconds: 3 }, cooldownSeconds: 0 };
    const frames = [frame(0, at(1, A)), frame(1, at(2, A + 0.02)), ...seconds(2, 6, () => [at(1, A), at(2, A + 0.02)])];
    const events = run(engine([presence, dwell]), frames);
    // 1 keeps its stay (since 0); 2 is a person of its own from 2 s, with a stay of its own.
    expect(events.map((e) => [e.id, e.timestampMs])).toEqual([
      ["enter-a:1:0", 0],
      ["enter-a:2:2000", 2000],
      ["loiter:1:0", 3000],
      ["loiter:2:2000", 5000],
    ]);
  });

  it("count rules are unaffected", () => {
    const crowd = { name: "crowd", count: { zone: "a", max: 1, forSeconds: 0 }, cooldownSeconds: 0 };
    // Two people, one of whom the tracker renames every second: the count is of boxes, 2 throughout.
    const events = run(
      engine([crowd]),
      seconds(0, 4, (t) => [at(1, 0.1), at(10 + t, 0.3)]),
    );
    expect(ids(events)).toEqual(["crowd:0:0"]);
  });

  it("untracked boxes (id 0) take no part", () => {
    const events = run(engine([presence]), [frame(0, at(1, A)), frame(1, at(0, A))]);
    expect(ids(events)).toEqual(["enter-a:1:0"]);
  });
});

describe("engine", () => {
  const rules = [
    { name: "enter-b", presence: { zone: "b" }, severity: "info" },
    { name: "loiter", dwell: { zone: "a", seconds: 3 } },
    { name: "crowd", count: { max: 1, forSeconds: 2 }, severity: "critical" },
    { name: "hairnet", ppeMissing: { required: ["hairnet"], seconds: 2 } },
    { name: "wash-first", sequence: { from: "a", to: "b" } },
  ];
  const script = (t: number) => {
    const p = at(1, t < 6 ? A : B);
    return [p, worn(2, p, HAIRNET), at(3, t < 3 ? OUT : B)];
  };

  it("same frames give the same events and ids", () => {
    const frames = seconds(0, 10, script);
    const first = run(engine(rules), frames);
    const second = run(engine(rules), frames);
    expect(first).toEqual(second);
    expect(first.map((x) => x.id)).toEqual([
      "crowd:0:0",
      "hairnet:3:0",
      "enter-b:3:3000",
      "loiter:1:0",
      "wash-first:3:3000",
      "enter-b:1:6000",
    ]);
    expect(new Set(first.map((x) => x.id)).size).toBe(first.length);
  });

  it("rejects rules naming unknown zones or classes", () => {
    const bad = [
      ruleSchema.parse({ name: "x", dwell: { zone: "nowhere", seconds: 1 } }),
      ruleSchema.parse({ name: "y", ppeMissing: { required: ["helmet"] } }),
    ];
    expect(validateRules({ zones: ZONES, rules: bad }, CLASSES)).toEqual([
      { rule: "x", message: 'zone "nowhere" is not defined' },
      { rule: "y", message: 'class "helmet" is not one the model detects' },
    ]);
    expect(() => createRuleEngine({ zones: ZONES, rules: bad }, CLASSES)).toThrow(/nowhere/);
    expect(validateRules({ zones: ZONES, rules: rules.map((r) => ruleSchema.parse(r)) }, CLASSES)).toEqual([]);
  });

  it("rejects a rule with no kind or two", () => {
    const none = ruleSchema.parse({ name: "none" });
    const two = ruleSchema.parse({ name: "two", dwell: { zone: "a", seconds: 1 }, presence: { zone: "a" } });
    expect(validateRules({ zones: ZONES, rules: [none, two] }, CLASSES).map((p) => p.rule)).toEqual(["none", "two"]);
  });
});
