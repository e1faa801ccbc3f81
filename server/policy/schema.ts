// Moved to config/schema.ts (geo/, health/ and policy/ all validate with it).
// This re-export serves the imports in policy/load.ts, policy/policies.ts,
// geo/catalog.ts and geo/networks.ts until they point at config/ (issue 18).
export { schemaValidator, validateAgainstSchema } from '../config/schema.ts';
