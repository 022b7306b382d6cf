// The real homeserver process (src/main.ts) on the embedded PGlite database: start-up, health,
// data surviving a SIGTERM restart and a SIGKILL (stale pid lock taken over), the single-process
// lock on the data dir, and bad settings failing fast with exit code 2.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { beforeAll } from './support/hooks.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const START_TIMEOUT_MS = 90_000;
const EXIT_TIMEOUT_MS = 30_000;
const PW = 'embedded password';

/** A port that was free a moment ago (the server cannot report a port it picked itself). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

interface Proc {
  child: ChildProcess;
  out: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const started: ChildProcess[] = [];

/** Spawns `node --import tsx --conditions=source homeserver/src/main.ts` with only the given HEARTH_* settings. */
function spawnServer(settings: Record<string, string>): Proc {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    // The test runner's own settings (HEARTH_TEST_*, NODE_OPTIONS with tsx) must not leak in.
    if (v !== undefined && !k.startsWith('HEARTH_') && k !== 'NODE_OPTIONS') env[k] = v;
  }
  Object.assign(env, settings);
  const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=source', 'homeserver/src/main.ts'], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  let text = '';
  child.stdout!.on('data', (c: Buffer) => (text += c.toString('utf8')));
  child.stderr!.on('data', (c: Buffer) => (text += c.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, out: () => text, exited };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what()}`)), ms);
    }),
  ]);
}

/** Resolves once stdout says "is running"; rejects if the process exits first. */
async function waitRunning(p: Proc): Promise<void> {
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (p.out().includes('is running')) {
          p.child.stdout!.off('data', check);
          resolve();
        }
      };
      p.child.stdout!.on('data', check);
      check();
      void p.exited.then(({ code, signal }) => reject(new Error(`exited (${code ?? signal}) before running:\n${p.out()}`)));
    }),
    START_TIMEOUT_MS,
    () => `waiting for "is running":\n${p.out()}`,
  );
}

async function startServer(dataDir: string): Promise<{ proc: Proc; base: string }> {
  const port = await freePort();
  const proc = spawnServer({
    HEARTH_SERVER_NAME: 'embedded.test',
    HEARTH_PORT: String(port),
    HEARTH_DATA_DIR: dataDir,
    HEARTH_REGISTRATION: 'open',
    HEARTH_SCRYPT_COST: '1024',
    HEARTH_LOG_LEVEL: 'warn',
  });
  await waitRunning(proc);
  return { proc, base: `http://127.0.0.1:${port}` };
}

async function stop(proc: Proc, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  proc.child.kill(signal);
  return withTimeout(proc.exited, EXIT_TIMEOUT_MS, () => `waiting for exit after ${signal}:\n${proc.out()}`);
}

async function call(base: string, method: string, p: string, body?: unknown, token?: string): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${base}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function register(base: string, username: string): Promise<{ user_id: string; access_token: string }> {
  const first = await call(base, 'POST', '/_matrix/client/v3/register', { username, password: PW });
  assert.is(first.status, 401, JSON.stringify(first.body));
  const done = await call(base, 'POST', '/_matrix/client/v3/register', {
    username,
    password: PW,
    auth: { type: 'm.login.dummy', session: first.body.session },
  });
  assert.is(done.status, 200, JSON.stringify(done.body));
  return done.body;
}

