import { parseBenchArgs, UsageError } from './main';
import type { BenchModule } from './result';

const mod: BenchModule = {
  default: () => Promise.reject(new Error('not run')),
  flags: { 'bulk-rate': 'offered rate' },
};

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (err) {
    if (err instanceof UsageError) return err;
    throw err;
  }
  throw new Error('no UsageError thrown');
}

describe('parseBenchArgs', () => {
  it('reads the common flags and the flags the bench declares', () => {
    expect(parseBenchArgs('x', mod, ['--seconds', '3', '--rate=50', '--bulk-rate', '7'])).toEqual({
      seconds: 3,
      rate: 50,
      flags: { 'bulk-rate': '7' },
    });
    expect(parseBenchArgs('x', mod, [])).toEqual({ seconds: 10, rate: undefined, flags: {} });
  });

  it('refuses a flag the bench does not declare, naming it, with the bench usage', () => {
    const err = usageError(() =>
      parseBenchArgs('x', { default: mod.default }, ['--bulk-rate', '7']),
    );
    expect(err.help).toBe(false);
    expect(err.message).toMatch(/Unknown option '--bulk-rate'/);
    expect(err.message).toMatch(/usage: npm run bench -- x/);
  });

  it('refuses a flag without its value, a positional argument and bad numbers', () => {
    expect(usageError(() => parseBenchArgs('x', mod, ['--seconds'])).message).toMatch(/--seconds/);
    expect(usageError(() => parseBenchArgs('x', mod, ['stray'])).message).toMatch(/stray/);
    expect(usageError(() => parseBenchArgs('x', mod, ['--rate', '-5'])).message).toMatch(/--rate/);
    expect(usageError(() => parseBenchArgs('x', mod, ['--seconds', 'ten'])).message).toMatch(
      /--seconds must be a positive number, got "ten"/,
    );
  });

  it('answers --help with the bench flags listed', () => {
    const err = usageError(() => parseBenchArgs('x', mod, ['--help']));
    expect(err.help).toBe(true);
    expect(err.message).toMatch(/--bulk-rate\s+offered rate/);
  });
});
