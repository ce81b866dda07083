// The wall-clock time of a live stream's frame, sampled by ffmpeg's fps filter. Arrival times jitter (ffmpeg and
// TCP deliver frames in bursts), which would bend the tracker's velocities, so frames are stamped on a steady clock:
// an anchor plus frame count / fps. But a stamp must never be later than the frame's arrival: the first frames of
// a connection come in one burst of buffered frames, and a clock anchored at that burst ran ~2.2 s ahead of the
// frames' real arrival for as long as the connection lasted (measured on the RTSP test server at 10 fps), so alarm
// clips cut around event times lost 2 s of pre-roll. A stamp ahead of arrival re-anchors at arrival; one that
// falls more than `maxLagMs` behind (frames dropped, a slower stream) re-anchors too, so the clock never drifts.
export type FrameClock = { at: number; seq: number };

export function liveFrameTime(
  clock: FrameClock | undefined,
  seq: number,
  arrivalMs: number,
  fps: number,
  maxLagMs = 1000,
): { timestampMs: number; clock: FrameClock } {
  if (clock) {
    const t = clock.at + Math.round(((seq - clock.seq) * 1000) / fps);
    if (t <= arrivalMs && arrivalMs - t <= maxLagMs) return { timestampMs: t, clock };
  }
  return { timestampMs: arrivalMs, clock: { at: arrivalMs, seq } };
}
