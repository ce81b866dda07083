import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { ContainerConfigError, envReferences, expand, expandArgs, resolveEnv } from "../setup/kubelet/env.ts";

const pod: V1Pod = {
  metadata: { name: "op-0", namespace: "vigil", uid: "u-1", labels: { app: "vigil" } },
  spec: { nodeName: "gpu-1", serviceAccountName: "vigil-operator", containers: [] },
  status: { podIP: "127.100.2.7", hostIP: "10.0.0.2" },
};
const sources = {
  secrets: new Map([["creds", { TOKEN: "s3cret", "bad key": "x" }]]),
  configMaps: new Map([["settings", { LOG_LEVEL: "debug", VIGIL_WATCH_NAMESPACE: "cams" }]]),
};
const c = (over: Partial<V1Container>): V1Container => ({
  name: "main",
  image: "ghcr.io/vigil-dev/vigil:0.1.0",
  ...over,
});

describe("resolveEnv", () => {
  it("applies envFrom in order, then env over it, and skips keys that are not variable names", () => {
    const env = resolveEnv(
      pod,
      c({
        envFrom: [{ configMapRef: { name: "settings" } }, { secretRef: { name: "creds" }, prefix: "X_" }],
        env: [{ name: "LOG_LEVEL", value: "warn" }],
      }),
      sources,
      { PATH: "/bin" },
    );
    expect(env).toEqual({
      PATH: "/bin",
      LOG_LEVEL: "warn",
      VIGIL_WATCH_NAMESPACE: "cams",
      X_TOKEN: "s3cret",
    });
  });

  it("resolves fieldRefs, secretKeyRefs and configMapKeyRefs", () => {
    const env = resolveEnv(
      pod,
      c({
        env: [
          { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
          { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
          { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
          { name: "NODE", valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } } },
          { name: "SA", valueFrom: { fieldRef: { fieldPath: "spec.serviceAccountName" } } },
          { name: "APP", valueFrom: { fieldRef: { fieldPath: "metadata.labels['app']" } } },
          { name: "T", valueFrom: { secretKeyRef: { name: "creds", key: "TOKEN" } } },
          { name: "L", valueFrom: { configMapKeyRef: { name: "settings", key: "LOG_LEVEL" } } },
          { name: "GONE", valueFrom: { secretKeyRef: { name: "nope", key: "k", optional: true } } },
        ],
      }),
      sources,
    );
    expect(env).toEqual({
      POD_NAME: "op-0",
      POD_NAMESPACE: "vigil",
      POD_IP: "127.100.2.7",
      NODE: "gpu-1",
      SA: "vigil-operator",
      APP: "vigil",
      T: "s3cret",
      L: "debug",
    });
  });

  it("names the missing Secret, ConfigMap or key, never a value", () => {
    const run = (env: V1Container["env"], envFrom?: V1Container["envFrom"]) => () =>
      resolveEnv(pod, c({ env, envFrom }), sources);
    expect(run([{ name: "A", valueFrom: { secretKeyRef: { name: "creds", key: "NOPE" } } }])).toThrow(
      /env A: couldn't find key NOPE in Secret vigil\/creds/,
    );
    expect(run([{ name: "A", valueFrom: { configMapKeyRef: { name: "other", key: "k" } } }])).toThrow(
      /env A: ConfigMap "other" not found/,
    );
    expect(run([], [{ secretRef: { name: "missing" } }])).toThrow(ContainerConfigError);
    expect(run([], [{ secretRef: { name: "missing", optional: true } }])()).toEqual({});
    try {
      run([{ name: "A", valueFrom: { secretKeyRef: { name: "creds", key: "NOPE" } } }])();
    } catch (err) {
      expect(String(err)).not.toContain("s3cret");
    }
  });

  it("expands $(VAR) from variables defined before, in values and args", () => {
    const container = c({
      env: [
        { name: "A", value: "one" },
        { name: "B", value: "$(A)-two-$(LATER)-$$(A)" },
        { name: "LATER", value: "x" },
      ],
      args: ["worker", "--id=$(A)", "$(UNSET)"],
    });
    const env = resolveEnv(pod, container, sources);
    expect(env.B).toBe("one-two-$(LATER)-$(A)");
    expect(expandArgs(container, env)).toEqual(["worker", "--id=one", "$(UNSET)"]);
    expect(expand("$$ $x $(", {})).toBe("$ $x $(");
  });

  it("lists the Secrets and ConfigMaps to read", () => {
    const refs = envReferences(
      c({
        envFrom: [{ secretRef: { name: "a" } }, { configMapRef: { name: "b" } }],
        env: [{ name: "X", valueFrom: { secretKeyRef: { name: "c", key: "k" } } }],
      }),
    );
    expect([...refs.secrets].sort()).toEqual(["a", "c"]);
    expect([...refs.configMaps]).toEqual(["b"]);
  });
});
