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
import net from 'node:net';
import { promisify } from 'node:util';
import { loadConfig, type Config } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import { bootstrap, listen, type Homeserver } from '../../src/server.js';
import { createFederationServer } from '../../src/api/federation/listener.js';
import { createFederationApp } from '../../src/api/federation/app.js';
import type { FederationDns } from '../../src/services/federation/resolver.js';
import { FederationError } from '../../src/services/federation/client.js';
import { BASE_ENV, createTestDatabase, injector, registerUser, type RequestOptions, type Response, type TestServer } from './harness.js';
import { api, enc, ok, type User } from './rooms.js';
import { authEventTypesFor } from '../../src/services/rooms/auth_rules.js';
import type { RoomVersionId } from '../../src/services/rooms/pdu.js';

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
  /** Opens a port for the client API (once; later calls return the same `http://127.0.0.1:<port>`), e.g. for matrix-js-sdk. */
  listen(): Promise<string>;
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
  /** A server's host instead of `<label>.localhost`, e.g. `127.0.0.1` (an IP-literal server name, IP SAN) for peers resolving through the system resolver. */
  hostname?: (label: string) => string | undefined;
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
      const hostname = opts.hostname?.(label) ?? `${label}.localhost`;
      const cert = await ca.issue(net.isIP(hostname) ? { ips: [hostname] } : { dns: [hostname] });
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
  /** Restart (restartServer below): the server's existing database. */
  existingDb?: { url: string; drop: () => Promise<void> },
): Promise<FederationTestServer> {
  const db = existingDb ?? (await createTestDatabase());
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
  let clientServer: http.Server | null = null;
  let baseUrl: Promise<string> | undefined;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (clientServer) {
      await hs.closeRealtime();
      clientServer.closeAllConnections();
      await new Promise((r) => clientServer!.close(r));
    }
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
    listen() {
      if (!clientServer) {
        clientServer = http.createServer(callback);
        hs.attachRealtime(clientServer);
      }
      baseUrl ??= listen(clientServer, '127.0.0.1', 0).then((port) => `http://127.0.0.1:${port}`);
      return baseUrl;
    },
    stop,
    async close() {
      await stop();
      await db.drop();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Restarts, extra processes and a recording peer (federation sender tests)
// ---------------------------------------------------------------------------------------------

/**
 * Stops the server (if running) and starts a new homeserver on the same database, name, port and
 * certificate, replacing `cluster.servers[label]` (the old object's database is kept).
 */
export async function restartServer(cluster: FederationCluster, label: string, extraEnv: Record<string, string> = {}): Promise<FederationTestServer> {
  const old = cluster.get(label);
  await old.stop();
  const tls = old.config.federation.tls!;
  const fed = createFederationServer({ tls });
  const db = { url: old.databaseUrl, drop: () => dropDatabaseByUrl(old.databaseUrl) };
  const fresh = await startMember({ label, hostname: old.hostname, fed, port: old.port, cert: tls }, old.serverName, cluster.ca, cluster.dns, extraEnv, db);
  // Listen only once the request handler is attached: a peer retrying meanwhile must not hang.
  await listen(fed as http.Server, '127.0.0.1', old.port);
  cluster.servers[label] = fresh;
  return fresh;
}

async function dropDatabaseByUrl(url: string): Promise<void> {
  const { default: pg } = await import('pg');
  const name = new URL(url).pathname.slice(1);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const c = new pg.Client({ connectionString: admin.toString() });
  await c.connect();
  await c.query(`drop database if exists ${name} with (force)`);
  await c.end();
}

/**
 * A second homeserver process (same config, same database) without a federation listener: what a
 * deployment with two processes behind one name runs. Pass HEARTH_REDIS_URL in `extraEnv` so the
 * processes wake each other.
 */
export async function startExtraProcess(cluster: FederationCluster, server: FederationTestServer, redisUrl?: string): Promise<Homeserver> {
  const config = { ...server.config, ...(redisUrl ? { redisUrl } : {}) };
  return bootstrap(config, createLogger(config.logLevel), { federationDns: cluster.dns });
}

export interface RecordedTransaction {
  txnId: string;
  origin: string;
  pdus: Record<string, unknown>[];
  edus: { edu_type: string; content: Record<string, unknown> }[];
  /** The whole request body as received (federation_schema checks it against the spec). */
  body: Record<string, unknown>;
}

/**
 * A stand-in destination server (`<label>.localhost:<port>`, trusted certificate, in the cluster's
 * DNS) that records the transactions it receives. `mode`: `ok` answers 200, `down` answers 503 (a
 * server that is unavailable), `refuse` closes the connection. It is the boundary we need to
 * control exactly (down for a while, then back) and to inspect every transaction as sent.
 */
export interface RecordingPeer {
  serverName: string;
  transactions: RecordedTransaction[];
  /** Every request received (method and path), answered or not. */
  requests: string[];
  mode: 'ok' | 'down' | 'refuse';
  /** Resolves once a transaction satisfying `pred` has been recorded (or rejects after `timeoutMs`). */
  waitFor(pred: (all: RecordedTransaction[]) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startRecordingPeer(cluster: FederationCluster, label: string): Promise<RecordingPeer> {
  const hostname = `${label}.localhost`;
  const cert = await cluster.ca.issue({ dns: [hostname] });
  const waiters = new Set<() => void>();
  const peer: RecordingPeer = {
    serverName: '',
    transactions: [],
    requests: [],
    mode: 'ok',
    waitFor(pred, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!pred(peer.transactions)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`recording peer: condition not met in ${timeoutMs} ms (${peer.transactions.length} transactions)`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
  const server = https.createServer({ cert: fs.readFileSync(cert.certFile), key: fs.readFileSync(cert.keyFile) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      peer.requests.push(`${req.method} ${req.url}`);
      if (peer.mode === 'refuse') {
        req.socket.destroy();
        return;
      }
      if (peer.mode === 'down') {
        res.writeHead(503, { 'content-type': 'application/json' }).end('{"errcode":"M_UNKNOWN","error":"down"}');
        return;
      }
      const m = /^\/_matrix\/federation\/v1\/send\/([^/?]+)$/.exec(req.url ?? '');
      if (req.method === 'PUT' && m) {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { origin: string; pdus: Record<string, unknown>[]; edus: RecordedTransaction['edus'] };
        peer.transactions.push({ txnId: decodeURIComponent(m[1]!), origin: body.origin, pdus: body.pdus, edus: body.edus ?? [], body });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"pdus":{}}');
        for (const w of [...waiters]) w();
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errcode":"M_UNRECOGNIZED","error":"not here"}');
    });
  });
  const port = await listen(server as unknown as http.Server, '127.0.0.1', 0);
  cluster.dns.addHost(hostname, '127.0.0.1');
  peer.serverName = `${hostname}:${port}`;
  return peer;
}

/**
 * Test-only shortcut until remote joins exist: records in `server`'s database that `userId` (of
 * another server) is joined to `roomId` (current state and a membership change), as a remote join
 * would. The member event itself is not stored.
 */
export async function craftRemoteMember(server: FederationTestServer, roomId: string, userId: string, membership = 'join'): Promise<void> {
  const { db } = server.hs.deps;
  const eventId = `$crafted-${Math.random().toString(36).slice(2)}`;
  await db.transaction(async (tx) => {
    await tx.query('select pg_advisory_xact_lock(?)', [0x6576656e74]);
    const [row] = await tx.query<{ pos: string }>(`select nextval('events_stream_seq') as pos`);
    await tx.query(
      `insert into current_state (room_id, type, state_key, event_id, membership) values (?, 'm.room.member', ?, ?, ?)
       on conflict (room_id, type, state_key) do update set event_id = excluded.event_id, membership = excluded.membership`,
      [roomId, userId, eventId, membership],
    );
    await tx.query('insert into membership_changes (stream_ordering, room_id, user_id, membership, event_id) values (?, ?, ?, ?, ?)', [Number(row!.pos), roomId, userId, membership, eventId]);
  });
}

// ---------------------------------------------------------------------------------------------
// Room helpers (federation_rooms*.test.ts)
// ---------------------------------------------------------------------------------------------

/**
 * The real cross-server join most tests start from: `inviter` (on `resident`, in `roomId`) invites
 * `joiner` of another server over federation (invite v2), the invite reaches the joiner's server,
 * and the joiner joins through the resident (make_join/send_join). `invite: false` skips the invite
 * (public rooms).
 */
export async function inviteAndJoin(
  resident: FederationTestServer,
  inviter: User,
  joining: FederationTestServer,
  joiner: User,
  roomId: string,
  opts: { invite?: boolean } = {},
): Promise<void> {
  if (opts.invite !== false) {
    ok(await api(asTestServer(resident), inviter, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: joiner.user_id }), 'invite over federation');
    await eventually(async () => ok(await api(asTestServer(joining), joiner, 'GET', '/sync?timeout=0')).rooms?.invite?.[roomId] !== undefined, `the invite to ${roomId} reaches ${joining.label}`);
  }
  ok(await api(asTestServer(joining), joiner, 'POST', `/join/${enc(roomId)}?server_name=${enc(resident.serverName)}`, {}), 'join through the resident');
}

/** A cluster member where the single-server helpers (support/rooms.ts) expect a TestServer. */
export const asTestServer = (s: FederationTestServer): TestServer => s as unknown as TestServer;

/** A room's current state on a server, read from its database: "type|state_key" → event id. */
export async function currentStateMap(s: FederationTestServer, roomId: string): Promise<Map<string, string>> {
  const rows = await s.hs.deps.db.query<{ type: string; state_key: string; event_id: string }>('select type, state_key, event_id from current_state where room_id = ?', [roomId]);
  return new Map(rows.map((r) => [`${r.type}|${r.state_key}`, r.event_id]));
}

/** An event row as stored on a server (the PDU's JSON parsed), or throws when it is not there. */
export async function eventRow(s: FederationTestServer, eventId: string): Promise<{ json: any; streamOrdering: number | null; outlier: boolean; rejected: string | null; softFailed: boolean; redactedBy: string | null }> {
  const rows = await s.hs.deps.db.query<{ json: string; stream_ordering: string | null; outlier: boolean; rejected_reason: string | null; soft_failed: boolean; redacted_by: string | null }>(
    'select json, stream_ordering, outlier, rejected_reason, soft_failed, redacted_by from events where event_id = ?',
    [eventId],
  );
  const r = rows[0];
  if (!r) throw new Error(`${s.label} does not hold ${eventId}`);
  return { json: JSON.parse(r.json), streamOrdering: r.stream_ordering === null ? null : Number(r.stream_ordering), outlier: r.outlier, rejected: r.rejected_reason, softFailed: r.soft_failed, redactedBy: r.redacted_by };
}

/** Polls `check` until it holds (federation is asynchronous); fails after `attempts` tries. No timing is asserted. */
export async function eventually(check: () => Promise<boolean>, what: string, attempts = 150, pauseMs = 100): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, pauseMs));
  }
  throw new Error(`never happened: ${what}`);
}

