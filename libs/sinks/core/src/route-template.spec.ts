import { ConfigError } from '@sluice/errors';
import { toExportRecord } from './formats';
import { InvalidRouteError, parseRouteTemplate, type RouteSyntax } from './route-template';
import { detectionEvent, telemetryEvent } from './test-events';

const SLASH: RouteSyntax = {
  noun: 'topic',
  literal: /^[^+#]*$/,
  literalRule: 'no wildcards',
  unsafe: /[/+#]/g,
  maxBytes: 40,
};

describe('route templates', () => {
  it('renders one route per record, or one per distinct label/class of a frame', () => {
    const t = parseRouteTemplate('t/{region}/{sensor_type}', 'telemetry', 'S', SLASH);
    expect(t.render(toExportRecord(telemetryEvent('e1')))).toEqual(['t/eu-west/engine_temp']);
    const d = parseRouteTemplate('d/{stream_id}/{label}/{class_id}', 'detection', 'S', SLASH);
    const frame = detectionEvent('d1');
    if (frame.kind?.$case !== 'detection') throw new Error('detection expected');
    const [first] = frame.kind.value.detections;
    frame.kind.value.detections.push({ ...first!, label: 'car', classId: 3 }, { ...first! });
    expect(d.render(toExportRecord(frame))).toEqual(['d/cam-1/person/1', 'd/cam-1/car/3']);
    frame.kind.value.detections = [];
    expect(d.render(toExportRecord(frame))).toEqual(['d/cam-1/none/none']);
  });

  it('never lets data add a level or a wildcard, and refuses a route that is too long', () => {
    const t = parseRouteTemplate('t/{device_id}', 'telemetry', 'S', SLASH);
    const rec = (deviceId: string) => toExportRecord(telemetryEvent('e', { deviceId }));
    expect(t.render(rec('a/+/#'))).toEqual(['t/a____']);
    expect(t.render(rec(''))).toEqual(['t/_']);
    expect(() => t.render(rec('x'.repeat(60)))).toThrow(InvalidRouteError);
  });

  it('refuses unknown placeholders (per kind) and bad literals, naming the setting', () => {
    expect(() => parseRouteTemplate('t/{label}', 'telemetry', 'topics.telemetry', SLASH)).toThrow(
      /topics\.telemetry: unknown placeholder \{label\}/,
    );
    expect(() => parseRouteTemplate('t/+/{region}', 'telemetry', 'S', SLASH)).toThrow(ConfigError);
    expect(() => parseRouteTemplate('', 'telemetry', 'S', SLASH)).toThrow(/empty/);
  });
});
