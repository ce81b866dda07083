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
