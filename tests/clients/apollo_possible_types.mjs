// Apollo Client whose InMemoryCache knows the schema's abstract types from the fragment matcher.
// Usage: node apollo_possible_types.mjs <endpoint> <possible-types.json> <query>; prints JSON.
import { readFileSync } from "node:fs";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { describeError, print } from "./_record.mjs";

const [endpoint, possibleTypesPath, query] = process.argv.slice(2);
const { possibleTypes } = JSON.parse(readFileSync(possibleTypesPath, "utf8"));

const client = new ApolloClient({
  link: new HttpLink({ uri: endpoint }),
  cache: new InMemoryCache({ possibleTypes }),
});
let data = null;
let error = null;
try {
  // The answer is written to the normalized cache and read back through the fragments.
  ({ data } = await client.query({ query: gql(query), fetchPolicy: "network-only" }));
} catch (caught) {
  error = describeError(caught);
}
client.stop();
print({ data, error, cache: client.cache.extract() });
