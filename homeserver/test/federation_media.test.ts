import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import sharp from 'sharp';
import { registerUser } from './support/harness.js';
import { startFederationCluster, startRecordingPeer, type FederationCluster, type FederationTestServer, asTestServer as ts } from './support/federation.js';
import { newDataDir } from './support/media.js';
import { beforeAll } from './support/hooks.js';
import { boundaryOf, parseMultipart } from '../src/services/federation/media.js';
import type { User } from './support/rooms.js';

/**
 * Media between real servers (spec v1.11 "Content Repository"): A serves its media over the
 * X-Matrix-authenticated federation endpoints as multipart/mixed; a user on B downloads A's media
 * through B, which fetches it once, keeps it in its own store and serves later requests from there.
 */
type Ctx = { cluster: FederationCluster; a: FederationTestServer; b: FederationTestServer; alice: User; bob: User; bUrl: string; dirs: Record<string, string>; png: Buffer; pngId: string };
const t = suite<Ctx>('federation: media between servers');

/** B's limit on remote media (HEARTH_FEDERATION_REMOTE_MEDIA_MAX_BYTES). */
const B_REMOTE_MAX = 100_000;

beforeAll(t, async (ctx) => {
  ctx.dirs = { 'hs-a': newDataDir(), 'hs-b': newDataDir() };
  ctx.cluster = await startFederationCluster(['hs-a', 'hs-b'], {
    env: (label) => ({
      HEARTH_DATA_DIR: ctx.dirs[label]!,
      HEARTH_RATELIMIT_MEDIA_UPLOAD: '1000/1000',
      HEARTH_MEDIA_LEGACY_UNAUTHENTICATED: 'true',
      ...(label === 'hs-b' ? { HEARTH_FEDERATION_REMOTE_MEDIA_MAX_BYTES: String(B_REMOTE_MAX) } : {}),
    }),
  });
  ctx.a = ctx.cluster.get('hs-a');
  ctx.b = ctx.cluster.get('hs-b');
  ctx.alice = await registerUser(ts(ctx.a), 'alice');
  ctx.bob = await registerUser(ts(ctx.b), 'bob');
  ctx.bUrl = await ctx.b.listen();
  ctx.png = await sharp({ create: { width: 200, height: 100, channels: 3, background: '#36c' } }).png().toBuffer();
  ctx.pngId = await upload(ctx, ctx.png, 'image/png', 'pic.png');
});
t.after(async (ctx) => {
  await ctx.cluster?.close();
  for (const d of Object.values(ctx.dirs ?? {})) fs.rmSync(d, { recursive: true, force: true });
});

async function upload(ctx: Ctx, data: Buffer, contentType: string, filename: string): Promise<string> {
  const res = await ctx.a.request('POST', `/_matrix/media/v3/upload?filename=${encodeURIComponent(filename)}`, { token: ctx.alice.access_token, rawBody: data, headers: { 'content-type': contentType } });
  assert.is(res.status, 200, JSON.stringify(res.body));
  return (res.body.content_uri as string).replace(`mxc://${ctx.a.serverName}/`, '');
}

