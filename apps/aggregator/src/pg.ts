// The pooled-client helpers live in @sluice/pg; re-exported for the aggregator's modules.
export { inTransaction, withClient } from '@sluice/pg';

// Array parameters as ready-made literals: pg's generic per-element encoding (prepareValue,
// escapeElement) cost more node CPU per flush than building the literal in one pass.

/** A PostgreSQL array literal of finite numbers, for a `$n::float8[]`/`int8[]`/`int2[]` parameter. */
export function numberArray(values: readonly number[]): string {
  return `{${values.join(',')}}`;
}

const ARRAY_SPECIAL = /["\\]/;
const ARRAY_SPECIAL_ALL = /["\\]/g;

/** A PostgreSQL array literal of strings (every element quoted), for a `$n::text[]` parameter. */
export function textArray(values: readonly string[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    out += `${i === 0 ? '' : ','}"${ARRAY_SPECIAL.test(v) ? v.replace(ARRAY_SPECIAL_ALL, '\\$&') : v}"`;
  }
  return `${out}}`;
}
