import { describe, expect, it } from "vitest";
import { type IdBox, identityMetrics, type ScoredFrame } from "../../bench/tracking/idf1.ts";

/** A 100 × 100 box with its top-left corner at (x, 0); boxes 1000 px apart never overlap. */
const at = (id: number, x: number): IdBox => ({ id, box: [x, 0, x + 100, 100] });
const half = (id: number): IdBox => ({ id, box: [0, 0, 50, 100] });
const A = 0;
const B = 1000;
const C = 2000;

describe("identityMetrics", () => {
  it("scores a hand-made case: a split identity, a drifted box, a false positive, a gap", () => {
    // GT A (frames 0-3) is predicted as 1 in frames 0-1, then as 2 in frames 2-3 (one id switch).
    // GT B (frames 0-3) is predicted as 3, but in frame 3 the box is 60 px off: IoU = 40/160 = 0.25 < 0.5.
    // GT C is seen in frames 0 and 3 only, predicted as 5 both times: across the gap that is no switch.
    // Pred 4 is a false positive in frame 0.
    const frames: ScoredFrame[] = [
      { gt: [at(10, A), at(11, B), at(12, C)], pred: [at(1, A), at(3, B), at(5, C), at(4, 5000)] },
      { gt: [at(10, A), at(11, B)], pred: [at(1, A), at(3, B)] },
      { gt: [at(10, A), at(11, B)], pred: [at(2, A), at(3, B)] },
      { gt: [at(10, A), at(11, B), at(12, C)], pred: [at(2, A), at(3, B + 60), at(5, C)] },
    ];
    // Co-occurrences: (10,1) = 2, (10,2) = 2, (11,3) = 3, (12,5) = 2. Best matching: 10-1 (or 10-2), 11-3, 12-5:
    // IDTP = 2 + 3 + 2 = 7. GT boxes 4 + 4 + 2 = 10, so IDFN = 3; predicted boxes 2 + 2 + 4 + 1 + 2 = 11, IDFP = 4.
    // IDF1 = 2·7 / (2·7 + 4 + 3) = 14/21 = 2/3; IDP = 7/11; IDR = 7/10.
    const m = identityMetrics(frames);
    expect(m).toMatchObject({ idtp: 7, idfn: 3, idfp: 4, idsw: 1, gtIds: 3, predIds: 5 });
    expect(m.idf1).toBeCloseTo(2 / 3, 12);
    expect(m.idp).toBeCloseTo(7 / 11, 12);
    expect(m.idr).toBeCloseTo(7 / 10, 12);
  });

  it("matches identities globally, not greedily", () => {
    // Pred 1 follows GT B in frames 0-1, then GT A in frames 2-4; pred 2 follows GT A in frames 0-1.
    // Co-occurrences: (A,1) = 3, (B,1) = 2, (A,2) = 2. Greedy would take A-1 (3) and leave B unmatched; the
    // optimum is A-2 + B-1 = 4. GT boxes 5 + 2 = 7, predicted 5 + 2 = 7: IDFN = IDFP = 3, IDF1 = 8/14 = 4/7.
    // ID switches: GT A goes from 2 (frames 0-1) to 1 (frame 2): one.
    const frames: ScoredFrame[] = [
      { gt: [at(10, A), at(11, B)], pred: [at(2, A), at(1, B)] },
      { gt: [at(10, A), at(11, B)], pred: [at(2, A), at(1, B)] },
      { gt: [at(10, A)], pred: [at(1, A)] },
      { gt: [at(10, A)], pred: [at(1, A)] },
      { gt: [at(10, A)], pred: [at(1, A)] },
    ];
    const m = identityMetrics(frames);
    expect(m).toMatchObject({ idtp: 4, idfn: 3, idfp: 3, idsw: 1 });
    expect(m.idf1).toBeCloseTo(4 / 7, 12);
  });

  it("counts an IoU of exactly 0.5 as a match and keeps a continuing match over a better newcomer", () => {
    // A 100×100 GT box and its left half (50×100): intersection 5000, union 10000, IoU = 0.5 exactly.
    // In frame 1, pred 1 (IoU 0.5) keeps GT 10 although pred 2 sits exactly on it: no switch (CLEAR-MOT keeps
    // established correspondences). For IDF1, both pairs co-occur in frame 1: (10,1) = 2, (10,2) = 1, so 10-1,
    // IDTP = 2, IDFN = 0, IDFP = 1, IDF1 = 4/5.
    const frames: ScoredFrame[] = [
      { gt: [at(10, 0)], pred: [half(1)] },
      { gt: [at(10, 0)], pred: [half(1), at(2, 0)] },
    ];
    const m = identityMetrics(frames);
    expect(m).toMatchObject({ idtp: 2, idfn: 0, idfp: 1, idsw: 0 });
    expect(m.idf1).toBeCloseTo(4 / 5, 12);
  });

  it("is 1 for a perfect prediction and 0 with no prediction", () => {
    const frames: ScoredFrame[] = [{ gt: [at(10, A), at(11, B)], pred: [at(7, A), at(8, B)] }];
    expect(identityMetrics(frames)).toMatchObject({ idf1: 1, idp: 1, idr: 1, idsw: 0 });
    expect(identityMetrics([{ gt: [at(10, A)], pred: [] }])).toMatchObject({ idf1: 0, idfn: 1, idfp: 0 });
  });
});
