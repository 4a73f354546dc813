import Redis from 'ioredis';
import { privateRedis, tcpProxy } from './servers';

describe('test servers', () => {
  it('a private redis can go down and come back, and a proxy can cut it off', async () => {
    const server = await privateRedis();
    const proxy = await tcpProxy(server.port);
    const client = new Redis({
      port: proxy.port,
      host: '127.0.0.1',
      maxRetriesPerRequest: 0,
      retryStrategy: () => 50,
      lazyConnect: true,
    });
    try {
      await client.connect();
      expect(await client.set('k', 'v')).toBe('OK');
      proxy.cut();
      await expect(client.get('k')).rejects.toThrow();
      proxy.restore();
      await new Promise((r) => setTimeout(r, 200));
      expect(await client.get('k')).toBe('v');
      await server.stop();
      await expect(client.get('k')).rejects.toThrow();
      await server.start();
      await new Promise((r) => setTimeout(r, 200));
      expect(await client.get('k')).toBeNull();
    } finally {
      client.disconnect();
      await proxy.close();
      await server.destroy();
    }
  });
});
