import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, login, type TestServer } from './support/harness.js';
import { runAdmin } from '../src/cli/admin_commands.js';

const t = suite<{ s: TestServer }>('admin command line');

t.before(async (ctx) => {
  ctx.s = await startTestServer({ HEARTH_REGISTRATION: 'token' });
});
t.after(async (ctx) => {
  await ctx.s.close();
});

const V3 = '/_matrix/client/v3';
const whoami = (s: TestServer, token: string) => s.request('GET', `${V3}/account/whoami`, { token });

interface Run {
  code: number;
  out: string;
  err: string;
  /** Whether the command opened the services (usage errors must not). */
  opened: boolean;
}

/** Runs an admin command in-process against the test server's services. */
async function admin(s: TestServer, argv: string[], stdin = ''): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  let opened = false;
  const code = await runAdmin(
    argv,
    {
      services: async () => {
        opened = true;
        return s.hs.deps.services;
      },
      readStdin: async () => stdin,
    },
    { log: (l) => out.push(l), error: (l) => err.push(l) },
  );
  return { code, out: out.join('\n'), err: err.join('\n'), opened };
}

t('create-user: the account can log in; --admin makes a server admin; passwords are never printed', async ({ s }) => {
  const plain = await admin(s, ['create-user', 'carla', '--password', 'carla password 1']);
  assert.is(plain.code, 0, plain.err);
  assert.match(plain.out, '@carla:hearth.test');
  assert.not.match(plain.out + plain.err, 'carla password 1');
  const res = await login(s, 'carla', 'carla password 1');
  assert.is(res.status, 200);
  assert.is(res.body.user_id, '@carla:hearth.test');
  assert.is((await s.hs.deps.services.accounts.describe('@carla:hearth.test'))!.isAdmin, false);

  const boss = await admin(s, ['create-user', '@Boss:hearth.test', '--password-stdin', '--admin'], 'boss password 1\n');
  assert.is(boss.code, 0, boss.err);
  assert.match(boss.out, '@boss:hearth.test');
  assert.not.match(boss.out + boss.err, 'boss password 1');
  assert.is((await s.hs.deps.services.accounts.describe('@boss:hearth.test'))!.isAdmin, true);
  assert.is((await login(s, 'boss', 'boss password 1')).status, 200, 'the trailing newline of stdin is not part of it');
});

t('create-user failures exit 1 with a message', async ({ s }) => {
  await admin(s, ['create-user', 'taken', '--password', 'taken password']);
  const cases: [string[], string][] = [
    [['create-user', 'taken', '--password', 'another password'], 'M_USER_IN_USE'],
    [['create-user', 'weakling', '--password', 'short'], 'M_WEAK_PASSWORD'],
    [['create-user', 'bad name!', '--password', 'fine password'], 'M_INVALID_USERNAME'],
    [['create-user', '@someone:other.server', '--password', 'fine password'], 'M_INVALID_USERNAME'],
  ];
  for (const [argv, errcode] of cases) {
    const r = await admin(s, argv);
    assert.is(r.code, 1, argv.join(' '));
    assert.match(r.err, errcode);
  }
  const empty = await admin(s, ['create-user', 'nostdin', '--password-stdin'], '\n');
  assert.is(empty.code, 1);
  assert.is(await s.hs.deps.services.accounts.describe('@weakling:hearth.test'), undefined);
  assert.is(await s.hs.deps.services.accounts.describe('@nostdin:hearth.test'), undefined);
});

t('set-admin grants and revokes', async ({ s }) => {
  await admin(s, ['create-user', 'promoted', '--password', 'promoted password']);
  const on = await admin(s, ['set-admin', 'promoted', 'true']);
  assert.is(on.code, 0, on.err);
  assert.is((await s.hs.deps.services.accounts.describe('@promoted:hearth.test'))!.isAdmin, true);
  const off = await admin(s, ['set-admin', '@promoted:hearth.test', 'false']);
  assert.is(off.code, 0, off.err);
  assert.is((await s.hs.deps.services.accounts.describe('@promoted:hearth.test'))!.isAdmin, false);
  assert.is((await admin(s, ['set-admin', 'nosuchuser', 'true'])).code, 1);
  const bad = await admin(s, ['set-admin', 'promoted', 'maybe']);
  assert.is(bad.code, 2);
  assert.not.ok(bad.opened);
});

