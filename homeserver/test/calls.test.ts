// Calls on the homeserver side (protocol-spec/calls.md): SFU call tokens and their JWKS, the
// MSC4143 rtc_foci discovery entry, MatrixRTC membership state under createRoom's default power
// levels, and TURN credentials from /voip/turnServer (voip.yaml). The browser call through a
// real coturn is calls_p2p.test.ts.
import { createHmac } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createRemoteJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { ConfigError, loadConfig } from '../src/core/config.js';
import { startTestServer, registerUser, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { api, assertError, createRoom, enc, join, ok, putState, stateMap, suiteWithUsers, type User } from './support/rooms.js';
import { responseErrors } from './support/spec_schema.js';

const CALL_MEMBER = 'org.matrix.msc3401.call.member';
const SFU_URL = 'wss://sfu.hearth.test/ws';
const TURN_SECRET = 'n0t-a-real-turn-secret-4a7f';
const TURN_URIS = ['turn:turn.hearth.test:3478?transport=udp', 'turn:turn.hearth.test:3478?transport=tcp', 'turns:turn.hearth.test:5349?transport=tcp'];

const tokenPath = (roomId: string) => `/_hearth/client/v1/rooms/${enc(roomId)}/call/token`;
const callToken = (s: TestServer, u: User | null, roomId: string) => s.request('POST', tokenPath(roomId), { token: u?.access_token, body: {} });

/** Verifies a call token the way the SFU does: remote JWKS, EdDSA only, audience and issuer. */
async function verifyLikeSfu(baseUrl: string, token: string, currentDate?: Date): Promise<JWTPayload> {
  const jwks = createRemoteJWKSet(new URL('/_hearth/call/v1/jwks.json', baseUrl));
  const { payload } = await jwtVerify(token, jwks, { algorithms: ['EdDSA'], audience: 'hearth-sfu', issuer: 'hearth.test', currentDate });
  return payload;
}

// ---- call tokens ----

const tokens = suite<{ s: TestServer; base: string; alice: User; bob: User; carol: User; roomId: string }>('call tokens');
beforeAll(tokens, async (ctx) => {
  ctx.s = await startTestServer({ HEARTH_SFU_PUBLIC_URL: SFU_URL, HEARTH_CALL_TOKEN_TTL_MS: '120000' });
  ctx.base = await ctx.s.listen();
  for (const n of ['alice', 'bob', 'carol'] as const) ctx[n] = await registerUser(ctx.s, n);
  ctx.roomId = await createRoom(ctx.s, ctx.alice, { preset: 'public_chat' });
  await join(ctx.s, ctx.bob, ctx.roomId);
});
tokens.after(async (ctx) => {
  await ctx.s?.close();
});

tokens('a joined member gets a token whose claims verify against the JWKS', async ({ s, base, bob, roomId }) => {
  const before = Math.floor(Date.now() / 1000);
  const body = ok(await callToken(s, bob, roomId), 'token');
  assert.is(body.expires_in_ms, 120_000);
  assert.is(body.sfu_url, SFU_URL);
  const header = decodeProtectedHeader(body.token);
  assert.is(header.alg, 'EdDSA');
  assert.is(header.typ, 'JWT');
  const p = await verifyLikeSfu(base, body.token);
  assert.is(p.iss, 'hearth.test');
  assert.is(p.aud, 'hearth-sfu');
  assert.is(p.sub, bob.user_id);
  assert.is(p.device_id, bob.device_id);
  assert.is(p.room_id, roomId);
  assert.ok(p.iat! >= before && p.iat! <= Math.ceil(Date.now() / 1000), `iat ${p.iat}`);
  assert.is(p.exp! - p.iat!, 120);
  assert.type(p.jti, 'string');
  const again = ok(await callToken(s, bob, roomId), 'second token');
  assert.is.not((await verifyLikeSfu(base, again.token)).jti, p.jti);
});

tokens('the JWKS holds only the public call-token key, cacheable, and no access token verifies against it', async ({ s, base, alice, roomId }) => {
  const res = await s.request('GET', '/_hearth/call/v1/jwks.json');
  assert.is(res.status, 200);
  assert.is(res.headers['cache-control'], 'public, max-age=300');
  assert.is(res.body.keys.length, 1);
  const [key] = res.body.keys;
  assert.equal(Object.keys(key).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x']);
  assert.equal([key.kty, key.crv, key.alg, key.use], ['OKP', 'Ed25519', 'EdDSA', 'sig']);
  const token = ok(await callToken(s, alice, roomId), 'token').token;
  assert.is(decodeProtectedHeader(token).kid, key.kid);
  // Access tokens are JWTs too, but signed with their own key: the SFU must never accept one.
  assert.is.not(decodeProtectedHeader(alice.access_token).kid, key.kid);
  try {
    await jwtVerify(alice.access_token, createRemoteJWKSet(new URL('/_hearth/call/v1/jwks.json', base)), { algorithms: ['EdDSA'] });
    assert.unreachable('an access token verified against the call-token JWKS');
  } catch (err) {
    assert.instance(err, joseErrors.JWKSNoMatchingKey);
  }
});

tokens('non-members, invitees, former members and unknown rooms get 403; no access token 401', async ({ s, alice, bob, carol, roomId }) => {
  assertError(await callToken(s, carol, roomId), 403, 'M_FORBIDDEN', 'never joined');
  const privateRoom = await createRoom(s, alice, { preset: 'private_chat', invite: [carol.user_id] });
  assertError(await callToken(s, carol, privateRoom), 403, 'M_FORBIDDEN', 'invited');
  assertError(await callToken(s, carol, '!nosuchroom:hearth.test'), 403, 'M_FORBIDDEN', 'unknown room');
  const left = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, bob, left);
  ok(await callToken(s, bob, left), 'while joined');
  ok(await api(s, bob, 'POST', `/rooms/${enc(left)}/leave`, {}), 'leave');
  assertError(await callToken(s, bob, left), 403, 'M_FORBIDDEN', 'after leaving');
  assertError(await callToken(s, null, roomId), 401, 'M_MISSING_TOKEN');
});

tokens('rtc_foci names the SFU in /.well-known/matrix/client', async ({ s }) => {
  const wk = ok(await s.request('GET', '/.well-known/matrix/client'), 'well-known');
  assert.equal(wk['org.matrix.msc4143.rtc_foci'], [{ type: 'hearth_sfu', url: SFU_URL }]);
  assert.is(wk['m.homeserver'].base_url, 'http://hearth.test');
});

tokens.run();

// ---- expiry, key persistence, unconfigured SFU ----

const lifetime = suite('call token lifetime and key');

lifetime('tokens expire after HEARTH_CALL_TOKEN_TTL_MS; the key survives a restart; no SFU: no rtc_foci', async () => {
  const first = await startTestServer({ HEARTH_CALL_TOKEN_TTL_MS: '2000' });
  let second: TestServer | undefined;
  try {
    const alice = await registerUser(first, 'alice');
    const roomId = await createRoom(first, alice);
    const base = await first.listen();
    const body = ok(await callToken(first, alice, roomId), 'token');
    assert.is(body.expires_in_ms, 2000);
    assert.is(body.sfu_url, null);
    const p = await verifyLikeSfu(base, body.token);
    assert.is(p.exp! - p.iat!, 2);
    // Judged at a given instant (no sleeping): valid now, refused once exp has passed.
    try {
      await verifyLikeSfu(base, body.token, new Date((p.exp! + 1) * 1000));
      assert.unreachable('an expired call token verified');
    } catch (err) {
      assert.instance(err, joseErrors.JWTExpired);
    }
    const wk = ok(await first.request('GET', '/.well-known/matrix/client'), 'well-known');
    assert.not.ok('org.matrix.msc4143.rtc_foci' in wk);

    const kid = decodeProtectedHeader(body.token).kid;
    await first.stop();
    second = await startTestServer({}, { databaseUrl: first.databaseUrl });
    const base2 = await second.listen();
    // A token issued before the restart still verifies against the new process's JWKS.
    await verifyLikeSfu(base2, body.token);
    assert.is(decodeProtectedHeader(ok(await callToken(second, alice, roomId), 'after restart').token).kid, kid);
  } finally {
    await second?.close();
    await first.close();
  }
});

lifetime.run();

// ---- MatrixRTC membership state ----

const membership = suiteWithUsers('MatrixRTC call membership state', ['alice', 'bob', 'carol']);

const memberContent = (deviceId: string) => ({
  application: 'm.call',
  call_id: '',
  scope: 'm.room',
  device_id: deviceId,
  focus_active: { type: 'hearth_sfu', focus_selection: 'oldest_membership' },
  foci_preferred: [{ type: 'hearth_sfu', url: SFU_URL }],
  expires: 14_400_000,
});

membership('createRoom lets ordinary members announce their device; others see it in /sync; leaving is {}', async ({ s, alice, bob }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  const pl = (await stateMap(s, alice, roomId)).get('m.room.power_levels|')!.content;
  assert.is(pl.events[CALL_MEMBER], 0);
  await join(s, bob, roomId);
  const since = ok(await api(s, alice, 'GET', '/sync?timeout=0'), 'sync').next_batch;
  const key = `_${bob.user_id}_${bob.device_id}`;
  await putState(s, bob, roomId, CALL_MEMBER, key, memberContent(bob.device_id));

  const inc = ok(await api(s, alice, 'GET', `/sync?timeout=0&since=${enc(since)}`), 'incremental sync');
  const seen = inc.rooms.join[roomId].timeline.events.find((e: any) => e.type === CALL_MEMBER);
  assert.ok(seen, 'the call membership reaches alice through /sync');
  assert.is(seen.state_key, key);
  assert.is(seen.sender, bob.user_id);
  assert.equal(seen.content, memberContent(bob.device_id));

  await putState(s, bob, roomId, CALL_MEMBER, key, {});
  assert.equal((await stateMap(s, alice, roomId)).get(`${CALL_MEMBER}|${key}`)!.content, {});
});

membership("a member cannot announce or end another user's call membership", async ({ s, alice, bob, carol }) => {
  const roomId = await createRoom(s, alice, { preset: 'public_chat' });
  await join(s, bob, roomId);
  await join(s, carol, roomId);
  await putState(s, carol, roomId, CALL_MEMBER, `_${carol.user_id}_${carol.device_id}`, memberContent(carol.device_id));
  const path = (k: string) => `/rooms/${enc(roomId)}/state/${enc(CALL_MEMBER)}/${enc(k)}`;
  for (const k of [`_${carol.user_id}_${carol.device_id}`, `_${carol.user_id}_FAKEDEVICE`, `${carol.user_id}_X`, `_${carol.user_id}`, `_${alice.user_id}_A`]) {
    assertError(await api(s, bob, 'PUT', path(k), {}), 403, 'M_FORBIDDEN', k);
  }
  // A user whose id is a prefix of another's does not own the other's keys.
  assertError(await api(s, bob, 'PUT', path(`_${bob.user_id}x_D`), {}), 403, 'M_FORBIDDEN', 'prefix of another id');
  assert.equal((await stateMap(s, alice, roomId)).get(`${CALL_MEMBER}|_${carol.user_id}_${carol.device_id}`)!.content, memberContent(carol.device_id));
  // Their own keys, in the forms clients use, are accepted (`@bob_DEVICE` only in MSC3757 room versions: auth rule 8).
  for (const k of [`_${bob.user_id}_${bob.device_id}`, bob.user_id, `_${bob.user_id}_${bob.device_id}_m.call`]) {
    ok(await api(s, bob, 'PUT', path(k), {}), k);
  }
});

membership.run();

// ---- TURN credentials ----

const turn = suite<{ s: TestServer; plain: TestServer; alice: User; lines: string[] }>('voip/turnServer');
beforeAll(turn, async (ctx) => {
  const lines: string[] = (ctx.lines = []);
  ctx.s = await startTestServer(
    { HEARTH_TURN_URIS: TURN_URIS.join(', '), HEARTH_TURN_SHARED_SECRET: TURN_SECRET, HEARTH_TURN_TTL_SECONDS: '600', HEARTH_LOG_LEVEL: 'trace' },
    { logDestination: { write: (chunk: string) => void lines.push(chunk) } },
  );
  ctx.alice = await registerUser(ctx.s, 'alice');
  ctx.plain = await startTestServer({ HEARTH_RATELIMIT_CLIENT: '0.001/3' });
});
turn.after(async (ctx) => {
  await ctx.s?.close();
  await ctx.plain?.close();
});

turn('credentials follow the TURN REST API scheme and verify with an independent HMAC', async ({ s, alice, lines }) => {
  const before = Math.floor(Date.now() / 1000);
  const body = ok(await api(s, alice, 'GET', '/voip/turnServer'), 'turnServer');
  const after = Math.floor(Date.now() / 1000);
  assert.equal(responseErrors('api/client-server/voip.yaml', '/voip/turnServer', 'get', 200, body), []);
  assert.equal(body.uris, TURN_URIS);
  assert.is(body.ttl, 600);
  const m = /^(\d+):(@.+)$/.exec(body.username);
  assert.ok(m, body.username);
  assert.is(m![2], alice.user_id);
  const expiry = Number(m![1]);
  assert.ok(expiry >= before + 600 && expiry <= after + 600, `expiry ${expiry}`);
  assert.is(body.password, createHmac('sha1', TURN_SECRET).update(body.username).digest('base64'));
  const log = lines.join('');
  assert.ok(log.includes('/voip/turnServer'), 'the request was logged');
  assert.not.ok(log.includes(TURN_SECRET), 'the shared secret is in the log');
  assert.not.ok(log.includes(body.password), 'a TURN password is in the log');
});

turn('needs an access token', async ({ s }) => {
  assertError(await s.request('GET', '/_matrix/client/v3/voip/turnServer'), 401, 'M_MISSING_TOKEN');
});

turn('without a TURN server: {} (matrix-js-sdk then uses none); rate limited', async ({ plain }) => {
  const bob = await registerUser(plain, 'bob');
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) {
    const res = await api(plain, bob, 'GET', '/voip/turnServer');
    statuses.push(res.status);
    if (res.status === 200) assert.equal(res.body, {});
    else assertError(res, 429, 'M_LIMIT_EXCEEDED');
  }
  assert.ok(statuses.includes(429), `statuses ${statuses}`);
});

