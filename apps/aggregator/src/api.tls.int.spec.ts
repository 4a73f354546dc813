// The query API over HTTPS, configured as a deployer would (AGGREGATOR_API_TLS_*), with real HTTPS
// requests: one API with TLS, one that also requires client certificates.
import { listenerTls } from '@sluice/config';
import { generateToken } from '@sluice/http';
import {
  createTestCa,
  httpsRequest,
  type ClientPem,
  type TestCa,
  type TestCertificate,
} from '@sluice/testing';
import { Registry } from 'prom-client';
import type { Aggregator } from './aggregator';
import { apiTokens, startApi, type ApiServer } from './api';
import { harness, logger, type Harness } from './test-fixtures/harness';

describe('query API over TLS', () => {
  let h: Harness;
  let agg: Aggregator;
  let ca: TestCa;
  let otherCa: TestCa;
  let server: TestCertificate;
  let client: TestCertificate;
  let stranger: TestCertificate;
  const apis: ApiServer[] = [];
  const token = generateToken();

  beforeAll(async () => {
    [ca, otherCa] = await Promise.all([createTestCa('sluice-test-ca'), createTestCa('other-ca')]);
    server = await ca.server();
    client = await ca.client('dashboard');
    stranger = await otherCa.client('dashboard');
    h = await harness();
    agg = await h.start();
  });
  afterAll(async () => {
    for (const api of apis) await api.close();
    await h?.cleanup();
    ca?.remove();
    otherCa?.remove();
  });

  /** The query API as the service starts it, from the config with `env`. */
  async function start(env: Record<string, string>): Promise<ApiServer> {
    const config = h.config({ AGGREGATOR_API_TOKENS: `${token.sha256}=*`, ...env });
    const api = await startApi({
      port: 0,
      queries: agg.queries,
      resolutions: agg.resolutions,
      defaultPoints: 300,
      maxRangePoints: 10_000,
      maxPage: 500,
      tokens: apiTokens(config, logger),
      log: logger,
      registry: new Registry(),
      tls: listenerTls(config, 'AGGREGATOR_API'),
    });
    apis.push(api);
    return api;
  }
  const latest = (api: ApiServer, pem: ClientPem) =>
    httpsRequest(`https://127.0.0.1:${api.port}/v1/devices/dev-tls/latest`, pem, {
      headers: { authorization: `Bearer ${token.token}` },
    });

  it('answers over HTTPS a client trusting the CA; another CA fails the handshake', async () => {
    const api = await start({
      AGGREGATOR_API_TLS_CERT: server.certFile,
      AGGREGATOR_API_TLS_KEY: server.keyFile,
    });
    // A query that reached PostgreSQL: the device has no data yet.
    const ok = await latest(api, { ca: ca.cert });
    expect(ok.status).toBe(404);
    expect(JSON.parse(ok.body!)).toMatchObject({ detail: 'no data for this device' });
    expect((await latest(api, { ca: otherCa.cert })).error?.code).toBe(
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    );
  });

  it('with AGGREGATOR_API_TLS_CA, only clients with a certificate it signed get an answer', async () => {
    const api = await start({
      AGGREGATOR_API_TLS_CERT: server.certFile,
      AGGREGATOR_API_TLS_KEY: server.keyFile,
      AGGREGATOR_API_TLS_CA: ca.certFile,
    });
    expect((await latest(api, { ca: ca.cert, cert: client.cert, key: client.key })).status).toBe(
      404,
    );
    for (const pem of [{ ca: ca.cert }, { ca: ca.cert, cert: stranger.cert, key: stranger.key }]) {
      const refused = await latest(api, pem);
      expect(refused.status).toBeUndefined();
      expect(refused.error).toBeDefined();
    }
  });

  it('a key without its certificate is a ConfigError naming the variable', () => {
    expect(() =>
      listenerTls(h.config({ AGGREGATOR_API_TLS_KEY: server.keyFile }), 'AGGREGATOR_API'),
    ).toThrow(/AGGREGATOR_API_TLS_CERT: is required with AGGREGATOR_API_TLS_KEY/);
  });
});
