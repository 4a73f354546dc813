import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A listening HTTP server: its bound port (useful with port 0) and a close that drops keep-alives. */
export interface ListeningServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts `server` on `host:port` and resolves once it listens (rejects on EADDRINUSE and the like). */
export async function listenHttp(
  server: Server,
  port: number,
  host = '0.0.0.0',
): Promise<ListeningServer> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
