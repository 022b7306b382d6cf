import http from 'node:http';
import pg from 'pg';
import { inject } from 'light-my-request';
import { loadConfig, type Config } from '../../src/core/config.js';
import { createLogger } from '../../src/core/logger.js';
import type { DestinationStream } from 'pino';
import { bootstrap, listen, type Homeserver } from '../../src/server.js';
import { randomString } from '../../src/core/ids.js';

/** The admin URL of the test PostgreSQL that scripts/test starts (tests create their own databases). */
export function testDatabaseAdminUrl(): string {
  const url = process.env.HEARTH_TEST_DATABASE_URL;
  if (!url) throw new Error('HEARTH_TEST_DATABASE_URL is not set: run the tests with `scripts/test`');
  return url;
}

/** Creates an empty database on the test PostgreSQL; returns its URL and a function that drops it. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const admin = testDatabaseAdminUrl();
  const name = `hearth_t_${randomString(10).toLowerCase()}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`create database ${name}`);
  await client.end();
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

export interface Response {
  status: number;
  body: any;
  headers: Record<string, string | string[] | undefined>;
}

export interface RequestOptions {
  body?: unknown;
  /** Sent as-is (for malformed-body tests) instead of JSON-encoding `body`. */
  rawBody?: string | Buffer;
  token?: string;
  headers?: Record<string, string>;
  remoteAddress?: string;
}

export interface TestServer {
  hs: Homeserver;
  config: Config;
  databaseUrl: string;
  request(method: string, path: string, opts?: RequestOptions): Promise<Response>;
  /** Opens a real port (for clients such as matrix-js-sdk); returns the base URL. */
  listen(): Promise<string>;
  /** Stops the homeserver but keeps its database (for restart tests). */
  stop(): Promise<void>;
  /** Stops the homeserver and drops its database. */
  close(): Promise<void>;
}

/** An in-process request function over a Node request handler (no port): `TestServer.request`. */
export function injector(callback: http.RequestListener): TestServer['request'] {
  return async (method, path, o = {}) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    let payload: string | Buffer | undefined;
    if (o.rawBody !== undefined) payload = o.rawBody;
    else if (o.body !== undefined) {
      payload = JSON.stringify(o.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await inject(callback as never, {
      method: method as never,
      url: path,
      headers,
      payload,
      remoteAddress: o.remoteAddress ?? '127.0.0.1',
    });
    let body: unknown = res.body;
    try {
      body = res.body.length ? JSON.parse(res.body) : undefined;
    } catch {
      /* not JSON: leave the text */
    }
    return { status: res.statusCode, body, headers: res.headers as Response['headers'] };
  };
}

/** Settings every test server gets unless overridden; a cheap scrypt cost keeps the suite fast. */
export const BASE_ENV: Record<string, string> = {
  HEARTH_SERVER_NAME: 'hearth.test',
  HEARTH_PUBLIC_BASEURL: 'http://hearth.test/',
  HEARTH_REGISTRATION: 'open',
  HEARTH_LOG_LEVEL: 'silent',
  HEARTH_SCRYPT_COST: '1024',
  HEARTH_RATELIMIT_LOGIN: '1000/1000',
  HEARTH_RATELIMIT_REGISTER: '1000/1000',
  HEARTH_RATELIMIT_REQUEST_TOKEN: '1000/1000',
  HEARTH_RATELIMIT_CLIENT: '1000/1000',
};

/**
 * Starts a homeserver on a fresh database of the real test PostgreSQL (or the given URL),
 * driven through `app.callback()` without a port unless `listen()` is called.
 */
export async function startTestServer(
  env: Record<string, string> = {},
  opts: {
    databaseUrl?: string;
    keepDatabase?: boolean;
    /** Where the server's pino log lines go (e.g. a capture for log-content tests); set HEARTH_LOG_LEVEL too. */
    logDestination?: DestinationStream;
  } = {},
): Promise<TestServer> {
  const created = opts.databaseUrl ? null : await createTestDatabase();
  const databaseUrl = opts.databaseUrl ?? created!.url;
  const config = loadConfig({ ...BASE_ENV, HEARTH_DATABASE_URL: databaseUrl, HEARTH_DATA_DIR: '/tmp/hearth-test-unused', ...env });
  const hs = await bootstrap(config, createLogger(config.logLevel, opts.logDestination));
  const callback = hs.app.callback();
  let server: http.Server | null = null;
  let baseUrl: Promise<string> | undefined;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (server) {
      await hs.closeRealtime();
      server.closeAllConnections();
      await new Promise((r) => server!.close(r));
    }
    await hs.close();
  };
  return {
    hs,
    config,
    databaseUrl,
    request: injector(callback),
    /** Opens a port (once; later calls return the same base URL). */
    async listen() {
      if (!server) {
        server = http.createServer(callback);
        hs.attachRealtime(server);
      }
      baseUrl ??= listen(server, '127.0.0.1', 0).then((port) => `http://127.0.0.1:${port}`);
      return baseUrl;
    },
    stop,
    async close() {
      await stop();
      if (created && !opts.keepDatabase) await created.drop();
    },
  };
}

/** Registers `localpart` through open registration (the dummy stage); returns the login response. */
export async function registerUser(
  s: TestServer,
  localpart: string,
  password = 'correct horse battery',
  extra: Record<string, unknown> = {},
): Promise<{ user_id: string; device_id: string; access_token: string; refresh_token?: string; expires_in_ms?: number }> {
  const first = await s.request('POST', '/_matrix/client/v3/register', { body: { username: localpart, password, ...extra } });
  if (first.status !== 401) throw new Error(`register ${localpart}: expected 401, got ${first.status} ${JSON.stringify(first.body)}`);
  const done = await s.request('POST', '/_matrix/client/v3/register', {
    body: { username: localpart, password, ...extra, auth: { type: 'm.login.dummy', session: first.body.session } },
  });
  if (done.status !== 200) throw new Error(`register ${localpart}: ${done.status} ${JSON.stringify(done.body)}`);
  return done.body;
}

/** Logs in with a password; returns the raw response. */
export function login(s: TestServer, user: string, password: string, extra: Record<string, unknown> = {}): Promise<Response> {
  return s.request('POST', '/_matrix/client/v3/login', {
    body: { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password, ...extra },
  });
}
