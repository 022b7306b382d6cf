// Server-side room key backups (spec: "Server-side key backups", key_backup.yaml): versions, keys,
// the replacement rule, etag/count, wrong-version errors, privacy between users and bad input.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { startTestServer, registerUser, type TestServer, type Response } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { responseErrors } from './support/spec_schema.js';
import { shouldReplace } from '../src/services/e2e/key_backup.js';

type User = { user_id: string; access_token: string; device_id: string };
const enc = encodeURIComponent;
const ALG = 'm.megolm_backup.v1.curve25519-aes-sha2';
const SPEC = 'api/client-server/key_backup.yaml';

const api = (s: TestServer, u: User, method: string, path: string, body?: unknown): Promise<Response> =>
  s.request(method, `/_matrix/client/v3${path}`, { token: u.access_token, body });

function ok(res: Response, what: string): any {
  assert.is(res.status, 200, `${what}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

function fails(res: Response, status: number, errcode: string, what: string): any {
  assert.is(res.status, status, `${what}: ${res.status} ${JSON.stringify(res.body)}`);
  assert.is(res.body?.errcode, errcode, `${what}: ${JSON.stringify(res.body)}`);
  return res.body;
}

/** Asserts the body matches the spec's response schema of that endpoint and status. */
function matchesSpec(route: string, method: string, status: number, body: unknown): void {
  const errors = responseErrors(SPEC, route, method, status, body);
  assert.equal(errors, [], `${method.toUpperCase()} ${route} ${status}: ${errors.join('; ')}`);
}

const authData = (pk = 'pubkey1') => ({ public_key: pk, signatures: { '@x:hearth.test': { 'ed25519:DEV': 'sig' } } });
const key = (fmi: number, fc: number, verified: boolean, tag = 'x') => ({
  first_message_index: fmi,
  forwarded_count: fc,
  is_verified: verified,
  session_data: { ephemeral: `eph-${tag}`, ciphertext: `ct-${tag}`, mac: `mac-${tag}` },
});

async function createVersion(s: TestServer, u: User, pk = 'pubkey1'): Promise<string> {
  const body = ok(await api(s, u, 'POST', '/room_keys/version', { algorithm: ALG, auth_data: authData(pk) }), 'create version');
  matchesSpec('/room_keys/version', 'post', 200, body);
  return body.version;
}

const ROOM_A = '!roomA:hearth.test';
const ROOM_B = '!roomB:other.example';

const t = suite<{ s: TestServer }>('key backup');

beforeAll(t, async (ctx) => {
  ctx.s = await startTestServer({ HEARTH_KEY_BACKUP_MAX_KEYS_PER_REQUEST: '5', HEARTH_KEY_BACKUP_MAX_SESSION_DATA_BYTES: '1024', HEARTH_KEY_BACKUP_MAX_AUTH_DATA_BYTES: '1024' });
});
t.after(async (ctx) => {
  await ctx.s?.close();
});

t('versions: none yet is 404; create, get current and by number, numbering per user, update', async ({ s }) => {
  const alice = await registerUser(s, 'kbversions');
  fails(await api(s, alice, 'GET', '/room_keys/version'), 404, 'M_NOT_FOUND', 'no backup yet');
  assert.is(await createVersion(s, alice), '1');

  const cur = ok(await api(s, alice, 'GET', '/room_keys/version'), 'current');
  matchesSpec('/room_keys/version', 'get', 200, cur);
  assert.equal(cur, { algorithm: ALG, auth_data: authData(), count: 0, etag: cur.etag, version: '1' });
  assert.type(cur.etag, 'string');
  matchesSpec('/room_keys/version/{version}', 'get', 200, ok(await api(s, alice, 'GET', '/room_keys/version/1'), 'v1'));

  assert.is(await createVersion(s, alice, 'pubkey2'), '2');
  const cur2 = ok(await api(s, alice, 'GET', '/room_keys/version'), 'current after second');
  assert.is(cur2.version, '2');
  assert.is(cur2.auth_data.public_key, 'pubkey2');
  // Older versions stay readable by number.
  assert.is(ok(await api(s, alice, 'GET', '/room_keys/version/1'), 'v1 again').auth_data.public_key, 'pubkey1');
  for (const v of ['3', '0', 'abc', '01', '99999999999999999999']) {
    const res = await api(s, alice, 'GET', `/room_keys/version/${v}`);
    fails(res, 404, 'M_NOT_FOUND', `version ${v}`);
    matchesSpec('/room_keys/version/{version}', 'get', 404, res.body);
  }

  // Update: only auth_data changes; the algorithm must match; a body version must match the path.
  const upd = ok(await api(s, alice, 'PUT', '/room_keys/version/2', { algorithm: ALG, auth_data: authData('pubkey2b'), version: '2' }), 'update');
  assert.equal(upd, {});
  const after = ok(await api(s, alice, 'GET', '/room_keys/version/2'), 'after update');
  assert.equal([after.auth_data.public_key, after.algorithm, after.version], ['pubkey2b', ALG, '2']);
  fails(await api(s, alice, 'PUT', '/room_keys/version/2', { algorithm: 'org.example.other', auth_data: authData() }), 400, 'M_INVALID_PARAM', 'other algorithm');
  fails(await api(s, alice, 'PUT', '/room_keys/version/2', { algorithm: ALG, auth_data: authData(), version: '1' }), 400, 'M_INVALID_PARAM', 'body version');
  fails(await api(s, alice, 'PUT', '/room_keys/version/2', { algorithm: ALG, auth_data: authData(), version: 2 }), 400, 'M_BAD_JSON', 'body version type');
  fails(await api(s, alice, 'PUT', '/room_keys/version/7', { algorithm: ALG, auth_data: authData() }), 404, 'M_NOT_FOUND', 'update unknown');
  fails(await api(s, alice, 'PUT', '/room_keys/version/2', { algorithm: ALG }), 400, 'M_MISSING_PARAM', 'update without auth_data');
  assert.is(ok(await api(s, alice, 'GET', '/room_keys/version/2'), 'unchanged').auth_data.public_key, 'pubkey2b');
  // Updating an older version is allowed and does not make it current.
  ok(await api(s, alice, 'PUT', '/room_keys/version/1', { algorithm: ALG, auth_data: authData('pubkey1b') }), 'update old');
  assert.is(ok(await api(s, alice, 'GET', '/room_keys/version'), 'current').version, '2');
});

t('creating a version: bad bodies get 400s (never 500)', async ({ s }) => {
  const u = await registerUser(s, 'kbcreatebad');
  const post = (body: unknown) => api(s, u, 'POST', '/room_keys/version', body);
  fails(await post({ auth_data: authData() }), 400, 'M_MISSING_PARAM', 'no algorithm');
  fails(await post({ algorithm: ALG }), 400, 'M_MISSING_PARAM', 'no auth_data');
  fails(await post({ algorithm: 5, auth_data: authData() }), 400, 'M_BAD_JSON', 'algorithm number');
  fails(await post({ algorithm: 'org.example.unknown', auth_data: authData() }), 400, 'M_INVALID_PARAM', 'unknown algorithm');
  fails(await post({ algorithm: ALG, auth_data: 'x' }), 400, 'M_BAD_JSON', 'auth_data string');
  fails(await post({ algorithm: ALG, auth_data: [] }), 400, 'M_BAD_JSON', 'auth_data array');
  fails(await post({ algorithm: ALG, auth_data: { signatures: {} } }), 400, 'M_BAD_JSON', 'no public_key');
  fails(await post({ algorithm: ALG, auth_data: { public_key: 1 } }), 400, 'M_BAD_JSON', 'public_key number');
  fails(await post({ algorithm: ALG, auth_data: { public_key: 'k', signatures: 'x' } }), 400, 'M_BAD_JSON', 'signatures string');
  fails(await post({ algorithm: ALG, auth_data: { public_key: 'k'.repeat(2000) } }), 413, 'M_TOO_LARGE', 'auth_data too large');
  fails(await s.request('POST', '/_matrix/client/v3/room_keys/version', { token: u.access_token, rawBody: '{"algorithm":', headers: { 'content-type': 'application/json' } }), 400, 'M_NOT_JSON', 'not JSON');
  fails(await s.request('GET', '/_matrix/client/v3/room_keys/version'), 401, 'M_MISSING_TOKEN', 'no token');
  // Nothing was created by any of these.
  fails(await api(s, u, 'GET', '/room_keys/version'), 404, 'M_NOT_FOUND', 'still none');
});

t('keys: upload through all three paths, read them back, etag and count', async ({ s }) => {
  const u = await registerUser(s, 'kbkeys');
  const v = await createVersion(s, u);
  const etag0 = ok(await api(s, u, 'GET', '/room_keys/version'), 'v').etag;

  const r1 = ok(await api(s, u, 'PUT', `/room_keys/keys/${enc(ROOM_A)}/sess1?version=${v}`, key(0, 0, false, 'a1')), 'put session');
  matchesSpec('/room_keys/keys/{roomId}/{sessionId}', 'put', 200, r1);
  assert.is(r1.count, 1);
  assert.is.not(r1.etag, etag0);

  const r2 = ok(await api(s, u, 'PUT', `/room_keys/keys/${enc(ROOM_A)}?version=${v}`, { sessions: { sess2: key(3, 1, true, 'a2') } }), 'put room');
  matchesSpec('/room_keys/keys/{roomId}', 'put', 200, r2);
  assert.is(r2.count, 2);
  assert.is.not(r2.etag, r1.etag);

  const r3 = ok(
    await api(s, u, 'PUT', `/room_keys/keys?version=${v}`, { rooms: { [ROOM_B]: { sessions: { sess3: key(1, 0, false, 'b3'), sess4: key(2, 0, true, 'b4') } } } }),
    'put all',
  );
  matchesSpec('/room_keys/keys', 'put', 200, r3);
  assert.is(r3.count, 4);
  const etags = new Set([etag0, r1.etag, r2.etag, r3.etag]);
  assert.is(etags.size, 4, 'every change gives a new etag');

  const all = ok(await api(s, u, 'GET', `/room_keys/keys?version=${v}`), 'get all');
  matchesSpec('/room_keys/keys', 'get', 200, all);
  assert.equal(all, {
    rooms: {
      [ROOM_A]: { sessions: { sess1: key(0, 0, false, 'a1'), sess2: key(3, 1, true, 'a2') } },
      [ROOM_B]: { sessions: { sess3: key(1, 0, false, 'b3'), sess4: key(2, 0, true, 'b4') } },
    },
  });
  const room = ok(await api(s, u, 'GET', `/room_keys/keys/${enc(ROOM_B)}?version=${v}`), 'get room');
  matchesSpec('/room_keys/keys/{roomId}', 'get', 200, room);
  assert.equal(room, all.rooms[ROOM_B]);
  const one = ok(await api(s, u, 'GET', `/room_keys/keys/${enc(ROOM_A)}/sess2?version=${v}`), 'get session');
  matchesSpec('/room_keys/keys/{roomId}/{sessionId}', 'get', 200, one);
  assert.equal(one, key(3, 1, true, 'a2'));

  // Unknown room: empty sessions; unknown session: 404.
  assert.equal(ok(await api(s, u, 'GET', `/room_keys/keys/${enc('!none:hearth.test')}?version=${v}`), 'empty room'), { sessions: {} });
  const missing = await api(s, u, 'GET', `/room_keys/keys/${enc(ROOM_A)}/nope?version=${v}`);
  fails(missing, 404, 'M_NOT_FOUND', 'unknown session');
  matchesSpec('/room_keys/keys/{roomId}/{sessionId}', 'get', 404, missing.body);

  // The version info agrees; an upload that changes nothing keeps the etag and count.
  const info = ok(await api(s, u, 'GET', `/room_keys/version/${v}`), 'info');
  assert.equal([info.count, info.etag], [4, r3.etag]);
  const same = ok(await api(s, u, 'PUT', `/room_keys/keys/${enc(ROOM_A)}/sess1?version=${v}`, key(0, 0, false, 'a1-again')), 'no-op upload');
  assert.equal(same, { etag: r3.etag, count: 4 });
  assert.equal(ok(await api(s, u, 'GET', `/room_keys/keys/${enc(ROOM_A)}/sess1?version=${v}`), 'kept'), key(0, 0, false, 'a1'));
});

t('replacement rule: is_verified first, then lower first_message_index, then lower forwarded_count', async ({ s }) => {
  // [stored, uploaded, replaced?]
  const table: [ReturnType<typeof key>, ReturnType<typeof key>, boolean][] = [
    [key(5, 5, false), key(9, 9, true), true], // verified beats unverified, whatever the indexes
    [key(0, 0, true), key(0, 0, false), false], // unverified never replaces verified
    [key(0, 0, true), key(9, 9, true), false],
    [key(5, 0, false), key(4, 9, false), true], // same verification: lower first_message_index wins
    [key(5, 0, true), key(6, 0, true), false],
    [key(5, 3, false), key(5, 2, false), true], // equal index: lower forwarded_count wins
    [key(5, 3, true), key(5, 4, true), false],
    [key(5, 3, false), key(5, 3, false), false], // a tie keeps the stored key
  ];
  const u = await registerUser(s, 'kbrule');
  const v = await createVersion(s, u);
  for (const [i, [stored, uploaded, replaced]] of table.entries()) {
    const st = { ...stored, session_data: { ciphertext: 'stored' } };
    const up = { ...uploaded, session_data: { ciphertext: 'uploaded' } };
    const path = `/room_keys/keys/${enc(ROOM_A)}/rule${i}?version=${v}`;
    const first = ok(await api(s, u, 'PUT', path, st), `row ${i} store`);
    const second = ok(await api(s, u, 'PUT', path, up), `row ${i} upload`);
    assert.is(second.count, first.count, `row ${i}: same session, same count`);
    assert.is(second.etag !== first.etag, replaced, `row ${i}: etag changes only on replacement`);
    assert.equal(ok(await api(s, u, 'GET', path), `row ${i} get`), replaced ? up : st, `row ${i}`);
    // The same rule as a function (what the service applies under the backup's lock).
    const meta = (k: ReturnType<typeof key>) => ({ isVerified: k.is_verified, firstMessageIndex: k.first_message_index, forwardedCount: k.forwarded_count });
    assert.is(shouldReplace(meta(stored), meta(uploaded)), replaced, `row ${i} (function)`);
  }
  // In one request: a better key for an existing session is taken, a worse one kept out.
  const r = ok(
    await api(s, u, 'PUT', `/room_keys/keys?version=${v}`, {
      rooms: { [ROOM_A]: { sessions: { rule3: { ...key(4, 8, false), session_data: { ciphertext: 'batch' } }, rule0: { ...key(0, 0, false), session_data: { ciphertext: 'batch' } } } } },
    }),
    'batch',
  );
  assert.is(r.count, table.length);
  assert.is(ok(await api(s, u, 'GET', `/room_keys/keys/${enc(ROOM_A)}/rule3?version=${v}`), 'rule3').session_data.ciphertext, 'batch');
  assert.is(ok(await api(s, u, 'GET', `/room_keys/keys/${enc(ROOM_A)}/rule0?version=${v}`), 'rule0').session_data.ciphertext, 'uploaded');
});

t('concurrent uploads: the rule and the count hold under races', async ({ s }) => {
  const u = await registerUser(s, 'kbrace');
  const v = await createVersion(s, u);
  const path = `/room_keys/keys/${enc(ROOM_A)}/race?version=${v}`;
  // Twelve uploads of one session in a scrambled order: the lowest first_message_index must win.
  const order = [7, 3, 11, 0, 5, 9, 1, 10, 4, 8, 2, 6];
  const results = await Promise.all(order.map((fmi) => api(s, u, 'PUT', path, { ...key(fmi + 1, 0, false), session_data: { ciphertext: `fmi${fmi + 1}` } })));
  for (const r of results) ok(r, 'race upload');
  assert.is(ok(await api(s, u, 'GET', path), 'winner').first_message_index, 1);
  // Many distinct sessions at once: the count is exact.
  const many = await Promise.all(
    Array.from({ length: 20 }, (_, i) => api(s, u, 'PUT', `/room_keys/keys/${enc(ROOM_B)}/s${i}?version=${v}`, key(0, 0, false, `s${i}`))),
  );
  for (const r of many) ok(r, 'distinct upload');
  const info = ok(await api(s, u, 'GET', '/room_keys/version'), 'info');
  assert.is(info.count, 21);
  assert.is(Object.keys(ok(await api(s, u, 'GET', `/room_keys/keys?version=${v}`), 'all').rooms[ROOM_B].sessions).length, 20);
});

t('wrong or missing version: 403 M_WRONG_ROOM_KEYS_VERSION with current_version, 404, M_MISSING_PARAM', async ({ s }) => {
  const u = await registerUser(s, 'kbwrong');
  // No backup at all: uploads are 404.
  fails(await api(s, u, 'PUT', `/room_keys/keys/${enc(ROOM_A)}/x?version=1`, key(0, 0, false)), 404, 'M_NOT_FOUND', 'no backup');
  fails(await api(s, u, 'GET', '/room_keys/keys?version=1'), 404, 'M_NOT_FOUND', 'get without backup');
  fails(await api(s, u, 'DELETE', '/room_keys/keys?version=1'), 404, 'M_NOT_FOUND', 'delete without backup');
  const v1 = await createVersion(s, u);
  ok(await api(s, u, 'PUT', `/room_keys/keys/${enc(ROOM_A)}/old?version=${v1}`, key(0, 0, false)), 'key in v1');
  const v2 = await createVersion(s, u);
  for (const [path, body, route] of [
    [`/room_keys/keys?version=${v1}`, { rooms: { [ROOM_A]: { sessions: { x: key(0, 0, false) } } } }, '/room_keys/keys'],
    [`/room_keys/keys/${enc(ROOM_A)}?version=${v1}`, { sessions: { x: key(0, 0, false) } }, '/room_keys/keys/{roomId}'],
    [`/room_keys/keys/${enc(ROOM_A)}/x?version=${v1}`, key(0, 0, false), '/room_keys/keys/{roomId}/{sessionId}'],
    [`/room_keys/keys/${enc(ROOM_A)}/x?version=42`, key(0, 0, false), '/room_keys/keys/{roomId}/{sessionId}'],
    [`/room_keys/keys/${enc(ROOM_A)}/x?version=bogus`, key(0, 0, false), '/room_keys/keys/{roomId}/{sessionId}'],
  ] as const) {
    const res = await api(s, u, 'PUT', path, body);
    fails(res, 403, 'M_WRONG_ROOM_KEYS_VERSION', path);
    assert.is(res.body.current_version, v2);
    matchesSpec(route, 'put', 403, res.body);
  }
  // Older versions stay readable and their keys deletable.
  assert.equal(Object.keys(ok(await api(s, u, 'GET', `/room_keys/keys?version=${v1}`), 'read v1').rooms), [ROOM_A]);
  assert.equal(ok(await api(s, u, 'GET', `/room_keys/keys?version=${v2}`), 'read v2'), { rooms: {} });
  fails(await api(s, u, 'GET', '/room_keys/keys?version=42'), 404, 'M_NOT_FOUND', 'unknown version');
  fails(await api(s, u, 'GET', `/room_keys/keys/${enc(ROOM_A)}?version=42`), 404, 'M_NOT_FOUND', 'unknown version room');
  for (const [method, path] of [
    ['GET', '/room_keys/keys'],
    ['PUT', `/room_keys/keys/${enc(ROOM_A)}/x`],
    ['DELETE', `/room_keys/keys/${enc(ROOM_A)}`],
    ['GET', `/room_keys/keys/${enc(ROOM_A)}/x?version=`],
  ] as const) {
    fails(await api(s, u, method, path, method === 'PUT' ? key(0, 0, false) : undefined), 400, 'M_MISSING_PARAM', `${method} ${path}`);
  }
  fails(await api(s, u, 'GET', `/room_keys/keys?version=${v1}&version=${v2}`), 400, 'M_INVALID_PARAM', 'version twice');
  const del = ok(await api(s, u, 'DELETE', `/room_keys/keys/${enc(ROOM_A)}/old?version=${v1}`), 'delete in old version');
  assert.is(del.count, 0);
});

t('deleting keys: by session, room and all; etag and count follow', async ({ s }) => {
  const u = await registerUser(s, 'kbdelkeys');
  const v = await createVersion(s, u);
  const put = ok(
    await api(s, u, 'PUT', `/room_keys/keys?version=${v}`, {
      rooms: { [ROOM_A]: { sessions: { a1: key(0, 0, false), a2: key(0, 0, false) } }, [ROOM_B]: { sessions: { b1: key(0, 0, false), b2: key(0, 0, false) } } },
    }),
    'put',
  );
  assert.is(put.count, 4);
  const d1 = ok(await api(s, u, 'DELETE', `/room_keys/keys/${enc(ROOM_A)}/a1?version=${v}`), 'delete session');
  matchesSpec('/room_keys/keys/{roomId}/{sessionId}', 'delete', 200, d1);
  assert.is(d1.count, 3);
  assert.is.not(d1.etag, put.etag);
  fails(await api(s, u, 'GET', `/room_keys/keys/${enc(ROOM_A)}/a1?version=${v}`), 404, 'M_NOT_FOUND', 'deleted session');
  // Deleting what is not there changes nothing.
  assert.equal(ok(await api(s, u, 'DELETE', `/room_keys/keys/${enc(ROOM_A)}/a1?version=${v}`), 'again'), d1);
  const d2 = ok(await api(s, u, 'DELETE', `/room_keys/keys/${enc(ROOM_B)}?version=${v}`), 'delete room');
  matchesSpec('/room_keys/keys/{roomId}', 'delete', 200, d2);
  assert.is(d2.count, 1);
  assert.is.not(d2.etag, d1.etag);
  assert.equal(ok(await api(s, u, 'GET', `/room_keys/keys/${enc(ROOM_B)}?version=${v}`), 'room gone'), { sessions: {} });
  const d3 = ok(await api(s, u, 'DELETE', `/room_keys/keys?version=${v}`), 'delete all');
  matchesSpec('/room_keys/keys', 'delete', 200, d3);
  assert.is(d3.count, 0);
  assert.equal(ok(await api(s, u, 'GET', `/room_keys/keys?version=${v}`), 'all gone'), { rooms: {} });
  const info = ok(await api(s, u, 'GET', '/room_keys/version'), 'info');
  assert.equal([info.count, info.etag], [0, d3.etag]);
  // A re-upload after deletion is a new key again.
  assert.is(ok(await api(s, u, 'PUT', `/room_keys/keys/${enc(ROOM_A)}/a1?version=${v}`, key(9, 9, false)), 're-put').count, 1);
});

t('deleting a version: its keys go, it stays gone (200 again), numbers are not reused', async ({ s }) => {
  const u = await registerUser(s, 'kbdelversion');
  const v1 = await createVersion(s, u);
  ok(await api(s, u, 'PUT', `/room_keys/keys/${enc(ROOM_A)}/k?version=${v1}`, key(0, 0, false)), 'key v1');
  const v2 = await createVersion(s, u);
  ok(await api(s, u, 'PUT', `/room_keys/keys/${enc(ROOM_A)}/k?version=${v2}`, key(0, 0, false)), 'key v2');

  const del = ok(await api(s, u, 'DELETE', `/room_keys/version/${v2}`), 'delete v2');
  matchesSpec('/room_keys/version/{version}', 'delete', 200, del);
  fails(await api(s, u, 'GET', `/room_keys/version/${v2}`), 404, 'M_NOT_FOUND', 'deleted version');
  fails(await api(s, u, 'GET', `/room_keys/keys?version=${v2}`), 404, 'M_NOT_FOUND', 'keys of deleted version');
  ok(await api(s, u, 'DELETE', `/room_keys/version/${v2}`), 'delete again succeeds');
  const unknown = await api(s, u, 'DELETE', '/room_keys/version/77');
  fails(unknown, 404, 'M_NOT_FOUND', 'delete unknown');
  matchesSpec('/room_keys/version/{version}', 'delete', 404, unknown.body);
  const rows = await s.hs.deps.db.query<{ n: string }>('select count(*) as n from key_backup_keys where user_id = ? and version = ?', [u.user_id, Number(v2)]);
  assert.is(Number(rows[0]!.n), 0, 'keys of the deleted version are gone from the database');

  // The newest remaining backup is current again, with its keys intact.
  const cur = ok(await api(s, u, 'GET', '/room_keys/version'), 'current after delete');
  assert.equal([cur.version, cur.count], [v1, 1]);
  assert.is(await createVersion(s, u), '3');
  ok(await api(s, u, 'DELETE', '/room_keys/version/3'), 'delete v3');
  ok(await api(s, u, 'DELETE', `/room_keys/version/${v1}`), 'delete v1');
  fails(await api(s, u, 'GET', '/room_keys/version'), 404, 'M_NOT_FOUND', 'none left');
  fails(await api(s, u, 'PUT', `/room_keys/keys/${enc(ROOM_A)}/k?version=${v1}`, key(0, 0, false)), 404, 'M_NOT_FOUND', 'upload with none left');
  assert.is(await createVersion(s, u), '4');
});

t("another user can neither see nor change a user's backups", async ({ s }) => {
  const alice = await registerUser(s, 'kbprivalice');
  const bob = await registerUser(s, 'kbprivbob');
  const v = await createVersion(s, alice, 'alicekey');
  ok(await api(s, alice, 'PUT', `/room_keys/keys/${enc(ROOM_A)}/secret?version=${v}`, key(0, 0, true, 'alice')), 'alice key');

  fails(await api(s, bob, 'GET', '/room_keys/version'), 404, 'M_NOT_FOUND', 'bob current');
  fails(await api(s, bob, 'GET', `/room_keys/version/${v}`), 404, 'M_NOT_FOUND', 'bob by number');
  fails(await api(s, bob, 'GET', `/room_keys/keys?version=${v}`), 404, 'M_NOT_FOUND', 'bob keys');
  fails(await api(s, bob, 'GET', `/room_keys/keys/${enc(ROOM_A)}/secret?version=${v}`), 404, 'M_NOT_FOUND', 'bob key');
  fails(await api(s, bob, 'PUT', `/room_keys/keys/${enc(ROOM_A)}/secret?version=${v}`, key(0, 0, true, 'bob')), 404, 'M_NOT_FOUND', 'bob upload');
  fails(await api(s, bob, 'PUT', `/room_keys/version/${v}`, { algorithm: ALG, auth_data: authData('bobkey') }), 404, 'M_NOT_FOUND', 'bob update');
  fails(await api(s, bob, 'DELETE', `/room_keys/keys?version=${v}`), 404, 'M_NOT_FOUND', 'bob delete keys');
  fails(await api(s, bob, 'DELETE', `/room_keys/version/${v}`), 404, 'M_NOT_FOUND', 'bob delete version');

  // Bob's own backup has its own numbering and keys.
  const bv = await createVersion(s, bob, 'bobkey');
  assert.is(bv, v);
  ok(await api(s, bob, 'PUT', `/room_keys/keys/${enc(ROOM_A)}/secret?version=${bv}`, key(0, 0, false, 'bob')), 'bob key');
  assert.equal(ok(await api(s, bob, 'GET', `/room_keys/keys?version=${bv}`), 'bob all').rooms[ROOM_A].sessions.secret, key(0, 0, false, 'bob'));
  ok(await api(s, bob, 'DELETE', `/room_keys/version/${bv}`), 'bob deletes his');

  // Alice's backup is untouched.
  const info = ok(await api(s, alice, 'GET', '/room_keys/version'), 'alice info');
  assert.equal([info.version, info.count, info.auth_data.public_key], [v, 1, 'alicekey']);
  assert.equal(ok(await api(s, alice, 'GET', `/room_keys/keys/${enc(ROOM_A)}/secret?version=${v}`), 'alice key'), key(0, 0, true, 'alice'));
});

t('uploading keys: bad shapes get 400 (or 413 over the limits), never 500, and store nothing', async ({ s }) => {
  const u = await registerUser(s, 'kbkeysbad');
  const v = await createVersion(s, u);
  const putAll = (body: unknown) => api(s, u, 'PUT', `/room_keys/keys?version=${v}`, body);
  const putOne = (body: unknown, room = ROOM_A, session = 'sess') => api(s, u, 'PUT', `/room_keys/keys/${enc(room)}/${enc(session)}?version=${v}`, body);
  const cases: [string, Promise<Response>, number, string][] = [
    ['no rooms', putAll({}), 400, 'M_MISSING_PARAM'],
    ['rooms array', putAll({ rooms: [] }), 400, 'M_BAD_JSON'],
    ['room not object', putAll({ rooms: { [ROOM_A]: 1 } }), 400, 'M_BAD_JSON'],
    ['room without sessions', putAll({ rooms: { [ROOM_A]: {} } }), 400, 'M_BAD_JSON'],
    ['bad room id', putAll({ rooms: { 'not-a-room': { sessions: {} } } }), 400, 'M_INVALID_PARAM'],
    ['room id too long', putAll({ rooms: { [`!${'a'.repeat(300)}`]: { sessions: {} } } }), 400, 'M_INVALID_PARAM'],
    ['sessions string', api(s, u, 'PUT', `/room_keys/keys/${enc(ROOM_A)}?version=${v}`, { sessions: 'x' }), 400, 'M_BAD_JSON'],
    ['room body without sessions', api(s, u, 'PUT', `/room_keys/keys/${enc(ROOM_A)}?version=${v}`, {}), 400, 'M_MISSING_PARAM'],
    ['session not object', putAll({ rooms: { [ROOM_A]: { sessions: { s: [] } } } }), 400, 'M_BAD_JSON'],
    ['missing first_message_index', putOne({ forwarded_count: 0, is_verified: false, session_data: {} }), 400, 'M_BAD_JSON'],
    ['negative index', putOne(key(-1, 0, false)), 400, 'M_BAD_JSON'],
    ['float index', putOne({ ...key(0, 0, false), first_message_index: 1.5 }), 400, 'M_BAD_JSON'],
    ['huge index', putOne({ ...key(0, 0, false), first_message_index: 2 ** 60 }), 400, 'M_BAD_JSON'],
    ['string forwarded_count', putOne({ ...key(0, 0, false), forwarded_count: '0' }), 400, 'M_BAD_JSON'],
    ['is_verified string', putOne({ ...key(0, 0, false), is_verified: 'true' }), 400, 'M_BAD_JSON'],
    ['session_data string', putOne({ ...key(0, 0, false), session_data: 'x' }), 400, 'M_BAD_JSON'],
    ['session_data missing', putOne({ first_message_index: 0, forwarded_count: 0, is_verified: false }), 400, 'M_BAD_JSON'],
    ['session_data too large', putOne({ ...key(0, 0, false), session_data: { ciphertext: 'c'.repeat(2000) } }), 413, 'M_TOO_LARGE'],
    ['bad path room id', putOne(key(0, 0, false), 'roomA'), 400, 'M_INVALID_PARAM'],
    ['NUL in room id', putOne(key(0, 0, false), '!a\u0000b:hearth.test'), 400, 'M_INVALID_PARAM'],
    ['NUL in session id', putAll({ rooms: { [ROOM_A]: { sessions: { 'a\u0000b': key(0, 0, false) } } } }), 400, 'M_INVALID_PARAM'],
    [
      'too many keys (limit 5)',
      putAll({ rooms: { [ROOM_A]: { sessions: Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`s${i}`, key(0, 0, false)])) } } }),
      413,
      'M_TOO_LARGE',
    ],
    ['bad path room id on GET', api(s, u, 'GET', `/room_keys/keys/roomA?version=${v}`), 400, 'M_INVALID_PARAM'],
    ['bad path room id on DELETE', api(s, u, 'DELETE', `/room_keys/keys/roomA?version=${v}`), 400, 'M_INVALID_PARAM'],
  ];
  for (const [what, res, status, errcode] of cases) fails(await res, status, errcode, what);
  // The limit counts across rooms, and exactly the limit is fine.
  const five = (prefix: string, n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${i}`, key(0, 0, false)]));
  fails(await putAll({ rooms: { [ROOM_A]: { sessions: five('a', 3) }, [ROOM_B]: { sessions: five('b', 3) } } }), 413, 'M_TOO_LARGE', 'limit across rooms');
  assert.equal(ok(await api(s, u, 'GET', '/room_keys/version'), 'nothing stored').count, 0);
  assert.is(ok(await putAll({ rooms: { [ROOM_A]: { sessions: five('a', 2) }, [ROOM_B]: { sessions: five('b', 3) } } }), 'at the limit').count, 5);
});

t.run();
