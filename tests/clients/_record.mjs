// A fetch that records every request it sends and the answer it gets, for the tests to check.
// Bodies are read from a clone in the background, so streamed (multipart) answers still stream.

function decodeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// The GraphQL request a client sent: the JSON body of a POST, else the URL's parameters.
function graphqlRequest(method, url, body) {
  if (method !== "GET") return typeof body === "string" ? decodeJson(body) : null;
  const params = {};
  for (const [name, value] of url.searchParams) {
    params[name] = name === "query" || name === "operationName" ? value : decodeJson(value);
  }
  return params;
}

export function recordingFetch() {
  const requests = [];
  const reading = [];

  async function recorded(input, init = {}) {
    const url = new URL(typeof input === "string" ? input : input.url);
    const method = (init.method ?? "GET").toUpperCase();
    const entry = {
      method,
      url: url.href,
      headers: Object.fromEntries(new Headers(init.headers ?? {})),
      request: graphqlRequest(method, url, init.body),
      bodyBytes: typeof init.body === "string" ? Buffer.byteLength(init.body) : 0,
    };
    requests.push(entry);
    const response = await fetch(input, init);
    entry.status = response.status;
    entry.responseHeaders = Object.fromEntries(response.headers);
    reading.push(
      response
        .clone()
        .text()
        .then((text) => {
          entry.responseText = text;
        }),
    );
    return response;
  }

  return {
    fetch: recorded,
    requests,
    // Waits for the recorded answers' bodies to be read in full.
    async settle() {
      await Promise.allSettled(reading);
      return requests;
    },
  };
}

// What a failed client call leaves: its message, GraphQL errors and network error.
export function describeError(error) {
  if (!error) return null;
  return {
    message: error.message,
    graphQLErrors: (error.graphQLErrors ?? []).map((e) => ({
      message: e.message,
      extensions: e.extensions ?? null,
    })),
    networkError: error.networkError ? String(error.networkError) : null,
  };
}

export function print(value) {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}
