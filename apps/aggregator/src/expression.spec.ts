import { ExpressionError } from './errors';
import { evaluate, parseExpression, references } from './expression';
import { parseDerived } from './derived';

const ev = (src: string, vars: Record<string, number> = {}) =>
  evaluate(parseExpression(src), new Map(Object.entries(vars)));

describe('derived-series expressions', () => {
  it('follows precedence, associativity, unary minus and parentheses', () => {
    expect(ev('1 + 2 * 3')).toBe(7);
    expect(ev('(1 + 2) * 3')).toBe(9);
    expect(ev('10 - 4 - 3')).toBe(3);
    expect(ev('8 / 4 / 2')).toBe(1);
    expect(ev('-2 * -3')).toBe(6);
    expect(ev('1.5e2 + .5')).toBe(150.5);
    expect(ev('engine_temp * 1.8 + 32', { engine_temp: 100 })).toBe(212);
    expect(ev('voltage * current', { voltage: 12, current: 2.5 })).toBe(30);
  });

  it('yields nothing for a missing input or a non-finite result', () => {
    expect(ev('a * b', { a: 1 })).toBeUndefined();
    expect(ev('a / b', { a: 1, b: 0 })).toBeUndefined();
  });

  it('lists the sensors read', () => {
    expect(references(parseExpression('b * a + (a - c)'))).toEqual(['a', 'b', 'c']);
  });

  it.each([
    ['', 'empty expression'],
    ['1 +', 'unexpected end'],
    ['(1 + 2', 'expected ")"'],
    ['1 2', 'unexpected "2"'],
    ['a; drop table', 'unexpected character'],
    ['process.exit()', 'at position 7'],
    ['a ** b', 'unexpected "*"'],
    ['-'.repeat(100) + '1', 'nested deeper'],
  ])('rejects %j with a positioned error', (src, message) => {
    expect(() => parseExpression(src)).toThrow(ExpressionError);
    expect(() => parseExpression(src)).toThrow(message);
  });

  it('parses AGGREGATOR_DERIVED and names the variable on errors', () => {
    const d = parseDerived('power = voltage * current; engine_temp_f = engine_temp * 1.8 + 32');
    expect(d.map((x) => [x.name, x.inputs])).toEqual([
      ['power', ['current', 'voltage']],
      ['engine_temp_f', ['engine_temp']],
    ]);
    expect(parseDerived('')).toEqual([]);
    expect(() => parseDerived('power voltage')).toThrow('AGGREGATOR_DERIVED');
    expect(() => parseDerived('x = 1 + 2')).toThrow('must read at least one sensor');
    expect(() => parseDerived('x = x + 1')).toThrow('must not read itself');
    expect(() => parseDerived('x = a; y = x * 2')).toThrow('reads derived series x');
    expect(() => parseDerived('x = a +')).toThrow(/AGGREGATOR_DERIVED: x: unexpected end/);
  });
});
