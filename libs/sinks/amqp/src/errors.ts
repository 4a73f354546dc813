import { ConfigError, SluiceError } from '@sluice/errors';
import { RecordRejectedError, SinkUnsupportedError } from '@sluice/sinks-core';

/** The broker returned a mandatory message: no queue is bound for its routing key. */
export class UnroutableRecordError extends RecordRejectedError {
  override readonly name = 'UnroutableRecordError';
  override readonly code = 'amqp_unroutable';
  constructor(
    readonly replyCode: number,
    readonly replyText: string,
    exchange: string,
    routingKeys: readonly string[],
  ) {
    super(
      `RabbitMQ returned the message (${replyCode} ${replyText}): no queue is bound to exchange "${exchange}" for routing key ${routingKeys.map((k) => `"${k}"`).join(', ')}`,
    );
  }
}

/** The connection to the broker is down (or went down during the write): retried. */
export class AmqpUnavailableError extends SluiceError {
  override readonly name = 'AmqpUnavailableError';
  readonly code = 'amqp_unavailable';
  constructor(reason: string, options?: { cause?: unknown }) {
    super(`RabbitMQ unavailable: ${reason}`, { retriable: true, cause: options?.cause });
  }
}

/** The broker refused a declaration of the sink's configuration (e.g. an exchange of another type). */
export class AmqpDeclareError extends SluiceError {
  override readonly name = 'AmqpDeclareError';
  readonly code = 'amqp_declare_refused';
}

/**
 * Transient unless known to be permanent: the broker away, a nack (a full queue with
 * `reject-publish`), a closed channel, wrong credentials while an operator fixes them all retry
 * (bounded by the runner's delivery limit, then DLQ). Bad options, refused declarations and
 * rejected records are permanent.
 */
export function isRetriableAmqpError(error: unknown): boolean {
  if (error instanceof RecordRejectedError) return false;
  if (error instanceof ConfigError || error instanceof SinkUnsupportedError) return false;
  if (error instanceof AmqpDeclareError) return false;
  return true;
}
