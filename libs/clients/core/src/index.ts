export {
  call,
  createApiClient,
  paginate,
  type ApiClientOptions,
  type FetchResult,
  type Page,
} from './client';
export {
  ApiPagingLimitError,
  ApiProblemError,
  ApiTransportError,
  problemOf,
  retryAfterMs,
  type Problem,
  type ProblemIssue,
} from './errors';
