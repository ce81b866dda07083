// The informer's guards against real failures: a watch that stalls silently (half-open connection) and an
// apiserver that refuses connections for a while. A TCP proxy in front of the real apiserver plays the network.
import { connect, createServer, type Server, type Socket } from "node:net";
import { KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Clients, makeClients } from "../../operator/kube/client.ts";
import { Informer } from "../../operator/kube/informer.ts";
import { admin, freshNamespace, waitFor } from "../setup/kube.ts";

type Mode = "pass" | "stall" | "refuse";
let mode: Mode = "pass";
let proxy: Server;
let proxyPort: number;
const open = new Set<Socket>();
let c: Clients;
let ns: string;
let informer: Informer<KubernetesObject>;

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "inf");
  const upstream = new URL(c.kc.getCurrentCluster()?.server ?? "");
  proxy = createServer((client) => {
    if (mode === "refuse") return void client.destroy();
    const server = connect(Number(upstream.port), upstream.hostname);
    for (const s of [client, server]) {
      open.add(s);
      s.on("close", () => open.delete(s));
      s.on("error", () => undefined);
    }
    // Forward unless stalled: a stalled connection stays open but carries nothing, like a dead NAT entry.
    client.on("data", (d) => mode !== "stall" && server.write(d));
    server.on("data", (d) => mode !== "stall" && client.write(d));
    client.on("close", () => server.destroy());
    server.on("close", () => client.destroy());
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  proxyPort = (proxy.address() as { port: number }).port;

  const kc = new KubeConfig();
  const cluster = c.kc.getCurrentCluster();
  const user = c.kc.getCurrentUser();
  if (!cluster || !user) throw new Error("no cluster in kubeconfig");
  kc.loadFromOptions({
    clusters: [{ ...cluster, server: `https://127.0.0.1:${proxyPort}` }],
    users: [user],
    contexts: [{ name: "proxy", cluster: cluster.name, user: user.name }],
    currentContext: "proxy",
  });
  const viaProxy = makeClients(kc);
  informer = new Informer<KubernetesObject>(kc, {
    path: `/api/v1/namespaces/${ns}/configmaps`,
    watchTimeoutMs: 1500,
    list: () => viaProxy.objects.list("v1", "ConfigMap", ns),
  });
  informer.start();
  await informer.waitForSync();
});
afterAll(() => {
  informer?.stop();
  for (const s of open) s.destroy();
  proxy?.close();
});

const configMap = (name: string) => c.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name } } });
const seen = (name: string) => async () => informer.get(`${ns}/${name}`) !== undefined;

it("sees changes through a healthy watch", async () => {
  await configMap("a");
  await waitFor("a in cache", seen("a"), 5000);
});

it("recovers from a silently stalled watch through its inactivity watchdog", async () => {
  mode = "stall";
  await configMap("b");
  await new Promise((r) => setTimeout(r, 300));
  expect(informer.get(`${ns}/b`)).toBeUndefined(); // the stalled stream delivered nothing
  const watchesBefore = informer.stats.watches;
  mode = "pass"; // new connections work again; the stalled one stays stalled
  await waitFor("b in cache after the watchdog fired", seen("b"), 10_000);
  expect(informer.stats.watches).toBeGreaterThan(watchesBefore);
});

it("relists with backoff while the apiserver refuses connections, then catches up (deletes too)", async () => {
  mode = "refuse";
  for (const s of open) s.destroy(); // drop the live watch
  await configMap("c");
  await c.core.deleteNamespacedConfigMap({ name: "a", namespace: ns });
  await waitFor("a failed list/watch", async () => informer.stats.errors > 0, 10_000);
  mode = "pass";
  await waitFor("c in cache", seen("c"), 15_000);
  await waitFor("a gone from cache", async () => informer.get(`${ns}/a`) === undefined, 15_000);
});
