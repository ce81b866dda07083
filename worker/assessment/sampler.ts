// The periodic assessment of a camera with assessment.sampleIntervalSeconds (pure): at most one sample per interval
// per camera, and only while people are in view (an empty scene has nothing to assess, and a model call costs).
// Time is the frames' own (frame.timestampMs), so a sample's id names the frame it shows.

export type Sampler = {
  /** Whether this frame is the camera's next sample; true marks it taken. */
  due(cameraId: string, intervalSeconds: number, frameMs: number, peopleInView: number): boolean;
  /** The camera left (or changed): its next sample is due at once when it has people in view again. */
  forget(cameraId: string): void;
};

export function createSampler(): Sampler {
  const last = new Map<string, number>();
  return {
    due(cameraId, intervalSeconds, frameMs, peopleInView) {
      if (peopleInView <= 0) return false;
      const prev = last.get(cameraId);
      // A frame clock that went back (a looping file, a camera whose clock was set back) starts over.
      if (prev !== undefined && frameMs >= prev && frameMs - prev < intervalSeconds * 1000) return false;
      last.set(cameraId, frameMs);
      return true;
    },
    forget: (cameraId) => void last.delete(cameraId),
  };
}
