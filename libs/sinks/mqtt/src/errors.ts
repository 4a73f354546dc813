import { ConfigError, SluiceError } from '@sluice/errors';
import { RecordRejectedError, SinkUnsupportedError } from '@sluice/sinks-core';

/**
 * MQTT 5 reason codes of a PUBACK/PUBREC that mean "try again later" (the broker is busy or over a
 * quota); any other code of 0x80 or more refuses the message itself.
 */
export const TRANSIENT_REASON_CODES: ReadonlyMap<number, string> = new Map([
  [0x88, 'Server unavailable'],
  [0x89, 'Server busy'],
  [0x91, 'Packet identifier in use'],
  [0x96, 'Message rate too high'],
  [0x97, 'Quota exceeded'],
]);

/** The broker refused the message (MQTT 5 reason code ≥ 0x80, e.g. 0x87 Not authorized). */
export class PublishRefusedError extends RecordRejectedError {
  override readonly name = 'PublishRefusedError';
  override readonly code = 'mqtt_publish_refused';
  constructor(
    readonly reasonCode: number,
    reason: string,
    readonly topic: string,
  ) {
    super(
      `the MQTT broker refused the message on topic "${topic}" (reason 0x${reasonCode.toString(16)}: ${reason})`,
    );
  }
}

/** The broker is not reachable, or the connection dropped before the acks came: retried. */
export class MqttUnavailableError extends SluiceError {
  override readonly name = 'MqttUnavailableError';
  readonly code = 'mqtt_unavailable';
  constructor(reason: string, options?: { cause?: unknown }) {
    super(`MQTT broker unavailable: ${reason}`, { retriable: true, cause: options?.cause });
  }
}

/**
 * Transient unless known to be permanent: the broker away, busy or over a quota, a refused
 * connection while an operator fixes credentials all retry (bounded by the runner's delivery limit,
 * then DLQ). Bad options and refused messages are permanent.
 */
export function isRetriableMqttError(error: unknown): boolean {
  if (error instanceof RecordRejectedError) return false;
  if (error instanceof ConfigError || error instanceof SinkUnsupportedError) return false;
  return true;
}
