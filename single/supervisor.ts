// Keeps one worker process running: when it exits it is started again after an exponential backoff
// (1 s, 2 s, 4 s … capped at 30 s), and the backoff starts over once a run has stayed up for a minute.
// Time and processes are injected, so the policy is unit-tested without waiting or forking.

import type { WorkerState } from "../operator/api/executor.ts";

export type ExitInfo = { code: number | null; signal: NodeJS.Signals | null; at: number; uptimeMs: number };

/** A started process, as the supervisor sees it. */
export type SupervisedProcess = { readonly pid?: number | undefined; kill(signal: NodeJS.Signals): void };

/** Starts the process and calls onExit exactly once when it has exited (or failed to start). */
export type Spawner = (onExit: (code: number | null, signal: NodeJS.Signals | null) => void) => SupervisedProcess;

export type Clock = {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
};

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export type SupervisorOptions = {
  spawn: Spawner;
  clock?: Clock;
  /** First restart delay. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** A run that lasted this long counts as stable: the next restart waits initialDelayMs again. */
  resetAfterMs?: number;
  /** How long stop() waits after SIGTERM before SIGKILL. */
  stopGraceMs?: number;
  /** After each start (the first one and every restart). */
  onStart?: (proc: SupervisedProcess, restarts: number) => void;
  /** After each exit that was not asked for, with the delay before the restart. */
  onExit?: (exit: ExitInfo, delayMs: number) => void;
};

export class Supervisor {
  readonly #spawn: Spawner;
  readonly #clock: Clock;
  readonly #initial: number;
  readonly #max: number;
  readonly #resetAfter: number;
  readonly #grace: number;
  readonly #opts: SupervisorOptions;
  #state: WorkerState = "stopped";
  #proc: SupervisedProcess | undefined;
  #startedAt = 0;
  #delay: number;
  #restarts = 0;
  #timer: unknown;
  #lastExit: ExitInfo | undefined;
  #stopping = false;
  #exited: (() => void) | undefined;

  constructor(opts: SupervisorOptions) {
    this.#opts = opts;
    this.#spawn = opts.spawn;
    this.#clock = opts.clock ?? systemClock;
    this.#initial = opts.initialDelayMs ?? 1000;
    this.#max = opts.maxDelayMs ?? 30_000;
    this.#resetAfter = opts.resetAfterMs ?? 60_000;
    this.#grace = opts.stopGraceMs ?? 10_000;
    this.#delay = this.#initial;
  }

  get state(): WorkerState {
    return this.#state;
  }
  /** Times the process was started again after it exited. */
  get restarts(): number {
    return this.#restarts;
  }
  get pid(): number | undefined {
    return this.#state === "running" || this.#state === "starting" ? this.#proc?.pid : undefined;
  }
  get lastExit(): ExitInfo | undefined {
    return this.#lastExit;
  }
  /** The delay the next unexpected exit will wait before restarting. */
  get nextDelayMs(): number {
    return this.#delay;
  }

  start(): void {
    if (this.#state !== "stopped" || this.#stopping) return;
    this.#run();
  }

  /** Marks the process as up (e.g. it reported its first stats); until then it is "starting". */
  markRunning(): void {
    if (this.#state === "starting") this.#state = "running";
  }

  /** Stops restarting, then ends the process: SIGTERM, and SIGKILL after the grace period. */
  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    const proc = this.#proc;
    if (!proc || this.#state === "stopped" || this.#state === "backoff") {
      this.#state = "stopped";
      return;
    }
    const exited = new Promise<void>((resolve) => {
      this.#exited = resolve;
    });
    proc.kill("SIGTERM");
    const kill = this.#clock.setTimeout(() => proc.kill("SIGKILL"), this.#grace);
    await exited;
    this.#clock.clearTimeout(kill);
  }

  #run(): void {
    this.#timer = undefined;
    this.#state = "starting";
    this.#startedAt = this.#clock.now();
    let done = false;
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      if (done) return;
      done = true;
      this.#onExit(code, signal);
    };
    try {
      this.#proc = this.#spawn(onExit);
    } catch {
      this.#proc = undefined;
      onExit(null, null);
      return;
    }
    if (!done) this.#opts.onStart?.(this.#proc, this.#restarts);
  }

  #onExit(code: number | null, signal: NodeJS.Signals | null): void {
    const now = this.#clock.now();
    const uptimeMs = now - this.#startedAt;
    this.#lastExit = { code, signal, at: now, uptimeMs };
    if (this.#stopping) {
      this.#state = "stopped";
      this.#exited?.();
      return;
    }
    if (uptimeMs >= this.#resetAfter) this.#delay = this.#initial;
    const delay = this.#delay;
    this.#delay = Math.min(this.#max, delay * 2);
    this.#state = "backoff";
    this.#opts.onExit?.(this.#lastExit, delay);
    this.#timer = this.#clock.setTimeout(() => {
      if (this.#stopping) return;
      this.#restarts++;
      this.#run();
    }, delay);
  }
}
