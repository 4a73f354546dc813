import { ConfigError } from '@sluice/errors';
import { z } from '@sluice/config';
import { parseSinkOptions } from './options';
import { RecentIds } from './recent-ids';

describe('RecentIds', () => {
  it('remembers at most capacity ids, forgetting the oldest first; re-adding refreshes', () => {
    const r = new RecentIds(3);
    ['a', 'b', 'c'].forEach((id) => r.add(id));
    r.add('a');
    r.add('d');
    expect(['a', 'b', 'c', 'd'].filter((id) => r.has(id))).toEqual(['a', 'c', 'd']);
    expect(r.size).toBe(3);
    const none = new RecentIds(0);
    none.add('x');
    expect(none.has('x')).toBe(false);
    expect(() => new RecentIds(-1)).toThrow(RangeError);
  });
});

describe('parseSinkOptions', () => {
  const schema = z.object({
    url: z.string().startsWith('amqp://', 'must start with amqp://'),
    limits: z.object({ n: z.number().int().positive('must be > 0').default(5) }).default({ n: 5 }),
  });

  it('applies defaults and names every bad option by its path', () => {
    expect(parseSinkOptions(schema, { url: 'amqp://h' })).toEqual({
      url: 'amqp://h',
      limits: { n: 5 },
    });
    const err = (() => {
      try {
        parseSinkOptions(schema, { url: 'http://h', limits: { n: 0 } }, 'destinations.1');
      } catch (e) {
        return e;
      }
    })() as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.issues).toEqual([
      { variable: 'destinations.1.url', reason: 'must start with amqp://' },
      { variable: 'destinations.1.limits.n', reason: 'must be > 0' },
    ]);
  });
});
