// Apollo Client's subscriptions over HTTP (multipart/mixed, subscriptionSpec=1.0): HttpLink
// alone, no WebSocket. Usage: node apollo_multipart_subscription.mjs <endpoint> <n>; prints
// {events, errors, ended, requests} as JSON: the first n results' data and extensions, and the
// request Apollo sent (its Accept header) with the answer's status and headers.
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { describeError, print, recordingFetch } from "./_record.mjs";

const [endpoint, count] = process.argv.slice(2);
const n = Number(count);
const TIMEOUT_MS = 30_000;
const QUERY = gql`
  subscription RaceControl {
    raceControl(latest: true) {
      date
      message
    }
  }
`;

const recorder = recordingFetch();
const client = new ApolloClient({
  link: new HttpLink({ uri: endpoint, fetch: recorder.fetch }),
  cache: new InMemoryCache(),
});

const found = { events: [], errors: [], ended: null };
await new Promise((resolve) => {
  let subscription = null;
  const finish = (ended) => {
    if (found.ended) return;
    found.ended = ended;
    clearTimeout(timer);
    subscription?.unsubscribe(); // aborts the request
    resolve();
  };
  const timer = setTimeout(() => finish("timeout"), TIMEOUT_MS);
  subscription = client.subscribe({ query: QUERY, fetchPolicy: "no-cache" }).subscribe({
    next: (result) => {
      if (result.errors) found.errors.push(...result.errors.map((e) => describeError(e)));
      if (result.data) {
        found.events.push({ value: result.data.raceControl, extensions: result.extensions ?? null });
      }
      if (found.events.length >= n || result.errors) finish("enough");
    },
    error: (error) => {
      found.errors.push(describeError(error));
      finish("error");
    },
    complete: () => finish("complete"),
  });
});
client.stop();
// The streamed answer's body was cut off by the unsubscription: its recorded text is left out.
const requests = (await recorder.settle()).map(({ responseText, ...request }) => request);
print({ ...found, requests });
