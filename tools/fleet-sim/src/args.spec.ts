import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { DEFAULT_FLEET } from './fleet';
import { parseArgs, UsageError } from './args';

describe('parseArgs', () => {
  it('reads flags in both --k v and --k=v form', () => {
    const o = parseArgs(
      [
        '--devices',
        '3',
        '--transport=http',
        '--malformed',
        '0.1',
        '--seconds',
        '2',
        '--regions',
        'a, b,',
      ],
      {},
    );
    expect(o).toMatchObject({
      transport: 'http',
      target: 'http://127.0.0.1:8080',
      seconds: 2,
      fleet: { devices: 3, malformedFraction: 0.1, regions: ['a', 'b'] },
    });
  });

  it('uses the defaults and takes the token from the environment when --token is absent', () => {
    const o = parseArgs([], { FLEET_SIM_TOKEN: 'from-env' });
    expect(o).toMatchObject({
      transport: 'grpc',
      target: '127.0.0.1:50051',
      token: 'from-env',
      connections: 4,
      maxInFlight: 16,
      seconds: undefined,
    });
    expect(o.fleet.devices).toBe(DEFAULT_FLEET.devices);
    expect(parseArgs(['--token', 'T'], { FLEET_SIM_TOKEN: 'from-env' }).token).toBe('T');
  });

  it('takes --ca as the CA file for TLS; over HTTP the default target becomes https', () => {
    expect(parseArgs(['--ca', 'tmp/dev-tls/ca.crt'], {})).toMatchObject({
      transport: 'grpc',
      target: '127.0.0.1:50051',
      caFile: 'tmp/dev-tls/ca.crt',
    });
    expect(parseArgs(['--transport', 'http', '--ca', 'ca.pem'], {})).toMatchObject({
      target: 'https://127.0.0.1:8080',
      caFile: 'ca.pem',
    });
    expect(parseArgs([], {}).caFile).toBeUndefined();
  });

  it.each([
    [['--devise', '3'], /Unknown option '--devise'/],
    [['--devices'], /--devices/],
    [['extra'], /Unexpected argument 'extra'|positional/i],
    [['--malformed', '2'], /--malformed must be a number in \[0, 1\], got "2"/],
    [['--devices', ''], /--devices must be a number/],
    [['--transport', 'mqtt'], /--transport must be grpc or http/],
    [['--ca', ''], /--ca needs the path of a PEM file/],
    [
      ['--transport', 'http', '--target', 'http://127.0.0.1:8080', '--ca', 'ca.pem'],
      /--ca needs an https:\/\/ --target over HTTP/,
    ],
  ])('refuses %j with a UsageError naming the problem', (argv, message) => {
    let caught: unknown;
    try {
      parseArgs(argv, {});
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(UsageError);
    expect((caught as UsageError).help).toBe(false);
    expect((caught as UsageError).message).toMatch(message);
  });

  it('answers --help with the usage, flagged as help', () => {
    expect(() => parseArgs(['--help'], {})).toThrow(
      expect.objectContaining({ help: true, message: expect.stringMatching(/^usage: fleet-sim/) }),
    );
  });

  it('makes the command exit 2 with the usage on an unknown flag', () => {
    const tsx = join(__dirname, '..', '..', '..', 'node_modules', '.bin', 'tsx');
    const r = spawnSync(tsx, [join(__dirname, 'main.ts'), '--no-such-flag'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/Unknown option '--no-such-flag'/);
    expect(r.stderr).toMatch(/usage: fleet-sim/);
    expect(r.stdout).toBe('');
  });
});