/** A client request to B on its real port (binary bodies intact). */
async function viaB(ctx: Ctx, path: string, token: string | null = ctx.bob.access_token) {
  const res = await fetch(`${ctx.bUrl}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) as { errcode: string } };
}

const mediaFetches = (ctx: Ctx, id: string) => ctx.a.federationRequests.filter((r) => r.url.startsWith(`/_matrix/federation/v1/media/download/${id}`));

t('A serves its media to B over federation as multipart/mixed: {} metadata, then the bytes with type and disposition', async (ctx) => {
  const res = await ctx.b.hs.deps.services.federation.client.requestRaw({ destination: ctx.a.serverName, method: 'GET', path: `/_matrix/federation/v1/media/download/${ctx.pngId}` });
  assert.is(res.status, 200);
  const boundary = boundaryOf(res.headers['content-type']);
  assert.ok(boundary, `multipart/mixed with a boundary (got ${res.headers['content-type']})`);
  const parts = parseMultipart(res.body, boundary);
  assert.is(parts.length, 2);
  assert.is(parts[0]!.headers['content-type'], 'application/json');
  assert.equal(JSON.parse(parts[0]!.body.toString('utf8')), {});
  assert.is(parts[1]!.headers['content-type'], 'image/png');
  assert.is(parts[1]!.headers['content-disposition'], 'inline; filename="pic.png"');
  assert.ok(parts[1]!.body.equals(ctx.png), 'the exact bytes');
  assert.is(Number(res.headers['content-length']), res.body.length, 'Content-Length covers the whole multipart body');

  const thumb = await ctx.b.hs.deps.services.federation.client.requestRaw({ destination: ctx.a.serverName, method: 'GET', path: `/_matrix/federation/v1/media/thumbnail/${ctx.pngId}`, query: { width: 32, height: 32, method: 'scale' } });
  const tparts = parseMultipart(thumb.body, boundaryOf(thumb.headers['content-type'])!);
  assert.is(tparts.length, 2);
  assert.is(tparts[1]!.headers['content-type'], 'image/png');
  const meta = await sharp(tparts[1]!.body).metadata();
  assert.ok(meta.width! < 200 && meta.height! >= 32, `a thumbnail, not the original (${meta.width}x${meta.height})`);
});

t('federation media requests without a valid X-Matrix header are refused; unknown media is 404', async (ctx) => {
  const unsigned = await ctx.a.request('GET', `/_matrix/federation/v1/media/download/${ctx.pngId}`);
  assert.is(unsigned.status, 401);
  assert.is(unsigned.body.errcode, 'M_UNAUTHORIZED');
  const forged = await ctx.a.request('GET', `/_matrix/federation/v1/media/thumbnail/${ctx.pngId}?width=32&height=32`, {
    headers: { authorization: `X-Matrix origin="${ctx.b.serverName}",destination="${ctx.a.serverName}",key="ed25519:a_bcd",sig="bm90IGEgc2lnbmF0dXJl"` },
  });
  assert.is(forged.status, 401);
  const unknown = await ctx.b.hs.deps.services.federation.client.requestRaw({ destination: ctx.a.serverName, method: 'GET', path: '/_matrix/federation/v1/media/download/nosuchmedia' }).then(
    () => null,
    (err: { status?: number; errcode?: string }) => err,
  );
  assert.is(unknown?.status, 404);
  assert.is(unknown?.errcode, 'M_NOT_FOUND');
});

t('bob on B downloads A\'s upload through B: fetched once over federation, then served from B\'s own store', async (ctx) => {
  ctx.a.federationRequests.length = 0; // the first test asked A directly
  const path = `/_matrix/client/v1/media/download/${encodeURIComponent(ctx.a.serverName)}/${ctx.pngId}`;
  const first = await viaB(ctx, path);
  assert.is(first.status, 200);
  assert.ok(first.body.equals(ctx.png), 'the same bytes');
  assert.is(first.headers.get('content-type'), 'image/png');
  assert.is(first.headers.get('content-disposition'), 'inline; filename="pic.png"');
  assert.is(mediaFetches(ctx, ctx.pngId).length, 1, 'one fetch from A');
  assert.is(mediaFetches(ctx, ctx.pngId)[0]!.origin, ctx.b.serverName);
  // Kept in B's content-addressed store and recorded in remote_media.
  const sha = createHash('sha256').update(ctx.png).digest('hex');
  assert.ok(fs.existsSync(ctx.b.hs.deps.services.media.files.contentPath(sha)), 'the file is in B\'s store');
  assert.ok(ctx.b.hs.deps.services.media.files.root.startsWith(ctx.dirs['hs-b']!), 'B\'s own data dir');
  const rows = await ctx.b.hs.deps.db.query<{ sha256: string; upload_name: string; content_type: string; size: string }>('select sha256, upload_name, content_type, size from remote_media where server_name = ? and media_id = ?', [ctx.a.serverName, ctx.pngId]);
  assert.equal(rows.map((r) => ({ ...r, size: Number(r.size) })), [{ sha256: sha, upload_name: 'pic.png', content_type: 'image/png', size: ctx.png.length }]);

  const again = await viaB(ctx, `${path}/other-name.png`);
  assert.is(again.status, 200);
  assert.ok(again.body.equals(ctx.png));
  assert.is(again.headers.get('content-disposition'), 'inline; filename="other-name.png"');
  assert.is(mediaFetches(ctx, ctx.pngId).length, 1, 'the second download came from B\'s cache');
});

t('concurrent downloads of the same remote media fetch it once; a non-ASCII file name survives the trip', async (ctx) => {
  const data = Buffer.from('some notes\n'.repeat(100));
  const id = await upload(ctx, data, 'text/plain', 'notes é ü.txt');
  const path = `/_matrix/client/v1/media/download/${encodeURIComponent(ctx.a.serverName)}/${id}`;
  const all = await Promise.all(Array.from({ length: 6 }, () => viaB(ctx, path)));
  for (const r of all) {
    assert.is(r.status, 200);
    assert.ok(r.body.equals(data));
  }
  assert.is(mediaFetches(ctx, id).length, 1, 'one fetch for six concurrent downloads');
  assert.is(all[0]!.headers.get('content-disposition'), "inline; filename*=utf-8''notes%20%C3%A9%20%C3%BC.txt");
});

t('a thumbnail of A\'s image through B', async (ctx) => {
  const img = await sharp({ create: { width: 300, height: 300, channels: 3, background: '#c33' } }).jpeg().toBuffer();
  const id = await upload(ctx, img, 'image/jpeg', 'red.jpg');
  const res = await viaB(ctx, `/_matrix/client/v1/media/thumbnail/${encodeURIComponent(ctx.a.serverName)}/${id}?width=64&height=64&method=crop`);
  assert.is(res.status, 200);
  assert.is(res.headers.get('content-type'), 'image/jpeg');
  const meta = await sharp(res.body).metadata();
  assert.equal([meta.width, meta.height], [64, 64]);
  const second = await viaB(ctx, `/_matrix/client/v1/media/thumbnail/${encodeURIComponent(ctx.a.serverName)}/${id}?width=32&height=32&method=scale`);
  assert.is(second.status, 200);
  assert.is(mediaFetches(ctx, id).length, 1, 'both sizes from one fetch');
});

t('unknown remote media is 404; too large is 502 M_TOO_LARGE and nothing is kept; an unreachable server 502', async (ctx) => {
  const unknown = await viaB(ctx, `/_matrix/client/v1/media/download/${encodeURIComponent(ctx.a.serverName)}/nosuchmedia`);
  assert.is(unknown.status, 404);
  assert.is(unknown.json().errcode, 'M_NOT_FOUND');

  const big = await upload(ctx, Buffer.alloc(B_REMOTE_MAX + 1, 7), 'application/octet-stream', 'big.bin');
  const tooBig = await viaB(ctx, `/_matrix/client/v1/media/download/${encodeURIComponent(ctx.a.serverName)}/${big}`);
  assert.is(tooBig.status, 502);
  assert.is(tooBig.json().errcode, 'M_TOO_LARGE');
  const kept = await ctx.b.hs.deps.db.query('select 1 from remote_media where media_id = ?', [big]);
  assert.is(kept.length, 0);
  const tooBigThumb = await viaB(ctx, `/_matrix/client/v1/media/thumbnail/${encodeURIComponent(ctx.a.serverName)}/${big}?width=32&height=32`);
  assert.is(tooBigThumb.status, 502);

  const gone = await viaB(ctx, '/_matrix/client/v1/media/download/hs-gone.localhost:1/abcdef');
  assert.is(gone.status, 502);
  assert.is(gone.json().errcode, 'M_UNKNOWN');
  const unauthenticated = await viaB(ctx, `/_matrix/client/v1/media/download/${encodeURIComponent(ctx.a.serverName)}/${ctx.pngId}`, null);
  assert.is(unauthenticated.status, 401);
});

t('legacy endpoints: allow_remote=false never fetches; a server without the v1.11 endpoint is asked on the legacy path', async (ctx) => {
  const legacy = `/_matrix/media/v3/download/${encodeURIComponent(ctx.a.serverName)}/${ctx.pngId}`;
  assert.is((await viaB(ctx, `${legacy}?allow_remote=false`, null)).status, 404, 'allow_remote=false: not fetched');
  assert.is((await viaB(ctx, legacy, null)).status, 200, 'legacy download of cached remote media');

  const old = await startRecordingPeer(ctx.cluster, 'hs-old');
  try {
    const res = await viaB(ctx, `/_matrix/client/v1/media/download/${encodeURIComponent(old.serverName)}/oldmedia`);
    assert.is(res.status, 404);
    assert.equal(old.requests, [
      'GET /_matrix/federation/v1/media/download/oldmedia',
      `GET /_matrix/media/v3/download/${encodeURIComponent(old.serverName)}/oldmedia?allow_remote=false`,
    ]);
  } finally {
    await old.close();
  }
});

t.run();
