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

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** Parses `AGGREGATOR_DERIVED` (`name = expr; name = expr`). Throws {@link ConfigError}. */
export function parseDerived(spec: string): DerivedSeries[] {
  const out: DerivedSeries[] = [];
  for (const part of spec
    .split(';')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    const name = eq > 0 ? part.slice(0, eq).trim() : '';
    if (!NAME.test(name))
      throw new ConfigError(
        'AGGREGATOR_DERIVED',
        `"${part}" must be <name> = <expression> with a name of letters, digits and _`,
      );
    let expr: Expr;
    try {
      expr = parseExpression(part.slice(eq + 1));
    } catch (err) {
      if (err instanceof ExpressionError)
        throw new ConfigError('AGGREGATOR_DERIVED', `${name}: ${err.message}`);
      throw err;
    }
    const inputs = references(expr);
    if (inputs.length === 0)
      throw new ConfigError('AGGREGATOR_DERIVED', `${name}: must read at least one sensor`);
    if (inputs.includes(name))
      throw new ConfigError('AGGREGATOR_DERIVED', `${name}: must not read itself`);
    if (out.some((d) => d.name === name))
      throw new ConfigError('AGGREGATOR_DERIVED', `${name}: defined twice`);
    out.push({ name, expr, inputs, source: part.slice(eq + 1).trim() });
  }
  for (const d of out) {
    const chained = d.inputs.find((i) => out.some((o) => o.name === i));
    if (chained)
      throw new ConfigError(
        'AGGREGATOR_DERIVED',
        `${d.name}: reads derived series ${chained}; derive from measured sensors only`,
      );
  }
  return out;
}
