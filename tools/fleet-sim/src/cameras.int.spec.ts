import { natsFixture, type NatsFixture } from '@sluice/testing';
// eslint-disable-next-line @nx/enforce-module-boundaries -- the device SDK's test gateway (a child process of apps/ingestion)
import { gatewayChild, TEST_TOKEN, type GatewayChild } from '../../../libs/device-sdk/src/testing';
import { runFleet } from './run';

describe('fleet-sim cameras through the device SDK, against the real gateway', () => {
  let nats: NatsFixture;
  let g: GatewayChild;

  beforeAll(async () => {
    nats = await natsFixture();
    g = await gatewayChild(nats);
    await g.start();
  });
  afterAll(async () => {
    await g?.stop('SIGKILL');
    await nats.cleanup();
  });

  it('streams every camera frame to TELEMETRY_RAW beside the readings, safety frames counted', async () => {
    const summary = await runFleet({
      transport: 'grpc',
      target: g.target,
      token: TEST_TOKEN,
      seconds: 2,
      connections: 2,
      fleet: {
        devices: 4,
        sensorsPerDevice: 1,
        minHz: 5,
        maxHz: 5,
        cameraFraction: 1,
        cameraHz: 15,
        regions: ['eu-west'],
        flushMs: 50,
        seed: 7,
      },
    });
    expect(summary.cameras).toBe(4);
    expect(summary.camera_frames_emitted).toBeGreaterThan(0);
    expect(summary.camera_safety_frames).toBeGreaterThan(0);
    expect(summary.camera_safety_frames).toBeLessThan(summary.camera_frames_emitted!);
    expect(summary.camera_frames_acked).toBe(summary.camera_frames_emitted);
    expect(summary.camera_frames_dropped).toBe(0);
    expect(summary.events_accepted).toBe(summary.events_sent);
    const events = (await g.stored()).flatMap((b) => b.events);
    const detections = events.filter((e) => e.kind?.$case === 'detection');
    const readings = events.filter((e) => e.kind?.$case === 'telemetry');
    expect(detections).toHaveLength(summary.camera_frames_acked!);
    expect(readings).toHaveLength(summary.events_accepted);
    expect(new Set(detections.map((e) => e.kind!.value.eventId)).size).toBe(detections.length);
    expect(detections[0]!.kind!.value).toMatchObject({ streamId: 'cam-1', region: 'eu-west' });
  });

  it('counts the frames the gateway refuses, and delivers the rest', async () => {
    const summary = await runFleet({
      transport: 'grpc',
      target: g.target,
      token: TEST_TOKEN,
      seconds: 1.5,
      connections: 1,
      fleet: {
        devices: 2,
        sensorsPerDevice: 0,
        cameraFraction: 1,
        cameraHz: 20,
        malformedFraction: 0.25,
        regions: ['eu-west'],
        seed: 3,
      },
    });
    expect(summary.camera_frames_malformed).toBeGreaterThan(0);
    expect(summary.camera_frames_rejected).toBe(summary.camera_frames_malformed);
    expect(summary.camera_frames_acked).toBe(
      summary.camera_frames_emitted! - summary.camera_frames_malformed!,
    );
  });
});