t('reset-password: old sessions end at once, the old password stops working, the new one logs in', async ({ s }) => {
  const reg = await admin(s, ['create-user', 'forgetful', '--password', 'forgetful old 1']);
  assert.is(reg.code, 0);
  const a = (await login(s, 'forgetful', 'forgetful old 1')).body;
  const b = (await login(s, 'forgetful', 'forgetful old 1', { refresh_token: true })).body;
  const r = await admin(s, ['reset-password', 'forgetful', '--password-stdin'], 'forgetful new 2\n');
  assert.is(r.code, 0, r.err);
  assert.not.match(r.out + r.err, 'forgetful new 2');
  for (const tok of [a.access_token, b.access_token]) {
    const res = await whoami(s, tok);
    assert.is(res.status, 401);
    assert.is(res.body.errcode, 'M_UNKNOWN_TOKEN');
  }
  assert.is((await s.request('POST', `${V3}/refresh`, { body: { refresh_token: b.refresh_token } })).status, 401);
  assert.is((await login(s, 'forgetful', 'forgetful old 1')).status, 403);
  assert.is((await login(s, 'forgetful', 'forgetful new 2')).status, 200);

  const noPassword = await admin(s, ['reset-password', 'forgetful']);
  assert.is(noPassword.code, 2);
  assert.not.ok(noPassword.opened);
  assert.is((await admin(s, ['reset-password', 'ghost', '--password', 'ghost password'])).code, 1);
  assert.match((await admin(s, ['reset-password', 'forgetful', '--password', 'tiny'])).err, 'M_WEAK_PASSWORD');
});

t('create-user without a password: no login until reset-password', async ({ s }) => {
  const r = await admin(s, ['create-user', 'later']);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, 'reset-password');
  assert.is((await login(s, 'later', 'anything at all')).status, 403);
  assert.is((await admin(s, ['reset-password', 'later', '--password', 'later password'])).code, 0);
  assert.is((await login(s, 'later', 'later password')).status, 200);
});

t('list-users: a table in user id order, --limit', async ({ s }) => {
  for (const name of ['lu-a', 'lu-b']) await admin(s, ['create-user', name, '--password', 'list password']);
  await admin(s, ['set-admin', 'lu-b', 'true']);
  const all = await admin(s, ['list-users', '--limit', '1000']);
  assert.is(all.code, 0, all.err);
  const lines = all.out.split('\n');
  assert.match(lines[0]!, /^USER\s+ADMIN\s+DEACTIVATED\s+PASSWORD\s+CREATED$/);
  const rows = lines.slice(1).map((l) => l.split(/\s+/));
  const ids = rows.map((r) => r[0]!);
  assert.equal(ids, [...ids].sort(), 'sorted by user id');
  assert.equal(rows.find((r) => r[0] === '@lu-a:hearth.test')!.slice(1, 4), ['no', 'no', 'yes']);
  assert.equal(rows.find((r) => r[0] === '@lu-b:hearth.test')!.slice(1, 4), ['yes', 'no', 'yes']);
  assert.ok(ids.length >= 2);
  const one = await admin(s, ['list-users', '--limit', '1']);
  assert.is(one.code, 0);
  assert.is(one.out.split('\n').length, 3, 'header, one user, and the note that there are more');
  assert.match(one.out, 'raise --limit');
  for (const bad of [['--limit', '0'], ['--limit', 'ten'], ['--limit']]) {
    const r = await admin(s, ['list-users', ...bad]);
    assert.is(r.code, 2, bad.join(' '));
    assert.not.ok(r.opened);
  }
});

/** Registration in HEARTH_REGISTRATION=token mode, all the UIA rounds. */
async function registerWithToken(s: TestServer, username: string, token: string) {
  const body = { username, password: `${username} password` };
  const first = await s.request('POST', `${V3}/register`, { body });
  assert.is(first.status, 401);
  assert.equal(first.body.flows, [{ stages: ['m.login.registration_token'] }]);
  return s.request('POST', `${V3}/register`, {
    body: { ...body, auth: { type: 'm.login.registration_token', token, session: first.body.session } },
  });
}

const validity = async (s: TestServer, token: string) =>
  (await s.request('GET', `/_matrix/client/v1/register/m.login.registration_token/validity?token=${encodeURIComponent(token)}`)).body;

t('create-registration-token: the printed token registers; --uses 1 works once', async ({ s }) => {
  const created = await admin(s, ['create-registration-token']);
  assert.is(created.code, 0, created.err);
  const token = created.out.trim();
  assert.match(token, /^[A-Za-z0-9._~-]{16}$/, 'only the token on stdout');
  assert.equal(await validity(s, token), { valid: true });
  assert.equal(await validity(s, 'no-such-token'), { valid: false });
  const ok = await registerWithToken(s, 'invited1', token);
  assert.is(ok.status, 200, JSON.stringify(ok.body));
  assert.is(ok.body.user_id, '@invited1:hearth.test');
  assert.is((await registerWithToken(s, 'invited2', token)).status, 200, 'no --uses: unlimited');

  const once = await admin(s, ['create-registration-token', '--token', 'just-once', '--uses', '1']);
  assert.is(once.code, 0, once.err);
  assert.is(once.out, 'just-once');
  assert.equal(await validity(s, 'just-once'), { valid: true });
  assert.is((await registerWithToken(s, 'single1', 'just-once')).status, 200);
  assert.equal(await validity(s, 'just-once'), { valid: false });
  const again = await registerWithToken(s, 'single2', 'just-once');
  assert.is(again.status, 401);
  assert.is(again.body.errcode, 'M_FORBIDDEN');
  assert.is(await s.hs.deps.services.accounts.describe('@single2:hearth.test'), undefined);
  const wrong = await registerWithToken(s, 'single3', 'never-issued');
  assert.is(wrong.status, 401);
  assert.is(wrong.body.errcode, 'M_FORBIDDEN');
});

