// The simulated cameras' export path: each camera pipeline hands its frames to the device SDK (one
// client for the fleet, as an edge gateway hosting the cameras would embed it), which buffers them by
// priority and streams them to the gateway's gRPC Ingest.
import type { Event } from '@sluice/contracts';
import {
  DeviceClient,
  type DeviceClientOptions,
  type DeviceClientStats,
  type Priority,
} from '@sluice/device-sdk';

/** Confidence from which a person in frame makes the frame a safety event. */
export const SAFETY_CONFIDENCE = 0.9;

/**
 * Priority of a simulated frame: `safety` when it shows a person with confidence of at least
 * {@link SAFETY_CONFIDENCE} (someone on deck, in the water), `normal` otherwise.
 */
export function framePriority(event: Event): Priority {
  const kind = event.kind;
  if (kind?.$case !== 'detection') return 'normal';
  for (const d of kind.value.detections)
    if (d.label === 'person' && d.confidence >= SAFETY_CONFIDENCE) return 'safety';
  return 'normal';
}

/** The device client of the simulated cameras, sending to `target` with `token`. */
export function createCameraClient(
  target: string,
  token: string | undefined,
  extra: Partial<DeviceClientOptions> = {},
): DeviceClient {
  return new DeviceClient({
    target,
    ...(token ? { token } : {}),
    name: 'fleet-sim-cameras',
    ...extra,
  });
}

/** The camera part of the run summary. */
export function cameraSummary(s: DeviceClientStats, malformed: number) {
  const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);
  return {
    camera_frames_emitted: s.queued.safety + s.queued.normal + s.queued.bulk,
    camera_safety_frames: s.queued.safety,
    camera_frames_malformed: malformed,
    camera_frames_acked: s.acked.safety + s.acked.normal + s.acked.bulk,
    camera_frames_rejected: s.dropped.safety.rejected + s.dropped.normal.rejected,
    camera_frames_dropped:
      sum(s.dropped.safety) +
      sum(s.dropped.normal) +
      sum(s.dropped.bulk) -
      s.dropped.safety.rejected -
      s.dropped.normal.rejected -
      s.dropped.bulk.rejected,
    camera_batch_retries: s.retries.retry_ack + s.retries.stream_failed + s.retries.ack_timeout,
  };
}
