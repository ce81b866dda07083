// Stream URLs with credentials injected from a Secret, and the redaction that keeps them out of every log line.

export type Credentials = { username: string; password: string };

/** The URL ffmpeg opens: credentials go in here and only here, percent-encoded. */
export function withCredentials(url: string, creds?: Credentials): string {
  if (!creds) return url;
  const u = new URL(url);
  u.username = encodeURIComponent(creds.username);
  u.password = encodeURIComponent(creds.password);
  return u.toString();
}

/** Replaces any user:password@ in text (URLs inside ffmpeg messages included) and the given secrets. */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s'"]*@/gi, "$1***@");
  for (const s of secrets) if (s) out = out.split(s).join("***").split(encodeURIComponent(s)).join("***");
  return out;
}

/** An http(s) URL: a model the worker downloads (worker/infer/model-source.ts), not a local file. */
export const isHttpUrl = (url: string) => /^https?:\/\//i.test(url);

/** file:// URLs and plain paths are files (they end); everything else is a live stream. */
export function isFileSource(url: string): boolean {
  return url.startsWith("file://") || !/^[a-z][a-z0-9+.-]*:\/\//i.test(url);
}

export const filePath = (url: string) => (url.startsWith("file://") ? decodeURIComponent(new URL(url).pathname) : url);

/** A short, stable cause from ffmpeg's last error lines, for status and metrics. */
export function classifyFfmpegError(stderr: string): string {
  const rules: [RegExp, string][] = [
    [/401 Unauthorized|Unauthorized|authorization failed/i, "authentication failed"],
    [/Connection refused/i, "connection refused"],
    [/Connection timed out|timed out|Operation timed out/i, "connection timed out"],
    [/No such file or directory/i, "file not found"],
    // Before "not found": a damaged MP4 says "moov atom not found".
    [
      /Invalid data found when processing input|could not find codec parameters|does not contain any stream|moov atom not found/i,
      "not a video",
    ],
    [/404 Not Found|Server returned 404/i, "stream not found"],
    [/Name or service not known|Temporary failure in name resolution/i, "host not found"],
    [/Server returned 5\d\d/i, "server error"],
  ];
  for (const [re, cause] of rules) if (re.test(stderr)) return cause;
  return "stream error";
}
