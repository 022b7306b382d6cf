// A table of hostile and malformed requests. Every row names the exact status and errcode it
// must get (and every error body carries an `error` string); a last check proves that no row,
// whatever else happened, was answered with a 5xx.
import http from 'node:http';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, registerUser, login, type RequestOptions, type Response, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';

const MAX_BODY = 65536;

interface Ctx {
  s: TestServer;
  closed: TestServer;
  baseUrl: string;
}

interface Row {
  name: string;
  method?: string;
  path?: string;
  opts?: RequestOptions;
  /** Builds the request at run time (e.g. with a fresh UIA session). */
  prepare?: (c: Ctx) => Promise<RequestOptions>;
  /** Sends the request itself (raw sockets, another server). */
  send?: (c: Ctx) => Promise<Response>;
  status: number;
  /** Expected errcode; omitted for success rows. */
  errcode?: string;
  check?: (res: Response, c: Ctx) => void | Promise<void>;
}

const V3 = '/_matrix/client/v3';
const LOGIN = `${V3}/login`;
const REGISTER = `${V3}/register`;
const AVAILABLE = `${V3}/register/available`;
const WHOAMI = `${V3}/account/whoami`;
const PW = 'a fine password';
const SERVER = 'hearth.test';

const loginBody = (extra: Record<string, unknown> = {}) => ({
  type: 'm.login.password',
  identifier: { type: 'm.id.user', user: 'taken' },
  password: PW,
  ...extra,
});

/** A fresh UIA session for POST /register (the first, auth-less call). */
async function uiaSession(s: TestServer, username: string): Promise<string> {
  const first = await s.request('POST', REGISTER, { body: { username, password: PW } });
  assert.is(first.status, 401, `starting UIA: ${JSON.stringify(first.body)}`);
  return first.body.session as string;
}