// ---------------------------------------------------------------------------------------------
// Crafted PDUs (federation_rooms_hostile, federation_forks)
// ---------------------------------------------------------------------------------------------

/**
 * A PDU built on `on`'s view of the room (its forward extremities and current state, unless `prev`
 * names the prev events), signed by `signer`. `opts.depth` is needed when a prev event is not
 * stored on `on` (a chain of crafted events); `opts.ts` fixes `origin_server_ts` (resolution
 * orders same-mainline events by it).
 */
export async function craft(
  on: FederationTestServer,
  signer: FederationTestServer,
  roomId: string,
  ev: { type: string; sender: string; content: Record<string, unknown>; state_key?: string },
  prev?: string[],
  opts: { depth?: number; ts?: number } = {},
): Promise<{ id: string; pdu: Record<string, any> }> {
  const db = on.hs.deps.db;
  const version = (await db.query<{ room_version: string }>('select room_version from rooms where room_id = ?', [roomId]))[0]!.room_version as RoomVersionId;
  const prevEvents = prev ?? (await db.query<{ event_id: string }>('select event_id from forward_extremities where room_id = ?', [roomId])).map((r) => r.event_id);
  const depths = await db.query<{ depth: string }>('select depth from events where event_id in (?)', [prevEvents]);
  const state = await currentStateMap(on, roomId);
  const authEvents = authEventTypesFor({ ...ev }, version).map((k) => state.get(k.replace('\u0000', '|'))).filter((x): x is string => !!x);
  const depth = opts.depth ?? Math.max(...depths.map((d) => Number(d.depth))) + 1;
  const pdu = { room_id: roomId, ...ev, prev_events: prevEvents, auth_events: [...new Set(authEvents)], depth, origin_server_ts: opts.ts ?? Date.now() };
  const { event, json } = signer.hs.deps.services.rooms.signingKey.build(pdu, version);
  return { id: event.event_id, pdu: JSON.parse(json) as Record<string, any> };
}