const loginAs = (base: string, user: string, password = PW) =>
  call(base, 'POST', '/_matrix/client/v3/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password });

const t = suite<{ dataDir: string }>('embedded database: the real process');

beforeAll(t, (ctx) => {
  ctx.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-embedded-'));
});
t.after((ctx) => {
  for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (ctx.dataDir) fs.rmSync(ctx.dataDir, { recursive: true, force: true });
});

t('starts without HEARTH_DATABASE_URL, serves, holds the data-dir lock, and keeps data across SIGTERM and SIGKILL', async ({ dataDir }) => {
  const pidFile = path.join(dataDir, 'homeserver.pid');

  // ---- first start ----
  const a = await startServer(dataDir);
  assert.ok(fs.existsSync(path.join(dataDir, 'pglite')), 'the database lives under the data dir');
  assert.is(fs.readFileSync(pidFile, 'utf8').trim(), String(a.proc.child.pid), 'the lock names the running process');
  const health = await call(a.base, 'GET', '/health');
  assert.is(health.status, 200);
  assert.equal(health.body, { status: 'ok', checks: { database: 'ok' } });
  const reg = await register(a.base, 'keeper');
  assert.is(reg.user_id, '@keeper:embedded.test');
  const me = await call(a.base, 'GET', '/_matrix/client/v3/account/whoami', undefined, reg.access_token);
  assert.is(me.status, 200);
  assert.is(me.body.user_id, '@keeper:embedded.test');

  // ---- a second process on the same data dir is refused while the first runs ----
  const intruder = spawnServer({
    HEARTH_SERVER_NAME: 'embedded.test',
    HEARTH_PORT: String(await freePort()),
    HEARTH_DATA_DIR: dataDir,
    HEARTH_REGISTRATION: 'open',
  });
  const refused = await withTimeout(intruder.exited, START_TIMEOUT_MS, intruder.out);
  assert.is.not(refused.code, 0, `the second process must fail:\n${intruder.out()}`);
  assert.is.not(refused.code, null);
  assert.match(intruder.out(), `in use by process ${a.proc.child.pid}`);
  assert.match(intruder.out(), dataDir, 'the message names the locked data dir');
  assert.match(intruder.out(), pidFile, 'and the lock file');
  assert.not.match(intruder.out(), 'is running');
  // …and it left the first one's lock and database alone.
  assert.is(fs.readFileSync(pidFile, 'utf8').trim(), String(a.proc.child.pid));
  assert.is((await call(a.base, 'GET', '/_matrix/client/v3/account/whoami', undefined, reg.access_token)).status, 200);

  // ---- SIGTERM: a clean exit that releases the lock ----
  const termed = await stop(a.proc, 'SIGTERM');
  assert.equal(termed, { code: 0, signal: null }, a.proc.out());
  assert.not.ok(fs.existsSync(pidFile), 'the lock is released on a clean stop');

  // ---- restart: the account, its password and even the old access token survived ----
  const b = await startServer(dataDir);
  const again = await loginAs(b.base, 'keeper');
  assert.is(again.status, 200, JSON.stringify(again.body));
  assert.is(again.body.user_id, '@keeper:embedded.test');
  assert.is((await loginAs(b.base, 'keeper', 'not the password')).status, 403);
  const old = await call(b.base, 'GET', '/_matrix/client/v3/account/whoami', undefined, reg.access_token);
  assert.is(old.status, 200, 'sessions and the token-signing key live in the database');
  const late = await register(b.base, 'latecomer');

  // ---- SIGKILL: no clean-up at all; the stale lock must be taken over ----
  const killed = await stop(b.proc, 'SIGKILL');
  assert.is(killed.signal, 'SIGKILL');
  assert.is(fs.readFileSync(pidFile, 'utf8').trim(), String(b.proc.child.pid), 'the stale lock is still there');

  const c = await startServer(dataDir);
  assert.is(fs.readFileSync(pidFile, 'utf8').trim(), String(c.proc.child.pid), 'the new process took the lock over');
  assert.is((await loginAs(c.base, 'keeper')).status, 200, 'data from before the first restart');
  assert.is((await loginAs(c.base, 'latecomer')).status, 200, 'data committed just before the kill');
  assert.is((await call(c.base, 'GET', '/_matrix/client/v3/account/whoami', undefined, late.access_token)).status, 200);
  assert.is((await call(c.base, 'GET', '/health')).status, 200);
  assert.equal(await stop(c.proc, 'SIGTERM'), { code: 0, signal: null }, c.proc.out());
  assert.not.ok(fs.existsSync(pidFile));
});

for (const [name, settings, setting] of [
  ['an unknown registration mode', { HEARTH_SERVER_NAME: 'embedded.test', HEARTH_REGISTRATION: 'bogus' }, 'HEARTH_REGISTRATION'],
  ['a port that is not a number', { HEARTH_SERVER_NAME: 'embedded.test', HEARTH_PORT: 'abc' }, 'HEARTH_PORT'],
  ['a missing server name', { HEARTH_REGISTRATION: 'open' }, 'HEARTH_SERVER_NAME'],
] as const) {
  t(`${name} exits with code 2 naming ${setting}`, async ({ dataDir }) => {
    const badDir = path.join(dataDir, `bad-${setting}`);
    const p = spawnServer({ HEARTH_DATA_DIR: badDir, ...settings });
    const exit = await withTimeout(p.exited, START_TIMEOUT_MS, p.out);
    assert.equal(exit, { code: 2, signal: null }, p.out());
    assert.match(p.out(), `hearth: bad setting ${setting}`);
    assert.not.match(p.out(), 'is running');
    assert.not.ok(fs.existsSync(badDir), 'nothing was created before the settings were checked');
  });
}

t.run();