/** A request over a real socket, for what light-my-request cannot do (chunked bodies, lying lengths). */
function rawHttp(
  baseUrl: string,
  method: string,
  path: string,
  headers: Record<string, string | number>,
  write: (req: http.ClientRequest) => void,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${baseUrl}${path}`, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = text ? JSON.parse(text) : undefined;
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode!, body, headers: res.headers });
        req.destroy();
      });
    });
    // The server may answer (and close) before we finish sending: that is the point of some rows.
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') reject(err);
    });
    write(req);
  });
}

const bigJson = (bytes: number) => {
  // {"type":"m.login.password","pad":"xxxx…"} of exactly `bytes` bytes
  const head = '{"type":"m.login.password","pad":"';
  const tail = '"}';
  return head + 'x'.repeat(bytes - head.length - tail.length) + tail;
};

const ROWS: Row[] = [
  // ---- body: not JSON, not an object, not UTF-8 ----
  { name: 'malformed JSON', method: 'POST', path: LOGIN, opts: { rawBody: '{"type": "m.login.password",' }, status: 400, errcode: 'M_NOT_JSON' },
  { name: 'trailing garbage after JSON', method: 'POST', path: LOGIN, opts: { rawBody: '{} {}' }, status: 400, errcode: 'M_NOT_JSON' },
  { name: 'JSON array', method: 'POST', path: LOGIN, opts: { rawBody: '[{"type":"m.login.password"}]' }, status: 400, errcode: 'M_NOT_JSON' },
  { name: 'JSON string', method: 'POST', path: LOGIN, opts: { rawBody: '"m.login.password"' }, status: 400, errcode: 'M_NOT_JSON' },
  { name: 'JSON number', method: 'POST', path: LOGIN, opts: { rawBody: '42' }, status: 400, errcode: 'M_NOT_JSON' },
  { name: 'JSON null', method: 'POST', path: LOGIN, opts: { rawBody: 'null' }, status: 400, errcode: 'M_NOT_JSON' },
  { name: 'JSON true', method: 'POST', path: LOGIN, opts: { rawBody: 'true' }, status: 400, errcode: 'M_NOT_JSON' },
  { name: 'unescaped control character in a string', method: 'POST', path: LOGIN, opts: { rawBody: '{"type":"m.login\u0001"}' }, status: 400, errcode: 'M_NOT_JSON' },
  {
    name: 'invalid UTF-8 bytes (0xFF 0xFE)',
    method: 'POST',
    path: LOGIN,
    opts: { rawBody: Buffer.concat([Buffer.from('{"type":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]) },
    status: 400,
    errcode: 'M_NOT_JSON',
  },
  {
    name: 'overlong UTF-8 encoding of "/" (0xC0 0xAF)',
    method: 'POST',
    path: LOGIN,
    opts: { rawBody: Buffer.concat([Buffer.from('{"type":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]) },
    status: 400,
    errcode: 'M_NOT_JSON',
  },
  {
    name: 'UTF-8-encoded lone surrogate (0xED 0xA0 0x80)',
    method: 'POST',
    path: LOGIN,
    opts: { rawBody: Buffer.concat([Buffer.from('{"type":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]) },
    status: 400,
    errcode: 'M_NOT_JSON',
  },
  { name: 'deeply nested arrays', method: 'POST', path: LOGIN, opts: { rawBody: '['.repeat(20000) + ']'.repeat(20000) }, status: 400, errcode: 'M_NOT_JSON' },
  {
    name: 'deeply nested object is still an object (then a missing field)',
    method: 'POST',
    path: LOGIN,
    opts: { rawBody: '{"a":'.repeat(5000) + '{}' + '}'.repeat(5000) },
    status: 400,
    errcode: 'M_MISSING_PARAM',
  },
  { name: 'empty body is {} (then a missing field)', method: 'POST', path: LOGIN, opts: { rawBody: '' }, status: 400, errcode: 'M_MISSING_PARAM' },

  // ---- wrong types ----
  { name: 'login: password is a number', method: 'POST', path: LOGIN, opts: { body: loginBody({ password: 12345678 }) }, status: 400, errcode: 'M_BAD_JSON' },
  { name: 'login: type is a number', method: 'POST', path: LOGIN, opts: { body: loginBody({ type: 1 }) }, status: 400, errcode: 'M_BAD_JSON' },
  { name: 'login: identifier is a string', method: 'POST', path: LOGIN, opts: { body: loginBody({ identifier: 'taken' }) }, status: 400, errcode: 'M_BAD_JSON' },
  {
    name: 'login: identifier.user is an array',
    method: 'POST',
    path: LOGIN,
    opts: { body: loginBody({ identifier: { type: 'm.id.user', user: ['taken'] } }) },
    status: 400,
    errcode: 'M_BAD_JSON',
  },
  { name: 'login: refresh_token is "yes"', method: 'POST', path: LOGIN, opts: { body: loginBody({ refresh_token: 'yes' }) }, status: 400, errcode: 'M_BAD_JSON' },
  { name: 'login: device_id is an object', method: 'POST', path: LOGIN, opts: { body: loginBody({ device_id: {} }) }, status: 400, errcode: 'M_BAD_JSON' },
  { name: 'register: username is a number', method: 'POST', path: REGISTER, opts: { body: { username: 42, password: PW } }, status: 400, errcode: 'M_BAD_JSON' },
  { name: 'register: password is an object', method: 'POST', path: REGISTER, opts: { body: { username: 'typeless', password: {} } }, status: 400, errcode: 'M_BAD_JSON' },
  {
    name: 'register: inhibit_login is "true"',
    method: 'POST',
    path: REGISTER,
    opts: { body: { username: 'typeless', password: PW, inhibit_login: 'true' } },
    status: 400,
    errcode: 'M_BAD_JSON',
  },
  { name: 'register: auth is a string', method: 'POST', path: REGISTER, opts: { body: { username: 'typeless', password: PW, auth: 'dummy' } }, status: 400, errcode: 'M_BAD_JSON' },
  { name: 'refresh: refresh_token is a number', method: 'POST', path: `${V3}/refresh`, opts: { body: { refresh_token: 5 } }, status: 400, errcode: 'M_BAD_JSON' },

  // ---- missing fields ----
  { name: 'login: no type', method: 'POST', path: LOGIN, opts: { body: loginBody({ type: undefined }) }, status: 400, errcode: 'M_MISSING_PARAM' },
  { name: 'login: no identifier and no user', method: 'POST', path: LOGIN, opts: { body: loginBody({ identifier: undefined }) }, status: 400, errcode: 'M_MISSING_PARAM' },
  { name: 'login: no password', method: 'POST', path: LOGIN, opts: { body: loginBody({ password: undefined }) }, status: 400, errcode: 'M_MISSING_PARAM' },
  { name: 'login: identifier.user null', method: 'POST', path: LOGIN, opts: { body: loginBody({ identifier: { type: 'm.id.user', user: null } }) }, status: 400, errcode: 'M_MISSING_PARAM' },
  { name: 'register: no password', method: 'POST', path: REGISTER, opts: { body: { username: 'nopassword' } }, status: 400, errcode: 'M_MISSING_PARAM' },
  { name: 'refresh: no refresh_token', method: 'POST', path: `${V3}/refresh`, opts: { body: {} }, status: 400, errcode: 'M_MISSING_PARAM' },
  { name: 'register/available: no username', method: 'GET', path: AVAILABLE, status: 400, errcode: 'M_MISSING_PARAM' },
  { name: 'register/available: empty username', method: 'GET', path: `${AVAILABLE}?username=`, status: 400, errcode: 'M_MISSING_PARAM' },

  // ---- size limit (HEARTH_MAX_JSON_BODY_BYTES) ----
  {
    name: 'body of exactly the limit is read (then a missing field)',
    method: 'POST',
    path: LOGIN,
    opts: { rawBody: bigJson(MAX_BODY) },
    status: 400,
    errcode: 'M_MISSING_PARAM',
  },
  { name: 'body one byte over the limit, with Content-Length', method: 'POST', path: LOGIN, opts: { rawBody: bigJson(MAX_BODY + 1) }, status: 413, errcode: 'M_TOO_LARGE' },
  {
    name: 'body over the limit, chunked (no Content-Length)',
    send: (c) =>
      rawHttp(c.baseUrl, 'POST', LOGIN, { 'content-type': 'application/json' }, (req) => {
        const body = bigJson(MAX_BODY + 1000);
        for (let i = 0; i < body.length; i += 8192) req.write(body.slice(i, i + 8192));
        req.end();
      }),
    status: 413,
    errcode: 'M_TOO_LARGE',
    check: (res) => assert.is(res.headers['access-control-allow-origin'], '*'),
  },
  {
    name: 'a huge declared Content-Length is refused before the body is read',
    send: (c) =>
      rawHttp(c.baseUrl, 'POST', LOGIN, { 'content-type': 'application/json', 'content-length': 500 * 1024 * 1024 }, (req) => {
        // Send a few bytes and never the rest: the answer must not wait for 500 MB.
        req.write('{"type":');
      }),
    status: 413,
    errcode: 'M_TOO_LARGE',
  },

  // ---- usernames ----
  { name: 'username with RTL override', method: 'POST', path: REGISTER, opts: { body: { username: '\u202eevil', password: PW } }, status: 400, errcode: 'M_INVALID_USERNAME' },
  { name: 'username with a zero-width space', method: 'POST', path: REGISTER, opts: { body: { username: 'ali\u200bce', password: PW } }, status: 400, errcode: 'M_INVALID_USERNAME' },
  { name: 'username with a zero-width joiner', method: 'POST', path: REGISTER, opts: { body: { username: 'bo\u200db', password: PW } }, status: 400, errcode: 'M_INVALID_USERNAME' },
  { name: 'username with an emoji', method: 'POST', path: REGISTER, opts: { body: { username: 'fire\u{1f525}', password: PW } }, status: 400, errcode: 'M_INVALID_USERNAME' },
  { name: 'username in fullwidth letters', method: 'POST', path: REGISTER, opts: { body: { username: '\uff41\uff4c\uff49\uff43\uff45', password: PW } }, status: 400, errcode: 'M_INVALID_USERNAME' },
  { name: 'username with a Cyrillic homoglyph', method: 'POST', path: REGISTER, opts: { body: { username: '\u0430lice', password: PW } }, status: 400, errcode: 'M_INVALID_USERNAME' },
  { name: 'username with a combining accent', method: 'POST', path: REGISTER, opts: { body: { username: 'rene\u0301', password: PW } }, status: 400, errcode: 'M_INVALID_USERNAME' },
  { name: 'username with a space', method: 'POST', path: REGISTER, opts: { body: { username: 'al ice', password: PW } }, status: 400, errcode: 'M_INVALID_USERNAME' },
  { name: 'username that is a full user id', method: 'POST', path: REGISTER, opts: { body: { username: '@alice:hearth.test', password: PW } }, status: 400, errcode: 'M_INVALID_USERNAME' },
  { name: 'username with NUL', method: 'POST', path: REGISTER, opts: { body: { username: 'al\u0000ice', password: PW } }, status: 400, errcode: 'M_INVALID_USERNAME' },
  { name: 'empty username', method: 'POST', path: REGISTER, opts: { body: { username: '', password: PW } }, status: 400, errcode: 'M_INVALID_USERNAME' },
  {
    name: 'user id of 256 bytes (localpart 243)',
    method: 'POST',
    path: REGISTER,
    opts: { body: { username: 'a'.repeat(255 - 2 - SERVER.length + 1), password: PW } },
    status: 400,
    errcode: 'M_INVALID_USERNAME',
  },
  { name: 'a 2000-character username', method: 'POST', path: REGISTER, opts: { body: { username: 'b'.repeat(2000), password: PW } }, status: 400, errcode: 'M_INVALID_USERNAME' },
  {
    name: 'register/available: user id of 256 bytes',
    method: 'GET',
    path: `${AVAILABLE}?username=${'a'.repeat(255 - 2 - SERVER.length + 1)}`,
    status: 400,
    errcode: 'M_INVALID_USERNAME',
  },
  {
    name: 'register/available: user id of exactly 255 bytes is fine',
    method: 'GET',
    path: `${AVAILABLE}?username=${'a'.repeat(255 - 2 - SERVER.length)}`,
    status: 200,
    check: (res) => assert.equal(res.body, { available: true }),
  },
  { name: 'register/available: 600 characters', method: 'GET', path: `${AVAILABLE}?username=${'c'.repeat(600)}`, status: 400, errcode: 'M_INVALID_USERNAME' },
  { name: 'register/available: RTL override', method: 'GET', path: `${AVAILABLE}?username=%E2%80%AEevil`, status: 400, errcode: 'M_INVALID_USERNAME' },
  { name: 'register/available: NUL', method: 'GET', path: `${AVAILABLE}?username=a%00b`, status: 400, errcode: 'M_INVALID_USERNAME' },
  { name: 'register/available: undecodable percent-encoding', method: 'GET', path: `${AVAILABLE}?username=%E0%A4%A`, status: 400, errcode: 'M_INVALID_USERNAME' },

  // ---- passwords ----
  { name: 'password shorter than the minimum (8)', method: 'POST', path: REGISTER, opts: { body: { username: 'weakling', password: 'short12' } }, status: 400, errcode: 'M_WEAK_PASSWORD' },
  { name: 'empty password', method: 'POST', path: REGISTER, opts: { body: { username: 'weakling', password: '' } }, status: 400, errcode: 'M_WEAK_PASSWORD' },

  // ---- strings PostgreSQL cannot store (NUL) are the client's error, not a 500 ----
  {
    name: 'login: NUL in the user name',
    method: 'POST',
    path: LOGIN,
    opts: { body: loginBody({ identifier: { type: 'm.id.user', user: 'tak\u0000en' } }) },
    status: 400,
    errcode: 'M_INVALID_PARAM',
  },
  { name: 'login: NUL in device_id', method: 'POST', path: LOGIN, opts: { body: loginBody({ device_id: 'DEV\u0000' }) }, status: 400, errcode: 'M_INVALID_PARAM' },
  {
    name: 'login: NUL in initial_device_display_name',
    method: 'POST',
    path: LOGIN,
    opts: { body: loginBody({ initial_device_display_name: 'phone\u0000' }) },
    status: 400,
    errcode: 'M_INVALID_PARAM',
  },
  {
    name: 'login: a lone surrogate in the user name is just a wrong user',
    method: 'POST',
    path: LOGIN,
    opts: { rawBody: '{"type":"m.login.password","identifier":{"type":"m.id.user","user":"\\ud800"},"password":"whatever1"}' },
    status: 403,
    errcode: 'M_FORBIDDEN',
  },

  // ---- endpoints and methods ----
  { name: 'unknown endpoint under v3', method: 'GET', path: `${V3}/no/such/thing`, status: 404, errcode: 'M_UNRECOGNIZED' },
  { name: 'unknown endpoint outside the API', method: 'GET', path: '/no-such-thing', status: 404, errcode: 'M_UNRECOGNIZED' },
  { name: 'unknown API version', method: 'POST', path: '/_matrix/client/v9/login', opts: { body: {} }, status: 404, errcode: 'M_UNRECOGNIZED' },
  { name: 'percent-encoded path segment is not decoded into a route', method: 'GET', path: `${V3}/account/%77hoami`, status: 404, errcode: 'M_UNRECOGNIZED' },
  { name: 'known path, wrong method (PUT /login)', method: 'PUT', path: LOGIN, opts: { body: {} }, status: 405, errcode: 'M_UNRECOGNIZED' },
  { name: 'known path, wrong method (GET /register)', method: 'GET', path: REGISTER, status: 405, errcode: 'M_UNRECOGNIZED' },
  { name: 'known path, wrong method (DELETE r0 whoami)', method: 'DELETE', path: '/_matrix/client/r0/account/whoami', status: 405, errcode: 'M_UNRECOGNIZED' },
  { name: 'known path, wrong method (POST /versions)', method: 'POST', path: '/_matrix/client/versions', opts: { body: {} }, status: 405, errcode: 'M_UNRECOGNIZED' },
  {
    name: 'known v1 path, wrong method',
    method: 'POST',
    path: '/_matrix/client/v1/register/m.login.registration_token/validity',
    opts: { body: {} },
    status: 405,
    errcode: 'M_UNRECOGNIZED',
  },
  { name: 'a method no route implements (PROPFIND)', method: 'PROPFIND', path: LOGIN, status: 405, errcode: 'M_UNRECOGNIZED' },

  // ---- registration rules ----
  { name: 'kind=guest', method: 'POST', path: `${REGISTER}?kind=guest`, opts: { body: {} }, status: 403, errcode: 'M_GUEST_ACCESS_FORBIDDEN' },
  { name: 'kind=bogus', method: 'POST', path: `${REGISTER}?kind=bogus`, opts: { body: {} }, status: 400, errcode: 'M_INVALID_PARAM' },
  {
    name: 'registration closed',
    send: (c) => c.closed.request('POST', REGISTER, { body: { username: 'closedout', password: PW } }),
    status: 403,
    errcode: 'M_FORBIDDEN',
  },
  {
    name: 'registration closed: the UIA round is not even offered',
    send: (c) => c.closed.request('POST', REGISTER, { body: { username: 'closedout', password: PW, auth: { type: 'm.login.dummy' } } }),
    status: 403,
    errcode: 'M_FORBIDDEN',
  },
  { name: 'register a taken name', method: 'POST', path: REGISTER, opts: { body: { username: 'taken', password: PW } }, status: 400, errcode: 'M_USER_IN_USE' },
  { name: 'register a taken name in upper case', method: 'POST', path: REGISTER, opts: { body: { username: 'TAKEN', password: PW } }, status: 400, errcode: 'M_USER_IN_USE' },
  { name: 'register/available: taken', method: 'GET', path: `${AVAILABLE}?username=taken`, status: 400, errcode: 'M_USER_IN_USE' },
  { name: 'register/available: taken, in upper case', method: 'GET', path: `${AVAILABLE}?username=TaKeN`, status: 400, errcode: 'M_USER_IN_USE' },

  // ---- user-interactive auth ----
  {
    name: 'UIA: unknown auth.type',
    method: 'POST',
    path: REGISTER,
    prepare: async (c) => ({
      body: { username: 'uiabad1', password: PW, auth: { type: 'm.login.bogus', session: await uiaSession(c.s, 'uiabad1') } },
    }),
    status: 401,
    errcode: 'M_UNRECOGNIZED',
    check: (res) => {
      assert.equal(res.body.flows, [{ stages: ['m.login.dummy'] }], 'a failed stage still lists the flows');
      assert.type(res.body.session, 'string');
    },
  },
  {
    name: 'UIA: a real stage that this flow does not offer',
    method: 'POST',
    path: REGISTER,
    prepare: async (c) => ({
      body: {
        username: 'uiabad2',
        password: PW,
        auth: { type: 'm.login.password', session: await uiaSession(c.s, 'uiabad2'), identifier: { type: 'm.id.user', user: 'taken' }, password: PW },
      },
    }),
    status: 401,
    errcode: 'M_UNRECOGNIZED',
  },
  {
    name: 'UIA: auth.type is a number',
    method: 'POST',
    path: REGISTER,
    prepare: async (c) => ({ body: { username: 'uiabad3', password: PW, auth: { type: 7, session: await uiaSession(c.s, 'uiabad3') } } }),
    status: 401,
    errcode: 'M_BAD_JSON',
  },
  {
    name: 'UIA: unknown session',
    method: 'POST',
    path: REGISTER,
    opts: { body: { username: 'uiabad4', password: PW, auth: { type: 'm.login.dummy', session: 'no-such-session' } } },
    status: 400,
    errcode: 'M_UNKNOWN',
  },
  {
    name: 'UIA: session is a number',
    method: 'POST',
    path: REGISTER,
    opts: { body: { username: 'uiabad5', password: PW, auth: { type: 'm.login.dummy', session: 12 } } },
    status: 400,
    errcode: 'M_BAD_JSON',
  },
  {
    name: 'UIA: NUL in the session id',
    method: 'POST',
    path: REGISTER,
    opts: { body: { username: 'uiabad6', password: PW, auth: { type: 'm.login.dummy', session: 'abc\u0000' } } },
    status: 400,
    errcode: 'M_INVALID_PARAM',
  },

  // ---- access tokens ----
  { name: 'no token', method: 'GET', path: WHOAMI, status: 401, errcode: 'M_MISSING_TOKEN' },
  {
    name: 'Authorization: Bearer junk',
    method: 'GET',
    path: WHOAMI,
    opts: { headers: { authorization: 'Bearer not-a-token' } },
    status: 401,
    errcode: 'M_UNKNOWN_TOKEN',
    check: (res) => assert.is(res.body.soft_logout, false),
  },
  {
    name: 'Authorization: Bearer with an unsigned (alg=none) JWT',
    method: 'GET',
    path: WHOAMI,
    opts: {
      headers: {
        authorization: `Bearer ${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"@taken:hearth.test","iss":"hearth.test","sid":"x","dev":"y","rid":0}').toString('base64url')}.`,
      },
    },
    status: 401,
    errcode: 'M_UNKNOWN_TOKEN',
  },
  { name: 'Authorization: Bearer with a 16 KB token', method: 'GET', path: WHOAMI, opts: { headers: { authorization: `Bearer ${'A'.repeat(16384)}` } }, status: 401, errcode: 'M_UNKNOWN_TOKEN' },
  { name: 'Authorization: Bearer with no token', method: 'GET', path: WHOAMI, opts: { headers: { authorization: 'Bearer' } }, status: 401, errcode: 'M_MISSING_TOKEN' },
  { name: 'Authorization: Basic', method: 'GET', path: WHOAMI, opts: { headers: { authorization: 'Basic dXNlcjpwYXNz' } }, status: 401, errcode: 'M_MISSING_TOKEN' },
  { name: 'access_token query parameter junk', method: 'GET', path: `${WHOAMI}?access_token=%E0%A4%A`, status: 401, errcode: 'M_UNKNOWN_TOKEN' },

  // ---- paths and query strings ----
  // The profile API belongs to another area; an undecodable user id in its path must be a 4xx, never a crash.
  { name: 'percent-encoding garbage in a path parameter', method: 'GET', path: `${V3}/profile/%E0%A4%A`, status: 400, errcode: 'M_INVALID_PARAM' },
  { name: 'percent-encoding garbage in an unknown path', method: 'GET', path: '/%E0%A4%A', status: 404, errcode: 'M_UNRECOGNIZED' },
  {
    name: 'unknown query parameters are ignored (/versions?_cacheBuster=1)',
    method: 'GET',
    path: '/_matrix/client/versions?_cacheBuster=1&_=%E0%A4%A',
    status: 200,
    check: (res) => assert.ok(Array.isArray(res.body.versions) && res.body.versions.includes('v1.3')),
  },
  {
    name: 'unknown and repeated query parameters on GET /login',
    method: 'GET',
    path: `${LOGIN}?foo=1&foo=2&bar`,
    status: 200,
    check: (res) => assert.equal(res.body.flows, [{ type: 'm.login.password' }]),
  },
  {
    name: 'unknown query parameters and body fields on POST /login',
    method: 'POST',
    path: `${LOGIN}?_cacheBuster=1`,
    opts: { body: loginBody({ 'org.example.unknown': { nested: [1, 2] } }) },
    status: 200,
    check: (res) => assert.is(res.body.user_id, '@taken:hearth.test'),
  },

  // ---- CORS ----
  {
    name: 'CORS preflight on a known endpoint',
    method: 'OPTIONS',
    path: LOGIN,
    opts: { headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } },
    status: 204,
    check: (res) => {
      assert.is(res.headers['access-control-allow-origin'], '*');
      const methods = String(res.headers['access-control-allow-methods']);
      for (const m of ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS']) assert.ok(methods.includes(m), `allow-methods has ${m}: ${methods}`);
      const allowHeaders = String(res.headers['access-control-allow-headers']).toLowerCase();
      for (const h of ['authorization', 'content-type', 'x-requested-with']) assert.ok(allowHeaders.includes(h), `allow-headers has ${h}`);
      assert.is(res.body, undefined, 'no body');
    },
  },
  {
    name: 'CORS preflight on an endpoint that needs auth (no token needed)',
    method: 'OPTIONS',
    path: WHOAMI,
    status: 204,
    check: (res) => assert.is(res.headers['access-control-allow-origin'], '*'),
  },
  {
    name: 'error answers carry CORS headers too',
    method: 'GET',
    path: `${V3}/no/such/thing`,
    status: 404,
    errcode: 'M_UNRECOGNIZED',
    check: (res) => assert.is(res.headers['access-control-allow-origin'], '*'),
  },
];

