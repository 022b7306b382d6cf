/**
 * Federation test fixtures: a throwaway certificate authority made with the `openssl` CLI, a DNS
 * table for server-name resolution, and clusters of real Hearth homeservers that talk to each
 * other over HTTPS on 127.0.0.1, each with its own database, signing key and server name.
 *
 * Names: each server is `<label>.localhost:<port>` (e.g. `hs-a.localhost:40123`). Such names do not
 * resolve through the system resolver here (getaddrinfo knows only `localhost`), so the cluster
 * injects a `TestDns` (bootstrap's `federationDns` override) that maps them to 127.0.0.1. That
 * keeps distinct hostnames per server (ACLs and allow/deny lists match hostnames, not ports) and
 * lets a test add SRV records or well-known delegations without a DNS server. The port is known
 * before the homeserver starts because the federation listener is bound (to port 0) first.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import https from 'node:https';
import { promisify } from 'node:util';
import { loadConfig, type Config } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import { bootstrap, listen, type Homeserver } from '../../src/server.js';
import { createFederationServer } from '../../src/api/federation/listener.js';
import { createFederationApp } from '../../src/api/federation/app.js';
import type { FederationDns } from '../../src/services/federation/resolver.js';
import { BASE_ENV, createTestDatabase, injector, type RequestOptions, type Response } from './harness.js';

const run = promisify(execFile);

// ---------------------------------------------------------------------------------------------
// Certificate authority
// ---------------------------------------------------------------------------------------------

export interface IssuedCert {
  certFile: string;
  keyFile: string;
}

export interface TestCa {
  dir: string;
  /** The CA certificate (PEM): what HEARTH_FEDERATION_CA_FILE points at. */
  caFile: string;
  /** A leaf certificate for the given DNS names and IP addresses, signed by this CA. */
  issue(names: { dns?: string[]; ips?: string[] }): Promise<IssuedCert>;
  /** Removes the directory. */
  remove(): void;
}

