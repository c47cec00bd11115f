// Copies the pinned prebuilt bundles from node_modules into ../static under versioned names and
// writes manifest.json (load order), VERSIONS.md and THIRD_PARTY_LICENSES.txt.
// Run `npm ci && npm run build` here. Nothing is bundled or transformed, so each file can be
// compared byte for byte with its npm tarball.
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const out = join(here, "..", "static");

// [package, file inside the package, name under static/ with {v} for the version]
const assets = [
  ["react", "umd/react.production.min.js", "react-{v}.production.min.js"],
  ["react-dom", "umd/react-dom.production.min.js", "react-dom-{v}.production.min.js"],
  ["graphiql", "graphiql.min.js", "graphiql-{v}.min.js"],
  ["graphiql", "graphiql.min.css", "graphiql-{v}.min.css"],
  ["@graphiql/plugin-explorer", "dist/index.umd.js", "graphiql-plugin-explorer-{v}.umd.js"],
  ["@graphiql/plugin-explorer", "dist/style.css", "graphiql-plugin-explorer-{v}.css"],
];

const manifest = (name) => JSON.parse(readFileSync(join(modules, name, "package.json"), "utf8"));
const licenseOf = (meta) => (typeof meta.license === "string" ? meta.license : meta.license?.type);

// Only files this script wrote before are replaced; playground.js and playground.css are ours.
for (const file of readdirSync(out)) {
  if (/-\d+\.\d+\.\d+[.-]/.test(file)) rmSync(join(out, file));
}

const rows = [];
for (const [name, source, target] of assets) {
  const meta = manifest(name);
  const file = target.replace("{v}", meta.version);
  copyFileSync(join(modules, name, source), join(out, file));
  rows.push(`| ${name} | ${meta.version} | ${licenseOf(meta)} | \`${file}\` | ${statSync(join(out, file)).size} |`);
}

// graphiql.min.js inlines its whole dependency tree, so every installed package is credited.
const installed = [];
for (const entry of readdirSync(modules)) {
  if (entry.startsWith(".")) continue;
  const names = entry.startsWith("@")
    ? readdirSync(join(modules, entry)).map((sub) => `${entry}/${sub}`)
    : [entry];
  installed.push(...names.filter((n) => existsSync(join(modules, n, "package.json"))));
}
installed.sort();
const licenses = installed.map((name) => {
  const meta = manifest(name);
  const text = readdirSync(join(modules, name))
    .filter((f) => /^licen[cs]e/i.test(f))
    .map((f) => readFileSync(join(modules, name, f), "utf8").trim())
    .join("\n\n");
  return `${name}@${meta.version} (${licenseOf(meta)})\n\n${text || `License: ${licenseOf(meta)}`}`;
});
writeFileSync(join(out, "THIRD_PARTY_LICENSES.txt"), licenses.join("\n\n" + "-".repeat(72) + "\n\n") + "\n");

// The page loads these in this order (React before GraphiQL before the plugin that needs both).
const files = assets.map(([name, , target]) => target.replace("{v}", manifest(name).version));
writeFileSync(
  join(out, "manifest.json"),
  JSON.stringify(
    { styles: files.filter((f) => f.endsWith(".css")), scripts: files.filter((f) => f.endsWith(".js")) },
    null,
    2,
  ) + "\n",
);

writeFileSync(
  join(out, "VERSIONS.md"),
  `# Playground assets

Copied unchanged from the npm packages pinned in \`../build/package-lock.json\` by
\`../build/build.mjs\` (\`cd sessiongraph/playground/build && npm ci && npm run build\`).
GraphiQL 3 and explorer 3 were chosen because both ship prebuilt UMD bundles that run from plain
\`<script>\` tags, so no bundler is needed. \`playground.js\` and \`playground.css\` are
sessiongraph's own. The licenses of everything the bundles contain are in
\`THIRD_PARTY_LICENSES.txt\`.

| package | version | license | file | bytes |
|---|---|---|---|---|
${rows.join("\n")}
`,
);
console.log(rows.join("\n"));
