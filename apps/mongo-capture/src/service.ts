// MongoDB capture: consumes clean telemetry (`<ns>.telemetry.clean.>`) and stores every event in the
// owner's MongoDB (telemetry and detections in their own collections, idempotent by event id).
// Serves only the ops endpoints.
import type { Runtime, Service } from '@sluice/runtime';
import { buildCapture, SERVICE } from './capture';
import type { Config } from './config';

export { SERVICE };

export function createService(rt: Runtime<Config>): Service {
  return buildCapture(rt).toService();
}
