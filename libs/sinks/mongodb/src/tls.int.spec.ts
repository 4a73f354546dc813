// The MongoDB sink over TLS, its URL as a deployer writes MONGO_URL (tls=true, tlsCAFile,
// tlsCertificateKeyFile), against a FerretDB started by this file that listens only with TLS and
// requires client certificates signed by the test CA.
import { ConfigError, loadConfig, mongoUrl, z } from '@sluice/config';
import { recordsOf, telemetryEvent } from '@sluice/sinks-core/testing';
import {
  createTestCa,
  privateTlsFerretDb,
  uniqueId,
  type TestCa,
  type TlsServer,
} from '@sluice/testing';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MongoClient } from 'mongodb';
import { MongoSink } from './sink';

const schema = z.object({ MONGO_URL: mongoUrl() });

describe('MongoSink over TLS', () => {
  let ca: TestCa;
  let otherCa: TestCa;
  let server: TlsServer;
  /** The client certificate and its key in one file, as tlsCertificateKeyFile wants them. */
  let clientPem: string;
  let strangerPem: string;
  const sinks: MongoSink[] = [];

  beforeAll(async () => {
    [ca, otherCa] = await Promise.all([createTestCa('sluice-test-ca'), createTestCa('other-ca')]);
    const [client, stranger] = [await ca.client('capture'), await otherCa.client('capture')];
    clientPem = join(ca.dir, 'capture-with-key.pem');
    writeFileSync(clientPem, client.cert + client.key);
    strangerPem = join(otherCa.dir, 'capture-with-key.pem');
    writeFileSync(strangerPem, stranger.cert + stranger.key);
    server = await privateTlsFerretDb({ server: await ca.server(), clientCaFile: ca.certFile });
  });
  afterEach(async () => {
    for (const s of sinks.splice(0)) await s.close(Date.now() + 2_000);
  });
  afterAll(async () => {
    await server?.stop();
    ca?.remove();
    otherCa?.remove();
  });

  /** MONGO_URL of the TLS server with `params`, through the config. */
  const url = (params: Record<string, string>) =>
    loadConfig(schema, {
      MONGO_URL: `mongodb://127.0.0.1:${server.port}/?directConnection=true&${new URLSearchParams(params)}`,
    }).MONGO_URL;
  const sink = (mongoUrl: string, database = uniqueId('tls').replace(/-/g, '_')) => {
    const s = new MongoSink({
      url: mongoUrl,
      urlSetting: 'MONGO_URL',
      database,
      writeConcernW: 1,
      serverSelectionTimeoutMs: 1_000,
    });
    sinks.push(s);
    return s;
  };

  it('writes over TLS with the CA and a client certificate', async () => {
    const mongo = url({ tls: 'true', tlsCAFile: ca.certFile, tlsCertificateKeyFile: clientPem });
    const database = uniqueId('tls').replace(/-/g, '_');
    const s = sink(mongo, database);
    const res = await s.write(recordsOf([telemetryEvent('tls-1', { region: 'eu-west' })]));
    expect(res.rejected).toEqual([]);
    const look = new MongoClient(mongo);
    try {
      const doc = await look.db(database).collection('telemetry_eu-west').findOne({});
      expect(doc?._id).toBe('tls-1');
      await look.db(database).dropDatabase();
    } finally {
      await look.close();
    }
  });

  it('refuses a server certificate the tlsCAFile did not sign, naming it', async () => {
    const s = sink(
      url({ tls: 'true', tlsCAFile: otherCa.certFile, tlsCertificateKeyFile: clientPem }),
    );
    const err = await s.connect().then(
      () => new Error('connected'),
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ name: 'TlsConnectError', kind: 'untrusted', retriable: true });
    expect((err as Error).message).toContain(
      `the certificate of MongoDB at 127.0.0.1:${server.port} is not signed by the CA in ${otherCa.certFile} (tlsCAFile in MONGO_URL)`,
    );
    expect(s.isRetriable(err)).toBe(true);
  });

  it('is refused by the server without a client certificate, or with one of another CA', async () => {
    const clientCerts: Array<Record<string, string>> = [{}, { tlsCertificateKeyFile: strangerPem }];
    for (const cert of clientCerts) {
      const params = { tls: 'true', tlsCAFile: ca.certFile, ...cert };
      const err = await sink(url(params))
        .connect()
        .then(
          () => new Error('connected'),
          (e: unknown) => e,
        );
      // TLS 1.3: the refusal is the server's alert (explained), or a reset crossing it.
      if ((err as Error).name === 'TlsConnectError')
        expect((err as Error).message).toMatch(
          /refused our client certificate .*; set tlsCertificateKeyFile in MONGO_URL/,
        );
      else expect((err as Error).name).toBe('MongoServerSelectionError');
    }
  });

  it('an unreadable file, or a file without tls=true, fails the config naming MONGO_URL', () => {
    expect(() => url({ tls: 'true', tlsCAFile: '/nonexistent/ca.pem' })).toThrow(ConfigError);
    expect(() => url({ tls: 'true', tlsCAFile: '/nonexistent/ca.pem' })).toThrow(
      /MONGO_URL: tlsCAFile: cannot read \/nonexistent\/ca.pem/,
    );
    expect(() => url({ tlsCAFile: ca.certFile })).toThrow(
      /MONGO_URL: tlsCAFile is set but TLS is off/,
    );
    expect(
      () =>
        new MongoSink({
          url: `mongodb://127.0.0.1:1/?tls=true&tlsCertificateKeyFile=${ca.certFile}`,
          urlSetting: 'MONGO_URL',
        }),
    ).toThrow(
      /MONGO_URL: tlsCertificateKeyFile: .* must hold the client certificate and its private key/,
    );
  });
});
