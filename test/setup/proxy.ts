// A TCP proxy in front of the real apiserver that plays the network: it forwards, stalls (connections stay open but
// carry nothing, like a dead NAT entry or a half-open connection) or refuses. No vitest here (benchmarks may use it).
import { writeFileSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";

export type ProxyMode = "pass" | "stall" | "partition" | "refuse";

export type TcpProxy = {
  port: number;
  /**
   * pass: forward.
   * stall: a dead connection. Every connection open while stalled carries nothing, for good (its bytes are lost),
   *   yet stays open, as a half-open one does; connections made after going back to pass work.
   * partition: a network partition that heals. Nothing flows, nothing is lost (TCP retransmits): leaving the mode
   *   delivers what was held, in order. A connection closed meanwhile loses what it held.
   * refuse: close new connections at once.
   */
  mode: ProxyMode;
  /** Drops every open connection (both sides see it close). */
  dropAll: () => void;
  close: () => Promise<void>;
};

type Link = { client: Socket; target: Socket; dead: boolean; held?: { up: Buffer[]; down: Buffer[] } };

export async function startTcpProxy(upstream: URL): Promise<TcpProxy> {
  const links = new Set<Link>();
  let mode: ProxyMode = "pass";
  const hold = (l: Link) => {
    if (!l.dead) l.held ??= { up: [], down: [] };
  };
  const heal = (l: Link) => {
    const held = l.held;
    l.held = undefined;
    if (!held || l.dead) return;
    for (const d of held.up) l.target.write(d);
    for (const d of held.down) l.client.write(d);
  };
  const server = createServer((client) => {
    if (mode === "refuse") return void client.destroy();
    const target = connect(Number(upstream.port || 443), upstream.hostname);
    const link: Link = { client, target, dead: mode === "stall" };
    if (mode === "partition") hold(link);
    links.add(link);
    client.on("data", (d) => (link.dead ? undefined : link.held ? link.held.up.push(d) : target.write(d)));
    target.on("data", (d) => (link.dead ? undefined : link.held ? link.held.down.push(d) : client.write(d)));
    for (const s of [client, target]) {
      s.on("error", () => undefined);
      s.on("close", () => {
        links.delete(link);
        client.destroy();
        target.destroy();
      });
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const dropAll = () => {
    for (const l of links) l.client.destroy();
  };
  return {
    port: (server.address() as { port: number }).port,
    get mode() {
      return mode;
    },
    set mode(m: ProxyMode) {
      mode = m;
      for (const l of links) {
        if (m === "stall") l.dead = true;
        if (m === "partition") hold(l);
        else heal(l);
      }
    },
    dropAll,
    close: async () => {
      dropAll();
      await new Promise((r) => server.close(r));
    },
  };
}

/** The same credentials and cluster, reached through the proxy on `port`. */
export function kubeConfigVia(kc: KubeConfig, port: number): KubeConfig {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (!cluster || !user) throw new Error("kubeconfig has no current cluster or user");
  const via = new KubeConfig();
  via.loadFromOptions({
    clusters: [{ ...cluster, server: `https://127.0.0.1:${port}` }],
    users: [user],
    contexts: [{ name: "proxy", cluster: cluster.name, user: user.name }],
    currentContext: "proxy",
  });
  return via;
}

/** kubeConfigVia, written to a file for a child process's KUBECONFIG. */
export function kubeconfigFileVia(file: string, port: number): string {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  const out = join(tmpdir(), `vigil-proxy-${port}-${Date.now()}.kubeconfig`);
  writeFileSync(out, kubeConfigVia(kc, port).exportConfig(), { mode: 0o600 });
  return out;
}
