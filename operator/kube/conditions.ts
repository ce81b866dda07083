// apimachinery's meta.SetStatusCondition rule: lastTransitionTime moves only when status changes.
import type { Condition } from "../api/meta.ts";

export type ConditionInput = Omit<Condition, "lastTransitionTime">;

export function setCondition(existing: readonly Condition[] | undefined, next: ConditionInput, now: Date): Condition[] {
  const list = [...(existing ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const prev = i >= 0 ? list[i] : undefined;
  const lastTransitionTime =
    prev && prev.status === next.status ? prev.lastTransitionTime : now.toISOString().replace(/\.\d+Z$/, "Z");
  const merged: Condition = { ...next, lastTransitionTime };
  if (i >= 0) list[i] = merged;
  else list.push(merged);
  return list;
}

export function setConditions(existing: readonly Condition[] | undefined, next: ConditionInput[], now: Date) {
  return next.reduce<Condition[]>((acc, c) => setCondition(acc, c, now), [...(existing ?? [])]);
}

export const findCondition = (list: readonly Condition[] | undefined, type: string) =>
  list?.find((c) => c.type === type);
