// Where the gateway reads results (ASSESSMENT_REDIS): the latest per camera (a hash), the recent ones (a list over all
// cameras and one per camera, newest first, capped), a PUBLISH for live pushes, and the task's done marker. One Lua
// script does it all atomically and only when the done marker is absent, so a task redelivered after a crash between
// the result's publish and the ack is stored (and pushed) once, not twice: the marker and the store cannot disagree.
import type { Redis } from "ioredis";
import { type AssessmentResult, ASSESSMENT_REDIS as R } from "./messages.ts";

/** Done markers last a day: longer than any task's deadline, so a redelivery always finds its marker. */
export const DONE_TTL_SECONDS = 86_400;

// KEYS: done, latest, recent, recentOf. ARGV: camera id, result JSON, recentMax, recentPerCameraMax, channel, ttl.
const STORE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('LPUSH', KEYS[3], ARGV[2])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[3]) - 1)
redis.call('LPUSH', KEYS[4], ARGV[2])
redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[4]) - 1)
redis.call('SET', KEYS[1], '1', 'EX', tonumber(ARGV[6]))
redis.call('PUBLISH', ARGV[5], ARGV[2])
return 1
`;

export type ResultsStore = {
  /** The task was completed before (its result stored): a redelivery to ack. */
  isDone(taskId: string): Promise<boolean>;
  /** Stores the result and sets the done marker; false when the marker was already there (nothing written). */
  store(result: AssessmentResult): Promise<boolean>;
};

export function createResultsStore(redis: Redis): ResultsStore {
  redis.defineCommand("vigilStoreAssessment", { numberOfKeys: 4, lua: STORE });
  const run = redis as Redis & {
    vigilStoreAssessment(...args: (string | number)[]): Promise<number>;
  };
  return {
    isDone: async (id) => (await redis.exists(R.done(id))) === 1,
    async store(result) {
      const json = JSON.stringify(result);
      const n = await run.vigilStoreAssessment(
        R.done(result.id),
        R.latest,
        R.recent,
        R.recentOf(result.camera_id),
        result.camera_id,
        json,
        R.recentMax,
        R.recentPerCameraMax,
        R.channel,
        DONE_TTL_SECONDS,
      );
      return n === 1;
    },
  };
}
