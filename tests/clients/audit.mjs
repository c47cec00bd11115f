// Runs graphql-http's GraphQL-over-HTTP server audit against a running gateway and prints the
// results as one JSON array of {id, name, status, reason}. Usage: node audit.mjs <graphql-url>
import { auditServer } from "graphql-http";

const [url] = process.argv.slice(2);
const results = await auditServer({ url });
console.log(
  JSON.stringify(
    results.map((r) => ({
      id: r.id,
      name: r.name,
      status: r.status,
      reason: r.status === "ok" ? null : String(r.reason),
    })),
  ),
)