let txnSeq = 0;

/** `PUT /send/{txnId}` from `from` to `to` with these PDUs (signed as `from`); the parsed answer. */
export async function postTxn(from: FederationTestServer, to: FederationTestServer, pdus: unknown[], txnId = `t${Date.now()}.${++txnSeq}`): Promise<any> {
  return from.hs.deps.services.federation.client.request({
    destination: to.serverName,
    method: 'PUT',
    path: `/_matrix/federation/v1/send/${txnId}`,
    body: { origin: from.serverName, origin_server_ts: Date.now(), pdus: pdus as never },
  });
}

/** Every event of the room that `u` can page through on `s` with /messages, oldest first. */
export async function pagedTimeline(s: TestServer, u: User, roomId: string): Promise<string[]> {
  const ids: string[] = [];
  let from = '';
  for (let i = 0; i < 100; i++) {
    const page = ok(await api(s, u, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=50${from ? `&from=${enc(from)}` : ''}`));
    for (const e of page.chunk as { event_id: string }[]) ids.push(e.event_id);
    if (!page.end || page.chunk.length === 0) break;
    from = page.end;
  }
  return ids.reverse();
}

/** The FederationError a remote request failed with (fails the test if it succeeded or failed otherwise). */
export async function remoteError(p: Promise<unknown>): Promise<FederationError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof FederationError) return err;
    throw err;
  }
  throw new Error('expected a FederationError');
}

/**
 * startFederationCluster plus one registered user per entry of `users` (name -> the label of the
 * server it lives on), the set-up most federation test files begin with. Closes the cluster if a
 * registration fails, since the caller has nothing to close yet.
 */
export async function startClusterWithUsers<L extends string, N extends string>(
  labels: readonly L[],
  users: Record<N, NoInfer<L>>,
  opts: ClusterOptions = {},
): Promise<{ cluster: FederationCluster; servers: Record<L, FederationTestServer>; users: Record<N, User> }> {
  const cluster = await startFederationCluster([...labels], opts);
  try {
    const servers = Object.fromEntries(labels.map((l) => [l, cluster.get(l)])) as Record<L, FederationTestServer>;
    const registered = {} as Record<N, User>;
    for (const [name, label] of Object.entries(users) as [N, L][]) registered[name] = await registerUser(asTestServer(servers[label]), name);
    return { cluster, servers, users: registered };
  } catch (err) {
    await cluster.close().catch(() => {});
    throw err;
  }
}
