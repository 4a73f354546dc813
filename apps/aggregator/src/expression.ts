// The derived-series expression language: numbers, sensor names, + - * /, unary minus and
// parentheses. Parsed once into an AST by recursive descent; evaluation walks the tree (no eval).
import { ExpressionError } from './errors';

export type Expr =
  | { readonly type: 'num'; readonly value: number }
  | { readonly type: 'ref'; readonly name: string }
  | { readonly type: 'neg'; readonly arg: Expr }
  | {
      readonly type: 'bin';
      readonly op: '+' | '-' | '*' | '/';
      readonly left: Expr;
      readonly right: Expr;
    };

type Token =
  | { kind: 'num'; value: number; pos: number }
  | { kind: 'name'; value: string; pos: number }
  | { kind: 'op'; value: string; pos: number };

const MAX_LENGTH = 1_000;
const MAX_DEPTH = 64;

function tokenize(src: string): Token[] {
  if (src.length > MAX_LENGTH)
    throw new ExpressionError(`expression longer than ${MAX_LENGTH} characters`, MAX_LENGTH);
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === ' ' || c === '\t') {
      i++;
    } else if ('+-*/()'.includes(c)) {
      out.push({ kind: 'op', value: c, pos: i++ });
    } else if (/[0-9.]/.test(c)) {
      const m = /^(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/.exec(src.slice(i));
      if (!m) throw new ExpressionError(`bad number`, i);
      const value = Number(m[0]);
      if (!Number.isFinite(value)) throw new ExpressionError(`number out of range`, i);
      out.push({ kind: 'num', value, pos: i });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i))!;
      out.push({ kind: 'name', value: m[0], pos: i });
      i += m[0].length;
    } else {
      throw new ExpressionError(`unexpected character ${JSON.stringify(c)}`, i);
    }
  }
  return out;
}

/** Parses `src` into an AST. Throws {@link ExpressionError} naming the position of the problem. */
export function parseExpression(src: string): Expr {
  const tokens = tokenize(src);
  let i = 0;
  const peek = () => tokens[i];
  const isOp = (t: Token | undefined, ...ops: string[]): t is Token & { kind: 'op' } =>
    t?.kind === 'op' && ops.includes(t.value);

  // expr := term (('+'|'-') term)* ; term := unary (('*'|'/') unary)* ; unary := '-' unary | atom
  const expr = (depth: number): Expr => {
    let left = term(depth);
    while (isOp(peek(), '+', '-')) {
      const op = tokens[i++]!.value as '+' | '-';
      left = { type: 'bin', op, left, right: term(depth) };
    }
    return left;
  };
  const term = (depth: number): Expr => {
    let left = unary(depth);
    while (isOp(peek(), '*', '/')) {
      const op = tokens[i++]!.value as '*' | '/';
      left = { type: 'bin', op, left, right: unary(depth) };
    }
    return left;
  };
  const unary = (depth: number): Expr => {
    if (depth > MAX_DEPTH)
      throw new ExpressionError(`nested deeper than ${MAX_DEPTH}`, peek()?.pos ?? src.length);
    if (isOp(peek(), '-')) {
      i++;
      return { type: 'neg', arg: unary(depth + 1) };
    }
    if (isOp(peek(), '+')) {
      i++;
      return unary(depth + 1);
    }
    return atom(depth);
  };
  const atom = (depth: number): Expr => {
    const t = tokens[i++];
    if (!t) throw new ExpressionError('unexpected end of expression', src.length);
    if (t.kind === 'num') return { type: 'num', value: t.value };
    if (t.kind === 'name') return { type: 'ref', name: t.value };
    if (t.value === '(') {
      const inner = expr(depth + 1);
      const close = tokens[i++];
      if (!isOp(close, ')')) throw new ExpressionError('expected ")"', close?.pos ?? src.length);
      return inner;
    }
    throw new ExpressionError(`unexpected "${t.value}"`, t.pos);
  };

  if (tokens.length === 0) throw new ExpressionError('empty expression', 0);
  const ast = expr(0);
  if (i < tokens.length)
    throw new ExpressionError(`unexpected "${String(tokens[i]!.value)}"`, tokens[i]!.pos);
  return ast;
}

/** Sensor names the expression reads, sorted and unique. */
export function references(e: Expr): string[] {
  const out = new Set<string>();
  const walk = (x: Expr): void => {
    if (x.type === 'ref') out.add(x.name);
    else if (x.type === 'neg') walk(x.arg);
    else if (x.type === 'bin') {
      walk(x.left);
      walk(x.right);
    }
  };
  walk(e);
  return [...out].sort();
}

/** Evaluates with the given input values; `undefined` when an input is missing or the result is not finite (e.g. ÷ 0). */
export function evaluate(e: Expr, inputs: ReadonlyMap<string, number>): number | undefined {
  const ev = (x: Expr): number => {
    switch (x.type) {
      case 'num':
        return x.value;
      case 'ref':
        return inputs.get(x.name) ?? Number.NaN;
      case 'neg':
        return -ev(x.arg);
      case 'bin': {
        const a = ev(x.left);
        const b = ev(x.right);
        return x.op === '+' ? a + b : x.op === '-' ? a - b : x.op === '*' ? a * b : a / b;
      }
    }
  };
  const v = ev(e);
  return Number.isFinite(v) ? v : undefined;
}
