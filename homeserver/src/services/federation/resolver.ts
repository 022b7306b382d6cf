/**
 * Server name resolution (spec: server-server API, "Resolving server names"): which address and
 * port to connect to for a server name, and which Host header and TLS name to use. Every address
 * any step yields passes the private-address check unless the operator allowed private addresses.
 */
import dns from 'node:dns/promises';
import type { Logger } from '../../core/logger.js';
import { parseStrictJson } from '../../core/canonical_json.js';
import { formatHostPort, parseServerName } from './server_name.js';
import { isPrivateAddress } from './ip_ranges.js';
import { TransportError, type FederationTransport, type PinnedTarget } from './transport.js';

/** The DNS queries resolution makes; tests inject a table, production uses node:dns. */
export interface FederationDns {
  /** A/AAAA (following CNAMEs), as getaddrinfo answers (so /etc/hosts counts). */
  lookup(hostname: string): Promise<{ address: string; family: number }[]>;
  /** SRV records; an absent name may reject (ENOTFOUND/ENODATA) or resolve to []. */
  resolveSrv(name: string): Promise<{ name: string; port: number; priority: number; weight: number }[]>;
}

export const systemDns: FederationDns = {
  lookup: (hostname) => dns.lookup(hostname, { all: true, verbatim: true }),
  resolveSrv: (name) => dns.resolveSrv(name),
};

export type ResolutionStep = 'ip_literal' | 'explicit_port' | 'well_known' | 'srv' | 'srv_legacy' | 'default_port';

export interface ResolvedServer {
  serverName: string;
  /** Vetted addresses with their ports, in the order to try. */
  targets: PinnedTarget[];
  hostHeader: string;
  /** SNI and certificate name; unset when the certificate must be valid for the IP address. */
  tlsServername?: string;
  /** Which step of the spec's algorithm decided (for logs and tests). */
  step: ResolutionStep;
  /** The `m.server` delegation followed, if any. */
  delegatedTo?: string;
}

export type ResolveErrorKind = 'invalid_name' | 'dns' | 'private_address';

export class ResolveError extends Error {
  constructor(
    readonly kind: ResolveErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'ResolveError';
  }
}

export interface ResolverOptions {
  dns: FederationDns;
  transport: FederationTransport;
  allowPrivateAddresses: boolean;
  /** Deadline of one well-known fetch (each redirect hop included). */
  wellKnownTimeoutMs: number;
  logger: Logger;
  now?: () => number;
  /** Port of `https://<hostname>/.well-known/matrix/server`: 443, except in tests that cannot bind it. */
  wellKnownPort?: number;
}

const DEFAULT_PORT = 8448;
const WELL_KNOWN_MAX_BYTES = 64 * 1024;
const WELL_KNOWN_MAX_REDIRECTS = 5;
/** The spec: cache successes by Cache-Control, default 24 h, at most 48 h; errors up to an hour with back-off. */
const WELL_KNOWN_DEFAULT_TTL_MS = 24 * 3600_000;
const WELL_KNOWN_MIN_TTL_MS = 5 * 60_000;
const WELL_KNOWN_MAX_TTL_MS = 48 * 3600_000;
const WELL_KNOWN_ERROR_TTL_MS = 5 * 60_000;
const WELL_KNOWN_MAX_ERROR_TTL_MS = 3600_000;
const WELL_KNOWN_CACHE_ENTRIES = 10_000;

interface WellKnownEntry {
  /** The delegated server name, or null when the lookup failed (then SRV and 8448 follow). */
  server: string | null;
  expiresAt: number;
  failures: number;
}

export class ServerResolver {
  private readonly wellKnownCache = new Map<string, WellKnownEntry>();
  private readonly wellKnownInFlight = new Map<string, Promise<string | null>>();
  private readonly now: () => number;

  constructor(private readonly opts: ResolverOptions) {
    this.now = opts.now ?? Date.now;
  }

