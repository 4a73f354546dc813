// A webhook receiver on loopback for the console's browser test: records every request with the
// answer it got; paths under `/fail` answer 500 while `failing` is true.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  path: string;
  webhookId: string;
  status: number;
}

export interface WebhookReceiver {
  url: string;
  received: Received[];
  failing: boolean;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const state: WebhookReceiver = {
    url: '',
    received: [],
    failing: true,
    close: async () => undefined,
  };
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const path = req.url ?? '';
      const status = path.startsWith('/fail') && state.failing ? 500 : 204;
      state.received.push({ path, webhookId: String(req.headers['webhook-id'] ?? ''), status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return state;
}
