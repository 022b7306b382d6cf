import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { registerUser, type TestServer } from './support/harness.js';
import { mediaIdOf, mediaRows, newDataDir, rawRequest, startMediaServer, tmpFiles, waitFor } from './support/media.js';

const UP = '/_matrix/media/v3/upload';
const DL = '/_matrix/client/v1/media/download/hearth.test';
const TH = '/_matrix/client/v1/media/thumbnail/hearth.test';

const t = suite<{ s: TestServer; dir: string; alice: string; bob: string }>('media repository');

t.before(async (ctx) => {
  ctx.dir = newDataDir();
  ctx.s = await startMediaServer(ctx.dir);
  ctx.alice = (await registerUser(ctx.s, 'alice')).access_token;
  ctx.bob = (await registerUser(ctx.s, 'bob')).access_token;
});
t.after(async (ctx) => {
  await ctx.s.close();
  fs.rmSync(ctx.dir, { recursive: true, force: true });
});

t('upload and authenticated download round trip: same bytes, spec headers, content-addressed file', async ({ s, alice, dir }) => {
  const bytes = Buffer.from('hello media ✨\n'.repeat(100));
  const up = await s.request('POST', `${UP}?filename=${encodeURIComponent('notes.txt')}`, {
    token: alice,
    rawBody: bytes,
    headers: { 'content-type': 'text/plain; charset=utf-8' },
  });
  assert.is(up.status, 200, JSON.stringify(up.body));
  assert.match(up.body.content_uri, /^mxc:\/\/hearth\.test\/[A-Za-z0-9_-]+$/);
  const id = mediaIdOf(up.body.content_uri);

  const dl = await s.request('GET', `${DL}/${id}`, { token: alice });
  assert.is(dl.status, 200);
  assert.is(dl.body, bytes.toString());
  assert.is(dl.headers['content-type'], 'text/plain; charset=utf-8');
  assert.is(dl.headers['content-length'], String(bytes.length));
  assert.is(dl.headers['content-disposition'], 'inline; filename="notes.txt"');
  assert.is(
    dl.headers['content-security-policy'],
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';",
  );
  assert.is(dl.headers['cross-origin-resource-policy'], 'cross-origin');

  // Another user may download it too; the file name in the path wins, non-ASCII names use RFC 8187.
  const named = await s.request('GET', `${DL}/${id}/${encodeURIComponent('résumé "v2".txt')}`, { token: alice });
  assert.is(named.status, 200);
  assert.is(named.headers['content-disposition'], "inline; filename*=utf-8''r%C3%A9sum%C3%A9%20%22v2%22.txt");

  const sha = createHash('sha256').update(bytes).digest('hex');
  assert.ok(fs.existsSync(path.join(dir, 'media', sha.slice(0, 2), sha.slice(2, 4), sha)), 'stored under its sha256');
  assert.equal(tmpFiles(dir), []);

  // Unsafe types are attachments; no Content-Type at all is kept as application/octet-stream.
  const html = await s.request('POST', UP, { token: alice, rawBody: '<script>alert(1)</script>', headers: { 'content-type': 'text/html' } });
  const htmlDl = await s.request('GET', `${DL}/${mediaIdOf(html.body.content_uri)}`, { token: alice });
  assert.is(htmlDl.headers['content-type'], 'text/html');
  assert.is(htmlDl.headers['content-disposition'], 'attachment');
  const bin = await s.request('POST', UP, { token: alice, rawBody: Buffer.from([0, 1, 2]) });
  const binDl = await s.request('GET', `${DL}/${mediaIdOf(bin.body.content_uri)}`, { token: alice });
  assert.is(binDl.headers['content-type'], 'application/octet-stream');
  assert.is(binDl.headers['content-disposition'], 'attachment');

  const cfg = await s.request('GET', '/_matrix/client/v1/media/config', { token: alice });
  assert.equal(cfg.body, { 'm.upload.size': 52428800 });
});

