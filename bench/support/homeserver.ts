// Starts the real homeserver entry point (homeserver/src/main.ts) as a child process on a loopback
// port, on a scratch database, and measures its memory through an IPC channel (see mem-probe.ts).
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

const here = path.dirname(fileURLToPath(import.meta.url));
const homeserverDir = path.resolve(here, '../../homeserver');

export interface MemorySample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

export interface BenchServer {
  baseUrl: string;
  pid: number;
  /** `embedded PGlite` or `PostgreSQL (scratch database …)`. */
  database: string;
  /** The server's memory after a full garbage collection. */
  memory(): Promise<MemorySample>;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** A PostgreSQL admin URL: the bench creates (and afterwards drops) a scratch database there. */
  databaseUrl?: string;
  redisUrl?: string;
  poolSize?: number;
  /** Bench tuning on top of the defaults (HEARTH_* variables). */
  env?: Record<string, string>;
  /** Extra Node flags for the server process (e.g. --cpu-prof). */
  nodeArgs?: string[];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function createScratchDatabase(adminUrl: string): Promise<{ url: string; name: string; drop: () => Promise<void> }> {
  const name = `hearth_bench_${randomBytes(5).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}

export async function startHomeserver(opts: StartOptions): Promise<BenchServer> {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const cleanups: (() => Promise<void>)[] = [];
  const env: Record<string, string | undefined> = { ...process.env };
  // Our own flags go on the command line; inherited ones (e.g. a second tsx import) would double up.
  delete env.NODE_OPTIONS;
  for (const k of Object.keys(env)) if (k.startsWith('HEARTH_')) delete env[k];
  Object.assign(env, {
    HEARTH_SERVER_NAME: 'bench.localhost',
    HEARTH_BIND_HOST: '127.0.0.1',
    HEARTH_PORT: String(port),
    HEARTH_PUBLIC_BASEURL: `${baseUrl}/`,
    HEARTH_REGISTRATION: 'open',
    HEARTH_LOG_LEVEL: 'warn',
    // The cheapest password hashing the config allows: registering 1,000 users is setup, not the subject.
    HEARTH_SCRYPT_COST: '1024',
    HEARTH_RATELIMIT_LOGIN: '1000000/1000000',
    HEARTH_RATELIMIT_REGISTER: '1000000/1000000',
    HEARTH_RATELIMIT_REQUEST_TOKEN: '1000000/1000000',
    HEARTH_RATELIMIT_CLIENT: '1000000/1000000',
    ...(opts.poolSize ? { HEARTH_DATABASE_POOL_SIZE: String(opts.poolSize) } : {}),
    ...(opts.redisUrl ? { HEARTH_REDIS_URL: opts.redisUrl } : {}),
    ...opts.env,
  });
  let database: string;
  try {
    if (opts.databaseUrl) {
      const scratch = await createScratchDatabase(opts.databaseUrl);
      cleanups.push(scratch.drop);
      env.HEARTH_DATABASE_URL = scratch.url;
      database = `PostgreSQL (scratch database ${scratch.name}, dropped afterwards)`;
    } else {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-bench-'));
      cleanups.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
      env.HEARTH_DATA_DIR = dataDir;
      database = 'embedded PGlite (temporary data dir)';
    }
  } catch (err) {
    for (const c of cleanups.reverse()) await c().catch(() => {});
    throw err;
  }

  const child: ChildProcess = fork(path.join(homeserverDir, 'src/main.ts'), [], {
    cwd: homeserverDir,
    env,
    execArgv: [
      '--import',
      'tsx',
      '--conditions=source',
      '--expose-gc',
      '--import',
      pathToFileURL(path.join(here, 'mem-probe.ts')).href,
      ...(opts.nodeArgs ?? []),
    ],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  const keep = (b: Buffer) => {
    output = (output + b.toString()).slice(-8000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exited: { code: number | null; signal: string | null } | null = null;
  const exitPromise = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    }),
  );

  let nextId = 1;
  const pending = new Map<number, (m: MemorySample) => void>();
  child.on('message', (m: { type?: string; id?: number; usage?: MemorySample }) => {
    if (m?.type === 'hearth-bench-mem' && m.id !== undefined && m.usage) {
      pending.get(m.id)?.(m.usage);
      pending.delete(m.id);
    }
  });

  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      await Promise.race([exitPromise, sleep(15_000)]);
      if (!exited) {
        child.kill('SIGKILL');
        await exitPromise;
      }
    }
    for (const c of cleanups.reverse()) await c().catch((err) => console.error(`bench: cleanup failed: ${(err as Error).message}`));
    cleanups.length = 0;
  };

  // Ready when /health answers (migrations run first on a fresh database).
  const started = Date.now();
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`the homeserver exited during start-up (${JSON.stringify(exited)}):\n${output}`);
    }
    if (Date.now() - started > 120_000) {
      await stop();
      throw new Error(`the homeserver did not become healthy within 120 s:\n${output}`);
    }
    try {
      const res = await fetch(`${baseUrl}/health`);
      if (res.status === 200) break;
    } catch {
      /* not listening yet */
    }
    await sleep(100);
  }

  return {
    baseUrl,
    pid: child.pid!,
    database,
    memory: () =>
      new Promise<MemorySample>((resolve, reject) => {
        const id = nextId++;
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error('the homeserver did not answer the memory probe'));
        }, 10_000);
        pending.set(id, (m) => {
          clearTimeout(timer);
          resolve(m);
        });
        child.send({ type: 'hearth-bench-mem', id });
      }),
    stop,
  };
}
