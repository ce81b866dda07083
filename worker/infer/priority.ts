// Per-thread CPU priority on Linux. A thread's nice value is its own (setpriority on its TID), and threads it
// creates later inherit it: onnxruntime's pool threads, made when the session loads, take the model thread's, and
// ffmpeg children spawned from the main thread take the main thread's. Lowering a nice value (more priority) needs
// CAP_SYS_NICE or RLIMIT_NICE, which pods running as non-root lack; raising it (less priority) is always allowed.
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";

/** This thread's id as the kernel knows it (for the main thread, the process id). */
export function threadId(): number {
  // /proc/thread-self → "<pid>/task/<tid>"
  return Number(readlinkSync("/proc/thread-self").split("/").pop());
}

/** Sets this thread's nice value; the reason it could not, if it could not (the thread keeps its old value). */
export function setThreadNice(nice: number): string | undefined {
  try {
    setPriority(threadId(), nice);
    return undefined;
  } catch (err) {
    return `nice ${nice}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
}