t('create-registration-token options; list-registration-tokens masks tokens', async ({ s }) => {
  const before = Date.now();
  const r = await admin(s, ['create-registration-token', '--token', 'timed-token-xyz', '--uses', '3', '--expires-in-hours', '2']);
  assert.is(r.code, 0, r.err);
  const row = (await s.hs.deps.services.registrationTokens.list()).find((x) => x.token === 'timed-token-xyz')!;
  assert.is(row.uses_allowed, 3);
  const expiry = Number(row.expiry_ts);
  assert.ok(expiry >= before + 2 * 3_600_000 && expiry <= Date.now() + 2 * 3_600_000);
  assert.is((await admin(s, ['create-registration-token', '--token', 'timed-token-xyz'])).code, 1, 'duplicate');
  assert.is((await admin(s, ['create-registration-token', '--token', 'has space'])).code, 1);
  for (const bad of [['--uses', '0'], ['--uses', '1.5'], ['--expires-in-hours', '-1'], ['--expires-in-hours', 'soon']]) {
    const res = await admin(s, ['create-registration-token', ...bad]);
    assert.is(res.code, 2, bad.join(' '));
    assert.not.ok(res.opened);
  }

  const list = await admin(s, ['list-registration-tokens']);
  assert.is(list.code, 0, list.err);
  assert.match(list.out, /^TOKEN\s+USED\s+EXPIRES\s+STATE\s+CREATED$/m);
  assert.match(list.out, /^time…\s+0\/3\s+\S+Z\s+valid\s/m);
  assert.not.match(list.out, 'timed-token-xyz', 'tokens are not printed in full');
  assert.not.match(list.out, 'just-once');
  assert.match(list.out, /^jus…\s+1\/1\s+never\s+used up\s/m);
});

t('deactivate-user ends the sessions and the login; twice is an error', async ({ s }) => {
  await admin(s, ['create-user', 'doomed', '--password', 'doomed password']);
  const session = (await login(s, 'doomed', 'doomed password')).body;
  const r = await admin(s, ['deactivate-user', 'doomed']);
  assert.is(r.code, 0, r.err);
  assert.is((await whoami(s, session.access_token)).status, 401);
  assert.is((await login(s, 'doomed', 'doomed password')).status, 403);
  assert.is((await s.hs.deps.services.accounts.describe('@doomed:hearth.test'))!.deactivated, true);
  const again = await admin(s, ['deactivate-user', '@doomed:hearth.test']);
  assert.is(again.code, 1);
  assert.match(again.err, 'already deactivated');
  assert.is((await admin(s, ['deactivate-user', 'never-existed'])).code, 1);
  assert.is((await admin(s, ['reset-password', 'doomed', '--password', 'revived password'])).code, 1);
});

t('bad arguments: usage and exit 2, without touching the database', async ({ s }) => {
  const cases = [
    [],
    ['frobnicate'],
    ['create-user'],
    ['create-user', 'a', 'b'],
    ['create-user', 'x', '--password', 'p1 long enough', '--password-stdin'],
    ['create-user', 'x', '--colour'],
    ['list-users', 'extra'],
    ['deactivate-user'],
    ['set-admin', 'someone'],
  ];
  for (const argv of cases) {
    const r = await admin(s, argv);
    assert.is(r.code, 2, argv.join(' '));
    assert.match(r.err, 'usage:', argv.join(' '));
    assert.not.ok(r.opened, argv.join(' '));
  }
  const help = await admin(s, ['--help']);
  assert.is(help.code, 0);
  assert.match(help.out, 'create-registration-token');
});

/** The real entry point, as `npm run admin` starts it. */
function spawnAdmin(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const childEnv: Record<string, string | undefined> = { ...process.env, NODE_OPTIONS: undefined, ...env };
  for (const k of Object.keys(childEnv)) if (k.startsWith('HEARTH_') && !(k in env)) delete childEnv[k];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--conditions=source', 'homeserver/src/cli/admin.ts', ...args],
      { cwd: root, env: childEnv, timeout: 120_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
  });
}

t('the real process: list-users against the test database, and exit 2 on bad arguments', async ({ s }) => {
  await admin(s, ['create-user', 'spawned', '--password', 'spawned password']);
  const env = { HEARTH_SERVER_NAME: 'hearth.test', HEARTH_DATABASE_URL: s.databaseUrl, HEARTH_DATA_DIR: '/tmp/hearth-test-unused' };
  const res = await spawnAdmin(['list-users'], env);
  assert.is(res.code, 0, res.stderr);
  assert.match(res.stdout, /^USER\s+ADMIN/m);
  assert.match(res.stdout, /^@spawned:hearth\.test\s+no\s+no\s+yes\s/m);
  const bad = await spawnAdmin(['list-users', '--limit', 'lots'], env);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, 'usage:');
});

t.run();
