// An API of the kit served over HTTPS (and mTLS) with the certificates of a test CA, its TLS read
// from <PREFIX>_TLS_* variables as a service reads them, and real HTTPS requests.
import { ConfigError, listenerTls, loadConfig, pemFile, z } from '@sluice/config';
import {
  createTestCa,
  httpsRequest,
  type ClientPem,
  type TestCa,
  type TestCertificate,
} from '@sluice/testing';
import pino from 'pino';
import { Registry } from 'prom-client';
import { defineRoute, generateToken, startHttpApi, type HttpApi } from './index';

const schema = z.object({
  SPEC_API_TLS_CERT: pemFile(),
  SPEC_API_TLS_KEY: pemFile(),
  SPEC_API_TLS_CA: pemFile(),
});

/** GET `path` over HTTPS with `pem`, with a bearer token when given. */
const get = (port: number, path: string, pem: ClientPem, token?: string) =>
  httpsRequest(`https://127.0.0.1:${port}${path}`, pem, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });

describe('HTTP API over TLS', () => {
  let ca: TestCa;
  let otherCa: TestCa;
  let server: TestCertificate;
  let client: TestCertificate;
  let stranger: TestCertificate;
  const apis: HttpApi[] = [];
  const token = generateToken();

  beforeAll(async () => {
    [ca, otherCa] = await Promise.all([createTestCa('sluice-test-ca'), createTestCa('other-ca')]);
    server = await ca.server();
    client = await ca.client('operator');
    stranger = await otherCa.client('operator');
  });
  afterAll(async () => {
    for (const api of apis) await api.close();
    ca?.remove();
    otherCa?.remove();
  });

  async function start(env: Record<string, string>): Promise<HttpApi> {
    const api = await startHttpApi({
      service: 'spec-tls',
      title: 'TLS spec',
      version: '1.0.0',
      port: 0,
      routes: [
        defineRoute({
          method: 'GET',
          path: '/v1/ping',
          operationId: 'ping',
          summary: 'Ping',
          response: z.object({ pong: z.literal(true) }),
          handler: async () => ({ pong: true as const }),
        }),
      ],
      auth: { tokens: [{ name: 'ops', sha256: token.sha256, claims: '*' }] },
      tls: listenerTls(loadConfig(schema, env), 'SPEC_API'),
      log: pino({ level: 'silent' }),
      registry: new Registry(),
    });
    apis.push(api);
    return api;
  }

  it('serves HTTPS to a client trusting the CA; one trusting another CA fails the handshake', async () => {
    const api = await start({
      SPEC_API_TLS_CERT: server.certFile,
      SPEC_API_TLS_KEY: server.keyFile,
    });
    expect(await get(api.port, '/v1/ping', { ca: ca.cert }, token.token)).toEqual({
      status: 200,
      body: '{"pong":true}',
    });
    expect(await get(api.port, '/v1/ping', { ca: ca.cert })).toMatchObject({ status: 401 });
    const wrong = await get(api.port, '/v1/ping', { ca: otherCa.cert }, token.token);
    expect(wrong.error?.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('with a client CA, serves only clients presenting a certificate it signed', async () => {
    const api = await start({
      SPEC_API_TLS_CERT: server.certFile,
      SPEC_API_TLS_KEY: server.keyFile,
      SPEC_API_TLS_CA: ca.certFile,
    });
    const mine = { ca: ca.cert, cert: client.cert, key: client.key };
    expect(await get(api.port, '/v1/ping', mine, token.token)).toMatchObject({ status: 200 });
    // The bearer token is still required behind the certificate.
    expect(await get(api.port, '/v1/ping', mine)).toMatchObject({ status: 401 });
    for (const pem of [{ ca: ca.cert }, { ca: ca.cert, cert: stranger.cert, key: stranger.key }]) {
      const refused = await get(api.port, '/v1/ping', pem, token.token);
      expect(refused.status).toBeUndefined();
      expect(refused.error).toBeDefined();
    }
  });

  it('names the variable of a missing or unreadable file', () => {
    const tls = (env: Record<string, string>) => () =>
      listenerTls(loadConfig(schema, env), 'SPEC_API');
    expect(tls({ SPEC_API_TLS_CERT: server.certFile })).toThrow(
      /SPEC_API_TLS_KEY: is required with SPEC_API_TLS_CERT/,
    );
    expect(tls({ SPEC_API_TLS_CA: ca.certFile })).toThrow(
      /SPEC_API_TLS_CA: needs SPEC_API_TLS_CERT and SPEC_API_TLS_KEY/,
    );
    expect(tls({ SPEC_API_TLS_KEY: '/nonexistent/key.pem' })).toThrow(ConfigError);
    expect(tls({ SPEC_API_TLS_KEY: '/nonexistent/key.pem' })).toThrow(
      /SPEC_API_TLS_KEY: cannot read \/nonexistent\/key.pem/,
    );
  });
});