t('downloads need a valid access token; uploads too; unknown and remote media are 404', async ({ s, alice }) => {
  const up = await s.request('POST', UP, { token: alice, rawBody: 'secret', headers: { 'content-type': 'text/plain' } });
  const id = mediaIdOf(up.body.content_uri);
  const none = await s.request('GET', `${DL}/${id}`);
  assert.is(none.status, 401);
  assert.is(none.body.errcode, 'M_MISSING_TOKEN');
  const bad = await s.request('GET', `${DL}/${id}`, { token: 'syt_nonsense' });
  assert.is(bad.status, 401);
  assert.is(bad.body.errcode, 'M_UNKNOWN_TOKEN');
  assert.is((await s.request('GET', `${TH}/${id}?width=32&height=32`)).status, 401);
  assert.is((await s.request('GET', '/_matrix/client/v1/media/config')).status, 401);
  assert.is((await s.request('POST', UP, { rawBody: 'x' })).status, 401);

  const missing = await s.request('GET', `${DL}/doesNotExist`, { token: alice });
  assert.is(missing.status, 404);
  assert.is(missing.body.errcode, 'M_NOT_FOUND');
  const remote = await s.request('GET', `/_matrix/client/v1/media/download/other.example/${id}`, { token: alice });
  assert.is(remote.status, 404, 'no federation yet');
  assert.is((await s.request('GET', `${DL}/..%2F..%2Fetc`, { token: alice })).status, 404);
});

t('legacy unauthenticated endpoints are 404 M_NOT_FOUND by default (spec v1.11 freeze)', async ({ s, alice }) => {
  const up = await s.request('POST', UP, { token: alice, rawBody: 'legacy', headers: { 'content-type': 'text/plain' } });
  const id = mediaIdOf(up.body.content_uri);
  for (const p of [`/_matrix/media/v3/download/hearth.test/${id}`, `/_matrix/media/v3/thumbnail/hearth.test/${id}?width=8&height=8`]) {
    const res = await s.request('GET', p);
    assert.is(res.status, 404, p);
    assert.is(res.body.errcode, 'M_NOT_FOUND');
    assert.is((await s.request('GET', p, { token: alice })).status, 404, 'off even with a token');
  }
});

