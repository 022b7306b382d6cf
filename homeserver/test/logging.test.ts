// What the homeserver writes to its log: one line per request (method, path, status), and never a
// password, access token, refresh token, registration token or client_secret, wherever the client
// put it (body, Authorization header, query string in any spelling).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { redactUrl } from '../src/core/logger.js';
import { startTestServer, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';

interface LogLine {
  msg: string;
  level: number;
  method?: string;
  url?: string;
  status?: number;
  user?: string;
  [k: string]: unknown;
}

const t = suite<{ s: TestServer; lines: string[] }>('logging: request lines, no secrets');

beforeAll(t, async (ctx) => {
  ctx.lines = [];
  const lines = ctx.lines;
  ctx.s = await startTestServer(
    { HEARTH_LOG_LEVEL: 'trace' },
    { logDestination: { write: (chunk: string) => void lines.push(chunk) } },
  );
});
t.after(async (ctx) => {
  await ctx.s?.close();
});

const V3 = '/_matrix/client/v3';

t('a whole session leaves request lines and no secret in the log', async ({ s, lines }) => {
  const password = 'Sup3r-Secret-Passw0rd';
  const newPassword = 'An0ther-Secret-Passw0rd';
  const clientSecret = 'clientSecretValue123';
  const regToken = 'registrationTokenValue9';
  const secrets: Record<string, string> = { password, newPassword, clientSecret, regToken };

  // Register (UIA round trip), asking for a refresh token; a client_secret rides along in the body.
  const first = await s.request('POST', `${V3}/register`, { body: { username: 'logged', password, client_secret: clientSecret } });
  assert.is(first.status, 401);
  const reg = await s.request('POST', `${V3}/register`, {
    body: { username: 'logged', password, refresh_token: true, auth: { type: 'm.login.dummy', session: first.body.session } },
  });
  assert.is(reg.status, 200);
  secrets.registerAccess = reg.body.access_token;
  secrets.registerRefresh = reg.body.refresh_token;

  // A wrong password and a right one.
  const bad = await s.request('POST', `${V3}/login`, {
    body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'logged' }, password: 'Wr0ng-Secret-Guess' },
  });
  assert.is(bad.status, 403);
  secrets.wrongPassword = 'Wr0ng-Secret-Guess';
  const login = await s.request('POST', `${V3}/login`, {
    body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: 'logged' }, password, refresh_token: true },
  });
  assert.is(login.status, 200);
  secrets.loginAccess = login.body.access_token;
  secrets.loginRefresh = login.body.refresh_token;

  // Refresh.
  const refreshed = await s.request('POST', `${V3}/refresh`, { body: { refresh_token: login.body.refresh_token } });
  assert.is(refreshed.status, 200);
  secrets.refreshedAccess = refreshed.body.access_token;
  secrets.refreshedRefresh = refreshed.body.refresh_token;

  // The access token in the query string, in the usual spelling and in percent-encoded ones
  // (the server decodes the parameter name, so these authenticate too).
  const byQuery = await s.request('GET', `${V3}/account/whoami?access_token=${refreshed.body.access_token}`);
  assert.is(byQuery.status, 200);
  const encodedName = await s.request('GET', `${V3}/account/whoami?_=1&access%5Ftoken=${refreshed.body.access_token}`);
  assert.is(encodedName.status, 200, 'an encoded parameter name still authenticates');
  const encodedValue = await s.request('GET', `${V3}/account/whoami?access_token=${encodeURIComponent(refreshed.body.access_token).replace(/\./g, '%2E')}`);
  assert.is(encodedValue.status, 200);
  // …and in the header.
  assert.is((await s.request('GET', `${V3}/account/whoami`, { token: refreshed.body.access_token })).status, 200);

  // Secrets in query strings of other endpoints (registration token check, a client_secret, a refresh token).
  await s.request('GET', `/_matrix/client/v1/register/m.login.registration_token/validity?token=${regToken}`);
  await s.request('GET', `${V3}/no/such/endpoint?client_secret=${clientSecret}&refresh_token=${login.body.refresh_token}`);

  // A password change with the old password in the UIA dict.
  const pwFirst = await s.request('POST', `${V3}/account/password`, { token: refreshed.body.access_token, body: { new_password: newPassword } });
  assert.is(pwFirst.status, 401);
  const pw = await s.request('POST', `${V3}/account/password`, {
    token: refreshed.body.access_token,
    body: {
      new_password: newPassword,
      logout_devices: false,
      auth: { type: 'm.login.password', session: pwFirst.body.session, identifier: { type: 'm.id.user', user: 'logged' }, password },
    },
  });
  assert.is(pw.status, 200, JSON.stringify(pw.body));

  // Logout with the token in the query.
  assert.is((await s.request('POST', `${V3}/logout?access_token=${refreshed.body.access_token}`, { body: {} })).status, 200);

  const text = lines.join('');
  assert.ok(text.length > 0, 'something was logged');

  // ---- no secret anywhere, in any form a log might carry it ----
  for (const [name, value] of Object.entries(secrets)) {
    assert.type(value, 'string', name);
    for (const form of new Set([value, encodeURIComponent(value), JSON.stringify(value).slice(1, -1)])) {
      assert.not.ok(text.includes(form), `the log contains ${name}`);
    }
    // A JWT's signature alone would be enough to recognise a leaked token.
    const sig = value.split('.')[2];
    if (sig) assert.not.ok(text.includes(sig), `the log contains the signature of ${name}`);
  }

  // ---- request lines are there, one per request, with method, path and status ----
  const parsed: LogLine[] = text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as LogLine);
  const requests = parsed.filter((l) => l.msg === 'request');
  assert.is(requests.length, 14, `one line per request: ${requests.map((r) => `${r.method} ${r.url}`).join(', ')}`);
  for (const r of requests) {
    assert.type(r.method, 'string');
    assert.type(r.url, 'string');
    assert.type(r.status, 'number');
    assert.type(r.ms, 'number');
  }
  const find = (method: string, prefix: string) => requests.filter((r) => r.method === method && r.url!.startsWith(prefix));
  assert.equal(find('POST', `${V3}/register`).map((r) => r.status), [401, 200]);
  assert.equal(find('POST', `${V3}/login`).map((r) => r.status), [403, 200]);
  assert.equal(find('POST', `${V3}/refresh`).map((r) => r.status), [200]);
  const whoamis = find('GET', `${V3}/account/whoami`);
  assert.is(whoamis.length, 4);
  assert.ok(whoamis.every((r) => r.status === 200 && r.user === '@logged:hearth.test'), 'authenticated lines name the user');
  assert.is(whoamis[0]!.url, `${V3}/account/whoami?access_token=[redacted]`);
  assert.ok(whoamis[1]!.url!.includes('[redacted]'), whoamis[1]!.url);
  const validity = find('GET', '/_matrix/client/v1/register/m.login.registration_token/validity')[0]!;
  assert.is(validity.url, '/_matrix/client/v1/register/m.login.registration_token/validity?token=[redacted]');
  const unknown = find('GET', `${V3}/no/such/endpoint`)[0]!;
  assert.is(unknown.status, 404);
  assert.is(unknown.url, `${V3}/no/such/endpoint?client_secret=[redacted]&refresh_token=[redacted]`);
  assert.equal(find('POST', `${V3}/account/password`).map((r) => r.status), [401, 200]);
  assert.equal(find('POST', `${V3}/logout`).map((r) => r.url), [`${V3}/logout?access_token=[redacted]`]);
});

