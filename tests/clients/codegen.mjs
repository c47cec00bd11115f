// Generates TypeScript types for operation documents and the fragment matcher's possibleTypes.
// Usage: node codegen.mjs <schema.graphql> <documents glob> <output dir>; run from this folder.
import { generate } from "@graphql-codegen/cli";

const [schema, documents, outDir] = process.argv.slice(2);
const scalars = { DateTime: "string" };
try {
  await generate(
    {
      schema,
      documents,
      silent: true,
      errorsOnly: true,
      generates: {
        [`${outDir}/operations.ts`]: {
          plugins: ["typescript-operations"],
          config: { scalars },
        },
        [`${outDir}/possible-types.ts`]: { plugins: ["fragment-matcher"] },
        [`${outDir}/possible-types.json`]: { plugins: ["fragment-matcher"] },
      },
    },
    true,
  );
} catch (error) {
  // One message per distinct problem (codegen repeats it for every output file).
  const messages = new Set((error.errors ?? [error]).map((e) => e.message));
  for (const message of messages) console.error(message);
  process.exitCode = 1;
}