const results: { name: string; status: number }[] = [];

const t = suite<Ctx>('bad input: exact errors, never a 500');

beforeAll(t, async (ctx) => {
  ctx.s = await startTestServer({ HEARTH_MAX_JSON_BODY_BYTES: String(MAX_BODY) });
  ctx.closed = await startTestServer({ HEARTH_REGISTRATION: 'closed' });
  ctx.baseUrl = await ctx.s.listen();
  await registerUser(ctx.s, 'taken', PW);
});
t.after(async (ctx) => {
  await ctx.s?.close();
  await ctx.closed?.close();
});

for (const row of ROWS) {
  t(row.name, async (c) => {
    let res: Response;
    if (row.send) res = await row.send(c);
    else {
      const opts = row.prepare ? await row.prepare(c) : (row.opts ?? {});
      res = await c.s.request(row.method!, row.path!, opts);
    }
    results.push({ name: row.name, status: res.status });
    const shown = `${row.name}: got ${res.status} ${JSON.stringify(res.body)?.slice(0, 300)}`;
    assert.is(res.status, row.status, shown);
    if (row.errcode !== undefined) {
      assert.is(res.body?.errcode, row.errcode, shown);
      assert.type(res.body.error, 'string', `${shown}: an error string`);
      assert.ok(res.body.error.length > 0, shown);
    } else if (res.status >= 400) {
      assert.unreachable(`${shown}: a row without errcode must succeed`);
    }
    await row.check?.(res, c);
  });
}

