import { ConfigError } from '@sluice/errors';
import { ExpressionError } from './errors';
import { parseExpression, references, type Expr } from './expression';

/** A series computed per window from other sensors of the same device. */
export interface DerivedSeries {
  /** Sensor name the derived series is stored under. */
  readonly name: string;
  readonly expr: Expr;
  /** Sensors the expression reads (their window averages). */
  readonly inputs: readonly string[];
  readonly source: string;
}

/** One derived series as written: `name = expression`. */
export interface DerivedDefinition {
  readonly name: string;
  readonly expression: string;
}

/** Why a derived definition is refused; `index` is its position in the list. */
export interface DerivedProblem {
  readonly index: number;
  readonly name: string;
  readonly message: string;
}

export const DERIVED_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * Compiles derived definitions: names of letters, digits and `_`, expressions of the expression
 * language reading at least one measured sensor, no name twice, none reading itself or another
 * derived series. Returns the series, or every problem found (messages carry the expression
 * language's own errors with their position).
 */
export function compileDerived(
  defs: readonly DerivedDefinition[],
): { ok: true; derived: DerivedSeries[] } | { ok: false; problems: DerivedProblem[] } {
  const out: DerivedSeries[] = [];
  const problems: DerivedProblem[] = [];
  defs.forEach((d, index) => {
    const fail = (message: string) => problems.push({ index, name: d.name, message });
    if (!DERIVED_NAME.test(d.name))
      return fail(
        `name "${d.name}" must be letters, digits and _ (at most 64), not starting with a digit`,
      );
    let expr: Expr;
    try {
      expr = parseExpression(d.expression);
    } catch (err) {
      if (err instanceof ExpressionError) return fail(err.message);
      throw err;
    }
    const inputs = references(expr);
    if (inputs.length === 0) return fail('must read at least one sensor');
    if (inputs.includes(d.name)) return fail('must not read itself');
    if (out.some((o) => o.name === d.name)) return fail('defined twice');
    out.push({ name: d.name, expr, inputs, source: d.expression.trim() });
  });
  for (const d of out) {
    const chained = d.inputs.find((i) => out.some((o) => o.name === i));
    if (chained)
      problems.push({
        index: defs.findIndex((x) => x.name === d.name),
        name: d.name,
        message: `reads derived series ${chained}; derive from measured sensors only`,
      });
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, derived: out };
}

/** Splits `AGGREGATOR_DERIVED` (`name = expr; name = expr`) into definitions. Throws {@link ConfigError}. */
export function splitDerived(spec: string): DerivedDefinition[] {
  return spec
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((part) => {
      const eq = part.indexOf('=');
      const name = eq > 0 ? part.slice(0, eq).trim() : '';
      if (!DERIVED_NAME.test(name))
        throw new ConfigError(
          'AGGREGATOR_DERIVED',
          `"${part}" must be <name> = <expression> with a name of letters, digits and _`,
        );
      return { name, expression: part.slice(eq + 1).trim() };
    });
}

/** Parses `AGGREGATOR_DERIVED` (`name = expr; name = expr`). Throws {@link ConfigError}. */
export function parseDerived(spec: string): DerivedSeries[] {
  const compiled = compileDerived(splitDerived(spec));
  if (!compiled.ok) {
    const p = compiled.problems[0]!;
    throw new ConfigError('AGGREGATOR_DERIVED', `${p.name}: ${p.message}`);
  }
  return compiled.derived;
}
