// The alarm service as a child of `vigil up`: `vigil alarms` (alarms/main.ts) with one addition, that the parent
// going away (even SIGKILLed) stops it with a real SIGTERM, instead of leaving an orphan consuming the queue: before
// the service has its handler (nothing consumed yet) that ends the process at once, after it a clean stop. The IPC
// channel is only that signal: unref'd, it carries no messages and does not keep the process alive once the service
// has stopped.
const parentGone = () => process.kill(process.pid, "SIGTERM");
process.channel?.unref();
process.once("disconnect", parentGone);
if (!process.connected) parentGone();

const { runAlarms } = await import("../alarms/main.ts");
try {
  await runAlarms(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`vigil alarms: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
