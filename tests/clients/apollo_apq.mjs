// Apollo Client with automatic persisted queries: a first client registers the query, a second,
// fresh one (new link, new cache) sends only its hash.
// Usage: node apollo_apq.mjs <endpoint> <query> <post|get>; prints {first, second} as JSON.
import { createHash } from "node:crypto";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries/index.js";
import { describeError, print, recordingFetch } from "./_record.mjs";

const [endpoint, query, mode] = process.argv.slice(2);
const sha256 = (text) => createHash("sha256").update(text).digest("hex");

async function run() {
  const recorder = recordingFetch();
  const persisted = createPersistedQueryLink({ sha256, useGETForHashedQueries: mode === "get" });
  const client = new ApolloClient({
    link: persisted.concat(new HttpLink({ uri: endpoint, fetch: recorder.fetch })),
    cache: new InMemoryCache(),
  });
  let data = null;
  let error = null;
  try {
    ({ data } = await client.query({ query: gql(query), fetchPolicy: "network-only" }));
  } catch (caught) {
    error = describeError(caught);
  }
  client.stop();
  return { data, error, requests: await recorder.settle() };
}

const first = await run();
const second = await run();
print({ first, second });
