import { createHash } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser, startTestServer, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { createTestCa, type TestCa } from './support/federation.js';
import { startIdentityServer, strayKey, type TestIdentityServer } from './support/identity_server.js';
import { api, assertError, createRoom, enc, ok, stateMap, type User } from './support/rooms.js';
import { IdentityClient } from '../src/services/identity/client.js';
import { verifyThirdPartySigned } from '../src/services/identity/signed.js';
import { createLogger } from '../src/core/logger.js';
import { encodeBase64, encodeBase64Url, generateSeed, privateKeyFromSeed, publicKeyBytes, signJson } from '../src/core/signing.js';

/**
 * Third-party (email) invites on one server, against an in-process identity server: look-up,
 * store-invite and the m.room.third_party_invite event; /3pid/onbind turning a bound address into
 * the invitee's invite (checked against the identity server's signature and key validity); the
 * bound-address shortcut; createRoom's invite_3pid; and the errors an unusable identity server gives.
 */
type Ctx = { ca: TestCa; is: TestIdentityServer; s: TestServer; alice: User; bob: User; carol: User };
const t = suite<Ctx>('third-party invites (one server)');

const IDENTITY_ENV = (ca: TestCa) => ({ HEARTH_FEDERATION_ENABLED: 'true', HEARTH_IDENTITY_CA_FILE: ca.caFile, HEARTH_IDENTITY_ALLOW_PRIVATE_ADDRESSES: 'true' });

beforeAll(t, async (ctx) => {
  ctx.ca = await createTestCa();
  ctx.is = await startIdentityServer(ctx.ca);
  ctx.s = await startTestServer(IDENTITY_ENV(ctx.ca));
  ctx.alice = await registerUser(ctx.s, 'alice');
  ctx.bob = await registerUser(ctx.s, 'bob');
  ctx.carol = await registerUser(ctx.s, 'carol');
  ok(await api(ctx.s, ctx.alice, 'PUT', `/profile/${enc(ctx.alice.user_id)}/displayname`, { displayname: 'Alice A.' }));
});
t.after(async (ctx) => {
  await ctx.s?.close();
  await ctx.is?.close();
  ctx.ca?.remove();
});

const byEmail = (is: TestIdentityServer, address: string) => ({ id_server: is.serverName, id_access_token: is.accessToken, medium: 'email', address });
const onbind = (s: TestServer) => (body: Record<string, unknown>) => s.request('PUT', '/_matrix/federation/v1/3pid/onbind', { body });
const membership = async (s: TestServer, viewer: User, roomId: string, userId: string) => (await stateMap(s, viewer, roomId)).get(`m.room.member|${userId}`);
const pendingInvites = async (s: TestServer, viewer: User, roomId: string) => [...(await stateMap(s, viewer, roomId)).values()].filter((e) => e.type === 'm.room.third_party_invite');

t('an unbound email: look-up, store-invite with the room, and an m.room.third_party_invite keyed by the token', async ({ s, is, alice }) => {
  const roomId = await createRoom(s, alice, { name: 'The Garden', room_alias_name: 'garden' });
  is.requests.length = 0;
  ok(await api(s, alice, 'POST', `/rooms/${enc(roomId)}/invite`, byEmail(is, 'Dave@Example.org')));
  // Look-up: hash_details, then the sha256 of "address medium pepper" (address in lower case), with the user's token.
  const [details, lookup, store] = is.requests;
  assert.is(details?.path, '/_matrix/identity/v2/hash_details');
  assert.is(lookup?.path, '/_matrix/identity/v2/lookup');
  assert.equal(lookup?.body, { algorithm: 'sha256', pepper: is.pepper, addresses: [createHash('sha256').update(`dave@example.org email ${is.pepper}`).digest('base64url')] });
  for (const r of [details, lookup, store]) assert.is(r?.authorization, `Bearer ${is.accessToken}`);
  assert.is(store?.path, '/_matrix/identity/v2/store-invite');
  assert.equal(store?.body, {
    medium: 'email', address: 'dave@example.org', room_id: roomId, sender: alice.user_id,
    room_alias: '#garden:hearth.test', room_join_rules: 'invite', room_name: 'The Garden', sender_display_name: 'Alice A.',
  });
  const stored = is.storedInvites.find((i) => i.body.room_id === roomId)!;
  const [tpi, ...more] = await pendingInvites(s, alice, roomId);
  assert.is(more.length, 0);
  assert.is(tpi.state_key, stored.token, 'state_key = the token store-invite returned');
  assert.is(tpi.sender, alice.user_id);
  assert.equal(tpi.content, {
    display_name: 'd...@e...',
    key_validity_url: `https://${is.serverName}/_matrix/identity/v2/pubkey/isvalid`,
    public_key: is.publicKey,
    public_keys: [
      { public_key: is.publicKey, key_validity_url: `https://${is.serverName}/_matrix/identity/v2/pubkey/isvalid` },
      { public_key: stored.ephemeralPublicKey, key_validity_url: `https://${is.serverName}/_matrix/identity/v2/pubkey/ephemeral/isvalid` },
    ],
  });
});

