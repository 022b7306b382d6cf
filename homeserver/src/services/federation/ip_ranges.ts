/**
 * Which IP addresses federation must not connect to unless HEARTH_FEDERATION_ALLOW_PRIVATE_ADDRESSES
 * is set: anything that is not a public unicast address (loopback, RFC 1918, CGNAT, link-local,
 * unique local, multicast, documentation and reserved ranges). Without this a remote server name
 * (or a DNS answer, or a well-known delegation) could make us send requests into our own network.
 */
import dns from 'node:dns';
import net from 'node:net';

type Range = [bytes: number[], prefix: number];

const V4_RANGES: Range[] = (
  [
    ['0.0.0.0', 8], // "this network"
    ['10.0.0.0', 8], // RFC 1918
    ['100.64.0.0', 10], // carrier-grade NAT (RFC 6598)
    ['127.0.0.0', 8], // loopback
    ['169.254.0.0', 16], // link-local
    ['172.16.0.0', 12], // RFC 1918
    ['192.0.0.0', 24], // IETF protocol assignments
    ['192.0.2.0', 24], // TEST-NET-1
    ['192.88.99.0', 24], // 6to4 relay anycast (deprecated)
    ['192.168.0.0', 16], // RFC 1918
    ['198.18.0.0', 15], // benchmarking
    ['198.51.100.0', 24], // TEST-NET-2
    ['203.0.113.0', 24], // TEST-NET-3
    ['224.0.0.0', 4], // multicast
    ['240.0.0.0', 4], // reserved, and 255.255.255.255 broadcast
  ] as const
).map(([a, p]) => [v4Bytes(a), p]);

const V6_RANGES: Range[] = (
  [
    ['::', 128], // unspecified
    ['::1', 128], // loopback
    ['100::', 64], // discard-only
    ['2001:db8::', 32], // documentation
    ['fc00::', 7], // unique local
    ['fe80::', 10], // link-local
    ['fec0::', 10], // site-local (deprecated)
    ['ff00::', 8], // multicast
  ] as const
).map(([a, p]) => [v6Bytes(a), p]);

function v4Bytes(address: string): number[] {
  return address.split('.').map(Number);
}

/** The 16 bytes of an IPv6 address (with `::` and an embedded dotted IPv4 tail). */
function v6Bytes(address: string): number[] {
  let text = address;
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    tail = v4Bytes(text.slice(lastColon + 1));
    text = text.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((h) => parseInt(h, 16)));
  const hi = parse(head);
  const lo = rest === undefined ? [] : parse(rest);
  const groups = rest === undefined ? hi : [...hi, ...new Array<number>(8 - hi.length - lo.length).fill(0), ...lo];
  const bytes = groups.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

function inRange(bytes: number[], [range, prefix]: Range): boolean {
  for (let bit = 0; bit < prefix; bit += 8) {
    const take = Math.min(8, prefix - bit);
    const mask = (0xff << (8 - take)) & 0xff;
    if ((bytes[bit / 8]! & mask) !== (range[bit / 8]! & mask)) return false;
  }
  return true;
}

/** True for every address that is not public unicast; also true for anything that is not an IP address. */
export function isPrivateAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 4) return V4_RANGES.some((r) => inRange(v4Bytes(address), r));
  if (family !== 6) return true;
  const bytes = v6Bytes(address.replace(/%.*$/, ''));
  // Addresses that embed an IPv4 address reach that address: judge them by it.
  const isMapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff; // ::ffff:a.b.c.d
  const isCompat = bytes.slice(0, 12).every((b) => b === 0) && !(bytes[12] === 0 && bytes[13] === 0 && bytes[14] === 0); // ::a.b.c.d (deprecated)
  const isNat64 = inRange(bytes, [v6Bytes('64:ff9b::'), 96]) || inRange(bytes, [v6Bytes('64:ff9b:1::'), 48]);
  if (isMapped || isCompat || isNat64) return V4_RANGES.some((r) => inRange(bytes.slice(12), r));
  if (inRange(bytes, [v6Bytes('2002::'), 16])) return V4_RANGES.some((r) => inRange(bytes.slice(2, 6), r)); // 6to4
  return V6_RANGES.some((r) => inRange(bytes, r));
}

/**
 * A `lookup` for `http(s).request` that refuses private addresses unless `allowPrivateAddresses`:
 * the check happens on the addresses the connection will really use (a DNS answer, not just the
 * URL), and when Node races IPv4 and IPv6 (`all`) every candidate is vetted. Refusals fail the
 * request with code `EHEARTHPRIVATE` and `message`.
 */
export function vettedLookup(allowPrivateAddresses: boolean, message: string): net.LookupFunction {
  const refused = () => Object.assign(new Error(message), { code: 'EHEARTHPRIVATE' });
  return ((hostname: string, options: dns.LookupOptions, callback: (err: Error | null, address: string | dns.LookupAddress[], family?: number) => void) => {
    if (options.all) {
      dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
        if (err) return callback(err, []);
        const usable = allowPrivateAddresses ? addresses : addresses.filter((a) => !isPrivateAddress(a.address));
        if (usable.length === 0) return callback(refused(), []);
        callback(null, usable);
      });
      return;
    }
    dns.lookup(hostname, { ...options, all: false }, (err, address, family) => {
      if (err) return callback(err, '', 0);
      if (!allowPrivateAddresses && isPrivateAddress(address)) return callback(refused(), '', 0);
      callback(null, address, family);
    });
  }) as unknown as net.LookupFunction;
}
