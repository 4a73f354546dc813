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
  lifecycleState: 'sluice_lifecycle_state',
  eventsPublished: 'sluice_events_published_total',
  eventsRejected: 'sluice_events_rejected_total',
  ingestAckDuration: 'sluice_ingest_ack_duration_seconds',
  dedupeDuplicates: 'sluice_dedupe_duplicates_total',
  dedupeClaims: 'sluice_dedupe_claims_total',
  dedupeRedisDuration: 'sluice_dedupe_redis_duration_seconds',
  dedupePassThrough: 'sluice_dedupe_pass_through_total',
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
