// Composes sessiongraph's subgraph SDL into a supergraph with Apollo's composition library.
// Usage: node compose.mjs <subgraph.graphql> <subgraph URL> <supergraph.graphql>
import { readFileSync, writeFileSync } from "node:fs";
import { composeServices } from "@apollo/composition";
import { parse } from "graphql";

const [sdlPath, url, outPath] = process.argv.slice(2);
const result = composeServices([
  { name: "sessiongraph", url, typeDefs: parse(readFileSync(sdlPath, "utf8")) },
]);
if (result.errors && result.errors.length > 0) {
  for (const error of result.errors) console.error(error.message);
  process.exit(1);
}
for (const hint of result.hints ?? []) console.error(`hint: ${hint.definition.code}: ${hint.message}`);
writeFileSync(outPath, result.supergraphSdl);
