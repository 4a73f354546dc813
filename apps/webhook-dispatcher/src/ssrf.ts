// SSRF policy: an endpoint may only resolve to public unicast addresses, unless an address falls in
// an operator allow-list. Checked when a subscription is saved and again at every send, against the
// address actually connected to (the resolved address is pinned, so DNS rebinding cannot swap it).
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { SsrfRefusedError } from './errors';

const DENIED_V4: Array<[string, number, string]> = [
  ['0.0.0.0', 8, 'unspecified/"this network"'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'carrier-grade NAT'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'IETF protocol assignments'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved/broadcast'],
];
const DENIED_V6: Array<[string, number, string]> = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['100::', 64, 'discard'],
  ['2001:db8::', 32, 'documentation'],
  ['fc00::', 7, 'unique local (private)'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'site-local'],
  ['ff00::', 8, 'multicast'],
];

/** The 8 hextets of an IPv6 address. */
function hextets(addr: string): number[] {
  let a = addr.toLowerCase();
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  // Trailing dotted IPv4 (e.g. ::ffff:1.2.3.4) becomes two hextets.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4) {
    const o = v4[1]!.split('.').map(Number);
    a =
      a.slice(0, -v4[1]!.length) +
      `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((x) => parseInt(x, 16));
}

/** The IPv4 address embedded in an IPv4-mapped, IPv4-compatible, NAT64 or 6to4 IPv6 address. */
export function embeddedIPv4(addr: string): string | undefined {
  const h = hextets(addr);
  if (h.length !== 8 || h.some((x) => Number.isNaN(x))) return undefined;
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  const zeros = (from: number, to: number) => h.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && h[5] === 0xffff) return v4(h[6]!, h[7]!); // ::ffff:a.b.c.d mapped
  if (zeros(0, 6) && (h[6] !== 0 || h[7]! > 1)) return v4(h[6]!, h[7]!); // ::a.b.c.d compatible (deprecated)
  if (h[0] === 0x64 && h[1] === 0xff9b && zeros(2, 6)) return v4(h[6]!, h[7]!); // 64:ff9b::/96 NAT64
  if (h[0] === 0x2002) return v4(h[1]!, h[2]!); // 6to4
  return undefined;
}

export class SsrfPolicy {
  private readonly denied: Array<{ list: BlockList; family: 4 | 6; reason: string }> = [];
  private readonly allowed = new BlockList();

  /** `allowCidrs`: e.g. `['127.0.0.0/8', 'fd00::/8']`; throws on a malformed entry. */
  constructor(allowCidrs: readonly string[] = []) {
    for (const [family, table] of [
      [4, DENIED_V4],
      [6, DENIED_V6],
    ] as const) {
      for (const [net, prefix, reason] of table) {
        const list = new BlockList();
        list.addSubnet(net, prefix, family === 4 ? 'ipv4' : 'ipv6');
        this.denied.push({ list, family, reason });
      }
    }
    for (const cidr of allowCidrs) {
      const m = /^([^/]+)\/(\d{1,3})$/.exec(cidr.trim());
      const family = m ? isIP(m[1]!) : 0;
      if (!m || family === 0 || Number(m[2]) > (family === 4 ? 32 : 128))
        throw new Error(`invalid CIDR "${cidr}" (expected e.g. 10.0.0.0/8 or fd00::/8)`);
      this.allowed.addSubnet(m[1]!, Number(m[2]), family === 4 ? 'ipv4' : 'ipv6');
    }
  }

  /** Why `address` (an IP literal) is refused, or `undefined` when it may be called. */
  refusal(address: string): string | undefined {
    const family = isIP(address);
    if (family === 0) return 'not an IP address';
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (this.allowed.check(address, type)) return undefined;
    if (family === 6) {
      const v4 = embeddedIPv4(address);
      if (v4 !== undefined) {
        const inner = this.refusal(v4);
        return inner ? `${address} embeds ${inner}` : undefined;
      }
    }
    const hit = this.denied.find((d) => d.family === family && d.list.check(address, type));
    return hit ? `${address} is ${hit.reason}` : undefined;
  }

  /**
   * Resolves `hostname` and returns one address to connect to; throws {@link SsrfRefusedError} if
   * any address it resolves to is refused (a name pointing at both public and private targets is
   * not trusted).
   */
  async resolve(hostname: string): Promise<{ address: string; family: 4 | 6 }> {
    const host =
      hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
    const literal = isIP(host);
    let addresses: Array<{ address: string; family: number }>;
    if (literal) addresses = [{ address: host, family: literal }];
    else {
      try {
        addresses = await lookup(host, { all: true, verbatim: true });
      } catch (err) {
        throw new SsrfRefusedError(host, `cannot resolve: ${(err as Error).message}`);
      }
    }
    if (addresses.length === 0) throw new SsrfRefusedError(host, 'resolves to no address');
    for (const a of addresses) {
      const why = this.refusal(a.address);
      if (why) throw new SsrfRefusedError(host, why);
    }
    return { address: addresses[0]!.address, family: addresses[0]!.family === 6 ? 6 : 4 };
  }
}
