import { describe, expect, it } from "vitest";
import { parseSegmentList } from "../../alarms/clips/segments.ts";

describe("ffmpeg's CSV segment list", () => {
  it("reads finished segments, as ffmpeg 5.1 writes them", () => {
    // Verbatim from a recording of the GStreamer RTSP server (1 s GOP): the first segment is longer because the
    // muxer cuts at the first keyframe after each multiple of segment_time.
    const text = "r1-000000.ts,0.000000,2.900000\nr1-000001.ts,2.900000,4.900000\nr1-000002.ts,4.900000,6.900000\n";
    const { entries, rest, malformed } = parseSegmentList(text);
    expect(entries).toEqual([
      { file: "r1-000000.ts", startS: 0, endS: 2.9 },
      { file: "r1-000001.ts", startS: 2.9, endS: 4.9 },
      { file: "r1-000002.ts", startS: 4.9, endS: 6.9 },
    ]);
    expect(rest).toBe("");
    expect(malformed).toEqual([]);
  });

  it("keeps a line still being written for the next read, and joins it", () => {
    const first = parseSegmentList("a.ts,0.000000,2.000000\nb.ts,2.000000,4.0");
    expect(first.entries).toEqual([{ file: "a.ts", startS: 0, endS: 2 }]);
    expect(first.rest).toBe("b.ts,2.000000,4.0");
    const second = parseSegmentList(`${first.rest}00000\n`);
    expect(second.entries).toEqual([{ file: "b.ts", startS: 2, endS: 4 }]);
    expect(second.rest).toBe("");
  });

  it("unquotes file names ffmpeg escaped (comma, quote, line break), as RFC 4180 does", () => {
    const text = '"cam,1.ts",0.000000,2.000000\n"say ""hi"".ts",2.000000,4.000000\n"two\nlines.ts",4.000000,6.000000\n';
    expect(parseSegmentList(text).entries.map((e) => e.file)).toEqual(["cam,1.ts", 'say "hi".ts', "two\nlines.ts"]);
    // A quoted name whose closing quote has not been written yet is an incomplete line, not a malformed one.
    const partial = parseSegmentList('"cam\n');
    expect(partial.entries).toEqual([]);
    expect(partial.malformed).toEqual([]);
    expect(partial.rest).toBe('"cam\n');
  });

  it("reports malformed lines with the reason and keeps reading the others", () => {
    const text = [
      "ok.ts,0.000000,2.000000",
      "only,two",
      "../escape.ts,2.000000,4.000000",
      "x.ts,two,4.000000",
      "back.ts,6.000000,4.000000",
      "",
      "ok2.ts,2.000000,4.000000",
      "",
    ].join("\r\n");
    const { entries, malformed } = parseSegmentList(text);
    expect(entries.map((e) => e.file)).toEqual(["ok.ts", "ok2.ts"]);
    expect(malformed).toHaveLength(4);
    expect(malformed[0]).toMatch(/"only,two": want 3 fields/);
    expect(malformed[1]).toMatch(/plain name/);
    expect(malformed[2]).toMatch(/must be numbers/);
    expect(malformed[3]).toMatch(/end 4 is before start 6/);
  });
});
