#!/usr/bin/env node
// The `vigil` command: one binary, one subcommand per process kind.
const USAGE = `usage: vigil <command>

commands:
  operator   run the Kubernetes operator against $KUBECONFIG (or in-cluster config)
`;

const [command] = process.argv.slice(2);
switch (command) {
  case "operator": {
    const { runOperator } = await import("../operator/main.ts");
    await runOperator();
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
