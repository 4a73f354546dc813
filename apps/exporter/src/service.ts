// Exporter: consumes clean telemetry and detections (`<ns>.telemetry.clean.>`) and exports them to the
// destinations of its destinations file (MQTT, RabbitMQ, PostgreSQL, MongoDB, files), each on a durable
// consumer of its own (`exporter-<name>`), with its own filters, batching, retries and buffer bound.
// Dead letters of every destination go to `dlq.exporter`. SIGHUP or a change of the file reloads it.
// Serves only the ops endpoints.
import type { Runtime, Service } from '@sluice/runtime';
import { interpolationEnv, loadDestinations, type Config } from './config';
import { Exporter } from './exporter';
import { ExporterMetrics } from './metrics';
import { Reloader } from './reload';

export const SERVICE = 'exporter';

export async function createService(rt: Runtime<Config>): Promise<Service> {
  const c = rt.config;
  const load = () => loadDestinations(c.EXPORTER_CONFIG, interpolationEnv());
  // A malformed file fails the start here, naming the file, the path inside it and the reason.
  const initial = await load();
  const metrics = new ExporterMetrics(rt.registry);
  metrics.lastReloadSuccessful.set(1);
  metrics.lastReloadTime.set(Date.now() / 1000);
  const exporter = new Exporter(
    {
      service: SERVICE,
      nc: rt.nc,
      topology: rt.topology,
      log: rt.log,
      registry: rt.registry,
      metrics,
      startTimeoutMs: c.EXPORTER_START_TIMEOUT,
      drainTimeoutMs: c.EXPORTER_DRAIN_TIMEOUT,
    },
    initial,
  );
  const reloader = new Reloader({
    file: c.EXPORTER_CONFIG,
    pollMs: c.EXPORTER_RELOAD_POLL,
    load,
    apply: (file) => exporter.apply(file),
    currentHash: () => exporter.current.hash,
    log: rt.log,
    metrics,
  });
  return {
    actors: [exporter],
    // Stopped before the destinations drain: no reload starts during shutdown.
    background: [
      {
        name: 'reload',
        start: () =>
          void reloader
            .start()
            .catch((err: unknown) => rt.log.error({ err }, 'reload watch failed')),
        stop: () => reloader.stop(),
      },
    ],
  };
}
