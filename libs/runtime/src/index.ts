export { LifecycleError } from './errors';
export { listenHttp, type ListeningServer } from './http-listen';
export { Lifecycle, STATE_CODE, type LifecycleState } from './lifecycle';
export {
  startOpsServer,
  type OpsServer,
  type OpsServerOptions,
  type ReadinessCheck,
} from './ops-server';
export {
  runService,
  serve,
  startRuntime,
  type Runtime,
  type ServedActor,
  type ServedServer,
  type Service,
  type ServiceFactory,
} from './runtime';
export { runUntilSignal, type RunOptions, type Stoppable } from './signals';
