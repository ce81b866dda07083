// `vigil assessor` as the chart runs it: no --pool, the pools from the Kubernetes API (an AssessmentPool and its keys
// Secret in a fresh namespace), as a ServiceAccount holding exactly the chart's assessor rules. A task published to
// RabbitMQ is answered through the pool's key (the fake provider, the real `openai` package), the result lands in
// Redis, and the Lease holder writes the pool's status: the key by fingerprint, its calls, never the key itself. A
// Secret edit that adds a key reaches the running assessor (its status lists the new fingerprint).
import type { KubernetesObject } from "@kubernetes/client-node";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { fingerprint } from "../../assessor/keys/fingerprint.ts";
import { ASSESSMENT_REDIS } from "../../assessor/messages.ts";
import { GROUP, VERSION } from "../../operator/api/meta.ts";
import type { Clients } from "../../operator/kube/client.ts";
import { type FakeProvider, startFakeProvider } from "../fakes/llm-provider.ts";
import { type AssessorProc, makeTask, startAssessor, stopAssessor, taskPublisher } from "../setup/assessor.ts";
import { type Broker, startRabbitMQ } from "../setup/brokers.ts";
import { admin, createCr, freshNamespace, getCr, serviceAccountKubeconfig, waitFor } from "../setup/kube.ts";
import { type Service, startRedis } from "../setup/services.ts";

type Obj = Record<string, any>;
const KEY = "sk-kube-main-0123456789abcdef0123";
const KEY2 = "sk-kube-main-second-456789abcdef";
let c: Clients;
let ns: string;
let rabbit: Broker;
let redisSvc: Service;
let redis: Redis;
let provider: FakeProvider;
let assessor: AssessorProc;
const logs: string[] = [];

const keysYaml = (keys: Obj[]) => stringify(keys);
const putKeys = (keys: Obj[]) =>
  c.core.replaceNamespacedSecret({
    name: "llm-keys",
    namespace: ns,
    body: { metadata: { name: "llm-keys", namespace: ns }, stringData: { "keys.yaml": keysYaml(keys) } },
  });

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "amain");
  [rabbit, redisSvc, provider] = await Promise.all([
    startRabbitMQ(),
    startRedis(),
    startFakeProvider({
      scopes: [{ name: "acct", rpm: 600, rps: 10 }],
      keys: [
        { key: KEY, scope: "acct" },
        { key: KEY2, scope: "acct" },
      ],
      latencyMs: [50, 150],
    }),
  ]);
  redis = new Redis(redisSvc.port, "127.0.0.1");
  await c.core.createNamespacedSecret({
    namespace: ns,
    body: {
      metadata: { name: "llm-keys" },
      stringData: { "keys.yaml": keysYaml([{ name: "main", key: KEY, scope: "acct", rps: 10, rpm: 600 }]) },
    },
  });
  const pool = {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: "AssessmentPool",
    metadata: { name: "llm" },
    spec: { provider: { baseURL: provider.baseURL, model: "qwen-vl-max" }, keysSecretRef: { name: "llm-keys" } },
  };
  await createCr(c, "assessmentpools", ns, pool as KubernetesObject);
  const kubeconfig = await serviceAccountKubeconfig(c, ns, "vigil-assessor", {
    cluster: "assessor-rules.yaml",
    namespace: "assessor-namespace-rules.yaml",
  });
  assessor = await startAssessor(
    undefined,
    {
      RABBITMQ_URL: rabbit.url,
      REDIS_URL: `redis://127.0.0.1:${redisSvc.port}`,
      KUBECONFIG: kubeconfig,
      VIGIL_WATCH_NAMESPACE: ns,
      POD_NAMESPACE: ns,
      POD_NAME: "assessor-0",
    },
    logs,
  );
}, 120_000);

afterAll(async () => {
  if (assessor) await stopAssessor(assessor);
  redis?.disconnect();
  await Promise.all([rabbit?.destroy(), redisSvc?.stop(), provider?.close()]);
});

describe("vigil assessor on the Kubernetes API", () => {
  it("answers a task through the AssessmentPool's key and writes the pool's status by fingerprint", {
    timeout: 90_000,
  }, async () => {
    expect(logs.join("")).toContain(`"source":"kubernetes ${ns}"`);
    const pub = await taskPublisher(rabbit.url);
    try {
      for (let i = 0; i < 5; i++) {
        const t = await makeTask(`${ns}/door:sample:${1000 + i}`, `${ns}/door`);
        await pub.publish({ ...t, pool: { namespace: ns, name: "llm" } });
      }
    } finally {
      await pub.close();
    }
    const results = await waitFor(
      "5 results in Redis",
      async () => {
        const list = await redis.lrange(ASSESSMENT_REDIS.recentOf(`${ns}/door`), 0, -1);
        return list.length >= 5 && list.map((r) => JSON.parse(r) as Obj);
      },
      30_000,
    ).catch((err) => {
      throw new Error(`${err}\n${logs.join("").slice(-3000)}`);
    });
    expect(results.map((r) => r.key_fingerprint)).toEqual(Array(5).fill(fingerprint(KEY)));
    expect(new Set(results.map((r) => r.id)).size).toBe(5);

    const status = await waitFor(
      "the pool's status with the key's calls",
      async () => {
        const o = await getCr<Obj>(c, "assessmentpools", ns, "llm");
        const k = (o.status?.keys ?? []).find((x: Obj) => x.name === "main");
        return k && k.calls >= 5 && o.status;
      },
      30_000,
    );
    const key = status.keys.find((x: Obj) => x.name === "main");
    expect(key).toMatchObject({ fingerprint: fingerprint(KEY), scope: "acct" });
    expect(key.ok).toBeGreaterThanOrEqual(5);
    expect(status.conditions.find((x: Obj) => x.type === "Ready")?.status).toBe("True");
    const text = JSON.stringify(await getCr<Obj>(c, "assessmentpools", ns, "llm"));
    expect(text).not.toContain(KEY);
    expect(logs.join("")).not.toContain(KEY);
  });

  it("follows a Secret edit: the added key shows in status by its fingerprint", { timeout: 60_000 }, async () => {
    await putKeys([
      { name: "main", key: KEY, scope: "acct", rps: 10, rpm: 600 },
      { name: "second", key: KEY2, scope: "acct", rps: 10, rpm: 600 },
    ]);
    const second = await waitFor(
      "the second key in status",
      async () => {
        const o = await getCr<Obj>(c, "assessmentpools", ns, "llm");
        return (o.status?.keys ?? []).find((x: Obj) => x.name === "second");
      },
      30_000,
    );
    expect(second.fingerprint).toBe(fingerprint(KEY2));
    expect(JSON.stringify(await getCr<Obj>(c, "assessmentpools", ns, "llm"))).not.toContain(KEY2);
  });
});