turn.run();

// ---- settings ----

const settings = suite('call settings');

settings('TURN needs URIs and secret together; URIs must be turn(s):, the SFU URL ws(s):', () => {
  const base = { HEARTH_SERVER_NAME: 'example.org' };
  const setting = (env: Record<string, string>) => {
    try {
      loadConfig({ ...base, ...env });
    } catch (err) {
      assert.instance(err, ConfigError);
      return (err as ConfigError).setting;
    }
    return undefined;
  };
  assert.is(setting({ HEARTH_TURN_SHARED_SECRET: 's' }), 'HEARTH_TURN_URIS');
  assert.is(setting({ HEARTH_TURN_URIS: 'turn:a:3478' }), 'HEARTH_TURN_SHARED_SECRET');
  assert.is(setting({ HEARTH_TURN_URIS: 'http://a', HEARTH_TURN_SHARED_SECRET: 's' }), 'HEARTH_TURN_URIS');
  assert.is(setting({ HEARTH_TURN_URIS: 'turn:a:3478', HEARTH_TURN_SHARED_SECRET: 's', HEARTH_TURN_TTL_SECONDS: '5' }), 'HEARTH_TURN_TTL_SECONDS');
  assert.is(setting({ HEARTH_SFU_PUBLIC_URL: 'https://sfu.example.org' }), 'HEARTH_SFU_PUBLIC_URL');
  assert.is(setting({ HEARTH_CALL_TOKEN_TTL_MS: '10' }), 'HEARTH_CALL_TOKEN_TTL_MS');
  const c = loadConfig({ ...base, HEARTH_TURN_URIS: 'turn:a:3478?transport=udp,turns:a:5349', HEARTH_TURN_SHARED_SECRET: 's' });
  assert.equal(c.turn, { uris: ['turn:a:3478?transport=udp', 'turns:a:5349'], sharedSecret: 's', ttlSeconds: 86_400 });
  assert.equal(loadConfig(base).calls, { tokenTtlMs: 300_000, sfuPublicUrl: undefined });
  assert.is(loadConfig(base).turn, undefined);
});

settings.run();
