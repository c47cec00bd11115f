// Apollo Client over HttpLink with a deferred fragment (multipart/mixed, deferSpec=20220824).
// Usage: node apollo_defer.mjs <endpoint> <query>; prints {data, error, requests} as JSON.
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { describeError, print, recordingFetch } from "./_record.mjs";

const [endpoint, query] = process.argv.slice(2);
const recorder = recordingFetch();
const client = new ApolloClient({
  link: new HttpLink({ uri: endpoint, fetch: recorder.fetch }),
  cache: new InMemoryCache(),
});
let data = null;
let error = null;
try {
  // Resolves once the last incremental chunk is merged into the result.
  const result = await client.query({ query: gql(query), fetchPolicy: "network-only" });
  data = result.data;
} catch (caught) {
  error = describeError(caught);
}
client.stop();
print({ data, error, requests: await recorder.settle() });
