// The Kubernetes clients the operator uses, built once from a KubeConfig, and error helpers.

import { createHash } from "node:crypto";
import { setMaxListeners } from "node:events";
import { STATUS_CODES } from "node:http";
import {
  ApiException,
  type ConfigurationOptions,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  Observable,
  type ObservableMiddleware,
  type RequestContext,
} from "@kubernetes/client-node";

export type Clients = {
  kc: KubeConfig;
  objects: KubernetesObjectApi;
  custom: CustomObjectsApi;
  core: CoreV1Api;
  coordination: CoordinationV1Api;
};

export function loadKubeConfig(path = process.env.KUBECONFIG): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  shareDispatchers(kc);
  return kc;
}

/** The same cluster as `kc`, authenticated by a bearer token instead, with the same connection handling. */
export function kubeConfigWithToken(kc: KubeConfig, user: string, token: string): KubeConfig {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("kubeconfig has no current cluster");
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters: [cluster],
    users: [{ name: user, token }],
    contexts: [{ name: user, cluster: cluster.name, user }],
    currentContext: user,
  });
  shareDispatchers(out);
  return out;
}

type TlsOptions = {
  ca?: unknown;
  cert?: unknown;
  key?: unknown;
  pfx?: unknown;
  rejectUnauthorized?: boolean;
  servername?: string;
};
type DispatcherFactory = {
  createDispatcher: (cluster: { name?: string; server?: string } | null, opts: TlsOptions) => unknown;
};

/**
 * client-node 2.0.1 builds a new undici Agent, so a new TLS connection, for every request: measured here,
 * 1000 cameras took 670 MB of RSS. One dispatcher per cluster and TLS identity keeps connections alive and
 * reused; credentials in headers (tokens) are still applied per request, so token rotation keeps working.
 */
function shareDispatchers(kc: KubeConfig): void {
  const target = kc as unknown as DispatcherFactory;
  const create = target.createDispatcher.bind(kc);
  const cache = new Map<string, unknown>();
  const digest = (v: unknown) => (v === undefined ? "" : createHash("sha256").update(String(v)).digest("hex"));
  target.createDispatcher = (cluster, opts) => {
    const key = [
      cluster?.name,
      cluster?.server,
      digest(opts.ca),
      digest(opts.cert),
      digest(opts.key),
      digest(opts.pfx),
      opts.rejectUnauthorized,
      opts.servername,
    ].join("|");
    if (!cache.has(key)) cache.set(key, http1Only(create(cluster, opts)));
    return cache.get(key);
  };
}

/** The namespace the kubeconfig's current context names (in a pod: the ServiceAccount's), as kubectl would use it. */
export const contextNamespace = (kc: KubeConfig): string | undefined =>
  kc.getContextObject(kc.getCurrentContext())?.namespace || undefined;

function abortAlsoOn(ctx: RequestContext, signal: AbortSignal): void {
  const own = ctx.getSignal();
  ctx.setSignal(own && own !== signal ? AbortSignal.any([own, signal]) : signal);
}

/**
 * Per-call options that make one request abort with `signal` (client-node 2.x has no per-request timeout, and
 * undici waits 300 s for headers): `api.readNamespacedLease({...}, withSignal(AbortSignal.timeout(ms)))`.
 */
export function withSignal(signal: AbortSignal): ConfigurationOptions {
  const middleware: ObservableMiddleware = {
    pre: (ctx) => {
      abortAlsoOn(ctx, signal);
      return new Observable(Promise.resolve(ctx));
    },
    post: (rsp) => new Observable(Promise.resolve(rsp)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: "append" };
}

/**
 * From now on every request of the API clients made from `kc` also aborts when `signal` does, in flight or not yet
 * sent: a replica that lost its lease must not land a write after that (client-go cancels the context its
 * controllers run under). Watches are not covered; their informers stop them.
 */
export function abortRequestsWith(kc: KubeConfig, signal: AbortSignal): void {
  // One abort listener per request in flight (fetch removes it when the request ends: none were left after 450).
  setMaxListeners(0, signal);
  const apply = kc.applySecurityAuthentication.bind(kc);
  kc.applySecurityAuthentication = async (ctx: RequestContext) => {
    await apply(ctx);
    abortAlsoOn(ctx, signal);
  };
}

type Dispatch = (opts: Record<string, unknown>, handler: unknown) => boolean;
type Composable = { compose: (interceptor: (dispatch: Dispatch) => Dispatch) => unknown };

/**
 * HTTP/1.1 only. undici 8 speaks HTTP/2 to the apiserver, which puts every request on one connection; when that
 * connection goes silent (a half-open TCP connection, a NAT entry gone), every request after it hangs on it until
 * undici's 300 s header timeout, because undici sends no HTTP/2 pings (client-go pings after 30 s idle). Measured
 * through a stalling proxy: lists bounded at 5 s all timed out, and 30 s watch restarts got no data for 90 s. Over
 * HTTP/1.1 a stalled connection holds only its own request, and the informer's watchdog replaces it.
 */
function http1Only(dispatcher: unknown): unknown {
  const d = dispatcher as Partial<Composable> | undefined;
  if (typeof d?.compose !== "function") return dispatcher;
  return d.compose((dispatch) => (opts, handler) => dispatch({ ...opts, allowH2: false }, handler));
}

export function makeClients(kc: KubeConfig): Clients {
  return {
    kc,
    objects: KubernetesObjectApi.makeApiClient(kc),
    custom: kc.makeApiClient(CustomObjectsApi),
    core: kc.makeApiClient(CoreV1Api),
    coordination: kc.makeApiClient(CoordinationV1Api),
  };
}

export const statusCode = (err: unknown): number | undefined =>
  err instanceof ApiException ? err.code : ((err as { code?: number; statusCode?: number })?.statusCode ?? undefined);

export const isNotFound = (err: unknown) => statusCode(err) === 404;
export const isConflict = (err: unknown) => statusCode(err) === 409;

/** The apiserver's own message (it names the field for validation errors), without the client's wrapping. */
export function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body = typeof err.body === "string" ? safeJson(err.body) : err.body;
    const msg = (body as { message?: string } | undefined)?.message;
    if (msg) return msg;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * An API error as one readable log line: code, reason and the apiserver's message, e.g.
 * `404 NotFound: namespaces "vigil-system" not found`. Never client-node's dump of the body and every header.
 */
export function apiError(err: unknown): string {
  const code = statusCode(err);
  if (err instanceof ApiException) {
    const body = (typeof err.body === "string" ? safeJson(err.body) : err.body) as
      | { reason?: string; message?: string }
      | undefined;
    const reason = body?.reason || STATUS_CODES[err.code] || "";
    return oneLine(`${err.code} ${reason}${body?.message ? `: ${body.message}` : ""}`);
  }
  if (!(err instanceof Error)) return oneLine(String(err));
  // A watch that was refused: client-node's Error(statusText) with statusCode.
  if (code !== undefined) return oneLine(`${code} ${err.message}`);
  // Network errors: fetch's "fetch failed" says little, its cause (ECONNREFUSED, a TLS error...) says what.
  const cause = err.cause instanceof Error ? ` (${err.cause.message})` : "";
  return oneLine(`${err.name === "Error" ? "" : `${err.name}: `}${err.message}${cause}`);
}

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, " ").slice(0, 1000);

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return { message: s };
  }
}
