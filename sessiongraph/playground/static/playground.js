// Starts GraphiQL with the explorer plugin. The page has no inline script (its CSP forbids it),
// so the default tab comes from the JSON block the server wrote into the page. A link to
// `/graphql?query=…` (as a browser opens it) puts that operation into the editor, unrun.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("playground-config").textContent);
  const params = new URLSearchParams(window.location.search);
  const linked = {};
  for (const name of ["query", "variables", "operationName"]) {
    if (params.has(name)) linked[name] = params.get(name);
  }

  // Subscriptions over graphql-transport-ws on the same path (ws: beside http:, wss: beside https:).
  const socketUrl = new URL(window.location.pathname, window.location.href);
  socketUrl.protocol = window.location.protocol === "https:" ? "wss:" : "ws:";

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher: GraphiQL.createFetcher({
        url: window.location.pathname,
        subscriptionUrl: socketUrl.toString(),
      }),
      plugins: [GraphiQLPluginExplorer.explorerPlugin()],
      defaultTabs: config.tabs,
      defaultEditorToolsVisibility: true,
      inputValueDeprecation: true,
      ...linked,
    }),
  );
})();