t('uppercase usernames are downcased (the spec: servers downcase new user ids)', async ({ s }) => {
  const reg = await registerUser(s, 'MiXeD.Case', 'mixed password');
  assert.is(reg.user_id, '@mixed.case:hearth.test');
  const again = await s.request('POST', REGISTER, { body: { username: 'mixed.case', password: PW } });
  assert.is(again.status, 400);
  assert.is(again.body.errcode, 'M_USER_IN_USE');
  assert.is((await login(s, 'MIXED.CASE', 'mixed password')).status, 200, 'login is case-insensitive too');
  assert.is((await login(s, '@Mixed.Case:hearth.test', 'mixed password')).body.user_id, '@mixed.case:hearth.test');
});

t('a non-ASCII name is rejected or mapped onto a compliant id, never stored as is', async ({ s }) => {
  // KELVIN SIGN (U+212A) lower-cases to ASCII "k" in JavaScript (as in Python, so in Synapse too).
  const res = await s.request('POST', REGISTER, { body: { username: '\u212aelvin', password: PW } });
  results.push({ name: 'kelvin sign', status: res.status });
  if (res.status === 400) {
    assert.is(res.body.errcode, 'M_INVALID_USERNAME');
    return;
  }
  assert.is(res.status, 401, 'UIA starts');
  const done = await s.request('POST', REGISTER, {
    body: { username: '\u212aelvin', password: PW, auth: { type: 'm.login.dummy', session: res.body.session } },
  });
  assert.is(done.status, 200);
  assert.match(done.body.user_id, /^@[a-z0-9._=\-/+]+:hearth\.test$/);
  const ascii = await s.request('GET', `${AVAILABLE}?username=kelvin`);
  assert.is(ascii.body.errcode, 'M_USER_IN_USE', 'it took the ASCII name: no look-alike second account');
});

t('a localpart of exactly 255 bytes of user id registers', async ({ s }) => {
  const localpart = 'z'.repeat(255 - 2 - SERVER.length);
  const reg = await registerUser(s, localpart, PW);
  assert.is(Buffer.byteLength(reg.user_id), 255);
});

t('no row was answered with a 5xx', () => {
  assert.ok(results.length >= ROWS.length, `every row ran (${results.length} of ${ROWS.length})`);
  const bad = results.filter((r) => r.status >= 500);
  assert.equal(bad, [], `5xx answers: ${JSON.stringify(bad)}`);
});

t.run();
