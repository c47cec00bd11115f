// Loads an SDL file with graphql-js `buildSchema` and validates it, as clients' tooling does.
// Usage: node build_schema.mjs <schema.graphql>; prints what the tests check as JSON.
import { readFileSync } from "node:fs";
import { assertValidSchema, buildSchema, isAbstractType } from "graphql";

const schema = buildSchema(readFileSync(process.argv[2], "utf8"));
assertValidSchema(schema);
const types = Object.values(schema.getTypeMap()).filter((type) => !type.name.startsWith("__"));
const dateTime = schema.getType("DateTime");
process.stdout.write(
  `${JSON.stringify({
    directives: schema.getDirectives().map((directive) => directive.name),
    abstractTypes: types.filter(isAbstractType).map((type) => type.name),
    subscription: schema.getSubscriptionType()?.name ?? null,
    dateTimeSpecifiedBy: dateTime?.specifiedByURL ?? null,
    typeCount: types.length,
  })}\n`,
);
