import { rng } from '@sluice/testing';
// The simulated fleet: devices with sensors (1 Hz … 1 kHz) and cameras, producing batches with a
// configurable mix of schema versions, duplicates, out-of-order and malformed events.
import type { Event, EventBatch } from '@sluice/contracts';

/** Options of {@link Fleet}. */
export interface FleetOptions {
  /** Number of devices. @default 10 */
  devices: number;
  /** Sensors per device. @default 4 */
  sensorsPerDevice: number;
  /** Lowest sensor rate, Hz. @default 1 */
  minHz: number;
  /** Highest sensor rate, Hz (rates are spread log-uniformly between min and max). @default 1000 */
  maxHz: number;
  /** Fraction of devices with a camera producing detection events. @default 0.2 */
  cameraFraction: number;
  /** Camera frame rate, Hz. @default 5 */
  cameraHz: number;
  /** Fraction of devices speaking schema version 2 (the rest version 1). @default 0.5 */
  v2Fraction: number;
  /** Fraction of batches sent a second time later (same batch id). @default 0 */
  duplicateFraction: number;
  /** Fraction of batches held back and sent after the next one (older event times later). @default 0 */
  outOfOrderFraction: number;
  /** Fraction of events made invalid (NaN value, bad id, time far in the future). @default 0 */
  malformedFraction: number;
  /** Regions, assigned to devices round-robin. @default ['eu-west'] */
  regions: string[];
  /** Most events per batch. @default 500 */
  batchSize: number;
  /** A device flushes a partial batch after this long, ms. @default 100 */
  flushMs: number;
  /** Device id prefix. @default 'sim' */
  devicePrefix: string;
  /** Seed of the pseudo-random choices. @default 1 */
  seed: number;
  /**
   * Rate of each device's GPS fix, Hz: sensors `lat` and `lon` (degrees) along {@link gpsTrack}. 0
   * sends none (the library default, so event counts of benches and tests stay as they were; the
   * fleet-sim command line defaults to 1). @default 0
   */
  gpsHz: number;
}

export const DEFAULT_FLEET: Readonly<FleetOptions> = Object.freeze({
  devices: 10,
  sensorsPerDevice: 4,
  minHz: 1,
  maxHz: 1000,
  cameraFraction: 0.2,
  cameraHz: 5,
  v2Fraction: 0.5,
  duplicateFraction: 0,
  outOfOrderFraction: 0,
  malformedFraction: 0,
  regions: ['eu-west'],
  batchSize: 500,
  flushMs: 100,
  devicePrefix: 'sim',
  seed: 1,
  gpsHz: 0,
});

/** A point on the globe, degrees. */
export interface GeoPoint {
  lat: number;
  lon: number;
}

/** Home harbours per region (just off the harbour mouth, at sea); other regions use eu-west's. */
export const HARBOURS: Readonly<Record<string, readonly GeoPoint[]>> = Object.freeze({
  'eu-west': [
    { lat: 48.3, lon: -4.75 }, // Brest, Iroise Sea
    { lat: 46.05, lon: -1.45 }, // La Rochelle, Pertuis d'Antioche
    { lat: 43.45, lon: -3.1 }, // Bilbao, Bay of Biscay
    { lat: 57.15, lon: -1.95 }, // Aberdeen, North Sea
    { lat: 51.98, lon: 3.95 }, // Rotterdam approaches, North Sea
    { lat: 55.4, lon: 8.1 }, // Esbjerg, North Sea
  ],
  'us-east': [
    { lat: 42.35, lon: -70.8 }, // Boston, Massachusetts Bay
    { lat: 40.42, lon: -73.75 }, // New York approaches
    { lat: 36.95, lon: -75.9 }, // Chesapeake Bay mouth
    { lat: 32.68, lon: -79.75 }, // Charleston
    { lat: 43.6, lon: -70.1 }, // Portland, Casco Bay
  ],
});