/** Makes a CA in a fresh temp directory (EC P-256 keys, valid 2 days). */
export async function createTestCa(label = 'Hearth test CA'): Promise<TestCa> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-ca-'));
  const caKey = path.join(dir, 'ca.key');
  const caFile = path.join(dir, 'ca.crt');
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', caKey, '-out', caFile, '-days', '2', '-subj', `/CN=${label}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  let serial = 0;
  return {
    dir,
    caFile,
    async issue({ dns = [], ips = [] }) {
      const n = ++serial;
      const keyFile = path.join(dir, `leaf${n}.key`);
      const csr = path.join(dir, `leaf${n}.csr`);
      const certFile = path.join(dir, `leaf${n}.crt`);
      const ext = path.join(dir, `leaf${n}.ext`);
      const san = [...dns.map((d) => `DNS:${d}`), ...ips.map((i) => `IP:${i}`)].join(',');
      fs.writeFileSync(ext, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`);
      await run('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${dns[0] ?? ips[0]}`]);
      await run('openssl', ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-set_serial', String(1000 + n), '-out', certFile, '-days', '2', '-extfile', ext]);
      return { certFile, keyFile };
    },
    remove() {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// DNS
// ---------------------------------------------------------------------------------------------

type SrvRecord = { name: string; port: number; priority: number; weight: number };

/** A DNS table (FederationDns): names not in it fail with ENOTFOUND, as real DNS would. */
export class TestDns implements FederationDns {
  readonly hosts = new Map<string, { address: string; family: number }[]>();
  readonly srv = new Map<string, SrvRecord[]>();
  /** Every query made, in order (`lookup host` / `srv name`). */
  readonly queries: string[] = [];

  addHost(host: string, ...addresses: string[]): this {
    this.hosts.set(host.toLowerCase(), addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
    return this;
  }

  addSrv(name: string, ...records: (Partial<SrvRecord> & { name: string; port: number })[]): this {
    this.srv.set(name.toLowerCase(), records.map((r) => ({ priority: 10, weight: 10, ...r })));
    return this;
  }

  async lookup(hostname: string) {
    this.queries.push(`lookup ${hostname}`);
    const found = this.hosts.get(hostname.toLowerCase());
    if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return found;
  }

  async resolveSrv(name: string) {
    this.queries.push(`srv ${name}`);
    const found = this.srv.get(name.toLowerCase());
    if (!found) throw Object.assign(new Error(`querySrv ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    return found;
  }
}

// ---------------------------------------------------------------------------------------------
// Homeservers
// ---------------------------------------------------------------------------------------------

/** Settings every federation test server gets: the harness's, with federation on. */
const FEDERATION_ENV: Record<string, string> = {
  ...BASE_ENV,
  HEARTH_FEDERATION_ENABLED: 'true',
  HEARTH_FEDERATION_ALLOW_PRIVATE_ADDRESSES: 'true',
};

export interface FederationRequestLog {
  method: string;
  url: string;
  /** The X-Matrix origin as claimed in the header (unverified), if any. */
  origin?: string;
}

export interface FederationTestServer {
  label: string;
  /** `<label>.localhost:<port>` */
  serverName: string;
  hostname: string;
  port: number;
  hs: Homeserver;
  config: Config;
  databaseUrl: string;
  /** Requests the federation listener received, in order (clear it with `.length = 0`). */
  federationRequests: FederationRequestLog[];
  /** In-process request to the main app (client API and, since federation is enabled, federation routes). */
  request(method: string, path: string, opts?: RequestOptions): Promise<Response>;
  /** Stops the homeserver and its listener but keeps its database. */
  stop(): Promise<void>;
  /** Stops it and drops its database. */
  close(): Promise<void>;
}

export interface FederationCluster {
  ca: TestCa;
  dns: TestDns;
  servers: Record<string, FederationTestServer>;
  /** The server started for `label` (throws for an unknown label). */
  get(label: string): FederationTestServer;
  close(): Promise<void>;
}

export interface ClusterOptions {
  /** Extra settings per server label (e.g. a trusted notary, an allow list). */
  env?: (label: string, names: Record<string, string>) => Record<string, string>;
}

/**
 * Starts one homeserver per label (`hs-a`, `hs-b`, …), all on 127.0.0.1 with HTTPS federation
 * listeners whose certificates come from one throwaway CA that every server trusts. `env` may
 * refer to other servers' names (all names are known before any server starts).
 */
export async function startFederationCluster(labels: string[], opts: ClusterOptions = {}): Promise<FederationCluster> {
  const ca = await createTestCa();
  const dns = new TestDns();
  const servers: Record<string, FederationTestServer> = {};
  const pending: { label: string; hostname: string; fed: http.Server | https.Server; port: number; cert: IssuedCert }[] = [];
  try {
    for (const label of labels) {
      const hostname = `${label}.localhost`;
      const cert = await ca.issue({ dns: [hostname] });
      const fed = createFederationServer({ tls: cert });
      const port = await listen(fed as http.Server, '127.0.0.1', 0);
      dns.addHost(hostname, '127.0.0.1');
      pending.push({ label, hostname, fed, port, cert });
    }
    const names = Object.fromEntries(pending.map((p) => [p.label, `${p.hostname}:${p.port}`]));
    for (const p of pending) {
      servers[p.label] = await startMember(p, names[p.label]!, ca, dns, opts.env?.(p.label, names) ?? {});
    }
  } catch (err) {
    for (const s of Object.values(servers)) await s.close().catch(() => {});
    for (const p of pending) if (!servers[p.label]) p.fed.close();
    ca.remove();
    throw err;
  }
  return {
    ca,
    dns,
    servers,
    get(label) {
      const s = servers[label];
      if (!s) throw new Error(`no server '${label}' in this cluster`);
      return s;
    },
    async close() {
      for (const s of Object.values(servers)) await s.close();
      ca.remove();
    },
  };
}

async function startMember(
  p: { label: string; hostname: string; fed: http.Server | https.Server; port: number; cert: IssuedCert },
  serverName: string,
  ca: TestCa,
  dns: TestDns,
  extraEnv: Record<string, string>,
): Promise<FederationTestServer> {
  const db = await createTestDatabase();
  const config = loadConfig({
    ...FEDERATION_ENV,
    HEARTH_SERVER_NAME: serverName,
    HEARTH_PUBLIC_BASEURL: `http://${p.hostname}/`,
    HEARTH_DATABASE_URL: db.url,
    HEARTH_DATA_DIR: '/tmp/hearth-test-unused',
    HEARTH_FEDERATION_CA_FILE: ca.caFile,
    HEARTH_FEDERATION_PORT: String(p.port),
    HEARTH_FEDERATION_TLS_CERT_FILE: p.cert.certFile,
    HEARTH_FEDERATION_TLS_KEY_FILE: p.cert.keyFile,
    ...extraEnv,
  });
  let hs: Homeserver;
  try {
    hs = await bootstrap(config, createLogger(config.logLevel), { federationDns: dns });
  } catch (err) {
    p.fed.close();
    await db.drop();
    throw err;
  }
  const federationRequests: FederationRequestLog[] = [];
  const fedCallback = createFederationApp(hs.deps).callback();
  p.fed.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const origin = /origin="?([^",]+)/i.exec(req.headers.authorization ?? '')?.[1];
    federationRequests.push({ method: req.method ?? '', url: req.url ?? '', ...(origin ? { origin } : {}) });
    void fedCallback(req, res);
  });
  const callback = hs.app.callback();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    p.fed.closeAllConnections();
    await new Promise((r) => p.fed.close(r));
    await hs.close();
  };
  return {
    label: p.label,
    serverName,
    hostname: p.hostname,
    port: p.port,
    hs,
    config,
    databaseUrl: db.url,
    federationRequests,
    request: injector(callback),
    stop,
    async close() {
      await stop();
      await db.drop();
    },
  };
}
