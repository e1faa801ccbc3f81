// Moved to engine/decision-counters.ts: the DNS workers count decisions on the
// fast path, which never imports admin/. This re-export serves main.ts until
// its import points at engine/ (issue 18).
export { createDecisionCounterBuffer } from '../engine/decision-counters.ts';
