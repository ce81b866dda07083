// `npm run build`: dist/vigil.js, the `vigil` command as the image runs it. The operator is bundled together with
// the parts of @kubernetes/client-node it uses. Loading that package whole means ~17 MB of generated source (every
// API group, kept by V8 for lazy compilation): measured, the bundle's tree-shaking takes the operator from ~140 MB
// to ~100 MB of RSS at idle. Every other package stays an import, and so do the other subcommands, which find
// files beside their sources (worker threads, the dashboard): dist/ sits beside bin/, so their paths still hold.
import { join, sep } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(import.meta.dirname, "..");
export const DIST = join(ROOT, "dist");
export const VIGIL_JS = join(DIST, "vigil.js");

const CLIENT_NODE = "@kubernetes/client-node";
const bundled = (id: string) =>
  id === join(ROOT, "bin", "vigil.ts") ||
  id.startsWith(join(ROOT, "operator") + sep) ||
  id.includes(`${sep}node_modules${sep}${CLIENT_NODE.replace("/", sep)}${sep}`);

export async function buildDist(): Promise<string> {
  const { build } = await import("rolldown"); // a devDependency: importers that only need VIGIL_JS go without it
  await build({
    input: join(ROOT, "bin", "vigil.ts"),
    platform: "node",
    logLevel: "warn",
    external: (id, _importer, isResolved) => {
      if (isResolved) return !bundled(id);
      // Bare specifiers: only client-node's are bundled (and so tree-shaken); relative ones are decided resolved.
      return id.startsWith(".") || id.startsWith("/") ? undefined : !id.startsWith(CLIENT_NODE);
    },
    output: { dir: DIST, format: "esm", minify: true, cleanDir: true },
  });
  return VIGIL_JS;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(`${await buildDist()}\n`);
