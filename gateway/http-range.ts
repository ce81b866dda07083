// HTTP range requests (RFC 9110 §14) for the alarm clips, so a browser's <video> can seek: it asks for
// `bytes=N-` at the seek target and gets 206 with that part. Pure: the route turns the answer into headers.
// One range per request; a multi-range request gets the whole object (200), which the RFC allows and every video
// element accepts, rather than a multipart/byteranges body no player asks for.

export type RangeAnswer =
  | { kind: "full" }
  /** Inclusive byte positions, as Content-Range writes them. */
  | { kind: "partial"; start: number; end: number }
  /** 416, with `Content-Range: bytes *\/size`. */
  | { kind: "unsatisfiable" };

/**
 * The answer to a Range header for an object of `size` bytes. `ifRange`: the request's If-Range; when it names
 * another version than `etag` the whole (new) object is sent, never a piece of it spliced onto an old one.
 */
export function answerRange(
  header: string | undefined,
  size: number,
  opts: { ifRange?: string | undefined; etag?: string; lastModified?: string } = {},
): RangeAnswer {
  if (header === undefined) return { kind: "full" };
  if (opts.ifRange !== undefined && opts.ifRange !== opts.etag && opts.ifRange !== opts.lastModified)
    return { kind: "full" };
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header);
  // Another unit, or a malformed header: ignored, as the RFC says a server may.
  if (!m) return { kind: "full" };
  const specs = (m[1] as string).split(",").map((s) => s.trim());
  if (specs.length !== 1) return { kind: "full" };
  const r = /^(\d*)-(\d*)$/.exec(specs[0] as string);
  if (!r || (r[1] === "" && r[2] === "")) return { kind: "full" };
  if (r[1] === "") {
    // A suffix: the last N bytes.
    const n = Number(r[2]);
    if (n === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "partial", start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(r[1]);
  const end = r[2] === "" ? size - 1 : Math.min(Number(r[2]), size - 1);
  if (r[2] !== "" && Number(r[2]) < start) return { kind: "full" }; // invalid (last < first): ignored
  if (start >= size) return { kind: "unsatisfiable" };
  return { kind: "partial", start, end };
}
