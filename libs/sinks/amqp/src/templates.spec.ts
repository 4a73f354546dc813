import { toExportRecord } from '@sluice/sinks-core';
import { telemetryEvent } from '@sluice/sinks-core/testing';
import { parseRoutingKeyTemplate } from './templates';

describe('routing-key templates', () => {
  it('keeps each value one word: dots, wildcards and spaces become _', () => {
    const t = parseRoutingKeyTemplate('telemetry.{region}.{device_id}', 'telemetry', 'S');
    const rec = toExportRecord(telemetryEvent('e', { deviceId: 'a.b *#\tc' }));
    expect(t.render(rec)).toEqual(['telemetry.eu-west.a_b____c']);
  });

  it('refuses a routing key over 255 bytes as a record problem', () => {
    const t = parseRoutingKeyTemplate('t.{device_id}', 'telemetry', 'S');
    expect(() =>
      t.render(toExportRecord(telemetryEvent('e', { deviceId: 'é'.repeat(130) }))),
    ).toThrow(/routing key of 262 bytes .* longer than 255/);
  });

  it('refuses wildcards in the template itself', () => {
    expect(() => parseRoutingKeyTemplate('t.*.{region}', 'telemetry', 'S')).toThrow(
      /may contain only/,
    );
  });
});
