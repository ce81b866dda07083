// `npm run bench -- <name>`: runs one benchmark; its result is one JSON object on the last line of stdout.
const BENCHES: Record<string, () => Promise<unknown>> = {
  operator: async () => (await import("./operator.ts")).benchOperator(),
  worker: async () => (await import("./worker.ts")).benchWorker(),
  gateway: async () => (await import("./gateway.ts")).benchGateway(),
  alarms: async () => (await import("./alarms.ts")).benchAlarms(),
  fleet: async () => (await import("./fleet.ts")).benchFleet(),
  assessor: async () => (await import("./assessor.ts")).benchAssessor(),
  tracking: async () => (await import("./tracking.ts")).benchTracking(),
  density: async () => (await import("./density.ts")).benchDensity(),
};

const name = process.argv[2];
const bench = name ? BENCHES[name] : undefined;
if (!bench) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(BENCHES).join("|")}>\n`);
  process.exit(2);
}
const result = await bench();
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
