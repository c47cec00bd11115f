// Starts GraphiQL with the explorer plugin. The page has no inline script (its CSP forbids it),
// so the default tab comes from the JSON block the server wrote into the page.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("playground-config").textContent);

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher: GraphiQL.createFetcher({ url: window.location.pathname }),
      plugins: [GraphiQLPluginExplorer.explorerPlugin()],
      defaultTabs: config.tabs,
      defaultEditorToolsVisibility: true,
      inputValueDeprecation: true,
    }),
  );
})();
