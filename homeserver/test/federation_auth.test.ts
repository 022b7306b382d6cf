import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import Koa from 'koa';
import { Router } from '@koa/router';
import { inject } from 'light-my-request';
import { createLogger } from '../src/core/logger.js';
import { encodeBase64, generateSeed } from '../src/core/signing.js';
import { ServerSigningKey } from '../src/services/rooms/signing_key.js';
import { FederationClient } from '../src/services/federation/client.js';
import { ServerResolver } from '../src/services/federation/resolver.js';
import { FederationTransport } from '../src/services/federation/transport.js';
import { ServerNameAccess } from '../src/services/federation/server_name.js';
import { signRequest, type RequestSigner } from '../src/services/federation/x_matrix.js';
import { matrixErrors } from '../src/api/middleware/errors.js';
import { jsonBody } from '../src/api/middleware/body.js';
import { requireXMatrix, originOf, type FederationState } from '../src/api/middleware/x_matrix.js';
import { registerUser, type TestServer } from './support/harness.js';
import { startFederationCluster, type FederationCluster, type FederationTestServer, remoteError } from './support/federation.js';
import { beforeAll } from './support/hooks.js';

/** Signed requests between real servers: the profile query, X-Matrix refusals, allow/deny lists, TLS trust. */
const t = suite<{ cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; c: FederationTestServer }>('federation request authentication');

beforeAll(t, async (ctx) => {
  ctx.cluster = await startFederationCluster(['hs-a', 'hs-b', 'hs-c'], {
    env: (label): Record<string, string> => (label === 'hs-b' ? { HEARTH_FEDERATION_DOMAIN_DENYLIST: 'hs-c.localhost' } : {}),
  });
  [ctx.a, ctx.b, ctx.c] = ['hs-a', 'hs-b', 'hs-c'].map((l) => ctx.cluster.get(l)) as [FederationTestServer, FederationTestServer, FederationTestServer];
  const bob = await registerUser(ctx.b as unknown as TestServer, 'bob');
  await ctx.b.request('PUT', `/_matrix/client/v3/profile/${encodeURIComponent(`@bob:${ctx.b.serverName}`)}/displayname`, { token: bob.access_token, body: { displayname: 'Bob B.' } });
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
});

const fed = (s: FederationTestServer) => s.hs.deps.services.federation;
const signer = (s: FederationTestServer) => s.hs.deps.services.rooms.signingKey;
const profilePath = (userId: string, field?: string) =>
  `/_matrix/federation/v1/query/profile?user_id=${encodeURIComponent(userId)}${field ? `&field=${field}` : ''}`;


t('A queries a profile on B with a signed request over HTTPS (GET /_matrix/federation/v1/query/profile)', async ({ a, b }) => {
  const bob = `@bob:${b.serverName}`;
  const query = (q: Record<string, string>) => fed(a).client.request({ destination: b.serverName, method: 'GET', path: '/_matrix/federation/v1/query/profile', query: q });
  assert.equal(await query({ user_id: bob }), { displayname: 'Bob B.' });
  assert.equal(await query({ user_id: bob, field: 'displayname' }), { displayname: 'Bob B.' });
  b.federationRequests.length = 0;
  const noAvatar = await remoteError(query({ user_id: bob, field: 'avatar_url' }));
  assert.is(noAvatar.kind, 'remote');
  assert.is(noAvatar.status, 404);
  assert.is(noAvatar.errcode, 'M_NOT_FOUND');
  assert.is(b.federationRequests[0]?.origin, a.serverName);
  assert.is((await remoteError(query({ user_id: bob, field: 'm.tz' }))).status, 404);
  assert.is((await remoteError(query({ user_id: `@nobody:${b.serverName}` }))).errcode, 'M_NOT_FOUND');
  const foreign = await remoteError(query({ user_id: `@x:${a.serverName}` }));
  assert.is(foreign.status, 400);
  assert.is(foreign.errcode, 'M_INVALID_PARAM');
  assert.is((await remoteError(query({}))).errcode, 'M_MISSING_PARAM');
});