/** FNV-1a of a string: the per-device seed of its track (independent of the fleet's seed). */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** A device's GPS track: a slow loop around its home harbour. */
export interface GpsTrack {
  home: GeoPoint;
  /** Loop radius, degrees of latitude (0.01 … 0.05, about 1 … 5.5 km). */
  radius: number;
  /** Time of one loop, ms (1 … 3 hours: at most about 18 km/h). */
  periodMs: number;
  phase: number;
}

/** The track of `deviceId` in `region`: the same for the same id and region, whatever the fleet. */
export function gpsTrack(deviceId: string, region: string): GpsTrack {
  const r = rng(hash32(`${region}/${deviceId}`) || 1);
  const harbours = HARBOURS[region] ?? HARBOURS['eu-west']!;
  return {
    home: harbours[Math.floor(r() * harbours.length)]!,
    radius: 0.01 + 0.04 * r(),
    periodMs: 3_600_000 * (1 + 2 * r()),
    phase: 2 * Math.PI * r(),
  };
}

/**
 * Where a device on `track` is at `t` (epoch ms): an ellipse around the home harbour (longitude
 * stretched by 1/cos(lat) so the loop is round on the ground) with a slower wobble of its radius.
 */
export function gpsPosition(track: GpsTrack, t: number): GeoPoint {
  const a = (2 * Math.PI * t) / track.periodMs + track.phase;
  const rad = track.radius * (0.8 + 0.2 * Math.sin(a / 3.7));
  const cos = Math.cos((track.home.lat * Math.PI) / 180);
  const round6 = (v: number) => Math.round(v * 1e6) / 1e6;
  return {
    lat: round6(track.home.lat + rad * Math.sin(a)),
    lon: round6(track.home.lon + (rad * Math.cos(a)) / cos),
  };
}

/** A batch ready to send, with what the device knows about it. */
export interface SimBatch {
  batch: EventBatch;
  deviceId: string;
  schemaVersion: 1 | 2;
  /** Events the simulator made invalid on purpose. */
  malformed: number;
  duplicate: boolean;
}

interface Sensor {
  type: string;
  unit: string;
  hz: number;
  due: number;
}

interface Device {
  id: string;
  region: string;
  schemaVersion: 1 | 2;
  sensors: Sensor[];
  camera?: { hz: number; due: number };
  gps?: { hz: number; due: number; track: GpsTrack };
  pending: Event[];
  firstPendingAt: number;
  seq: number;
  heldBack?: SimBatch;
}

const SENSORS = [
  ['engine_temp', 'celsius'],
  ['rpm', '1'],
  ['vibration', 'g'],
  ['fuel_level', 'percent'],
  ['battery_voltage', 'volt'],
  ['speed', 'knots'],
] as const;
const LABELS = ['person', 'boat', 'buoy', 'bird'];

/** Where the fleet's events go besides the batches `tick` returns. */
export interface FleetHooks {
  /**
   * Receives each camera frame as it is captured (made invalid on purpose at `malformedFraction`)
   * instead of batching it with the device's readings: the simulated camera pipelines hand their
   * frames to the device SDK this way. Default none (frames are batched like readings).
   */
  onFrame?: (event: Event, deviceId: string, malformed: boolean) => void;
}

/** Generates the fleet's events as simulated time advances. */
export class Fleet {
  readonly opts: FleetOptions;
  private readonly devices: Device[] = [];
  private readonly random: () => number;
  private readonly sent: SimBatch[] = [];
  private readonly runId: string;
  private readonly hooks: FleetHooks;

