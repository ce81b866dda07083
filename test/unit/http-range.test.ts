import { describe, expect, it } from "vitest";
import { answerRange } from "../../gateway/http-range.ts";

describe("HTTP range answers", () => {
  it("serve one range: closed, open-ended, a suffix, and an end past the object clamped to it", () => {
    expect(answerRange("bytes=0-99", 1000)).toEqual({ kind: "partial", start: 0, end: 99 });
    expect(answerRange("bytes=500-", 1000)).toEqual({ kind: "partial", start: 500, end: 999 });
    expect(answerRange("bytes=-100", 1000)).toEqual({ kind: "partial", start: 900, end: 999 });
    expect(answerRange("bytes=-5000", 1000)).toEqual({ kind: "partial", start: 0, end: 999 });
    expect(answerRange("bytes=900-5000", 1000)).toEqual({ kind: "partial", start: 900, end: 999 });
  });

  it("are unsatisfiable past the end, and whole for no header, another unit, bad syntax or several ranges", () => {
    expect(answerRange("bytes=1000-", 1000)).toEqual({ kind: "unsatisfiable" });
    expect(answerRange("bytes=-0", 1000)).toEqual({ kind: "unsatisfiable" });
    expect(answerRange(undefined, 1000)).toEqual({ kind: "full" });
    expect(answerRange("items=0-1", 1000)).toEqual({ kind: "full" });
    expect(answerRange("bytes=abc", 1000)).toEqual({ kind: "full" });
    expect(answerRange("bytes=9-3", 1000)).toEqual({ kind: "full" });
    expect(answerRange("bytes=0-1,5-6", 1000)).toEqual({ kind: "full" });
  });

  it("send the whole object when If-Range names another version", () => {
    expect(answerRange("bytes=0-9", 1000, { ifRange: '"a"', etag: '"a"' })).toEqual({
      kind: "partial",
      start: 0,
      end: 9,
    });
    expect(answerRange("bytes=0-9", 1000, { ifRange: '"old"', etag: '"a"' })).toEqual({ kind: "full" });
  });
});
