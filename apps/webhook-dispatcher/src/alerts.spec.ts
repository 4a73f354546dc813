import type { Alert } from '@sluice/contracts';
import { filterSchema, matchesAlert, type AlertFilter } from './filters';
import { newDelivery } from './matcher';
import { alertBody } from './payloads';

const alert: Alert = {
  v: 1,
  id: 'alert_abc',
  kind: 'anomaly',
  region: 'eu-west',
  deviceId: 'boat-1',
  sensorType: 'temp',
  rule: 'anomaly:1m',
  episodeStart: '2026-11-30T03:00:00.000Z',
  raisedAt: '2026-11-30T03:01:00.500Z',
  details: { value: 45, baseline_mean: 20, baseline_std: 0.5, score: 50 },
};

const filter = (f: Record<string, unknown>) =>
  filterSchema.parse({ type: 'alert', ...f }) as AlertFilter;

describe('alert subscriptions', () => {
  it('match by kind, device, sensor and region; every list given must hold', () => {
    expect(matchesAlert(filter({}), alert)).toBe(true);
    expect(matchesAlert(filter({ kinds: ['anomaly'] }), alert)).toBe(true);
    expect(matchesAlert(filter({ kinds: ['silence', 'recovery'] }), alert)).toBe(false);
    expect(matchesAlert(filter({ deviceIds: ['boat-2'] }), alert)).toBe(false);
    expect(matchesAlert(filter({ sensorTypes: ['temp'], regions: ['eu-west'] }), alert)).toBe(true);
    expect(matchesAlert(filter({ sensorTypes: [''] }), alert)).toBe(false);
    expect(matchesAlert(filter({ sensorTypes: [''] }), { ...alert, sensorType: '' })).toBe(true);
  });

  it('rejects unknown kinds and fields', () => {
    expect(filterSchema.safeParse({ type: 'alert', kinds: ['fire'] }).success).toBe(false);
    expect(filterSchema.safeParse({ type: 'alert', value: { gt: 1 } }).success).toBe(false);
  });

  it('the body carries the alert and its details; the webhook-id follows the alert id only', () => {
    const body = alertBody('sub-1', alert);
    expect(body.type).toBe('alert.anomaly.v1');
    expect(body.timestamp).toBe(alert.raisedAt);
    expect(body.data['alert']).toMatchObject({
      id: 'alert_abc',
      device_id: 'boat-1',
      sensor_type: 'temp',
      value: 45,
      baseline_mean: 20,
      score: 50,
    });
    const sub = '00000000-0000-4000-8000-000000000001';
    const a = newDelivery(sub, alert.id, alertBody(sub, alert));
    const again = newDelivery(sub, alert.id, alertBody(sub, { ...alert, raisedAt: 'x' }));
    expect(again.webhookId).toBe(a.webhookId);
    expect(newDelivery(sub, 'alert_other', body).webhookId).not.toBe(a.webhookId);
    expect(
      alertBody(sub, { ...alert, kind: 'silence', sensorType: '' }).data['alert'],
    ).toMatchObject({
      kind: 'silence',
      sensor_type: null,
    });
  });
});