  constructor(
    options: Partial<FleetOptions> = {},
    runId = Date.now().toString(36),
    hooks: FleetHooks = {},
  ) {
    this.hooks = hooks;
    this.opts = { ...DEFAULT_FLEET, ...options };
    this.random = rng(this.opts.seed);
    this.runId = runId;
    const o = this.opts;
    for (let d = 0; d < o.devices; d++) {
      const sensors: Sensor[] = [];
      for (let s = 0; s < o.sensorsPerDevice; s++) {
        const [type, unit] = SENSORS[s % SENSORS.length]!;
        const hz = o.minHz * (o.maxHz / o.minHz) ** this.random();
        sensors.push({ type: s < SENSORS.length ? type : `${type}_${s}`, unit, hz, due: 0 });
      }
      const id = `${o.devicePrefix}-${d}`;
      const region = o.regions[d % o.regions.length]!;
      this.devices.push({
        id,
        region,
        schemaVersion: this.random() < o.v2Fraction ? 2 : 1,
        sensors,
        ...(this.random() < o.cameraFraction ? { camera: { hz: o.cameraHz, due: 0 } } : {}),
        ...(o.gpsHz > 0 ? { gps: { hz: o.gpsHz, due: 0, track: gpsTrack(id, region) } } : {}),
        pending: [],
        firstPendingAt: 0,
        seq: 0,
      });
    }
  }

  /** Events per second the fleet produces. */
  get eventsPerSecond(): number {
    let total = 0;
    for (const d of this.devices) {
      for (const s of d.sensors) total += s.hz;
      if (d.camera) total += d.camera.hz;
      if (d.gps) total += 2 * d.gps.hz;
    }
    return total;
  }

  /** Devices with a camera. */
  get cameraCount(): number {
    return this.devices.filter((d) => d.camera).length;
  }

  get deviceIds(): string[] {
    return this.devices.map((d) => d.id);
  }

  /** Advances every device to `now` (epoch ms) and returns the batches that are ready. */
  tick(now: number): SimBatch[] {
    const out: SimBatch[] = [];
    const o = this.opts;
    for (const d of this.devices) {
      for (const s of d.sensors) {
        if (s.due === 0) s.due = now;
        const step = 1000 / s.hz;
        for (let n = 0; s.due <= now && n < 10_000; n++, s.due += step)
          this.add(d, this.reading(d, s, s.due), now, out);
      }
      if (d.gps) {
        if (d.gps.due === 0) d.gps.due = now;
        const step = 1000 / d.gps.hz;
        for (let n = 0; d.gps.due <= now && n < 10_000; n++, d.gps.due += step) {
          const t = d.gps.due;
          const p = gpsPosition(d.gps.track, t);
          this.add(d, this.fix(d, 'lat', p.lat, t), now, out);
          this.add(d, this.fix(d, 'lon', p.lon, t), now, out);
        }
      }
      if (d.camera) {
        if (d.camera.due === 0) d.camera.due = now;
        const step = 1000 / d.camera.hz;
        const onFrame = this.hooks.onFrame;
        for (let n = 0; d.camera.due <= now && n < 1_000; n++, d.camera.due += step) {
          const frame = this.frame(d, d.camera.due);
          if (!onFrame) {
            this.add(d, frame, now, out);
            continue;
          }
          const malformed =
            this.opts.malformedFraction > 0 && this.random() < this.opts.malformedFraction;
          onFrame(malformed ? this.corrupt(frame) : frame, d.id, malformed);
        }
      }
      if (d.pending.length > 0 && now - d.firstPendingAt >= o.flushMs) this.flush(d, out);
    }
    if (o.duplicateFraction > 0 && this.sent.length > 0) {
      const dups = Math.round(
        out.length * o.duplicateFraction +
          (this.random() < (out.length * o.duplicateFraction) % 1 ? 1 : 0),
      );
      for (let i = 0; i < dups; i++)
        out.push({ ...this.sent[Math.floor(this.random() * this.sent.length)]!, duplicate: true });
    }
    for (const b of out) {
      if (!b.duplicate) {
        this.sent.push(b);
        if (this.sent.length > 256) this.sent.shift();
      }
    }
    return out;
  }

  /** Every device's pending events as batches (end of run). */
  flushAll(): SimBatch[] {
    const out: SimBatch[] = [];
    for (const d of this.devices) {
      if (d.pending.length > 0) this.flush(d, out);
      if (d.heldBack) {
        out.push(d.heldBack);
        delete d.heldBack;
      }
    }
    return out;
  }