t('bind → /3pid/onbind → the invitee is invited (as the inviter, with the signed proof) and can join', async ({ s, is, alice }) => {
  const roomId = await createRoom(s, alice, { name: 'Bound later' });
  ok(await api(s, alice, 'POST', `/rooms/${enc(roomId)}/invite`, byEmail(is, 'erin@example.org')));
  const token = (await pendingInvites(s, alice, roomId))[0].state_key;
  const erin = await registerUser(s, 'erin');
  is.requests.length = 0;
  ok(await is.bind('email', 'erin@example.org', erin.user_id, onbind(s)), 'onbind');
  const invite = await membership(s, alice, roomId, erin.user_id);
  assert.is(invite?.content.membership, 'invite');
  assert.is(invite?.sender, alice.user_id, 'sent as the original inviter');
  assert.is(invite?.content.third_party_invite.display_name, 'e...@e...');
  assert.equal(invite?.content.third_party_invite.signed, is.sign(erin.user_id, token));
  // The issuing server asked the key_validity_url whether the key still holds.
  assert.ok(is.requests.some((r) => r.path === '/_matrix/identity/v2/pubkey/isvalid'), 'key validity checked');
  const sync = ok(await api(s, erin, 'GET', '/sync?timeout=0'));
  assert.ok(sync.rooms?.invite?.[roomId], 'the invite shows in the invitee\'s sync');
  ok(await api(s, erin, 'POST', `/join/${enc(roomId)}`, {}), 'join');
  assert.is((await membership(s, alice, roomId, erin.user_id))?.content.membership, 'join');
});

t('a bound address: an ordinary invite, no stored invite', async ({ s, is, alice, carol }) => {
  is.addBinding('email', 'carol@example.org', carol.user_id);
  const roomId = await createRoom(s, alice);
  const before = is.storedInvites.length;
  is.requests.length = 0;
  ok(await api(s, alice, 'POST', `/rooms/${enc(roomId)}/invite`, byEmail(is, 'carol@example.org')));
  const invite = await membership(s, alice, roomId, carol.user_id);
  assert.is(invite?.content.membership, 'invite');
  assert.is(invite?.content.third_party_invite, undefined);
  assert.is(is.storedInvites.length, before);
  assert.not.ok(is.requests.some((r) => r.path.endsWith('/store-invite')));
  assert.is((await pendingInvites(s, alice, roomId)).length, 0);
});

