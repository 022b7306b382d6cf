/**
 * Real Hearth processes (homeserver/src/main.ts) as separate hosts: each started inside its own
 * network namespace of a VirtualNetwork (support/netns.ts), on the embedded database in its own data
 * dir, with an HTTPS federation listener on the default port 8448.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { NetnsHost, VirtualNetwork } from './netns.js';

/** Every namespace has its own ports: all servers use the defaults, so server names need no port. */
export const CLIENT_PORT = 8008;
export const FEDERATION_PORT = 8448;
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 20_000;

export interface HttpResponse {
  status: number;
  body: any;
  headers: Record<string, string | string[] | undefined>;
}

export interface HearthProcess {
  label: string;
  /** `<label>.<domain>` (the hostname; federation on the default port 8448). */
  serverName: string;
  host: NetnsHost;
  /** The client API as the test process reaches it (`http://<ctlIp>:8008`). */
  baseUrl: string;
  child: ChildProcess;
  /** Everything the process wrote (stdout and stderr). */
  output(): string;
  /** Its JSON log lines (pino), parsed. */
  logs(): Record<string, any>[];
  /** The last lines of its output (without client-API request lines), for failure messages. */
  tail(lines?: number): string;
  /** An HTTP request to its client API (the shape of TestServer.request, so support/rooms.ts helpers work). */
  request(method: string, path: string, opts?: { body?: unknown; token?: string; headers?: Record<string, string> }): Promise<HttpResponse>;
  /** SIGTERM, then waits for the exit (SIGKILL after a while). */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface HearthOptions {
  repoRoot: string;
  /** CA certificate every server trusts (HEARTH_FEDERATION_CA_FILE). */
  caFile: string;
  /** This server's federation certificate, valid for its hostname. */
  cert: { certFile: string; keyFile: string };
  /** Extra HEARTH_* settings. */
  env?: Record<string, string>;
}

/**
 * Starts `node homeserver/src/main.ts` (the real entry point, through tsx as scripts/start does) in
 * the host's namespace, on the embedded database in its own data dir, with an HTTPS federation
 * listener; resolves once it says it is running.
 */
export async function startHearth(net: VirtualNetwork, label: string, opts: HearthOptions): Promise<HearthProcess> {
  const host = net.host(label);
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // The runner's own settings (HEARTH_TEST_*, NODE_OPTIONS with tsx) must not leak in.
    if (v !== undefined && !k.startsWith('HEARTH_') && k !== 'NODE_OPTIONS') env[k] = v;
  }
  Object.assign(env, {
    HEARTH_SERVER_NAME: host.hostname,
    HEARTH_PUBLIC_BASEURL: `http://${host.ctlIp}:${CLIENT_PORT}/`,
    HEARTH_BIND_HOST: '0.0.0.0',
    HEARTH_PORT: String(CLIENT_PORT),
    HEARTH_DATA_DIR: path.join(net.dir, `data-${label}`),
    HEARTH_REGISTRATION: 'open',
    HEARTH_SCRYPT_COST: '1024',
    HEARTH_RATELIMIT_LOGIN: '1000/1000',
    HEARTH_RATELIMIT_REGISTER: '1000/1000',
    HEARTH_RATELIMIT_CLIENT: '1000/1000',
    HEARTH_LOG_LEVEL: 'info',
    HEARTH_FEDERATION_ENABLED: 'true',
    HEARTH_FEDERATION_PORT: String(FEDERATION_PORT),
    HEARTH_FEDERATION_TLS_CERT_FILE: opts.cert.certFile,
    HEARTH_FEDERATION_TLS_KEY_FILE: opts.cert.keyFile,
    HEARTH_FEDERATION_CA_FILE: opts.caFile,
    // 10.213.0.0/16 is private: without this the resolver refuses every peer.
    HEARTH_FEDERATION_ALLOW_PRIVATE_ADDRESSES: 'true',
    ...opts.env,
  });
  const child = net.spawn(label, process.execPath, ['--import', 'tsx', '--conditions=source', 'homeserver/src/main.ts'], { cwd: opts.repoRoot, env });
  let text = '';
  child.stdout!.on('data', (c: Buffer) => (text += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (text += c.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  // The client API's request lines (the test's own polling) would crowd out what matters.
  const tail = (n = 40) => text.trimEnd().split('\n').filter((l) => !(l.includes('"msg":"request"') && l.includes('"url":"/_matrix/client/'))).slice(-n).join('\n');

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`${label}: not running after ${START_TIMEOUT_MS} ms:\n${tail()}`)), START_TIMEOUT_MS);
    const check = () => {
      if (text.includes('is running')) done();
    };
    const done = (err?: Error) => {
      clearTimeout(timer);
      child.stdout!.off('data', check);
      if (err) reject(err);
      else resolve();
    };
    child.stdout!.on('data', check);
    void exited.then(({ code, signal }) => done(new Error(`${label} exited (${code ?? signal}) before running:\n${tail()}`)));
  });

  const baseUrl = `http://${host.ctlIp}:${CLIENT_PORT}`;
  return {
    label,
    serverName: host.hostname,
    host,
    baseUrl,
    child,
    output: () => text,
    logs: () =>
      text.split('\n').flatMap((line) => {
        if (!line.startsWith('{')) return [];
        try {
          return [JSON.parse(line) as Record<string, any>];
        } catch {
          return [];
        }
      }),
    tail,
    async request(method, p, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      if (o.token) headers.authorization = `Bearer ${o.token}`;
      if (o.body !== undefined) headers['content-type'] ??= 'application/json';
      const res = await fetch(`${baseUrl}${p}`, { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body) });
      const raw = await res.text();
      let body: unknown = raw;
      try {
        body = raw ? JSON.parse(raw) : undefined;
      } catch {
        /* not JSON: keep the text */
      }
      return { status: res.status, body, headers: Object.fromEntries(res.headers) };
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

/**
 * SIGKILL (no shutdown hooks, nothing flushed): a crash. Resolves once the process is gone; start it
 * again with `startHearth` and the same label to restart it on the same data dir.
 */
export async function kill9(p: HearthProcess): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => p.child.once('exit', () => resolve()));
  p.child.kill('SIGKILL');
  await gone;
}
