#!/usr/bin/env node
// The `vigil` command: one binary, one subcommand per process kind.
const USAGE = `usage: vigil <command>

commands:
  operator   run the Kubernetes operator against $KUBECONFIG (or in-cluster config)
  worker     run cameras through detection, publishing on Redis (vigil worker --cameras FILE)
  gateway    serve the REST/live API over Redis and the cameras (VIGIL_API_TOKEN; vigil gateway [--manifests FILE])
  detect     run the detection pipeline once over a file, image or stream (vigil detect --help)
  up         run cameras, workers and the dashboard on this host, no Kubernetes (vigil up -f cameras.yaml)
  assessor   assess tasks with an LLM through a pool of API keys (RABBITMQ_URL, REDIS_URL; AssessmentPools from
             the Kubernetes API, or --pool FILE)
  alarms     deliver alarms from the queue as signed webhooks, recorded (RABBITMQ_URL, MYSQL_URL, VIGIL_CLIP_DIR; [--manifests FILE])
  version    print the version (also --version)
`;

const [command] = process.argv.slice(2);
switch (command) {
  case "operator": {
    const { runOperator } = await import("../operator/main.ts");
    await runOperator();
    break;
  }
  case "worker": {
    const { runWorker } = await import("../worker/main.ts");
    await runWorker(process.argv.slice(3));
    break;
  }
  case "gateway": {
    const { runGateway } = await import("../gateway/main.ts");
    try {
      await runGateway(process.argv.slice(3));
    } catch (err) {
      process.stderr.write(`vigil gateway: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
    break;
  }
  case "detect": {
    const { runDetect } = await import("../worker/detect.ts");
    try {
      process.exitCode = await runDetect(process.argv.slice(3));
    } catch (err) {
      process.stderr.write(`vigil detect: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
    break;
  }
  case "up": {
    const { runUp } = await import("../single/up.ts");
    try {
      process.exitCode = await runUp(process.argv.slice(3));
    } catch (err) {
      process.stderr.write(`vigil up: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
    break;
  }
  case "alarms": {
    const { runAlarms } = await import("../alarms/main.ts");
    try {
      await runAlarms(process.argv.slice(3));
    } catch (err) {
      process.stderr.write(`vigil alarms: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
    break;
  }
  case "assessor": {
    const { runAssessor } = await import("../assessor/main.ts");
    try {
      await runAssessor(process.argv.slice(3));
    } catch (err) {
      process.stderr.write(`vigil assessor: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
    break;
  }
  case "version":
  case "--version": {
    // package.json is read, not bundled: dist/ sits beside bin/ (hack/build.ts), so ../package.json is the same
    // file from bin/vigil.ts and dist/vigil.js, and the image carries it at /app/package.json.
    const { readFileSync } = await import("node:fs");
    const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
    if (typeof version !== "string") throw new Error("package.json: version is not a string");
    process.stdout.write(`vigil ${version}\n`);
    break;
  }
  case undefined:
  case "help":
  case "--help":
  case "-h":
    process.stdout.write(USAGE);
    break;
  default:
    process.stderr.write(`vigil: unknown command '${command}'\n\n${USAGE}`);
    process.exitCode = 2;
}