  async resolve(serverName: string): Promise<ResolvedServer> {
    const parsed = parseServerName(serverName);
    if (!parsed) throw new ResolveError('invalid_name', `'${serverName}' is not a valid server name`);
    // 1. IP literal: that address, the given port or 8448, Host = the server name, certificate for the IP.
    if (parsed.ipFamily !== 0) {
      return { serverName, step: 'ip_literal', hostHeader: serverName, targets: this.vet(parsed.host, [{ address: parsed.host, family: parsed.ipFamily }], parsed.port ?? DEFAULT_PORT) };
    }
    // 2. Explicit port: A/AAAA of the hostname, Host = the server name, certificate for the hostname.
    if (parsed.port !== undefined) {
      return { serverName, step: 'explicit_port', hostHeader: serverName, tlsServername: parsed.host, targets: await this.lookup(parsed.host, parsed.port) };
    }
    // 3. /.well-known/matrix/server delegation.
    const delegated = await this.wellKnown(parsed.host);
    if (delegated !== null) {
      const d = parseServerName(delegated)!;
      const base = { serverName, delegatedTo: delegated, step: 'well_known' as const };
      if (d.ipFamily !== 0) {
        return { ...base, hostHeader: formatHostPort(d.host, d.port), targets: this.vet(d.host, [{ address: d.host, family: d.ipFamily }], d.port ?? DEFAULT_PORT) };
      }
      if (d.port !== undefined) {
        return { ...base, hostHeader: formatHostPort(d.host, d.port), tlsServername: d.host, targets: await this.lookup(d.host, d.port) };
      }
      const srv = await this.srv(d.host);
      if (srv) return { ...base, hostHeader: d.host, tlsServername: d.host, targets: srv.targets };
      return { ...base, hostHeader: d.host, tlsServername: d.host, targets: await this.lookup(d.host, DEFAULT_PORT) };
    }
    // 4./5. SRV _matrix-fed._tcp, then the deprecated _matrix._tcp; Host and certificate stay the hostname.
    const srv = await this.srv(parsed.host);
    if (srv) return { serverName, step: srv.legacy ? 'srv_legacy' : 'srv', hostHeader: parsed.host, tlsServername: parsed.host, targets: srv.targets };
    // 6. A/AAAA and port 8448.
    return { serverName, step: 'default_port', hostHeader: parsed.host, tlsServername: parsed.host, targets: await this.lookup(parsed.host, DEFAULT_PORT) };
  }

  /** Drops what resolution cached (tests; an operator's "retry now"). */
  clearCache(): void {
    this.wellKnownCache.clear();
  }

  // ---------------------------------------------------------------------------------------------

  /** Keeps the addresses we may connect to; none left because all were private is an error of its own. */
  private vet(host: string, addresses: { address: string; family: number }[], port: number): PinnedTarget[] {
    const targets: PinnedTarget[] = [];
    for (const a of addresses) {
      if (a.family !== 4 && a.family !== 6) continue;
      if (!this.opts.allowPrivateAddresses && isPrivateAddress(a.address)) continue;
      targets.push({ address: a.address, family: a.family, port });
    }
    if (targets.length === 0) {
      if (addresses.length > 0) throw new ResolveError('private_address', `${host} resolves only to private or reserved addresses`);
      throw new ResolveError('dns', `${host} has no address`);
    }
    return targets;
  }

