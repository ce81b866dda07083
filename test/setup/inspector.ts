// Faults in a running worker's model thread, caused from outside through Node's own inspector: no hook in
// Vigil's code. A process started with NODE_OPTIONS=--inspect-port=P opens its inspector on 127.0.0.1:P on
// SIGUSR1 (Node's default on Linux); the NodeWorker domain attaches to its worker threads, and code evaluated in
// the model thread (detector-thread.ts) makes it throw an uncaught error, which ends it as any bug would, or
// block, as a hung native call would.

/** What to put in NODE_OPTIONS so that SIGUSR1 opens the inspector on this port (nothing listens until then). */
export const inspectOption = (port: number) => `--inspect-port=127.0.0.1:${port}`;

type Message = { id?: number; method?: string; params?: Record<string, any>; result?: unknown; error?: unknown };

/** Ends the model thread with an uncaught error. */
export const crashModelThread = (pid: number, port: number) =>
  inModelThread(pid, port, "setTimeout(() => { throw new Error('crash injected by the test') })");

/** Blocks the model thread for `ms`, as a model run that hangs would: alive, answering nothing. */
export const hangModelThread = (pid: number, port: number, ms: number) =>
  inModelThread(pid, port, `setTimeout(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ${ms}))`);

/** Evaluates `statement` in the model thread of process `pid`; resolves once it ran (not what it scheduled). */
async function inModelThread(pid: number, port: number, statement: string, timeoutMs = 20_000): Promise<void> {
  process.kill(pid, "SIGUSR1");
  const deadline = Date.now() + timeoutMs;
  let target: { webSocketDebuggerUrl: string } | undefined;
  while (!target) {
    try {
      [target] = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as (typeof target)[];
    } catch {
      if (Date.now() > deadline) throw new Error(`pid ${pid}: no inspector on port ${port}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  try {
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error("inspector connection failed"));
    });
    const crashed = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pid ${pid}: no model thread answered`)), timeoutMs);
      ws.onmessage = (e) => {
        const m = JSON.parse(String(e.data)) as Message;
        if (
          m.method === "NodeWorker.attachedToWorker" &&
          String(m.params?.workerInfo?.url).includes("detector-thread")
        ) {
          const evaluate = {
            id: 1,
            method: "Runtime.evaluate",
            params: { expression: `${statement}; 'armed'` },
          };
          ws.send(
            JSON.stringify({
              id: 2,
              method: "NodeWorker.sendMessageToWorker",
              params: { sessionId: m.params?.sessionId, message: JSON.stringify(evaluate) },
            }),
          );
        }
        if (m.method === "NodeWorker.receivedMessageFromWorker" && String(m.params?.message).includes("armed")) {
          clearTimeout(timer);
          resolve();
        }
      };
    });
    ws.send(JSON.stringify({ id: 1, method: "NodeWorker.enable", params: { waitForDebuggerOnStart: false } }));
    await crashed;
  } finally {
    // A session left open would hold the process at exit ("Waiting for the debugger to disconnect").
    ws.close();
  }
}
