export { Actor, type ActorOptions, type BatchHandler, type BatchOptions, type Delivery, type PrefetchOptions } from './actor';
export { backoffDelay, DEFAULT_BACKOFF_MS, type BackoffOptions } from './backoff';
export { HandlerContractError, PoisonMessageError, RetriesExhaustedError } from './errors';
export { ActorMetrics } from './metrics';
export { Outcomes, type Outcome } from './outcome';
export { isConnectionLoss, StoreGate, type StoreGateOptions } from './store-gate';
