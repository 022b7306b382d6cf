import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createLogger } from '../src/core/logger.js';
import { verifyJsonSignature } from '../src/core/signing.js';
import { KeyRing } from '../src/services/federation/key_ring.js';
import { verifyKeyResponse } from '../src/services/federation/key_response.js';
import * as serverKeys from '../src/storage/server_keys.js';
import type { TrustedKeyServer } from '../src/core/config.js';
import { startFederationCluster, type FederationCluster, type FederationTestServer } from './support/federation.js';
import { beforeAll } from './support/hooks.js';

/** Three homeservers over HTTPS: A fetches B's keys directly and through C as a notary. */
const t = suite<{ cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; c: FederationTestServer }>('federation keys');

beforeAll(t, async (ctx) => {
  ctx.cluster = await startFederationCluster(['hs-a', 'hs-b', 'hs-c'], {
    env: (label): Record<string, string> => (label === 'hs-c' ? { HEARTH_FEDERATION_WELL_KNOWN_SERVER: 'fed.hs-c.localhost:443' } : {}),
  });
  [ctx.a, ctx.b, ctx.c] = ['hs-a', 'hs-b', 'hs-c'].map((l) => ctx.cluster.get(l)) as [FederationTestServer, FederationTestServer, FederationTestServer];
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

const fed = (s: FederationTestServer) => s.hs.deps.services.federation;
const signingKey = (s: FederationTestServer) => s.hs.deps.services.rooms.signingKey;
const keyRequestsFrom = (s: FederationTestServer, origin: FederationTestServer) =>
  s.federationRequests.filter((r) => r.url === '/_matrix/key/v2/server' && r.origin === origin.serverName).length;
/** Forget what A knows of `server` (database and back-off), so the next lookup fetches. */
async function forget(at: FederationTestServer, server: FederationTestServer) {
  await at.hs.deps.db.query('delete from server_keys where server_name = ?', [server.serverName]);
  fed(at).keyRing.resetBackoff();
}
const ring = (s: FederationTestServer, trustedKeyServers: TrustedKeyServer[], now?: () => number) =>
  new KeyRing({ db: s.hs.deps.db, ownKey: signingKey(s), client: fed(s).client, access: fed(s).access, trustedKeyServers, logger: createLogger('silent'), now });

t('GET /_matrix/key/v2/server: self-signed, valid for the configured period, old_verify_keys empty', async ({ b }) => {
  const before = Date.now();
  const res = await b.request('GET', '/_matrix/key/v2/server');
  assert.is(res.status, 200);
  const k = signingKey(b);
  assert.equal(res.body.verify_keys, { [k.keyId]: { key: k.publicKeyBase64 } });
  assert.equal(res.body.old_verify_keys, {});
  assert.is(res.body.server_name, b.serverName);
  assert.ok(res.body.valid_until_ts >= before + 24 * 3600_000 && res.body.valid_until_ts <= Date.now() + 24 * 3600_000);
  assert.ok(verifyJsonSignature(res.body, b.serverName, k.keyId, k.publicKeyBase64));
  verifyKeyResponse(res.body, b.serverName); // what a fetching server checks
});

t('GET /_matrix/federation/v1/version and /.well-known/matrix/server (only when configured)', async ({ b, c }) => {
  const v = await b.request('GET', '/_matrix/federation/v1/version');
  assert.is(v.status, 200);
  assert.equal(v.body, { server: { name: 'Hearth', version: '0.1.0' } });
  assert.is((await b.request('GET', '/.well-known/matrix/server')).status, 404);
  const wk = await c.request('GET', '/.well-known/matrix/server');
  assert.is(wk.status, 200);
  assert.equal(wk.body, { 'm.server': 'fed.hs-c.localhost:443' });
});

t('A fetches B keys directly over HTTPS, caches them in its database, and coalesces concurrent lookups', async ({ a, b }) => {
  await forget(a, b);
  const k = signingKey(b);
  b.federationRequests.length = 0;
  const keys = await Promise.all([1, 2, 3, 4, 5].map(() => fed(a).keyRing.getVerifyKey(b.serverName, k.keyId, { atTs: Date.now() })));
  for (const key of keys) assert.is(key?.publicKey, k.publicKeyBase64);
  assert.is(keyRequestsFrom(b, a), 1, 'five concurrent lookups, one fetch');
  const stored = await serverKeys.getServerKey(a.hs.deps.db, b.serverName, k.keyId);
  assert.is(stored?.publicKey, k.publicKeyBase64);
  assert.ok(stored!.validUntilTs > Date.now() + 23 * 3600_000);
  // Cached: no further request, even after the refetch pause is forgotten.
  fed(a).keyRing.resetBackoff();
  assert.ok(await fed(a).keyRing.getVerifyKey(b.serverName, k.keyId, { atTs: Date.now() }));
  assert.is(keyRequestsFrom(b, a), 1);
  assert.is(await fed(a).keyRing.getVerifyKey(b.serverName, 'ed25519:unknown', { atTs: Date.now() }), null, 'an unknown key id is not invented');
});

t('valid_until_ts is honoured: a lookup past it refetches; past the new one there is no key', async ({ a, b }) => {
  const k = signingKey(b);
  const stored = (await serverKeys.getServerKey(a.hs.deps.db, b.serverName, k.keyId))!;
  b.federationRequests.length = 0;
  fed(a).keyRing.resetBackoff();
  const later = await fed(a).keyRing.getVerifyKey(b.serverName, k.keyId, { atTs: stored.validUntilTs + 1 });
  assert.is(keyRequestsFrom(b, a), 1, 'refetched');
  assert.ok(later && later.validUntilTs > stored.validUntilTs, 'the new response is valid longer');
  fed(a).keyRing.resetBackoff();
  assert.is(await fed(a).keyRing.getVerifyKey(b.serverName, k.keyId, { atTs: Date.now() + 2 * 24 * 3600_000 }), null);
  assert.is(keyRequestsFrom(b, a), 2, 'tried once more, then gave up');
  // Room versions 1-4 ignore validity: atTs 0.
  assert.ok(await fed(a).keyRing.getVerifyKey(b.serverName, k.keyId, { atTs: 0 }));
});

t('validity is capped at 7 days after fetching; old keys count only for events and until expired_ts', async ({ a, b }) => {
  const now = Date.now();
  const k = signingKey(b);
  const fake = 'capped.localhost:1';
  await serverKeys.storeKeyResponse(a.hs.deps.db, {
    serverName: fake, validUntilTs: now + 30 * 24 * 3600_000, fetchedTs: now, responseJson: '{}',
    keys: [{ keyId: 'ed25519:cur', publicKey: k.publicKeyBase64, expiredTs: null }, { keyId: 'ed25519:old', publicKey: k.publicKeyBase64, expiredTs: now - 1000 }],
  });
  const kr = fed(a).keyRing;
  const day = 24 * 3600_000;
  assert.ok(await kr.getVerifyKey(fake, 'ed25519:cur', { atTs: now + 6 * day }));
  assert.is(await kr.getVerifyKey(fake, 'ed25519:cur', { atTs: now + 8 * day }), null, 'the 30-day validity counts as 7');
  assert.is(await kr.getVerifyKey(fake, 'ed25519:old', { atTs: now - 2000 }), null, 'not for requests');
  assert.ok(await kr.getVerifyKey(fake, 'ed25519:old', { atTs: now - 2000, allowOld: true }), 'for an event from before it expired');
  assert.is(await kr.getVerifyKey(fake, 'ed25519:old', { atTs: now, allowOld: true }), null, 'not for an event after it expired');
  // A notary's older copy (lower valid_until_ts) does not overwrite what we know.
  await serverKeys.storeKeyResponse(a.hs.deps.db, { serverName: fake, validUntilTs: now + day, fetchedTs: now, responseJson: '{"older":true}', keys: [{ keyId: 'ed25519:cur', publicKey: 'AAAA', expiredTs: null }] });
  assert.is((await serverKeys.getServerKey(a.hs.deps.db, fake, 'ed25519:cur'))!.publicKey, k.publicKeyBase64);
});

t('failures are negative-cached with back-off: an unreachable server is not asked again at once', async ({ a, cluster }) => {
  const kr = fed(a).keyRing;
  const lookups = () => cluster.dns.queries.filter((q) => q === 'lookup down.localhost').length;
  assert.is(await kr.getVerifyKey('down.localhost:9', 'ed25519:x', { atTs: Date.now() }), null);
  assert.is(lookups(), 1);
  assert.is(await kr.getVerifyKey('down.localhost:9', 'ed25519:y', { atTs: Date.now() }), null);
  assert.is(lookups(), 1, 'backing off');
  kr.resetBackoff('down.localhost:9');
  await kr.getVerifyKey('down.localhost:9', 'ed25519:x', { atTs: Date.now() });
  assert.is(lookups(), 2);
});

t('notary: C answers for B, signed by B and by C; minimum_valid_until_ts decides between cache and refetch', async ({ b, c }) => {
  const kb = signingKey(b);
  const kc = signingKey(c);
  await forget(c, b);
  b.federationRequests.length = 0;
  const first = await c.request('GET', `/_matrix/key/v2/query/${encodeURIComponent(b.serverName)}`);
  assert.is(first.status, 200);
  assert.is(first.body.server_keys.length, 1);
  const entry = first.body.server_keys[0];
  assert.ok(verifyJsonSignature(entry, b.serverName, kb.keyId, kb.publicKeyBase64), 'signed by the origin');
  assert.ok(verifyJsonSignature(entry, c.serverName, kc.keyId, kc.publicKeyBase64), 'and by the notary');
  assert.is(keyRequestsFrom(b, c), 1);
  // Within the cached validity: served from the cache.
  const cached = await c.request('GET', `/_matrix/key/v2/query/${encodeURIComponent(b.serverName)}?minimum_valid_until_ts=${entry.valid_until_ts}`);
  assert.equal(cached.body.server_keys[0].valid_until_ts, entry.valid_until_ts);
  assert.is(keyRequestsFrom(b, c), 1, 'no refetch');
  // Beyond it: C fetches again, and what it returns meets the minimum.
  fed(c).keyRing.resetBackoff();
  const min = entry.valid_until_ts + 1;
  const post = await c.request('POST', '/_matrix/key/v2/query', { body: { server_keys: { [b.serverName]: { [kb.keyId]: { minimum_valid_until_ts: min } } } } });
  assert.is(post.status, 200);
  assert.is(keyRequestsFrom(b, c), 2, 'refetched');
  assert.ok(post.body.server_keys.length >= 1);
  for (const r of post.body.server_keys) assert.ok(r.valid_until_ts >= min);
  // Its own keys, an unknown server, nothing asked.
  const own = await c.request('POST', '/_matrix/key/v2/query', { body: { server_keys: { [c.serverName]: {}, 'nowhere.localhost:1': {} } } });
  assert.is(own.body.server_keys.length, 1);
  assert.is(own.body.server_keys[0].server_name, c.serverName);
  assert.equal((await c.request('POST', '/_matrix/key/v2/query', { body: { server_keys: {} } })).body, { server_keys: [] });
});

t('notary query input errors', async ({ c }) => {
  const bad = async (body: unknown, errcode: string) => {
    const res = await c.request('POST', '/_matrix/key/v2/query', { body });
    assert.is(res.status, 400, JSON.stringify(body));
    assert.is(res.body.errcode, errcode);
  };
  await bad({}, 'M_MISSING_PARAM');
  await bad({ server_keys: [] }, 'M_BAD_JSON');
  await bad({ server_keys: { 'x.example': { 'ed25519:a': { minimum_valid_until_ts: 'soon' } } } }, 'M_BAD_JSON');
  await bad({ server_keys: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`s${i}.example`, {}])) }, 'M_BAD_JSON');
  const get = await c.request('GET', '/_matrix/key/v2/query/x.example?minimum_valid_until_ts=tomorrow');
  assert.is(get.status, 400);
  assert.is(get.body.errcode, 'M_INVALID_PARAM');
});

