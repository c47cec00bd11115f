// graphql-ws (the graphql-transport-ws protocol) over Node's `ws`: two live subscriptions and
// one for a session that does not exist, at once on one socket.
// Usage: node graphql_ws_subscribe.mjs <ws://…/graphql> <n>; prints, as
// JSON, {sockets, frames, subscriptions: {raceControl, f1Laps, missing}}: each
// subscription's events ({value, cursor}), errors, how it ended and whether its dates never
// went back; `frames` counts the server's text and binary WebSocket messages.
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { print } from "./_record.mjs";

const [url, count] = process.argv.slice(2);
const n = Number(count);
const TIMEOUT_MS = 30_000;

const SUBSCRIPTIONS = {
  raceControl: {
    query: "subscription RaceControl { raceControl(latest: true) { date message } }",
    date: (value) => value.date,
    count: n,
  },
  f1Laps: {
    query:
      "subscription Laps { f1Laps(latest: true, driverNumber: 1) " +
      "{ driverNumber lapNumber dateStart lapDuration } }",
    date: (value) => value.dateStart,
    count: n,
  },
  // Ends at once with a coded error: there is no such session.
  missing: {
    query: "subscription Missing { raceControl(sessionKey: 123456789) { date } }",
    date: (value) => value.date,
    count: 1,
  },
};

const frames = { text: 0, binary: 0 };

// `ws` emits ("message", data, isBinary); its `onmessage` wrapper decodes text ones to strings.
class CountingWebSocket extends WebSocket {
  emit(event, ...args) {
    if (event === "message") {
      frames[args[1] ? "binary" : "text"] += 1;
    }
    return super.emit(event, ...args);
  }
}

let sockets = 0;
const client = createClient({
  url,
  webSocketImpl: CountingWebSocket,
  retryAttempts: 0,
  on: {
    connected: () => {
      sockets += 1;
    },
  },
});

// A null date (lap 1 has no start time) sorts first, as in the cursor.
function instant(text) {
  return text == null ? -Infinity : Date.parse(text);
}

function inOrder(dates) {
  return dates.every((date, i) => i === 0 || instant(dates[i - 1]) <= instant(date));
}

function describe(error) {
  if (Array.isArray(error)) {
    return error.map((e) => ({ message: e.message, extensions: e.extensions ?? null }));
  }
  if (error && typeof error.code === "number") return { closeCode: error.code, reason: error.reason };
  return { message: String(error?.message ?? error) };
}

function collect(name, { query, date, count: wanted }) {
  const found = { events: [], errors: [], ended: null };
  return new Promise((resolve) => {
    let unsubscribe = () => {};
    const finish = (ended) => {
      if (found.ended) return;
      found.ended = ended;
      clearTimeout(timer);
      unsubscribe();
      found.inOrder = inOrder(found.events.map((event) => date(event.value)));
      resolve([name, found]);
    };
    const timer = setTimeout(() => finish("timeout"), TIMEOUT_MS);
    unsubscribe = client.subscribe(
      { query },
      {
        next: (result) => {
          if (result.errors) found.errors.push(...describe(result.errors));
          if (result.data) {
            const [value] = Object.values(result.data);
            found.events.push({ value, cursor: result.extensions?.cursor ?? null });
          }
          if (found.events.length + found.errors.length >= wanted) finish("enough");
        },
        error: (error) => {
          found.errors.push(describe(error));
          finish("error");
        },
        complete: () => finish("complete"),
      },
    );
  });
}

const subscriptions = Object.fromEntries(
  await Promise.all(Object.entries(SUBSCRIPTIONS).map(([name, spec]) => collect(name, spec))),
);
await client.dispose();
print({ sockets, frames, subscriptions });
