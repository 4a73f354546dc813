export {
  Actor,
  type ActorCommonOptions,
  type ActorOptions,
  type BatchHandler,
  type BatchModeOptions,
  type BatchOptions,
  type Delivery,
  type MessageHandler,
  type MessageModeOptions,
  type PerMessageOptions,
  type PrefetchOptions,
} from './actor';
export { backoffDelay, DEFAULT_BACKOFF_MS, type BackoffOptions } from './backoff';
export { HandlerContractError, PoisonMessageError, RetriesExhaustedError } from './errors';
export { ActorMetrics } from './metrics';
export { Outcomes, type Outcome } from './outcome';
export { isConnectionLoss, StoreGate, type StoreGateOptions } from './store-gate';
