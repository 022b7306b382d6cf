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
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FederationCluster } from './federation.js';
import type { RequestOptions, Response } from './harness.js';
import { clientRequester, installedProgram, preparePeer, startPeerProcess } from './peer_process.js';

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
  // $HEARTH_DENDRITE_BIN or scripts/install-dendrite (about 3 minutes the first time).
  const binary = await installedProgram('HEARTH_DENDRITE_BIN', 'install-dendrite');
  const { dir, fedPort, clientPort, serverName, clientUrl, cert } = await preparePeer(cluster, 'dendrite.localhost');
  fs.writeFileSync(path.join(dir, 'matrix_key.pem'), matrixKeyPem(), { mode: 0o600 });
  const configFile = path.join(dir, 'dendrite.yaml');
  fs.writeFileSync(configFile, dendriteYaml({ dir, serverName }));

  const { logTail, stop } = await startPeerProcess({
    name: 'Dendrite',
    command: binary,
    args: [
      '--config', configFile,
      '--really-enable-open-registration',
      '--http-bind-address', `127.0.0.1:${clientPort}`,
      '--https-bind-address', `127.0.0.1:${fedPort}`,
      '--tls-cert', cert.certFile,
      '--tls-key', cert.keyFile,
    ],
    dir,
    // Go takes its trusted roots from SSL_CERT_FILE: only the test CA, so Dendrite verifies Hearth's certificate.
    env: { ...process.env, SSL_CERT_FILE: cluster.ca.caFile, SSL_CERT_DIR: '' },
    keepDirEnv: 'HEARTH_KEEP_DENDRITE_DIR',
    readyUrl: `${clientUrl}/_matrix/client/versions`,
    readyWhat: '/versions',
    startTimeoutMs: opts.startTimeoutMs,
  });

  return {
    serverName,
    clientUrl,
    dir,
    logTail,
    stop,
    request: clientRequester(clientUrl),
  };
}
