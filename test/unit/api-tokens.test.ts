// VIGIL_API_TOKEN's entries and scopes (gateway/auth.ts): parsing, errors that name the entry and never its token,
// the constant-time verifier's identities, and the 401/403 a real Fastify instance answers with the hooks.
import Fastify from "fastify";
import { afterAll, describe, expect, it } from "vitest";
import { authHook, parseApiTokens, requireWrite, tokenVerifier } from "../../gateway/auth.ts";
import { loadGatewayEnv } from "../../gateway/main.ts";

const SECRET = "s3cr3t-token-value-0123";
const problem = (entries: string) => {
  try {
    parseApiTokens(entries);
  } catch (err) {
    return (err as Error).message;
  }
  return "parsed";
};

describe("parseApiTokens", () => {
  it("reads name:token[:read|write], read by default", () => {
    expect(parseApiTokens("ops:tok-a:write, viewer:tok-b:read,kiosk:tok-c")).toEqual([
      { name: "ops", token: "tok-a", scope: "write" },
      { name: "viewer", token: "tok-b", scope: "read" },
      { name: "kiosk", token: "tok-c", scope: "read" },
    ]);
  });

  it("keeps the old plain form valid, read-only and named by its 1-based position", () => {
    expect(parseApiTokens("t1,t2")).toEqual([
      { name: "token-1", token: "t1", scope: "read" },
      { name: "token-2", token: "t2", scope: "read" },
    ]);
    // Mixed: the position counts every entry.
    expect(parseApiTokens(["ops:w:write", "plain"])).toEqual([
      { name: "ops", token: "w", scope: "write" },
      { name: "token-2", token: "plain", scope: "read" },
    ]);
    // A trailing comma is not an entry.
    expect(parseApiTokens("t1,")).toEqual([{ name: "token-1", token: "t1", scope: "read" }]);
    // Already parsed tokens pass through, checked like the rest.
    expect(parseApiTokens([{ name: "vigil-up", token: "gen", scope: "write" }, "viewer:v"])).toEqual([
      { name: "vigil-up", token: "gen", scope: "write" },
      { name: "viewer", token: "v", scope: "read" },
    ]);
  });

  it("rejects bad entries naming their position and what is wrong, never the token", () => {
    const cases: [string, string][] = [
      [`ops:${SECRET}:admin`, "VIGIL_API_TOKEN: entry 1 (ops): its scope (after the second ':') must be read or write"],
      [`ok:a,:${SECRET}:write`, "VIGIL_API_TOKEN: entry 2: its name (before the first ':') must be 1-63 letters"],
      [`a:b,ops:`, "VIGIL_API_TOKEN: entry 2 (ops) has an empty token"],
      [`a:b,,c:d`, "VIGIL_API_TOKEN: entry 2 is empty"],
      [
        `x:${SECRET}:write:more`,
        "VIGIL_API_TOKEN: entry 1 has 4 ':'-separated parts; the form is name:token[:read|write]",
      ],
      [`ops:a:write,ops:${SECRET}`, "VIGIL_API_TOKEN: entry 2: the name ops is also entry 1's"],
      [`ops:${SECRET}:write,viewer:${SECRET}`, "VIGIL_API_TOKEN: entry 2 (viewer) has the same token as entry 1"],
      [`token-2:a,${SECRET}`, "VIGIL_API_TOKEN: entry 2: the name token-2 is also entry 1's"],
      [`bad name:${SECRET}`, "VIGIL_API_TOKEN: entry 1: its name"],
      [" , ", "VIGIL_API_TOKEN: at least one token is required"],
    ];
    for (const [entries, message] of cases) {
      const got = problem(entries);
      expect(got, entries).toContain(message);
      expect(got, entries).not.toContain(SECRET);
    }
    // Every bad entry is listed, in order.
    expect(problem("a:b:x,c:d:y")).toBe(
      "VIGIL_API_TOKEN: entry 1 (a): its scope (after the second ':') must be read or write; entry 2 (c): its scope (after the second ':') must be read or write",
    );
  });

  it("is what `vigil gateway` takes from its environment, failing at start with the same message", () => {
    expect(loadGatewayEnv({ VIGIL_API_TOKEN: "ops:a:write,b" }).VIGIL_API_TOKEN).toEqual([
      { name: "ops", token: "a", scope: "write" },
      { name: "token-2", token: "b", scope: "read" },
    ]);
    expect(() => loadGatewayEnv({ VIGIL_API_TOKEN: `ops:${SECRET}:root` })).toThrow(
      "invalid gateway configuration: VIGIL_API_TOKEN entry 1 (ops): its scope (after the second ':') must be read or write",
    );
    expect(() => loadGatewayEnv({})).toThrow(/VIGIL_API_TOKEN is required/);
  });
});

describe("tokenVerifier", () => {
  it("answers the presented token's name and scope, or nothing", () => {
    const verify = tokenVerifier(parseApiTokens("ops:aaaa:write,viewer:bbbb,cccc"));
    expect(verify("aaaa")).toEqual({ name: "ops", scope: "write" });
    expect(verify("bbbb")).toEqual({ name: "viewer", scope: "read" });
    expect(verify("cccc")).toEqual({ name: "token-3", scope: "read" });
    expect(verify("aaa")).toBeUndefined();
    expect(verify("ops:aaaa:write")).toBeUndefined();
    expect(verify("")).toBeUndefined();
  });
});

describe("the hooks on a real Fastify instance", () => {
  const app = Fastify();
  app.decorateRequest("apiToken", null);
  app.addHook(
    "onRequest",
    authHook(parseApiTokens("ops:wtok:write,viewer:rtok"), (p) => p === "/open"),
  );
  app.get("/open", async (req) => ({ token: req.apiToken }));
  app.get("/me", async (req) => req.apiToken);
  app.post("/cameras/:id/stop", { preHandler: requireWrite }, async (_req, reply) => reply.code(202).send({ ok: 1 }));
  afterAll(() => app.close());

  it("sets the request's token identity, and answers 403 to a read token on a write route, naming both", async () => {
    const as = (token: string) => ({ authorization: `Bearer ${token}` });
    expect((await app.inject({ url: "/me", headers: as("wtok") })).json()).toEqual({ name: "ops", scope: "write" });
    expect((await app.inject({ url: "/me?access_token=rtok" })).json()).toEqual({ name: "viewer", scope: "read" });
    expect((await app.inject({ url: "/open" })).json()).toEqual({ token: null });
    const ok = await app.inject({ method: "POST", url: "/cameras/a%2Fb/stop", headers: as("wtok") });
    expect([ok.statusCode, ok.json()]).toEqual([202, { ok: 1 }]);
    const denied = await app.inject({ method: "POST", url: "/cameras/a%2Fb/stop", headers: as("rtok") });
    expect(denied.statusCode).toBe(403);
    expect(denied.json()).toEqual({
      error: "forbidden",
      message: "POST /cameras/{id}/stop needs a token with the write scope; token viewer has read",
    });
    const none = await app.inject({ method: "POST", url: "/cameras/a%2Fb/stop" });
    expect(none.statusCode).toBe(401);
    const wrong = await app.inject({ method: "POST", url: "/cameras/a%2Fb/stop", headers: as("nope") });
    expect([wrong.statusCode, wrong.json().message]).toEqual([401, "the token is not valid"]);
  });
});
