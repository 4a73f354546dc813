export {
  createQueryClient,
  type IterateOptions,
  type KeyItem,
  type KeyPage,
  type Latest,
  type ListQuery,
  type Point,
  type QueryClient,
  type QueryClientOptions,
  type SeriesPage,
  type SeriesQuery,
} from './client';
export {
  ApiPagingLimitError,
  ApiProblemError,
  ApiTransportError,
  type Problem,
} from '@sluice/client-core';
export type { components, operations, paths } from './gen/schema';
