// GraphQL over SSE, distinct connections mode: graphql-sse's client follows race control,
// then resumes after its 3rd event twice: with the `after` argument (graphql-sse again), and
// as an EventSource reconnects, with `Last-Event-ID` (a plain fetch reading the event stream).
// Usage: node graphql_sse_subscribe.mjs <http://…/graphql> <n>; prints, as JSON,
// {first, after, lastEventId, resumedAfter}: each run's events ({value, cursor, id}) and errors,
// and the comparisons with the first run's events after the 3rd.
import { createClient } from "graphql-sse";
import { print } from "./_record.mjs";

const [url, count] = process.argv.slice(2);
const n = Number(count);
const RESUME_AFTER = 3;
const TIMEOUT_MS = 30_000;
const QUERY =
  "subscription RaceControl($after: String) " +
  "{ raceControl(latest: true, after: $after) { date message } }";

const client = createClient({ url, singleConnection: false, retryAttempts: 0 });

function describe(error) {
  if (Array.isArray(error)) {
    return error.map((e) => ({ message: e.message, extensions: e.extensions ?? null }));
  }
  if (error && typeof error.status === "number") return { status: error.status };
  return { message: String(error?.message ?? error) };
}

// graphql-sse: `wanted` events, then the subscription is disposed (its request aborted).
function subscribe(variables, wanted) {
  const found = { events: [], errors: [], ended: null };
  return new Promise((resolve) => {
    let dispose = () => {};
    const finish = (ended) => {
      if (found.ended) return;
      found.ended = ended;
      clearTimeout(timer);
      dispose();
      resolve(found);
    };
    const timer = setTimeout(() => finish("timeout"), TIMEOUT_MS);
    dispose = client.subscribe(
      { query: QUERY, variables },
      {
        next: (result) => {
          if (result.errors) found.errors.push(...describe(result.errors));
          if (result.data) {
            found.events.push({
              value: result.data.raceControl,
              cursor: result.extensions?.cursor ?? null,
            });
          }
          if (found.events.length >= wanted || result.errors) finish("enough");
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

// One SSE message: its `event`, `id` and `data` fields (RFC: "field: value" lines).
function parseMessage(block) {
  const message = { event: "message", id: null, data: [] };
  for (const line of block.split(/\r\n|\r|\n/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") message.data.push(value);
    else if (field === "event") message.event = value;
    else if (field === "id") message.id = value;
  }
  return { ...message, data: message.data.join("\n") };
}

// What an EventSource does when it reconnects: the same request, with `Last-Event-ID`.
async function reconnect(lastEventId, wanted) {
  const found = { events: [], errors: [], ended: null, status: null, contentType: null };
  const control = new AbortController();
  const timer = setTimeout(() => control.abort(), TIMEOUT_MS);
  try {
    const response = await fetch(url, {
      method: "POST",
      signal: control.signal,
      headers: {
        accept: "text/event-stream",
        "content-type": "application/json",
        "last-event-id": lastEventId,
      },
      body: JSON.stringify({ query: QUERY }),
    });
    found.status = response.status;
    found.contentType = response.headers.get("content-type");
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk, { stream: true });
      const blocks = buffer.split(/\r\n\r\n|\n\n|\r\r/);
      buffer = blocks.pop();
      for (const block of blocks) {
        const message = parseMessage(block);
        if (message.event === "complete") {
          found.ended = "complete";
        } else if (message.event === "next") {
          const result = JSON.parse(message.data);
          if (result.errors) found.errors.push(...describe(result.errors));
          if (result.data) {
            found.events.push({
              value: result.data.raceControl,
              cursor: result.extensions?.cursor ?? null,
              id: message.id,
            });
          }
        }
      }
      if (found.ended || found.events.length >= wanted || found.errors.length) break;
    }
    found.ended ??= found.events.length >= wanted ? "enough" : "stream ended";
  } catch (error) {
    found.ended = control.signal.aborted ? "timeout" : "error";
    if (!control.signal.aborted) found.errors.push(describe(error));
  } finally {
    clearTimeout(timer);
    control.abort();
  }
  return found;
}

// How a resumed run compares with the first run's events after the one it resumed from.
function compare(first, resumed) {
  const expected = first.events.slice(RESUME_AFTER).map((event) => event.cursor);
  const got = resumed.events.map((event) => event.cursor);
  const before = new Set(first.events.slice(0, RESUME_AFTER).map((event) => event.cursor));
  return {
    expected,
    got,
    repeated: got.filter((cursor) => before.has(cursor)),
    duplicates: got.filter((cursor, i) => got.indexOf(cursor) !== i),
    matches: expected.every((cursor, i) => got[i] === cursor),
  };
}

const first = await subscribe({}, n);
const resumeFrom = first.events[RESUME_AFTER - 1]?.cursor ?? null;
let after = null;
let lastEventId = null;
if (resumeFrom !== null) {
  after = await subscribe({ after: resumeFrom }, n - RESUME_AFTER);
  lastEventId = await reconnect(resumeFrom, n - RESUME_AFTER);
}
await client.dispose();
print({
  first,
  resumeFrom,
  after,
  lastEventId,
  resumedAfter: after && compare(first, after),
  resumedLastEventId: lastEventId && compare(first, lastEventId),
});
