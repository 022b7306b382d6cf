/**
 * A throwaway Dendrite (the Go Matrix homeserver) as a second independent federation peer for
 * interop tests.
 *
 * Dendrite is built by scripts/install-dendrite (`go install` by name from the Go module proxy into
 * ~/.cache/hearth/; nothing of it is in the repository). Each start writes a fresh dendrite.yaml
 * (config version 2) into a temp dir: one SQLite file per component there, NATS JetStream in memory,
 * a Matrix signing key written here, open registration (`--really-enable-open-registration`),
 * rate limiting off, no notary (keys fetched directly from each server), presence off.
 *
 * Listeners: Dendrite serves every API on both of its listeners; the HTTPS one (a certificate from
 * the federation cluster's test CA) is its federation port, the plain-HTTP one is used as its client
 * API. Outgoing federation: Dendrite has no CA setting of its own, but Go reads the system roots from
 * $SSL_CERT_FILE, so it is started with SSL_CERT_FILE = the test CA and keeps verifying certificates
 * (`federation_api.disable_tls_validation` stays false). Dendrite has no IP range blocklist for
 * federation, so peers on 127.0.0.1 are reachable as they are.
 *
 * Names: Dendrite resolves server names through the system resolver, where `*.localhost` does not
 * resolve here, so the Hearth peer should have an IP-literal name (`127.0.0.1:<port>`, see
 * ClusterOptions.hostname). Dendrite itself is `dendrite.localhost:<port>`, which Hearth resolves
 * through the cluster's TestDns.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { FederationCluster } from './federation.js';
import type { RequestOptions, Response } from './harness.js';

const run = promisify(execFile);
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export interface DendritePeer {
  /** `dendrite.localhost:<federation port>` */
  serverName: string;
  /** The client API, `http://127.0.0.1:<port>` */
  clientUrl: string;
  dir: string;
  /** A client-API request, shaped like TestServer.request so support/rooms.ts helpers work on it. */
  request(method: string, path: string, opts?: RequestOptions): Promise<Response>;
  /** The last lines of Dendrite's log (for failure messages). */
  logTail(lines?: number): string;
  /** SIGTERM, then SIGKILL after a grace period; removes the temp dir. */
  stop(): Promise<void>;
}