  private async lookup(host: string, port: number): Promise<PinnedTarget[]> {
    let addresses: { address: string; family: number }[];
    try {
      addresses = await this.opts.dns.lookup(host);
    } catch (err) {
      throw new ResolveError('dns', `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return this.vet(host, addresses, port);
  }

  /** `_matrix-fed._tcp.<host>`, then `_matrix._tcp.<host>`; null when neither has a usable record. */
  private async srv(host: string): Promise<{ targets: PinnedTarget[]; legacy: boolean } | null> {
    for (const [prefix, legacy] of [['_matrix-fed._tcp.', false], ['_matrix._tcp.', true]] as const) {
      let records: { name: string; port: number; priority: number; weight: number }[];
      try {
        records = await this.opts.dns.resolveSrv(prefix + host);
      } catch {
        records = [];
      }
      // A target of "." means "no service here" (RFC 2782).
      records = records.filter((r) => r.name !== '' && r.name !== '.' && r.port > 0);
      if (records.length === 0) continue;
      const targets: PinnedTarget[] = [];
      let lastError: ResolveError | undefined;
      for (const r of orderSrv(records)) {
        try {
          targets.push(...(await this.lookup(r.name.replace(/\.$/, ''), r.port)));
        } catch (err) {
          lastError = err as ResolveError;
        }
      }
      if (targets.length === 0) throw lastError!;
      return { targets, legacy };
    }
    return null;
  }

  /** The cached or fetched delegation of `host`; concurrent callers share one fetch. */
  private async wellKnown(host: string): Promise<string | null> {
    const cached = this.wellKnownCache.get(host);
    if (cached && cached.expiresAt > this.now()) return cached.server;
    let pending = this.wellKnownInFlight.get(host);
    if (!pending) {
      pending = this.fetchWellKnown(host, cached?.failures ?? 0).finally(() => this.wellKnownInFlight.delete(host));
      this.wellKnownInFlight.set(host, pending);
    }
    return pending;
  }

  private async fetchWellKnown(host: string, previousFailures: number): Promise<string | null> {
    try {
      const { server, ttlMs } = await this.fetchWellKnownOnce(host);
      this.remember(host, { server, expiresAt: this.now() + ttlMs, failures: 0 });
      return server;
    } catch (err) {
      const failures = previousFailures + 1;
      const ttl = Math.min(WELL_KNOWN_MAX_ERROR_TTL_MS, WELL_KNOWN_ERROR_TTL_MS * 2 ** (failures - 1));
      this.opts.logger.debug({ host, err: (err as Error).message, retryInMs: ttl }, 'no usable .well-known/matrix/server');
      this.remember(host, { server: null, expiresAt: this.now() + ttl, failures });
      return null;
    }
  }

  private remember(host: string, entry: WellKnownEntry): void {
    this.wellKnownCache.delete(host);
    if (this.wellKnownCache.size >= WELL_KNOWN_CACHE_ENTRIES) this.wellKnownCache.delete(this.wellKnownCache.keys().next().value!);
    this.wellKnownCache.set(host, entry);
  }

  /** GET https://<host>/.well-known/matrix/server, following redirects (loops and http: refused). */
  private async fetchWellKnownOnce(host: string): Promise<{ server: string; ttlMs: number }> {
    let url = new URL(`https://${formatHostPort(host, this.opts.wellKnownPort)}/.well-known/matrix/server`);
    const seen = new Set<string>();
    for (let hop = 0; ; hop++) {
      if (url.protocol !== 'https:') throw new Error(`redirect to a non-https URL`);
      if (seen.has(url.href) || hop > WELL_KNOWN_MAX_REDIRECTS) throw new Error('redirect loop or too many redirects');
      seen.add(url.href);
      const urlHost = url.hostname.replace(/^\[(.*)\]$/, '$1');
      const target = parseServerName(url.host);
      if (!target) throw new Error(`bad host in ${url.href}`);
      const port = url.port ? Number(url.port) : 443;
      const targets = target.ipFamily !== 0 ? this.vet(urlHost, [{ address: urlHost, family: target.ipFamily }], port) : await this.lookup(urlHost, port);
      let res;
      try {
        res = await this.opts.transport.request({
          targets,
          tlsServername: target.ipFamily === 0 ? urlHost : undefined,
          hostHeader: url.host,
          method: 'GET',
          path: url.pathname + url.search,
          headers: { accept: 'application/json' },
          timeoutMs: this.opts.wellKnownTimeoutMs,
          maxBytes: WELL_KNOWN_MAX_BYTES,
        });
      } catch (err) {
        throw new Error(err instanceof TransportError ? `${err.kind}: ${err.message}` : String(err), { cause: err });
      }
      if ([301, 302, 303, 307, 308].includes(res.status) && typeof res.headers.location === 'string') {
        url = new URL(res.headers.location, url);
        continue;
      }
      if (res.status !== 200) throw new Error(`status ${res.status}`);
      // The spec: assume JSON whatever the Content-Type says.
      const body = parseStrictJson(res.body);
      const server = typeof body === 'object' && body !== null && !Array.isArray(body) ? body['m.server'] : undefined;
      if (typeof server !== 'string' || !parseServerName(server)) throw new Error('m.server missing or not a server name');
      return { server, ttlMs: cacheTtl(res.headers['cache-control']) };
    }
  }
}

/** The TTL a Cache-Control header asks for, within the spec's bounds. */
export function cacheTtl(cacheControl: string | undefined): number {
  if (!cacheControl) return WELL_KNOWN_DEFAULT_TTL_MS;
  if (/(^|,)\s*(no-store|no-cache)\s*(,|$)/i.test(cacheControl)) return WELL_KNOWN_MIN_TTL_MS;
  const m = /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?/i.exec(cacheControl);
  if (!m) return WELL_KNOWN_DEFAULT_TTL_MS;
  return Math.min(WELL_KNOWN_MAX_TTL_MS, Math.max(WELL_KNOWN_MIN_TTL_MS, Number(m[1]) * 1000));
}

/** RFC 2782 order: by priority, then a weighted random pick within each priority. */
function orderSrv<T extends { priority: number; weight: number }>(records: T[]): T[] {
  const byPriority = new Map<number, T[]>();
  for (const r of records) byPriority.set(r.priority, [...(byPriority.get(r.priority) ?? []), r]);
  const out: T[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    const pool = [...byPriority.get(priority)!];
    while (pool.length > 0) {
      const total = pool.reduce((sum, r) => sum + r.weight, 0);
      let pick = Math.random() * total;
      let i = 0;
      while (i < pool.length - 1 && pick >= pool[i]!.weight) pick -= pool[i++]!.weight;
      out.push(pool.splice(i, 1)[0]!);
    }
  }
  return out;
}
