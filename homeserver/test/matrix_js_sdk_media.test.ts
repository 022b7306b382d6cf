// The real matrix-js-sdk (37.x) and the media repository: client.uploadContent of a PNG, then the
// URLs the SDK itself builds with client.mxcUrlToHttp(..., useAuthentication = true) (the
// authenticated /_matrix/client/v1/media endpoints), fetched as is with the access token: the
// download is byte for byte the upload, and thumbnails have the size the request asks for.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import sharp from 'sharp';
import type * as sdk from 'matrix-js-sdk';
import { registerUser, type TestServer } from './support/harness.js';
import { beforeAll } from './support/hooks.js';
import { newDataDir, startMediaServer } from './support/media.js';
import type { User } from './support/rooms.js';
import { clientFor, quietSdk } from './support/sdk.js';

quietSdk();

const t = suite<{ s: TestServer; baseUrl: string; alice: User; client: sdk.MatrixClient }>('matrix-js-sdk 37: media');

beforeAll(t, async (ctx) => {
  ctx.s = await startMediaServer(newDataDir());
  ctx.baseUrl = await ctx.s.listen();
  ctx.alice = await registerUser(ctx.s, 'alice');
  ctx.client = clientFor(ctx.baseUrl, ctx.alice);
});
t.after(async (ctx) => {
  await ctx.s?.close();
});

/** A 200×100 PNG with a gradient (so its bytes are not trivially compressible). */
async function png(): Promise<Buffer> {
  const [w, h] = [200, 100];
  const raw = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw.set([x, y * 2, (x + y) % 256], (y * w + x) * 3);
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

t('upload, then download and thumbnails through the URLs mxcUrlToHttp builds', async ({ client, alice, baseUrl }) => {
  const bytes = await png();
  const { content_uri: mxc } = await client.uploadContent(bytes as unknown as Blob, { name: 'gradient.png', type: 'image/png' });
  assert.match(mxc, /^mxc:\/\/hearth\.test\/[A-Za-z0-9_-]+$/);
  const auth = { headers: { authorization: `Bearer ${alice.access_token}` } };

  const downloadUrl = client.mxcUrlToHttp(mxc, undefined, undefined, undefined, false, true, true)!;
  assert.ok(downloadUrl.startsWith(`${baseUrl}/_matrix/client/v1/media/download/`), downloadUrl);
  const res = await fetch(downloadUrl, auth);
  assert.is(res.status, 200);
  assert.is(res.headers.get('content-type'), 'image/png');
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(bytes), 'the same bytes');
  assert.is((await fetch(downloadUrl)).status, 401, 'authenticated media needs the token');

  for (const [method, expected] of [['crop', [40, 40]], ['scale', [80, 40]]] as const) {
    const thumbUrl = client.mxcUrlToHttp(mxc, 40, 40, method, false, true, true)!;
    assert.ok(thumbUrl.startsWith(`${baseUrl}/_matrix/client/v1/media/thumbnail/`), thumbUrl);
    const thumb = await fetch(thumbUrl, auth);
    assert.is(thumb.status, 200, `${method} thumbnail`);
    assert.is(thumb.headers.get('content-type'), 'image/png');
    const meta = await sharp(Buffer.from(await thumb.arrayBuffer())).metadata();
    assert.equal([meta.format, meta.width, meta.height], ['png', ...expected], `${method}: 40×40 asked of 200×100`);
  }
});

t.run();
