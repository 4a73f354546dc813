/** A reading as roll-up checks see it: device, region, sensor, event time (ms) and value. */
export interface RollupReading {
  device: string;
  region: string;
  sensor: string;
  t: number;
  value: number;
}

/**
 * Readings grouped by the roll-up cells they fall into, for reference computations in tests: each
 * reading joins one device cell and one region cell per resolution, keyed
 * `<resolution>|device|<device>|<sensor>|<window start ms>` (and `|region|<region>|`), the key the
 * tests build from stored rows too.
 */
export function groupByRollupCell<R extends RollupReading>(
  readings: Iterable<R>,
  resolutionsMs: Readonly<Record<string, number>>,
): Map<string, R[]> {
  const groups = new Map<string, R[]>();
  for (const r of readings) {
    for (const [res, ms] of Object.entries(resolutionsMs)) {
      const ws = Math.floor(r.t / ms) * ms;
      for (const k of [
        `${res}|device|${r.device}|${r.sensor}|${ws}`,
        `${res}|region|${r.region}|${r.sensor}|${ws}`,
      ]) {
        const g = groups.get(k);
        if (g) g.push(r);
        else groups.set(k, [r]);
      }
    }
  }
  return groups;
}