t('async upload: create, upload once; 409 on a second upload, 403 for another user, 404 for unknown ids', async ({ s, alice, bob }) => {
  const created = await s.request('POST', '/_matrix/media/v1/create', { token: alice });
  assert.is(created.status, 200);
  assert.match(created.body.content_uri, /^mxc:\/\/hearth\.test\//);
  const expires = created.body.unused_expires_at;
  assert.ok(expires > Date.now() + 23 * 3600_000 && expires <= Date.now() + 24 * 3600_000, 'expires in 24 h');
  const id = mediaIdOf(created.body.content_uri);

  // Not uploaded yet: waits up to timeout_ms, then 504 M_NOT_YET_UPLOADED.
  const early = await s.request('GET', `${DL}/${id}?timeout_ms=0`, { token: alice });
  assert.is(early.status, 504);
  assert.is(early.body.errcode, 'M_NOT_YET_UPLOADED');

  const put = (token: string, body: string, mediaId = id, server = 'hearth.test') =>
    s.request('PUT', `${UP}/${server}/${mediaId}?filename=a.json`, { token, rawBody: body, headers: { 'content-type': 'application/json' } });
  const asBob = await put(bob, '{"bob":1}');
  assert.is(asBob.status, 403);
  assert.is(asBob.body.errcode, 'M_FORBIDDEN');

  const first = await put(alice, '{"a":1}');
  assert.is(first.status, 200, JSON.stringify(first.body));
  assert.equal(first.body, {});
  const again = await put(alice, '{"a":2}');
  assert.is(again.status, 409);
  assert.is(again.body.errcode, 'M_CANNOT_OVERWRITE_MEDIA');

  const dl = await s.request('GET', `${DL}/${id}`, { token: bob });
  assert.is(dl.status, 200);
  assert.is(dl.body.a, 1, 'the first upload is kept');
  assert.is(dl.headers['content-disposition'], 'inline; filename="a.json"');

  assert.is((await put(alice, 'x', 'neverCreated')).status, 404);
  assert.is((await put(alice, 'x', id, 'other.example')).status, 404);
});

t('create: unused ids expire, and pending ids per user are limited', async () => {
  const dir = newDataDir();
  const s = await startMediaServer(dir, { HEARTH_MEDIA_UNUSED_EXPIRY_MS: '1000', HEARTH_MEDIA_MAX_PENDING_UPLOADS: '2' });
  try {
    const { access_token: tok } = await registerUser(s, 'carol');
    const a = await s.request('POST', '/_matrix/media/v1/create', { token: tok });
    assert.is((await s.request('POST', '/_matrix/media/v1/create', { token: tok })).status, 200);
    const third = await s.request('POST', '/_matrix/media/v1/create', { token: tok });
    assert.is(third.status, 429);
    assert.is(third.body.errcode, 'M_LIMIT_EXCEEDED');
    await new Promise((r) => setTimeout(r, 1100));
    const late = await s.request('PUT', `${UP}/hearth.test/${mediaIdOf(a.body.content_uri)}`, { token: tok, rawBody: 'late' });
    assert.is(late.status, 404, 'expired reservation');
    assert.is((await s.request('POST', '/_matrix/media/v1/create', { token: tok })).status, 200, 'expired ones no longer count');
    assert.is((await s.request('GET', `${DL}/${mediaIdOf(a.body.content_uri)}`, { token: tok })).status, 404);
  } finally {
    await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

t('size limit: 413 M_TOO_LARGE by Content-Length and by counting a chunked body; nothing kept', async () => {
  const dir = newDataDir();
  const s = await startMediaServer(dir, { HEARTH_MEDIA_MAX_UPLOAD_BYTES: '1000' });
  try {
    const { access_token: tok } = await registerUser(s, 'dave');
    assert.equal((await s.request('GET', '/_matrix/client/v1/media/config', { token: tok })).body, { 'm.upload.size': 1000 });
    const exact = await s.request('POST', UP, { token: tok, rawBody: Buffer.alloc(1000, 1) });
    assert.is(exact.status, 200, 'the limit itself is allowed');
    const declared = await s.request('POST', UP, { token: tok, rawBody: Buffer.alloc(1001, 1) });
    assert.is(declared.status, 413);
    assert.is(declared.body.errcode, 'M_TOO_LARGE');

    const base = await s.listen();
    const chunked = await rawRequest(base, 'POST', UP, { authorization: `Bearer ${tok}`, 'content-type': 'application/octet-stream' }, [
      Buffer.alloc(600, 2),
      Buffer.alloc(600, 3),
    ]);
    assert.is(chunked.status, 413);
    assert.is(chunked.body.errcode, 'M_TOO_LARGE');
    const created = await s.request('POST', '/_matrix/media/v1/create', { token: tok });
    const put = await rawRequest(base, 'PUT', `${UP}/hearth.test/${mediaIdOf(created.body.content_uri)}`, { authorization: `Bearer ${tok}` }, [
      Buffer.alloc(700),
      Buffer.alloc(700),
    ]);
    assert.is(put.status, 413);
    await waitFor(() => tmpFiles(dir).length === 0, 'temp files removed');
    const rows = await mediaRows(s);
    assert.is(rows.filter((r) => r.sha256 !== null).length, 1, 'only the 1000-byte upload is recorded');
  } finally {
    await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

t('legacy unauthenticated download and thumbnail work when HEARTH_MEDIA_LEGACY_UNAUTHENTICATED=true', async () => {
  const dir = newDataDir();
  const s = await startMediaServer(dir, { HEARTH_MEDIA_LEGACY_UNAUTHENTICATED: 'true' });
  try {
    const { access_token: tok } = await registerUser(s, 'erin');
    const png = await sharp({ create: { width: 40, height: 20, channels: 3, background: '#0f0' } }).png().toBuffer();
    const up = await s.request('POST', UP, { token: tok, rawBody: png, headers: { 'content-type': 'image/png' } });
    const id = mediaIdOf(up.body.content_uri);
    const dl = await s.request('GET', `/_matrix/media/v3/download/hearth.test/${id}/pic.png`);
    assert.is(dl.status, 200);
    assert.is(dl.headers['content-type'], 'image/png');
    assert.is(dl.headers['content-disposition'], 'inline; filename="pic.png"');
    assert.is(dl.headers['cross-origin-resource-policy'], 'cross-origin');
    const th = await s.request('GET', `/_matrix/media/v3/thumbnail/hearth.test/${id}?width=10&height=10&method=crop`);
    assert.is(th.status, 200);
    assert.is(th.headers['content-type'], 'image/png');
  } finally {
    await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** GETs a thumbnail on a real port (binary body) and returns its decoded metadata. */
async function thumbnailOf(base: string, token: string, query: string) {
  const res = await fetch(`${base}${query}`, { headers: { authorization: `Bearer ${token}` } });
  const data = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) return { status: res.status, body: JSON.parse(data.toString()), type: res.headers.get('content-type') };
  const meta = await sharp(data).metadata();
  return { status: res.status, width: meta.width, height: meta.height, format: meta.format, type: res.headers.get('content-type') };
}

t('thumbnails of png, jpeg, gif and webp: crop fills the box, scale keeps the aspect, never upscaled, cached', async ({ s, alice, dir }) => {
  const base = await s.listen();
  for (const format of ['png', 'jpeg', 'gif', 'webp'] as const) {
    const img = await sharp({ create: { width: 200, height: 100, channels: 3, background: '#c33' } }).toFormat(format).toBuffer();
    const up = await s.request('POST', UP, { token: alice, rawBody: img, headers: { 'content-type': `image/${format}` } });
    assert.is(up.status, 200, format);
    const id = mediaIdOf(up.body.content_uri);

    const crop = await thumbnailOf(base, alice, `${TH}/${id}?width=32&height=32&method=crop`);
    assert.equal([crop.status, crop.format, crop.width, crop.height], [200, format, 32, 32], `${format} crop`);
    assert.is(crop.type, `image/${format}`);
    const scale = await thumbnailOf(base, alice, `${TH}/${id}?width=40&height=40&method=scale`);
    assert.equal([scale.status, scale.width, scale.height], [200, 80, 40], `${format} scale covers the box, aspect kept`);
    const big = await thumbnailOf(base, alice, `${TH}/${id}?width=800&height=600`);
    assert.equal([big.status, big.width, big.height], [200, 200, 100], `${format}: smaller original is served as is`);
    const cached = path.join(dir, 'media', 'thumbnails', id.slice(0, 2), id, '32x32-crop');
    assert.ok(fs.existsSync(cached), `${format} crop thumbnail cached on disk`);
    const again = await thumbnailOf(base, alice, `${TH}/${id}?width=32&height=32&method=crop`);
    assert.equal([again.width, again.height], [32, 32]);
  }
});

t('thumbnails: unsupported types are 400 M_UNKNOWN, bad parameters are 400', async ({ s, alice }) => {
  const svg = await s.request('POST', UP, { token: alice, rawBody: '<svg xmlns="http://www.w3.org/2000/svg"/>', headers: { 'content-type': 'image/svg+xml' } });
  const text = await s.request('POST', UP, { token: alice, rawBody: 'plain', headers: { 'content-type': 'text/plain' } });
  const fakePng = await s.request('POST', UP, { token: alice, rawBody: 'not really a png', headers: { 'content-type': 'image/png' } });
  for (const up of [svg, text, fakePng]) {
    const res = await s.request('GET', `${TH}/${mediaIdOf(up.body.content_uri)}?width=32&height=32`, { token: alice });
    assert.is(res.status, 400);
    assert.is(res.body.errcode, 'M_UNKNOWN');
  }
  const id = mediaIdOf(svg.body.content_uri);
  assert.is((await s.request('GET', `${TH}/${id}?height=32`, { token: alice })).body.errcode, 'M_MISSING_PARAM');
  assert.is((await s.request('GET', `${TH}/${id}?width=-1&height=32`, { token: alice })).status, 400);
  assert.is((await s.request('GET', `${TH}/${id}?width=32&height=32&method=stretch`, { token: alice })).status, 400);
});

t('files survive a restart: a new server on the same database and data dir serves them', async () => {
  const dir = newDataDir();
  const first = await startMediaServer(dir);
  let second: TestServer | undefined;
  try {
    const { access_token: tok } = await registerUser(first, 'frank');
    const bytes = Buffer.from('persistent bytes');
    const up = await first.request('POST', `${UP}?filename=keep.txt`, { token: tok, rawBody: bytes, headers: { 'content-type': 'text/plain' } });
    await first.stop();
    second = await startMediaServer(dir, {}, first.databaseUrl);
    const dl = await second.request('GET', `${DL}/${mediaIdOf(up.body.content_uri)}`, { token: tok });
    assert.is(dl.status, 200);
    assert.is(dl.body, 'persistent bytes');
    assert.is(dl.headers['content-disposition'], 'inline; filename="keep.txt"');
  } finally {
    await second?.stop();
    await first.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Sends half of a declared body, waits until the server is writing it to a temp file, then kills the socket. */
async function abortHalfway(base: string, dir: string, method: string, urlPath: string, token: string): Promise<void> {
  const req = http.request(`${base}${urlPath}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'content-length': '200000' },
  });
  req.on('error', () => {});
  req.write(Buffer.alloc(100_000, 7));
  await waitFor(() => tmpFiles(dir).length === 1 && fs.statSync(path.join(dir, 'media', 'tmp', tmpFiles(dir)[0]!)).size > 0, 'the partial temp file');
  req.destroy();
}

t('a crash mid-upload leaves no row and no served file; temp files are removed at the next start', async () => {
  const dir = newDataDir();
  const first = await startMediaServer(dir);
  let second: TestServer | undefined;
  try {
    const { access_token: tok } = await registerUser(first, 'grace');
    const base = await first.listen();

    await abortHalfway(base, dir, 'POST', UP, tok);
    await waitFor(() => tmpFiles(dir).length === 0, 'the aborted upload to clean up its temp file');
    assert.equal(await mediaRows(first), [], 'no media row for the aborted upload');

    const created = await first.request('POST', '/_matrix/media/v1/create', { token: tok });
    const id = mediaIdOf(created.body.content_uri);
    await abortHalfway(base, dir, 'PUT', `${UP}/hearth.test/${id}`, tok);
    await waitFor(() => tmpFiles(dir).length === 0, 'the aborted PUT to clean up its temp file');
    const notServed = await first.request('GET', `${DL}/${id}?timeout_ms=0`, { token: tok });
    assert.is(notServed.status, 504, 'the half upload is not served');
    assert.is(notServed.body.errcode, 'M_NOT_YET_UPLOADED');
    assert.equal((await mediaRows(first)).map((r) => r.sha256), [null]);
    const files = fs.readdirSync(path.join(dir, 'media')).filter((f) => f !== 'tmp');
    assert.equal(files, [], 'no content file was stored');

    // A process killed mid-write leaves its temp file behind: simulated by planting some. Temp files
    // of processes still running (here: this one; another host's fresh one) must survive a start.
    const tmp = (name: string) => path.join(dir, 'media', 'tmp', name);
    const host = os.hostname();
    fs.writeFileSync(tmp(`${host}.4194305.1-dead`), Buffer.alloc(5000)); // above Linux's pid_max: gone
    fs.writeFileSync(tmp(`other-host.77.1-stale`), Buffer.alloc(10));
    fs.utimesSync(tmp(`other-host.77.1-stale`), new Date(Date.now() - 2 * 3600_000), new Date(Date.now() - 2 * 3600_000));
    fs.writeFileSync(tmp(`${host}.${process.pid}.1-live`), Buffer.alloc(10));
    fs.writeFileSync(tmp(`other-host.77.2-fresh`), Buffer.alloc(10));
    await first.stop();
    second = await startMediaServer(dir, {}, first.databaseUrl);
    assert.equal(tmpFiles(dir).sort(), [`${host}.${process.pid}.1-live`, 'other-host.77.2-fresh'].sort(), 'orphan temp files removed at start');

    // The reservation is still usable: the retried upload completes.
    const retry = await second.request('PUT', `${UP}/hearth.test/${id}`, { token: tok, rawBody: 'whole' });
    assert.is(retry.status, 200);
    assert.is((await second.request('GET', `${DL}/${id}`, { token: tok })).body, 'whole');
  } finally {
    await second?.stop();
    await first.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

t('uploads are rate-limited per user (HEARTH_RATELIMIT_MEDIA_UPLOAD)', async () => {
  const dir = newDataDir();
  const s = await startMediaServer(dir, { HEARTH_RATELIMIT_MEDIA_UPLOAD: '0.001/2' });
  try {
    const one = (await registerUser(s, 'heidi')).access_token;
    const two = (await registerUser(s, 'ivan')).access_token;
    assert.is((await s.request('POST', UP, { token: one, rawBody: 'a' })).status, 200);
    assert.is((await s.request('POST', '/_matrix/media/v1/create', { token: one })).status, 200);
    const third = await s.request('POST', UP, { token: one, rawBody: 'c' });
    assert.is(third.status, 429);
    assert.is(third.body.errcode, 'M_LIMIT_EXCEEDED');
    assert.is((await s.request('POST', UP, { token: two, rawBody: 'd' })).status, 200, 'another user has their own bucket');
  } finally {
    await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

t.run();