/** The binary: $HEARTH_DENDRITE_BIN (scripts/test exports it) or scripts/install-dendrite's answer. */
async function dendriteBinary(): Promise<string> {
  const fromEnv = process.env.HEARTH_DENDRITE_BIN;
  if (fromEnv) return fromEnv;
  // Idempotent: milliseconds when built, about 3 minutes the first time.
  const { stdout } = await run(path.join(REPO_ROOT, 'scripts/install-dendrite'), [], { maxBuffer: 1 << 20 });
  return stdout.trim().split('\n').at(-1)!;
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/** An ed25519 signing key in Dendrite's PEM format: block type MATRIX PRIVATE KEY, a Key-ID header, the 32-byte seed. */
function matrixKeyPem(): string {
  const seed = crypto.randomBytes(32).toString('base64');
  return `-----BEGIN MATRIX PRIVATE KEY-----\nKey-ID: ed25519:a_test\n\n${seed}\n-----END MATRIX PRIVATE KEY-----\n`;
}

function dendriteYaml(o: { dir: string; serverName: string }): string {
  const db = (name: string) => ({ connection_string: `file:${path.join(o.dir, `${name}.db`)}` });
  // JSON is YAML: no YAML writer needed.
  const config = {
    version: 2,
    global: {
      server_name: o.serverName,
      private_key: path.join(o.dir, 'matrix_key.pem'),
      key_validity_period: '168h0m0s',
      cache: { max_size_estimated: '64mb', max_age: '1h' },
      trusted_third_party_id_servers: [],
      disable_federation: false,
      presence: { enable_inbound: false, enable_outbound: false },
      report_stats: { enabled: false },
      server_notices: { enabled: false },
      jetstream: { in_memory: true, storage_path: path.join(o.dir, 'jetstream'), topic_prefix: 'Dendrite' },
      metrics: { enabled: false },
      dns_cache: { enabled: false },
    },
    app_service_api: { config_files: [] },
    client_api: {
      registration_disabled: false,
      guests_disabled: true,
      enable_registration_captcha: false,
      rate_limiting: { enabled: false, threshold: 20, cooloff_ms: 500 },
    },
    federation_api: {
      database: db('federationapi'),
      send_max_retries: 16,
      disable_tls_validation: false,
      // No notary: every server's keys come from the server itself.
      key_perspectives: [],
      prefer_direct_fetch: true,
    },
    key_server: { database: db('keyserver') },
    media_api: { database: db('mediaapi'), base_path: path.join(o.dir, 'media'), max_file_size_bytes: 10485760, dynamic_thumbnails: false },
    mscs: { mscs: [], database: db('mscs') },
    relay_api: { database: db('relayapi') },
    room_server: { database: db('roomserver') },
    sync_api: { database: db('syncapi'), search: { enabled: false } },
    user_api: { account_database: db('userapi'), bcrypt_cost: 4 },
    tracing: { enabled: false },
    logging: [{ type: 'std', level: 'info' }],
  };
  return JSON.stringify(config, null, 2);
}

/**
 * Starts Dendrite as a peer of `cluster` (trusting its CA, known to its TestDns) and waits until
 * its client API answers /versions.
 */
export async function startDendrite(cluster: FederationCluster, opts: { startTimeoutMs?: number } = {}): Promise<DendritePeer> {
  const binary = await dendriteBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-dendrite-'));
  const hostname = 'dendrite.localhost';
  const [fedPort, clientPort] = [await freePort(), await freePort()];
  const serverName = `${hostname}:${fedPort}`;
  const cert = await cluster.ca.issue({ dns: [hostname] });
  cluster.dns.addHost(hostname, '127.0.0.1');
  fs.writeFileSync(path.join(dir, 'matrix_key.pem'), matrixKeyPem(), { mode: 0o600 });
  const configFile = path.join(dir, 'dendrite.yaml');
  fs.writeFileSync(configFile, dendriteYaml({ dir, serverName }));

  const stderrFile = path.join(dir, 'stderr.log');
  const stderr = fs.openSync(stderrFile, 'a');
  const child: ChildProcess = spawn(binary, [
    '--config', configFile,
    '--really-enable-open-registration',
    '--http-bind-address', `127.0.0.1:${clientPort}`,
    '--https-bind-address', `127.0.0.1:${fedPort}`,
    '--tls-cert', cert.certFile,
    '--tls-key', cert.keyFile,
  ], {
    cwd: dir,
    stdio: ['ignore', stderr, stderr],
    // Go takes its trusted roots from SSL_CERT_FILE: only the test CA, so Dendrite verifies Hearth's certificate.
    env: { ...process.env, SSL_CERT_FILE: cluster.ca.caFile, SSL_CERT_DIR: '' },
  });
  fs.closeSync(stderr);
  let exited: { code: number | null; signal: string | null } | null = null;
  const exit = new Promise<void>((resolve) => child.once('exit', (code, signal) => { exited = { code, signal }; resolve(); }));
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const tail = (file: string, lines: number) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n') : '');
  const logTail = (lines = 40) => tail(stderrFile, lines).trim();

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(timer);
    }
    if (!process.env.HEARTH_KEEP_DENDRITE_DIR) fs.rmSync(dir, { recursive: true, force: true });
  };

  // Dendrite creates its SQLite schemas on first start (a few seconds on a busy machine).
  const deadline = Date.now() + (opts.startTimeoutMs ?? 120_000);
  for (;;) {
    if (exited) {
      const log = logTail(60);
      await stop();
      throw new Error(`Dendrite exited during start-up (${JSON.stringify(exited)}):\n${log}`);
    }
    const ready = await fetch(`${clientUrl}/_matrix/client/versions`).then((r) => r.ok, () => false);
    if (ready) break;
    if (Date.now() > deadline) {
      const log = logTail(60);
      await stop();
      throw new Error(`Dendrite did not answer /versions within the start timeout:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }

  return {
    serverName,
    clientUrl,
    dir,
    logTail,
    stop,
    async request(method, p, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      if (o.token) headers.authorization = `Bearer ${o.token}`;
      let body: string | Buffer | undefined;
      if (o.rawBody !== undefined) body = o.rawBody;
      else if (o.body !== undefined) {
        body = JSON.stringify(o.body);
        headers['content-type'] ??= 'application/json';
      }
      const res = await fetch(`${clientUrl}${p}`, { method, headers, body });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text.length ? JSON.parse(text) : undefined;
      } catch {
        /* not JSON: leave the text */
      }
      return { status: res.status, body: parsed, headers: Object.fromEntries(res.headers) };
    },
  };
}
