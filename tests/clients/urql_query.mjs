// Runs one query with urql's default Client (queries as GET within the URL limit).
// Usage: node urql_query.mjs <endpoint> <query>; prints {data, error, requests} as JSON.
import { Client, cacheExchange, fetchExchange } from "@urql/core";
import { describeError, print, recordingFetch } from "./_record.mjs";

const [endpoint, query] = process.argv.slice(2);
const recorder = recordingFetch();
const client = new Client({
  url: endpoint,
  exchanges: [cacheExchange, fetchExchange],
  fetch: recorder.fetch,
});
const result = await client.query(query, {}).toPromise();
print({
  data: result.data ?? null,
  error: describeError(result.error),
  requests: await recorder.settle(),
});
