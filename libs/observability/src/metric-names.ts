/**
 * Every Prometheus metric and span attribute name in one registry, so dashboards and alerts have one
 * source of truth. Metric names follow Prometheus conventions (`_total`, `_seconds`, `_bytes`).
 */
export const METRICS = {
  messagesProcessed: 'sluice_messages_processed_total',
  messagesRetried: 'sluice_messages_retried_total',
  messagesDeadLettered: 'sluice_messages_dead_lettered_total',
  messagesFailed: 'sluice_messages_failed_total',
  handlerDuration: 'sluice_handler_duration_seconds',
  batchSize: 'sluice_batch_messages',
  inFlightBytes: 'sluice_in_flight_bytes',
  consumerPending: 'sluice_consumer_pending_messages',
  consumerAckPending: 'sluice_consumer_ack_pending_messages',
  consumerRedelivered: 'sluice_consumer_redelivered_messages',
  consumerRepulls: 'sluice_consumer_repulls_total',
  lifecycleState: 'sluice_lifecycle_state',
  eventsPublished: 'sluice_events_published_total',
  eventsRejected: 'sluice_events_rejected_total',
  ingestAckDuration: 'sluice_ingest_ack_duration_seconds',
  dedupeDuplicates: 'sluice_dedupe_duplicates_total',
  dedupeClaims: 'sluice_dedupe_claims_total',
  dedupeRedisDuration: 'sluice_dedupe_redis_duration_seconds',
  dedupePassThrough: 'sluice_dedupe_pass_through_total',
} as const;

/** Metrics of the aggregator. */
export const AGGREGATOR_METRICS = {
  events: 'sluice_aggregator_events_total',
  lateEvents: 'sluice_aggregator_late_events_total',
  messages: 'sluice_aggregator_messages_total',
  flushDuration: 'sluice_aggregator_flush_duration_seconds',
  flushRetries: 'sluice_aggregator_flush_retries_total',
  windowsClosed: 'sluice_aggregator_windows_closed_total',
  rollupsPublished: 'sluice_aggregator_rollups_published_total',
  closerPasses: 'sluice_aggregator_closer_passes_total',
  partitionsDropped: 'sluice_aggregator_partitions_dropped_total',
  /** Roll-up freshness: clean publish → visible in the query API (the SLO's SLI). */
  visible: 'sluice_aggregator_visible_seconds',
  /** Version of the live pipeline configuration this replica serves. */
  configVersion: 'sluice_aggregator_pipeline_config_version',
} as const;

/** Metrics of the dedupe. */
export const DEDUPE_METRICS = {
  batchEvents: 'sluice_dedupe_message_events',
  cleanMessages: 'sluice_dedupe_clean_messages_published_total',
  reseeds: 'sluice_dedupe_reseeds_total',
  reseedClaims: 'sluice_dedupe_reseed_claims_total',
  reseedMessages: 'sluice_dedupe_reseed_messages_total',
  reseedSeconds: 'sluice_dedupe_reseed_seconds_total',
} as const;

/** Metrics of the gateway. */
export const INGEST_METRICS = {
  batches: 'sluice_ingest_batches_total',
  rateLimited: 'sluice_ingest_rate_limited_total',
  publishFailures: 'sluice_ingest_publish_failures_total',
  openStreams: 'sluice_ingest_open_streams',
  authFailures: 'sluice_ingest_auth_failures_total',
  unsentAckBytes: 'sluice_ingest_unsent_ack_bytes',
  streamsExhausted: 'sluice_ingest_streams_exhausted_total',
  streamsRefused: 'sluice_ingest_streams_refused_total',
  idempotencyConflicts: 'sluice_ingest_idempotency_conflicts_total',
  duplicates: 'sluice_ingest_duplicate_batches_total',
} as const;

/** Metrics of the webhook dispatcher. */
export const WEBHOOK_METRICS = {
  matched: 'sluice_webhook_matched_total',
  attempts: 'sluice_webhook_attempts_total',
  attemptDuration: 'sluice_webhook_attempt_duration_seconds',
  deadLettered: 'sluice_webhook_dead_lettered_total',
  deferred: 'sluice_webhook_deferred_total',
  dropped: 'sluice_webhook_dropped_total',
  disabled: 'sluice_webhook_endpoints_disabled_total',
  inFlight: 'sluice_webhook_in_flight',
  ssrfRefused: 'sluice_webhook_ssrf_refused_total',
} as const;

/** Metrics of the sink runners. */
export const SINK_METRICS = {
  writeDuration: 'sluice_sink_write_duration_seconds',
  recordsWritten: 'sluice_sink_records_written_total',
  recordsRejected: 'sluice_sink_records_rejected_total',
  writeErrors: 'sluice_sink_write_errors_total',
  bufferRecords: 'sluice_sink_buffer_records',
  bufferFill: 'sluice_sink_buffer_fill_ratio',
  eventLag: 'sluice_sink_publish_to_store_seconds',
  healthy: 'sluice_sink_healthy',
} as const;

/** Metrics of every HTTP API (labels: `api`, `method`, `route` template, `status`). */
export const HTTP_METRICS = {
  requests: 'sluice_http_requests_total',
  duration: 'sluice_http_request_duration_seconds',
  clientErrors: 'sluice_http_client_errors_total',
} as const;

/** Metrics of a store behind a StoreGate (labelled by `store`). */
export const STORE_METRICS = {
  up: 'sluice_store_up',
  errors: 'sluice_store_errors_total',
  outages: 'sluice_store_outages_total',
  downSeconds: 'sluice_store_down_seconds_total',
} as const;

/**
 * Span and log attribute names (OpenTelemetry messaging, HTTP and RPC semantic conventions where they
 * exist). Never a raw device id: `deviceHash` only.
 */
export const ATTR = {
  messagingSystem: 'messaging.system',
  messagingDestination: 'messaging.destination.name',
  messagingOperation: 'messaging.operation.type',
  messagingBatchCount: 'messaging.batch.message_count',
  messagingMessageId: 'messaging.message.id',
  streamSequence: 'sluice.stream.sequence',
  deliveryCount: 'sluice.delivery.count',
  outcome: 'sluice.outcome',
  service: 'sluice.service',
  region: 'sluice.region',
  deviceHash: 'sluice.device.hash',
  eventCount: 'sluice.event.count',
  webhookId: 'sluice.webhook.id',
  subscriptionId: 'sluice.subscription.id',
  rollupResolution: 'sluice.rollup.resolution',
  rollupRevision: 'sluice.rollup.revision',
  httpRequestMethod: 'http.request.method',
  httpResponseStatusCode: 'http.response.status_code',
  httpRoute: 'http.route',
  httpResendCount: 'http.request.resend_count',
  urlPath: 'url.path',
  urlScheme: 'url.scheme',
  serverAddress: 'server.address',
  serverPort: 'server.port',
  networkProtocolVersion: 'network.protocol.version',
  errorType: 'error.type',
  rpcSystem: 'rpc.system',
  rpcService: 'rpc.service',
  rpcMethod: 'rpc.method',
  rpcGrpcStatusCode: 'rpc.grpc.status_code',
} as const;
