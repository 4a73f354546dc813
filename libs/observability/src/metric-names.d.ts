/**
 * Every Prometheus metric and span attribute name in one registry, so dashboards and alerts have one
 * source of truth. Metric names follow Prometheus conventions (`_total`, `_seconds`, `_bytes`).
 */
export declare const METRICS: {
    readonly messagesProcessed: "sluice_messages_processed_total";
    readonly messagesRetried: "sluice_messages_retried_total";
    readonly messagesDeadLettered: "sluice_messages_dead_lettered_total";
    readonly messagesFailed: "sluice_messages_failed_total";
    readonly handlerDuration: "sluice_handler_duration_seconds";
    readonly batchSize: "sluice_batch_messages";
    readonly inFlightBytes: "sluice_in_flight_bytes";
    readonly consumerPending: "sluice_consumer_pending_messages";
    readonly consumerAckPending: "sluice_consumer_ack_pending_messages";
    readonly consumerRedelivered: "sluice_consumer_redelivered_messages";
    readonly lifecycleState: "sluice_lifecycle_state";
    readonly eventsPublished: "sluice_events_published_total";
    readonly eventsRejected: "sluice_events_rejected_total";
    readonly ingestAckDuration: "sluice_ingest_ack_duration_seconds";
    readonly dedupeDuplicates: "sluice_dedupe_duplicates_total";
    readonly dedupeClaims: "sluice_dedupe_claims_total";
    readonly dedupeRedisDuration: "sluice_dedupe_redis_duration_seconds";
    readonly dedupePassThrough: "sluice_dedupe_pass_through_total";
};
/** Span and log attribute names (OpenTelemetry messaging semantic conventions where they exist). */
export declare const ATTR: {
    readonly messagingSystem: "messaging.system";
    readonly messagingDestination: "messaging.destination.name";
    readonly messagingOperation: "messaging.operation.type";
    readonly messagingBatchCount: "messaging.batch.message_count";
    readonly messagingMessageId: "messaging.message.id";
    readonly streamSequence: "sluice.stream.sequence";
    readonly deliveryCount: "sluice.delivery.count";
    readonly outcome: "sluice.outcome";
    readonly service: "sluice.service";
    readonly region: "sluice.region";
    readonly deviceHash: "sluice.device.hash";
    readonly eventCount: "sluice.event.count";
};