  private add(d: Device, e: Event, now: number, out: SimBatch[]): void {
    if (d.pending.length === 0) d.firstPendingAt = now;
    d.pending.push(e);
    if (d.pending.length >= this.opts.batchSize) this.flush(d, out);
  }

  private flush(d: Device, out: SimBatch[]): void {
    let malformed = 0;
    const events = d.pending;
    d.pending = [];
    if (this.opts.malformedFraction > 0) {
      for (let i = 0; i < events.length; i++) {
        if (this.random() < this.opts.malformedFraction) {
          events[i] = this.corrupt(events[i]!);
          malformed++;
        }
      }
    }
    const b: SimBatch = {
      batch: { batchId: `${d.id}-${this.runId}-${d.seq++}`, events },
      deviceId: d.id,
      schemaVersion: d.schemaVersion,
      malformed,
      duplicate: false,
    };
    if (d.heldBack) {
      out.push(b, d.heldBack);
      delete d.heldBack;
    } else if (this.opts.outOfOrderFraction > 0 && this.random() < this.opts.outOfOrderFraction) {
      d.heldBack = b;
    } else {
      out.push(b);
    }
  }

  private reading(d: Device, s: Sensor, t: number): Event {
    return {
      kind: {
        $case: 'telemetry',
        value: {
          eventId: `${d.id}:${s.type}:${Math.round(t * 1000)}`,
          deviceId: d.id,
          eventTime: new Date(t),
          sensorType: s.type,
          value: Math.round((50 + 30 * Math.sin(t / 10_000) + this.random() * 5) * 100) / 100,
          unit: s.unit,
          firmwareVersion: '4.2.1',
          region: d.region,
          schemaVersion: d.schemaVersion,
          attributes: {},
        },
      },
    };
  }

  private fix(d: Device, sensorType: 'lat' | 'lon', value: number, t: number): Event {
    return {
      kind: {
        $case: 'telemetry',
        value: {
          eventId: `${d.id}:${sensorType}:${Math.round(t * 1000)}`,
          deviceId: d.id,
          eventTime: new Date(t),
          sensorType,
          value,
          unit: 'degrees',
          firmwareVersion: '4.2.1',
          region: d.region,
          schemaVersion: d.schemaVersion,
          attributes: {},
        },
      },
    };
  }

  private frame(d: Device, t: number): Event {
    const n = Math.floor(this.random() * 3);
    return {
      kind: {
        $case: 'detection',
        value: {
          eventId: `${d.id}:cam-1:${Math.round(t * 1000)}`,
          deviceId: d.id,
          streamId: 'cam-1',
          frameTime: new Date(t),
          region: d.region,
          schemaVersion: 2,
          detections: Array.from({ length: n }, (_, i) => ({
            objectId: String(i),
            classId: i,
            label: LABELS[i % LABELS.length]!,
            confidence: 0.5 + this.random() / 2,
            trackerId: String(1000 + i),
            bbox: { left: 0.1 * i, top: 0.2, width: 0.1, height: 0.3 },
          })),
          attributes: { model: 'yolo11n' },
          firmwareVersion: '4.2.1',
        },
      },
    };
  }

  private corrupt(e: Event): Event {
    const pick = Math.floor(this.random() * 3);
    const kind = e.kind!;
    if (kind.$case === 'telemetry') {
      const v = { ...kind.value };
      if (pick === 0) v.value = Number.NaN;
      else if (pick === 1) v.eventId = `bad id ${v.eventId}`;
      else v.eventTime = new Date(Date.now() + 48 * 3_600_000);
      return { kind: { $case: 'telemetry', value: v } };
    }
    const v = { ...kind.value };
    // Not an empty id: the device SDK fills those in, which would make the frame valid.
    if (pick === 0) v.eventId = `bad id ${v.eventId}`;
    else v.frameTime = new Date(Date.now() + 48 * 3_600_000);
    return { kind: { $case: 'detection', value: v } };
  }
}

export { rng };
