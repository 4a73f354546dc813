export {
  createAdminClient,
  type AdminClient,
  type AdminClientOptions,
  type Attempt,
  type AttemptsQuery,
  type CreatedSubscription,
  type DeadLetter,
  type DeadLettersQuery,
  type Filter,
  type NewSubscription,
  type Subscription,
  type SubscriptionChange,
} from './client';
export { ApiProblemError, ApiTransportError, type Problem } from '@sluice/client-core';
export type { components, operations, paths } from './gen/schema';