t('requests with a bad X-Matrix header are refused with 401 M_UNAUTHORIZED', async ({ a, b }) => {
  const uri = profilePath(`@bob:${b.serverName}`);
  const get = (authorization?: string, path = uri) => b.request('GET', path, authorization ? { headers: { authorization } } : {});
  const good = signRequest(signer(a), { method: 'GET', uri, destination: b.serverName });
  const ok = await get(good);
  assert.is(ok.status, 200, 'the well-formed request passes');
  assert.equal(ok.body, { displayname: 'Bob B.' });

  const stranger: RequestSigner = ServerSigningKey.fromStored(`ed25519 a_xyz ${encodeBase64(generateSeed())}`, a.serverName);
  // [case, header, path (default: the signed one), what the error says (which check refused it)]
  const refusals: [string, string | undefined, string | undefined, RegExp][] = [
    ['no header', undefined, undefined, /Missing/],
    ['another scheme', 'Bearer abc', undefined, /Malformed/],
    ['malformed header', good.replace(/,key=/, ' key='), undefined, /Malformed/],
    ['wrong destination', signRequest(signer(a), { method: 'GET', uri, destination: 'hs-z.localhost:1' }), undefined, /not to this server/],
    ['unknown key', signRequest(stranger, { method: 'GET', uri, destination: b.serverName }), undefined, /Unknown or expired key/],
    ['bad signature (another key under the known key id)', good.replace(/sig="[^"]+"/, `sig="${/sig="([^"]+)"/.exec(signRequest(ServerSigningKey.fromStored(`ed25519 ${signer(a).keyId.slice(8)} ${encodeBase64(generateSeed())}`, a.serverName), { method: 'GET', uri, destination: b.serverName }))![1]}"`), undefined, /Invalid X-Matrix signature/],
    ['signature mangled', good.replace(/sig="(.)/, (_m, c: string) => `sig="${c === 'A' ? 'B' : 'A'}`), undefined, /Invalid X-Matrix signature/],
    ['tampered uri', good, profilePath(`@bob:${b.serverName}`, 'displayname'), /Invalid X-Matrix signature/],
    ['signed as another method', signRequest(signer(a), { method: 'POST', uri, destination: b.serverName }), undefined, /Invalid X-Matrix signature/],
    ['origin that is not a server name', good.replace(/origin="[^"]+"/, 'origin="not a name"'), undefined, /not a valid server name/],
    ['origin claims another server', good.replace(/origin="[^"]+"/, `origin="${b.serverName}"`), undefined, /Unknown or expired key/],
  ];
  for (const [name, header, path, why] of refusals) {
    const res = await get(header, path);
    assert.is(res.status, 401, name);
    assert.is(res.body.errcode, 'M_UNAUTHORIZED', name);
    assert.match(res.body.error, why, name);
  }
  // A header without destination (servers older than v1.3) is still accepted when it verifies.
  const noDest = good.replace(/destination="[^"]+",/, '');
  assert.is((await get(noDest)).status, 200);
});

t('an origin on the deny list gets 403 M_FORBIDDEN without any key fetch; the version endpoint needs no auth', async ({ b, c }) => {
  b.federationRequests.length = 0;
  c.federationRequests.length = 0;
  const err = await remoteError(fed(c).client.request({ destination: b.serverName, method: 'GET', path: '/_matrix/federation/v1/query/profile', query: { user_id: `@bob:${b.serverName}` } }));
  assert.is(err.status, 403);
  assert.is(err.errcode, 'M_FORBIDDEN');
  assert.is(c.federationRequests.length, 0, "B did not fetch C's keys");
  assert.equal(await fed(c).client.request({ destination: b.serverName, method: 'GET', path: '/_matrix/federation/v1/version' }), { server: { name: 'Hearth', version: '0.1.0' } });
});

t('signed bodies: content is verified against the raw body; allow lists refuse other origins', async ({ a, b, c }) => {
  // The middleware on a route of its own (no authenticated PUT/POST endpoint exists yet), with B's real key ring.
  const build = (access: ServerNameAccess) => {
    const app = new Koa<FederationState>();
    app.use(matrixErrors(createLogger('silent')));
    app.use(jsonBody(1024 * 1024));
    const r = new Router<FederationState>();
    r.post('/_matrix/federation/v1/test', requireXMatrix({ serverName: b.serverName, keyRing: fed(b).keyRing, access, logger: createLogger('silent') }), (ctx) => {
      ctx.body = { origin: originOf(ctx), got: ctx.request.json };
    });
    app.use(r.routes());
    return app.callback();
  };
  const open = build(new ServerNameAccess([], []));
  const uri = '/_matrix/federation/v1/test';
  const content = { pdus: [], edus: [{ edu_type: 'm.typing', content: { n: 1 } }] };
  const post = (cb: ReturnType<typeof build>, from: FederationTestServer, signedContent: unknown, payload: string) =>
    inject(cb as never, { method: 'POST', url: uri, payload, headers: { 'content-type': 'application/json', authorization: signRequest(signer(from), { method: 'POST', uri, destination: b.serverName, content: signedContent as never }) } });
  const ok = await post(open, a, content, JSON.stringify(content));
  assert.is(ok.statusCode, 200);
  assert.equal(JSON.parse(ok.body), { origin: a.serverName, got: content });
  // Reordered keys and whitespace are the same canonical content.
  assert.is((await post(open, a, content, '{ "edus": [{"content": {"n": 1}, "edu_type": "m.typing"}], "pdus": [] }')).statusCode, 200);
  const tampered = await post(open, a, content, JSON.stringify({ ...content, pdus: [{}] }));
  assert.is(tampered.statusCode, 401);
  assert.is(JSON.parse(tampered.body).errcode, 'M_UNAUTHORIZED');
  // Duplicate keys: JSON.parse would keep the last one; the strict parser refuses the body.
  const dup = await post(open, a, { a: 2 }, '{"a": 1, "a": 2}');
  assert.is(dup.statusCode, 400);
  assert.is(JSON.parse(dup.body).errcode, 'M_BAD_JSON');
  const onlyA = build(new ServerNameAccess(['hs-a.localhost'], []));
  assert.is((await post(onlyA, a, content, JSON.stringify(content))).statusCode, 200);
  const fromC = await post(onlyA, c, content, JSON.stringify(content));
  assert.is(fromC.statusCode, 403);
  assert.is(JSON.parse(fromC.body).errcode, 'M_FORBIDDEN');
});

t('outgoing: deny list, private addresses, untrusted or mismatched certificates are refused; insecure skips verification', async ({ a, b, cluster }) => {
  const logger = createLogger('silent');
  const client = (o: { access?: ServerNameAccess; caFile?: string; insecure?: boolean; allowPrivate?: boolean; enabled?: boolean }) => {
    const transport = new FederationTransport({ caFile: o.caFile, insecure: o.insecure ?? false });
    const resolver = new ServerResolver({ dns: cluster.dns, transport, allowPrivateAddresses: o.allowPrivate ?? true, wellKnownTimeoutMs: 5000, logger });
    return {
      transport,
      client: new FederationClient({ enabled: o.enabled ?? true, signer: signer(a), resolver, transport, access: o.access ?? new ServerNameAccess([], []), requestTimeoutMs: 5000, maxResponseBytes: 1 << 20, logger }),
    };
  };
  const version = (c: FederationClient, destination = b.serverName) => c.request({ destination, method: 'GET', path: '/_matrix/federation/v1/version' });
  const cases: [string, Parameters<typeof client>[0], string, string?][] = [
    ['denied destination', { access: new ServerNameAccess([], ['hs-b.localhost']), caFile: cluster.ca.caFile }, 'denied'],
    ['not on the allow list', { access: new ServerNameAccess(['hs-x.localhost'], []), caFile: cluster.ca.caFile }, 'denied'],
    ['private address', { caFile: cluster.ca.caFile, allowPrivate: false }, 'private_address'],
    ['certificate from an unknown CA', {}, 'tls'],
    ['certificate for another name', { caFile: cluster.ca.caFile }, 'tls', `wrong.localhost:${b.port}`],
  ];
  cluster.dns.addHost('wrong.localhost', '127.0.0.1');
  for (const [name, opts, kind, destination] of cases) {
    const { client: c, transport } = client(opts);
    b.federationRequests.length = 0;
    const err = await remoteError(version(c, destination));
    transport.close();
    assert.is(err.kind, kind, name);
    assert.is(b.federationRequests.length, 0, `${name}: nothing reached B`);
  }
  const insecure = client({ insecure: true });
  assert.equal(await version(insecure.client), { server: { name: 'Hearth', version: '0.1.0' } });
  insecure.transport.close();
  const disabled = client({ caFile: cluster.ca.caFile, enabled: false });
  assert.is((await remoteError(version(disabled.client))).kind, 'disabled');
  disabled.transport.close();
  const tiny = await remoteError(fed(a).client.request({ destination: b.serverName, method: 'GET', path: '/_matrix/key/v2/server', maxResponseBytes: 100 }));
  assert.is(tiny.kind, 'too_large');
  const unknown = await remoteError(fed(a).client.request({ destination: b.serverName, method: 'GET', path: '/_matrix/federation/v1/nothing' }));
  assert.equal([unknown.kind, unknown.status, unknown.errcode], ['remote', 404, 'M_UNRECOGNIZED']);
});

t.run();
