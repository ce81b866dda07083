// The informer's guards against real failures: a watch that stalls silently (half-open connection) and an
// apiserver that refuses connections for a while. A TCP proxy in front of the real apiserver plays the network.
import type { KubernetesObject } from "@kubernetes/client-node";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { type Clients, loadKubeConfig, makeClients } from "../../operator/kube/client.ts";
import { Informer } from "../../operator/kube/informer.ts";
import { admin, freshNamespace, waitFor } from "../setup/kube.ts";
import { kubeconfigFileVia, startTcpProxy, type TcpProxy } from "../setup/proxy.ts";

let proxy: TcpProxy;
let c: Clients;
let ns: string;
let informer: Informer<KubernetesObject>;

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "inf");
  proxy = await startTcpProxy(new URL(c.kc.getCurrentCluster()?.server ?? ""));
  // Loaded as the operator loads its kubeconfig (loadKubeConfig: one shared dispatcher per cluster), so the stalled
  // connection is one the informer's next requests could be queued behind.
  const kc = loadKubeConfig(kubeconfigFileVia(inject("kubeconfig"), proxy.port));
  const viaProxy = makeClients(kc);
  informer = new Informer<KubernetesObject>(kc, {
    path: `/api/v1/namespaces/${ns}/configmaps`,
    watchTimeoutMs: 1500,
    list: () => viaProxy.objects.list("v1", "ConfigMap", ns),
  });
  informer.start();
  await informer.waitForSync();
});
afterAll(async () => {
  informer?.stop();
  await proxy?.close();
});

const configMap = (name: string) => c.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name } } });
const seen = (name: string) => async () => informer.get(`${ns}/${name}`) !== undefined;

it("sees changes through a healthy watch", async () => {
  await configMap("a");
  await waitFor("a in cache", seen("a"), 5000);
});

it("recovers from a silently stalled watch through its inactivity watchdog", async () => {
  proxy.mode = "stall";
  await configMap("b");
  await new Promise((r) => setTimeout(r, 300));
  expect(informer.get(`${ns}/b`)).toBeUndefined(); // the stalled stream delivered nothing
  const watchesBefore = informer.stats.watches;
  proxy.mode = "pass"; // new connections work again; the stalled one stays stalled
  await waitFor("b in cache after the watchdog fired", seen("b"), 10_000);
  expect(informer.stats.watches).toBeGreaterThan(watchesBefore);
});

it("relists with backoff while the apiserver refuses connections, then catches up (deletes too)", async () => {
  proxy.mode = "refuse";
  proxy.dropAll(); // drop the live watch
  await configMap("c");
  await c.core.deleteNamespacedConfigMap({ name: "a", namespace: ns });
  await waitFor("a failed list/watch", async () => informer.stats.errors > 0, 10_000);
  proxy.mode = "pass";
  await waitFor("c in cache", seen("c"), 15_000);
  await waitFor("a gone from cache", async () => informer.get(`${ns}/a`) === undefined, 15_000);
});
