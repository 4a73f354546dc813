// `@sluice/sinks-core/testing`: for spec files, test fixtures and benchmarks only (lint enforces it).
// The conformance suite every sink passes, and deterministic events to feed it.
export {
  describeSinkConformance,
  recordsOf,
  type SinkHarness,
  type SinkHarnessFactory,
} from './conformance';
export { detectionEvent, telemetryEvent } from './test-events';
export { GOLDEN_EVENTS, GOLDEN_RECORDS } from './test-fixtures/golden';
