/**
 * Server names (spec: appendices "Server Name") and the operator's allow/deny lists over them.
 */
import net from 'node:net';
import { SERVER_NAME_RE } from '../../core/config.js';

export interface ParsedServerName {
  /** The hostname, or the IP address without brackets for IPv6 literals. */
  host: string;
  port?: number;
  /** 4 or 6 for IP literals, 0 for DNS names. */
  ipFamily: 0 | 4 | 6;
}

/** Parses `host[:port]`; null when it is not a valid server name. */
export function parseServerName(name: string): ParsedServerName | null {
  if (!SERVER_NAME_RE.test(name)) return null;
  let host: string;
  let portText: string | undefined;
  if (name.startsWith('[')) {
    const end = name.indexOf(']');
    host = name.slice(1, end);
    if (!net.isIPv6(host)) return null;
    const rest = name.slice(end + 1);
    portText = rest ? rest.slice(1) : undefined;
  } else {
    const colon = name.lastIndexOf(':');
    host = colon === -1 ? name : name.slice(0, colon);
    portText = colon === -1 ? undefined : name.slice(colon + 1);
  }
  let port: number | undefined;
  if (portText !== undefined) {
    port = Number(portText);
    if (!Number.isInteger(port) || port < 1 || port > 65535) return null;
  }
  const ipFamily = net.isIPv4(host) ? 4 : net.isIPv6(host) ? 6 : 0;
  // A dotted-numeric name that is not an IPv4 address (e.g. 1.2.3.400) would be looked up in DNS: refuse it.
  if (ipFamily === 0 && /^[0-9.]+$/.test(host)) return null;
  if (ipFamily === 0 && (host.startsWith('.') || host.endsWith('.') || host.includes('..') || host.length > 253)) return null;
  return { host: ipFamily === 0 ? host.toLowerCase() : host, port, ipFamily };
}

/** `host` as it appears in a server name or Host header (IPv6 in brackets), with the port if given. */
export function formatHostPort(host: string, port?: number): string {
  const h = net.isIPv6(host) ? `[${host}]` : host;
  return port === undefined ? h : `${h}:${port}`;
}

function globToRegExp(glob: string): RegExp {
  const body = glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*');
  return new RegExp(`^${body}$`, 'i');
}

/**
 * The operator's allow/deny lists (HEARTH_FEDERATION_DOMAIN_ALLOWLIST / _DENYLIST). A glob without
 * a colon is matched against the hostname (any port); one with a colon against the whole server
 * name. The deny list wins; an empty allow list allows every server not denied.
 */
export class ServerNameAccess {
  private readonly allow: { re: RegExp; withPort: boolean }[];
  private readonly deny: { re: RegExp; withPort: boolean }[];

  constructor(allowlist: readonly string[], denylist: readonly string[]) {
    const compile = (g: string) => ({ re: globToRegExp(g), withPort: g.includes(':') });
    this.allow = allowlist.map(compile);
    this.deny = denylist.map(compile);
  }

  /** Whether we talk to `serverName` at all (incoming requests and outgoing ones). */
  isAllowed(serverName: string): boolean {
    const parsed = parseServerName(serverName);
    if (!parsed) return false;
    const hostname = formatHostPort(parsed.host);
    const matches = (rules: { re: RegExp; withPort: boolean }[]) =>
      rules.some((r) => r.re.test(r.withPort ? serverName : hostname));
    if (matches(this.deny)) return false;
    return this.allow.length === 0 || matches(this.allow);
  }
}