t('forged or mismatched proofs are refused: wrong key, revoked key, another token, another user', async ({ s, is, alice, bob }) => {
  const roomId = await createRoom(s, alice);
  ok(await api(s, alice, 'POST', `/rooms/${enc(roomId)}/invite`, byEmail(is, 'frank@example.org')));
  const token = (await pendingInvites(s, alice, roomId))[0].state_key;
  const frank = await registerUser(s, 'frank');
  // onbind with a signature by a key the invite does not name: processed, nothing issued.
  const forged = is.storedInvites.filter((i) => i.body.room_id === roomId);
  ok(await is.bind('email', 'frank@example.org', frank.user_id, onbind(s), { signWith: strayKey() }));
  assert.is(await membership(s, alice, roomId, frank.user_id), undefined, 'no invite from a forged signature');
  // The auth rules refuse the same forgery written directly (local write path, rule 4.4.1.8)…
  const memberPath = `/rooms/${enc(roomId)}/state/m.room.member/${enc(frank.user_id)}`;
  const content = (signed: unknown) => ({ membership: 'invite', third_party_invite: { display_name: 'f', signed } });
  assertError(await api(s, alice, 'PUT', memberPath, content(is.sign(frank.user_id, token, strayKey()))), 403, 'M_FORBIDDEN', 'wrong key');
  // …a genuine signature over another token (no such m.room.third_party_invite: rule 4.4.1.5)…
  assertError(await api(s, alice, 'PUT', memberPath, content(is.sign(frank.user_id, 'sometoken'))), 403, 'M_FORBIDDEN', 'other token');
  // …a genuine proof for someone else (rule 4.4.1.4), and the proof sent by another member (rule 4.4.1.6).
  assertError(await api(s, alice, 'PUT', memberPath, content(is.sign(bob.user_id, token))), 403, 'M_FORBIDDEN', 'other user');
  ok(await api(s, alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: bob.user_id }));
  ok(await api(s, bob, 'POST', `/join/${enc(roomId)}`, {}));
  assertError(await api(s, bob, 'PUT', memberPath, content(is.sign(frank.user_id, token))), 403, 'M_FORBIDDEN', 'not the inviter');
  // The genuine proof is accepted through the same path.
  ok(await api(s, alice, 'PUT', memberPath, content(is.sign(frank.user_id, token))), 'genuine');
  assert.is((await membership(s, alice, roomId, frank.user_id))?.content.membership, 'invite');
  assert.ok(forged.length === 1);

  // A key the identity server revoked: the issuing server asks key_validity_url and refuses.
  const room2 = await createRoom(s, alice);
  ok(await api(s, alice, 'POST', `/rooms/${enc(room2)}/invite`, byEmail(is, 'gina@example.org')));
  const gina = await registerUser(s, 'gina');
  is.revoked.add(is.publicKey);
  try {
    ok(await is.bind('email', 'gina@example.org', gina.user_id, onbind(s)));
  } finally {
    is.revoked.delete(is.publicKey);
  }
  assert.is(await membership(s, alice, room2, gina.user_id), undefined, 'no invite with a revoked key');
});