t('the logger itself blanks secret fields wherever they are nested', async ({ s, lines }) => {
  lines.length = 0;
  const logger = s.hs.deps.logger;
  logger.info(
    {
      password: 'p-LEAK-1',
      body: { password: 'p-LEAK-2', new_password: 'p-LEAK-3', client_secret: 'p-LEAK-4', access_token: 'p-LEAK-5', refresh_token: 'p-LEAK-6' },
      req: { headers: { authorization: 'Bearer p-LEAK-7' } },
      headers: { authorization: 'Bearer p-LEAK-8' },
      token: 'p-LEAK-9',
    },
    'an object with secrets',
  );
  const text = lines.join('');
  assert.ok(text.includes('an object with secrets'));
  assert.not.match(text, /p-LEAK-\d/, text);
  assert.ok(text.includes('[redacted]'));
});

t('redactUrl blanks secret parameters however they are spelled, and nothing else', () => {
  const cases: [string, string][] = [
    ['/p', '/p'],
    ['/p?a=1&b=2', '/p?a=1&b=2'],
    ['/p?access_token=SECRET', '/p?access_token=[redacted]'],
    ['/p?a=1&access_token=SECRET&b=2', '/p?a=1&access_token=[redacted]&b=2'],
    ['/p?access_token=S1&access_token=S2', '/p?access_token=[redacted]&access_token=[redacted]'],
    ['/p?access%5Ftoken=SECRET', '/p?access%5Ftoken=[redacted]'],
    ['/p?access%5ftoken=SECRET', '/p?access%5ftoken=[redacted]'],
    ['/p?%61ccess_token=SECRET', '/p?%61ccess_token=[redacted]'],
    ['/p?ACCESS_TOKEN=SECRET', '/p?ACCESS_TOKEN=[redacted]'],
    ['/p?token=SECRET&client_secret=SECRET&refresh_token=SECRET', '/p?token=[redacted]&client_secret=[redacted]&refresh_token=[redacted]'],
    ['/p?my_access_token=public&tokens=public', '/p?my_access_token=public&tokens=public'],
    ['/p?access_token', '/p?access_token=[redacted]'],
    ['/p?%E0%A4%A=x', '/p?%E0%A4%A=x'],
  ];
  for (const [url, expected] of cases) assert.is(redactUrl(url), expected, url);
});

t.run();
