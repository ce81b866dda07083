// ffmpeg's CSV segment list (`-f segment -segment_list L -segment_list_type csv`): one line per *finished*
// segment, `file,start,end` (seconds on the recording's timeline, six decimals). The segment muxer appends a line
// only after it has closed the segment's file, so a listed segment is complete; that is the recorder's "segment
// complete" signal (measured with ffmpeg 5.1: the open segment never appears, and after `kill -9` it is left
// unreadable). The list is read incrementally as it grows, so a read may end inside a line: that tail is kept.
export type SegmentEntry = { file: string; startS: number; endS: number };

export type ParsedList = {
  entries: SegmentEntry[];
  /** Text after the last newline: a line ffmpeg is still writing. Prepend it to the next read. */
  rest: string;
  /** Complete lines that are not `file,start,end`, each with why. */
  malformed: string[];
};

/**
 * Splits one CSV line into fields. ffmpeg quotes a file name that holds a comma, a quote or a line break, doubling
 * inner quotes (libavformat/segment.c print_csv_escaped_str), as RFC 4180 does.
 */
function csvFields(line: string): string[] | undefined {
  const fields: string[] = [];
  let i = 0;
  while (i <= line.length) {
    if (line[i] === '"') {
      let value = "";
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) return undefined; // an unterminated quote
        value += line.slice(i, q);
        if (line[q + 1] === '"') {
          value += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      fields.push(value);
      if (i < line.length && line[i] !== ",") return undefined;
      i++;
    } else {
      const c = line.indexOf(",", i);
      const end = c < 0 ? line.length : c;
      fields.push(line.slice(i, end));
      i = end + 1;
    }
  }
  return fields;
}

/** A quoted field may hold a line break, so a "line" ends at a newline outside quotes. */
function splitRecords(text: string): { records: string[]; rest: string } {
  const records: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') quoted = !quoted;
    else if (ch === "\n" && !quoted) {
      records.push(text.slice(start, i).replace(/\r$/, ""));
      start = i + 1;
    }
  }
  return { records, rest: text.slice(start) };
}

const NUMBER = /^-?\d+(\.\d+)?$/;

export function parseSegmentList(text: string): ParsedList {
  const { records, rest } = splitRecords(text);
  const entries: SegmentEntry[] = [];
  const malformed: string[] = [];
  for (const record of records) {
    if (record.trim() === "") continue;
    const f = csvFields(record);
    if (f?.length !== 3) {
      malformed.push(`${JSON.stringify(record)}: want 3 fields file,start,end`);
      continue;
    }
    const [file, start, end] = f as [string, string, string];
    if (!file || file.includes("/") || file === "." || file === "..") {
      malformed.push(`${JSON.stringify(record)}: file must be a plain name in the list's directory`);
      continue;
    }
    if (!NUMBER.test(start) || !NUMBER.test(end)) {
      malformed.push(`${JSON.stringify(record)}: start and end must be numbers of seconds`);
      continue;
    }
    const startS = Number(start);
    const endS = Number(end);
    if (endS < startS) {
      malformed.push(`${JSON.stringify(record)}: end ${endS} is before start ${startS}`);
      continue;
    }
    entries.push({ file, startS, endS });
  }
  return { entries, rest, malformed };
}
