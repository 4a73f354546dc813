import { ConfigError, isRetriable, SluiceError } from './index';

class StoreDown extends SluiceError {
  readonly code = 'store_down';
  constructor() {
    super('store down', { retriable: true, httpStatus: 503 });
  }
}

describe('error taxonomy', () => {
  it('carries retriable and the HTTP status', () => {
    const e = new StoreDown();
    expect(e).toBeInstanceOf(Error);
    expect([e.retriable, e.httpStatus, e.code]).toEqual([true, 503, 'store_down']);
    expect(isRetriable(e)).toBe(true);
    expect(isRetriable(new Error('plain'))).toBe(false);
  });

  it('names every bad variable in one ConfigError', () => {
    const one = new ConfigError('NATS_URL', 'must be nats://host:port');
    expect(one.message).toBe('invalid configuration: NATS_URL: must be nats://host:port');
    expect([one.variable, one.retriable, one.code]).toEqual(['NATS_URL', false, 'config_invalid']);
    const many = ConfigError.of([
      { variable: 'A', reason: 'x' },
      { variable: 'B', reason: 'y' },
    ]);
    expect(many.issues.map((i) => i.variable)).toEqual(['A', 'B']);
    expect(many.message).toBe('invalid configuration: A: x; B: y');
  });
});
