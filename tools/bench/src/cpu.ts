import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Processes whose CPU a benchmark attributes: `self` (or the service's pid) and local servers by name. */
export interface CpuGroups {
  /** Process id of the service under test. */
  service: number;
  /** Server process names (`comm`), e.g. `postgres`, `nats-server`, `redis-server`. */
  servers: readonly string[];
}

/** CPU seconds so far, per group. */
export type CpuSnapshot = Record<string, number>;

let ticks: number | undefined;
function clockTicks(): number {
  ticks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return ticks;
}

/** utime + stime of one process (all its threads), or undefined when it is gone. */
function processCpu(pid: string): { comm: string; seconds: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    // Fields after "(comm)": state is index 0, utime 11, stime 12 (proc(5) fields 14 and 15).
    return {
      comm: stat.slice(stat.indexOf('(') + 1, close),
      seconds: (Number(fields[11]) + Number(fields[12])) / clockTicks(),
    };
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds consumed so far by the service and by every process of each named server (PostgreSQL
 * runs one process per connection). Linux only; a process that exits between two snapshots takes
 * its CPU with it, so snapshot around phases in which the servers' connections stay open.
 */
export function cpuSnapshot(groups: CpuGroups): CpuSnapshot {
  const out: CpuSnapshot = { service: processCpu(String(groups.service))?.seconds ?? 0 };
  for (const name of groups.servers) out[name] = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const p = processCpu(pid);
    if (p && p.comm in out && p.comm !== 'service') out[p.comm]! += p.seconds;
  }
  return out;
}

/** CPU milliseconds per 1,000 events between two snapshots, per group, plus the total. */
export function cpuPerThousand(
  before: CpuSnapshot,
  after: CpuSnapshot,
  events: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  let total = 0;
  for (const key of Object.keys(after)) {
    const ms = ((after[key]! - (before[key] ?? 0)) * 1000 * 1000) / Math.max(1, events);
    out[key] = Math.round(ms * 100) / 100;
    total += ms;
  }
  out['total'] = Math.round(total * 100) / 100;
  return out;
}
