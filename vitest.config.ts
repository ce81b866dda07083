import { defineConfig } from "vitest/config";

// Three projects: pure unit tests; integration tests against a real kube-apiserver + etcd started once per run;
// e2e tests on the simulated GPU cluster (hack/cluster.sh up --full). The groups (groupOrder) keep e2e apart; measured,
// its files still run beside the integration ones, and its timed goals hold there.
export default defineConfig({
  test: {
    projects: [
      { test: { name: "unit", include: ["test/unit/**/*.test.ts"], sequence: { groupOrder: 0 } } },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/setup/cluster.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          globalSetup: ["test/setup/full-cluster.ts"],
          testTimeout: 120_000,
          hookTimeout: 300_000,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