t('A fetches B keys through notary C (C key fetched from C); a notary signature that does not check out is refused', async ({ a, b, c }) => {
  const kb = signingKey(b);
  await forget(a, b);
  await forget(c, b);
  b.federationRequests.length = 0;
  c.federationRequests.length = 0;
  const viaC = ring(a, [{ serverName: c.serverName, verifyKeys: {} }]);
  const key = await viaC.getVerifyKey(b.serverName, kb.keyId, { atTs: Date.now() });
  assert.is(key?.publicKey, kb.publicKeyBase64);
  assert.is(keyRequestsFrom(b, a), 0, 'A never asked B');
  assert.is(keyRequestsFrom(b, c), 1, 'C did');
  assert.ok(c.federationRequests.some((r) => r.url.startsWith(`/_matrix/key/v2/query/${encodeURIComponent(b.serverName)}`) && r.origin === a.serverName));
  assert.ok(c.federationRequests.some((r) => r.url === '/_matrix/key/v2/server'), "C's own key, fetched from C");
  // Stored with B's signature only (what A would serve as a notary itself).
  const [resp] = await serverKeys.keyResponses(a.hs.deps.db, b.serverName, 0);
  assert.equal(Object.keys(JSON.parse(resp!.responseJson).signatures), [b.serverName]);

  // Pinned notary key: the right one works, a wrong one makes A fall back to asking B directly.
  await forget(a, b);
  const kc = signingKey(c);
  assert.ok(await ring(a, [{ serverName: c.serverName, verifyKeys: { [kc.keyId]: kc.publicKeyBase64 } }]).getVerifyKey(b.serverName, kb.keyId, { atTs: Date.now() }));
  assert.is(keyRequestsFrom(b, a), 0);
  await forget(a, b);
  const wrongPin = ring(a, [{ serverName: c.serverName, verifyKeys: { [kc.keyId]: signingKey(a).publicKeyBase64 } }]);
  assert.ok(await wrongPin.getVerifyKey(b.serverName, kb.keyId, { atTs: Date.now() }));
  assert.is(keyRequestsFrom(b, a), 1, 'fell back to the direct fetch');
});

t.run();
