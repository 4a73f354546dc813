// The web console: serves the built pages and a small API on CONSOLE_PORT, behind the query API's
// bearer tokens, and samples the pipeline (services' /metrics and /readyz, JetStream consumer info,
// the DLQ stream, roll-ups seen) every CONSOLE_INTERVAL for the pages' event stream.
import { createAdminClient } from '@sluice/admin-client';
import type { ListeningServer, Runtime, Service } from '@sluice/runtime';
import { parseTargets, type Config } from './config';
import { DetectionWatcher } from './detections';
import { PipelineSampler } from './pipeline';
import { findStaticDir, startConsoleServer } from './server';
import { StreamHub } from './stream';
import { consoleTokens } from './tokens';

export const SERVICE = 'console';

export function createService(rt: Runtime<Config>): Service {
  const c = rt.config;
  const tokens = consoleTokens(c, rt.log);
  const targets = parseTargets(c.CONSOLE_TARGETS);
  const hub = new StreamHub({
    maxBufferedBytes: c.CONSOLE_STREAM_BUFFER_BYTES,
    maxClients: c.CONSOLE_MAX_STREAMS,
    registry: rt.registry,
  });
  let latestFrame: string | undefined;
  const sampler = new PipelineSampler({
    nc: rt.nc,
    topology: rt.topology,
    targets,
    intervalMs: c.CONSOLE_INTERVAL,
    freshnessSloMs: c.CONSOLE_FRESHNESS_SLO,
    log: rt.log,
    onSample: (state) => (latestFrame = hub.send('pipeline', state)),
  });
  // 30 s: the admin API's own request deadline; a redrive of many dead deliveries takes a while.
  const admin = c.WEBHOOK_ADMIN_TOKEN
    ? createAdminClient({
        baseUrl: c.CONSOLE_ADMIN_URL,
        token: c.WEBHOOK_ADMIN_TOKEN,
        timeoutMs: 30_000,
      })
    : undefined;
  const detections = new DetectionWatcher({ nc: rt.nc, topology: rt.topology });
  const staticDir = findStaticDir(c.CONSOLE_STATIC_DIR);
  if (!staticDir)
    rt.log.warn(
      'the console pages are not built (npx nx run console:build): only the API is served',
    );
  let server: ListeningServer | undefined;
  return {
    servers: [
      {
        name: 'console',
        start: async () => {
          server = await startConsoleServer({
            host: c.CONSOLE_HOST,
            port: c.CONSOLE_PORT,
            tokens,
            staticDir,
            queryUrl: c.CONSOLE_QUERY_URL,
            admin,
            hub,
            detections,
            latestFrame: () => latestFrame,
            log: rt.log,
          });
          rt.log.info(
            { port: server.port, url: `http://${c.CONSOLE_HOST}:${server.port}/` },
            'console listening',
          );
        },
        stop: async () => {
          hub.close();
          detections.stop();
          await server?.close();
        },
        describe: () => ({ consolePort: server?.port }),
      },
    ],
    background: [
      { name: 'pipeline-sampler', start: () => sampler.start(), stop: () => sampler.stop() },
    ],
  };
}