t('join with third_party_signed: the proof earns the invite, then the join; forged or someone else\'s proofs are refused', async ({ s, is, alice, bob }) => {
  const roomId = await createRoom(s, alice);
  ok(await api(s, alice, 'POST', `/rooms/${enc(roomId)}/invite`, byEmail(is, 'jo@example.org')));
  const token = (await pendingInvites(s, alice, roomId))[0].state_key;
  const jo = await registerUser(s, 'jo');
  const joinWith = (u: User, proof: unknown) => api(s, u, 'POST', `/join/${enc(roomId)}`, { third_party_signed: proof });
  // What the identity server's /sign-ed25519 hands the invitee: {mxid, sender, token, signatures}.
  const proof = (key?: ReturnType<typeof strayKey>) => is.sign(jo.user_id, token, key, { sender: alice.user_id });
  assertError(await joinWith(jo, proof(strayKey())), 403, 'M_FORBIDDEN', 'forged');
  assertError(await joinWith(bob, proof()), 403, 'M_FORBIDDEN', 'another user\'s proof');
  assertError(await joinWith(jo, { ...proof(), sender: undefined }), 400, 'M_MISSING_PARAM');
  assert.is(await membership(s, alice, roomId, jo.user_id), undefined, 'nothing issued by refused proofs');
  ok(await joinWith(jo, proof()), 'join with the genuine proof');
  const history = ok(await api(s, alice, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=10`)).chunk as any[];
  const invite = history.find((e) => e.type === 'm.room.member' && e.state_key === jo.user_id && e.content.membership === 'invite');
  assert.is(invite?.sender, alice.user_id);
  assert.equal(invite?.content.third_party_invite.signed, proof());
  assert.is((await membership(s, alice, roomId, jo.user_id))?.content.membership, 'join');
});

t('onbind: bad bodies are 400s, a user of another server is refused', async ({ s, is }) => {
  assertError(await onbind(s)({ medium: 'email', address: 'x@example.org' }), 400, 'M_MISSING_PARAM');
  assertError(await onbind(s)({ medium: 'email', address: 'x@example.org', mxid: '@x:elsewhere.example', invites: [] }), 400, 'M_INVALID_PARAM');
  assertError(await onbind(s)({ medium: 'email', address: 'x@example.org', mxid: '@nobody:hearth.test', invites: [] }), 404, 'M_NOT_FOUND');
  const many = Array.from({ length: 101 }, () => ({}));
  const bob = '@bob:hearth.test';
  assertError(await onbind(s)({ medium: 'email', address: 'x@example.org', mxid: bob, invites: many }), 400, 'M_TOO_LARGE');
  void is;
});

t('createRoom invite_3pid: bound addresses invited directly, unbound ones as m.room.third_party_invite', async ({ s, is, alice, bob }) => {
  is.addBinding('email', 'bob@example.org', bob.user_id);
  const roomId = await createRoom(s, alice, {
    name: 'Made with invites',
    preset: 'public_chat',
    invite_3pid: [byEmail(is, 'bob@example.org'), byEmail(is, 'hank@example.org')],
  });
  assert.is((await membership(s, alice, roomId, bob.user_id))?.content.membership, 'invite');
  const [tpi] = await pendingInvites(s, alice, roomId);
  const stored = is.storedInvites.find((i) => i.body.room_id === roomId);
  assert.ok(stored, 'store-invite named the new room');
  assert.is(stored!.body.room_name, 'Made with invites');
  assert.is(stored!.body.room_join_rules, 'public');
  assert.is(tpi?.state_key, stored!.token);
  // Bad entries are refused before anything is created.
  assertError(await api(s, alice, 'POST', '/createRoom', { invite_3pid: [{ medium: 'email', address: 'x@example.org', id_server: is.serverName }] }), 400, 'M_MISSING_PARAM');
  assertError(await api(s, alice, 'POST', '/createRoom', { invite_3pid: 'nope' }), 400, 'M_BAD_JSON');
});

t('identity server errors are clear Matrix errors, never 500; nothing half-made', async ({ s, is, alice, ca }) => {
  const roomId = await createRoom(s, alice);
  const invite = (body: Record<string, unknown>) => api(s, alice, 'POST', `/rooms/${enc(roomId)}/invite`, body);
  const rooms = async () => (ok(await api(s, alice, 'GET', '/joined_rooms')).joined_rooms as string[]).length;
  is.mode = 'down';
  try {
    const down = await invite(byEmail(is, 'ivan@example.org'));
    assertError(down, 502, 'M_UNKNOWN', 'identity server answering 503');
    assert.match(down.body.error, is.serverName);
    const before = await rooms();
    assertError(await api(s, alice, 'POST', '/createRoom', { invite_3pid: [byEmail(is, 'ivan@example.org')] }), 502, 'M_UNKNOWN');
    assert.is(await rooms(), before, 'no room is created when the identity server fails');
  } finally {
    is.mode = 'ok';
  }
  assertError(await invite({ ...byEmail(is, 'ivan@example.org'), id_access_token: 'wrong' }), 403, 'M_FORBIDDEN', 'token refused');
  assertError(await invite({ ...byEmail(is, 'ivan@example.org'), id_server: '127.0.0.1:1' }), 502, 'M_UNKNOWN', 'nobody listening');
  assertError(await invite({ ...byEmail(is, 'ivan@example.org'), id_server: 'not a host' }), 400, 'M_INVALID_PARAM');
  assertError(await invite({ id_server: is.serverName, medium: 'email', address: 'ivan@example.org' }), 400, 'M_MISSING_PARAM');
  assertError(await invite({ ...byEmail(is, 'ivan@example.org'), medium: 'fax' }), 400, 'M_INVALID_PARAM');
  assertError(await invite({ ...byEmail(is, '+15555550100'), medium: 'msisdn' }), 400, 'M_UNRECOGNIZED', 'store-invite takes only email');
  // Someone who may not invite is refused before the identity server hears of it.
  const outsider = await registerUser(s, 'outsider');
  is.requests.length = 0;
  assertError(await api(s, outsider, 'POST', `/rooms/${enc(roomId)}/invite`, byEmail(is, 'ivan@example.org')), 403, 'M_FORBIDDEN');
  assert.is(is.requests.length, 0);
  // Private addresses are refused unless allowed; an allow list names the identity servers users may use.
  const strict = await startTestServer({ HEARTH_IDENTITY_CA_FILE: ca.caFile });
  try {
    const u = await registerUser(strict, 'alice');
    const r = await createRoom(strict, u);
    assertError(await api(strict, u, 'POST', `/rooms/${enc(r)}/invite`, byEmail(is, 'ivan@example.org')), 400, 'M_SERVER_NOT_TRUSTED');
  } finally {
    await strict.close();
  }
  // A deadline and a size cap on every answer (here 300 ms and 1 KiB).
  const tight = await startTestServer({ ...IDENTITY_ENV(ca), HEARTH_IDENTITY_REQUEST_TIMEOUT_MS: '300', HEARTH_IDENTITY_MAX_RESPONSE_BYTES: '1024' });
  try {
    const u = await registerUser(tight, 'alice');
    const r = await createRoom(tight, u);
    for (const mode of ['hang', 'huge'] as const) {
      is.mode = mode;
      try {
        const res = await api(tight, u, 'POST', `/rooms/${enc(r)}/invite`, byEmail(is, 'ivan@example.org'));
        assertError(res, 502, 'M_UNKNOWN', mode);
        assert.match(res.body.error, mode === 'hang' ? /no answer within 300 ms/ : /larger than 1024 bytes/);
      } finally {
        is.mode = 'ok';
      }
    }
  } finally {
    await tight.close();
  }
  const client = new IdentityClient({ config: { requestTimeoutMs: 1000, maxResponseBytes: 1024, allowPrivateAddresses: true, serverAllowlist: ['id.example.org'], onbindMaxInvites: 1 }, logger: createLogger('silent') });
  assert.throws(() => client.checkServer(is.serverName), (e: any) => e.errcode === 'M_SERVER_NOT_TRUSTED');
  client.checkServer('id.example.org');
});

t('rule 4.4.1.7 verifier: any signature against any key, standard or URL-safe base64', () => {
  const key = privateKeyFromSeed(generateSeed());
  const other = privateKeyFromSeed(generateSeed());
  const signed = signJson({ mxid: '@a:x', token: 't' }, 'id.example', 'ed25519:0', key) as Record<string, unknown>;
  const std = encodeBase64(publicKeyBytes(key));
  const urlSafe = encodeBase64Url(publicKeyBytes(key));
  const otherKey = encodeBase64(publicKeyBytes(other));
  assert.ok(verifyThirdPartySigned(signed, [std]));
  assert.ok(verifyThirdPartySigned(signed, [otherKey, urlSafe]));
  assert.not.ok(verifyThirdPartySigned(signed, [otherKey]));
  assert.not.ok(verifyThirdPartySigned(signed, []));
  assert.not.ok(verifyThirdPartySigned({ ...signed, mxid: '@b:x' }, [std]), 'a changed mxid breaks the signature');
  assert.not.ok(verifyThirdPartySigned({ mxid: '@a:x', token: 't' }, [std]), 'no signatures');
  assert.not.ok(verifyThirdPartySigned({ ...signed, signatures: { 'id.example': { 'curve25519:0': 'x' } } }, [std]));
});

t.run();
