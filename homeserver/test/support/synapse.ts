/**
 * A throwaway Synapse (the reference Matrix homeserver) as a federation peer for interop tests.
 *
 * Synapse is pip-installed by scripts/install-synapse into ~/.cache/hearth/ (Python only runs it;
 * nothing of it is in the repository). Each start writes a fresh homeserver.yaml into a temp dir:
 * SQLite there, a TLS federation listener with a certificate from the federation cluster's test CA,
 * a plain-HTTP client listener, both on 127.0.0.1, the test CA as `federation_custom_ca_list`, no IP
 * range blocklist (peers live on 127.0.0.1), no notary, open registration and rate limits far up.
 *
 * Names: Synapse resolves server names through the system resolver, where `*.localhost` does not
 * resolve here, so the Hearth peer should have an IP-literal name (`127.0.0.1:<port>`, see
 * ClusterOptions.hostname). Synapse itself is `synapse.localhost:<port>`, which Hearth resolves
 * through the cluster's TestDns.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FederationCluster } from './federation.js';
import type { RequestOptions, Response } from './harness.js';
import { clientRequester, installedProgram, preparePeer, startPeerProcess } from './peer_process.js';

export interface SynapsePeer {
  /** `synapse.localhost:<federation port>` */
  serverName: string;
  /** The client API, `http://127.0.0.1:<port>` */
  clientUrl: string;
  dir: string;
  /** A client-API request, shaped like TestServer.request so support/rooms.ts helpers work on it. */
  request(method: string, path: string, opts?: RequestOptions): Promise<Response>;
  /** Federation requests Synapse has answered so far, from its access log: `{ origin, method, path, status }`, path without query. */
  federationRequests(): { origin: string; method: string; path: string; status: number }[];
  /** The last lines of Synapse's log (for failure messages). */
  logTail(lines?: number): string;
  /** SIGTERM, then SIGKILL after a grace period; removes the temp dir. */
  stop(): Promise<void>;
}

/** An ed25519 signing key in Synapse's file format: `ed25519 <version> <unpadded base64 seed>`. */
function signingKeyFile(): string {
  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  const seed = der.subarray(der.length - 32); // PKCS#8 ed25519: the 32-byte seed ends the structure
  return `ed25519 a_test ${seed.toString('base64').replace(/=+$/, '')}\n`;
}

const limit = { per_second: 1000, burst_count: 1000 };

/** Synapse's `database` setting: SQLite in the temp dir by default; bench/federation-vs-synapse.ts passes PostgreSQL (`psycopg2`). */
export type SynapseDatabase = { name: 'psycopg2'; args: Record<string, unknown> };

function homeserverYaml(o: { dir: string; serverName: string; fedPort: number; clientPort: number; cert: { certFile: string; keyFile: string }; caFile: string; database?: SynapseDatabase }): string {
  // JSON is YAML: no YAML writer needed.
  const config = {
    server_name: o.serverName,
    pid_file: path.join(o.dir, 'homeserver.pid'),
    listeners: [
      { port: o.fedPort, bind_addresses: ['127.0.0.1'], type: 'http', tls: true, resources: [{ names: ['federation'], compress: false }] },
      { port: o.clientPort, bind_addresses: ['127.0.0.1'], type: 'http', tls: false, x_forwarded: false, resources: [{ names: ['client'], compress: false }] },
    ],
    tls_certificate_path: o.cert.certFile,
    tls_private_key_path: o.cert.keyFile,
    federation_custom_ca_list: [o.caFile],
    federation_verify_certificates: true,
    // Every peer in the test is on 127.0.0.1, which the default blocklist forbids.
    ip_range_blacklist: [],
    database: o.database ?? { name: 'sqlite3', args: { database: path.join(o.dir, 'homeserver.db') } },
    log_config: path.join(o.dir, 'log.yaml'),
    media_store_path: path.join(o.dir, 'media'),
    signing_key_path: path.join(o.dir, 'signing.key'),
    enable_registration: true,
    enable_registration_without_verification: true,
    report_stats: false,
    trusted_key_servers: [],
    suppress_key_server_warning: true,
    presence: { enabled: false },
    url_preview_enabled: false,
    // Synapse answers a repeated identical /sync from a cache for 2 minutes by default: tests poll.
    caches: { sync_response_cache_duration: 0 },
    rc_message: limit,
    rc_registration: limit,
    rc_login: { address: limit, account: limit, failed_attempts: limit },
    rc_joins: { local: limit, remote: limit },
    rc_joins_per_room: limit,
    rc_invites: { per_room: limit, per_user: limit, per_issuer: limit },
    rc_room_creation: limit,
    rc_federation: { window_size: 1000, sleep_limit: 1000, sleep_delay: 1, reject_limit: 1000, concurrent: 100 },
    rc_3pid_validation: limit,
    rc_admin_redaction: limit,
  };
  return JSON.stringify(config, null, 2);
}

const LOG_YAML = (file: string) => `version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: ${JSON.stringify(file)}
loggers:
  synapse.storage.SQL:
    level: WARNING
root:
  level: INFO
  handlers: [file]
disable_existing_loggers: false
`;

/**
 * Starts Synapse as a peer of `cluster` (trusting its CA, known to its TestDns) and waits until
 * its client API answers /health.
 */
export async function startSynapse(cluster: FederationCluster, opts: { startTimeoutMs?: number; database?: SynapseDatabase } = {}): Promise<SynapsePeer> {
  // The venv's python: $HEARTH_SYNAPSE_PYTHON or scripts/install-synapse (about half a minute the first time).
  const python = await installedProgram('HEARTH_SYNAPSE_PYTHON', 'install-synapse');
  const { dir, fedPort, clientPort, serverName, clientUrl, cert } = await preparePeer(cluster, 'synapse.localhost');
  const logFile = path.join(dir, 'homeserver.log');
  fs.writeFileSync(path.join(dir, 'signing.key'), signingKeyFile(), { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'log.yaml'), LOG_YAML(logFile));
  const configFile = path.join(dir, 'homeserver.yaml');
  fs.writeFileSync(configFile, homeserverYaml({ dir, serverName, fedPort, clientPort, cert, caFile: cluster.ca.caFile, database: opts.database }));

  const { logTail, stop } = await startPeerProcess({
    name: 'Synapse',
    command: python,
    args: ['-m', 'synapse.app.homeserver', '-c', configFile],
    dir,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
    extraLogFiles: [logFile],
    keepDirEnv: 'HEARTH_KEEP_SYNAPSE_DIR',
    readyUrl: `${clientUrl}/health`,
    readyWhat: '/health',
    startTimeoutMs: opts.startTimeoutMs,
  });

  // Access log lines: `... - {<authenticated entity>} Processed request: … <status> "<METHOD> <path> HTTP/1.1" …`.
  const ACCESS = / - \{([^}]*)\} Processed request: .* (\d{3}) "([A-Z]+) (\/_matrix\/(?:federation|key)\/[^ ?"]*)/;
  const federationRequests = () =>
    (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').split('\n') : []).flatMap((line) => {
      const m = ACCESS.exec(line);
      return m ? [{ origin: m[1]!, method: m[3]!, path: m[4]!, status: Number(m[2]) }] : [];
    });

  return {
    serverName,
    clientUrl,
    dir,
    logTail,
    federationRequests,
    stop,
    request: clientRequester(clientUrl),
  };
}
