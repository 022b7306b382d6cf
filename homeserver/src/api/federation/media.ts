/**
 * GET /_matrix/federation/v1/media/download/{mediaId} and /thumbnail/{mediaId} (spec v1.11,
 * server-server API "Content Repository"): our own media only, as `multipart/mixed` with exactly
 * two parts, the JSON metadata (`{}`) and the content with its `Content-Type` and
 * `Content-Disposition`.
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ParameterizedContext } from 'koa';
import type { MediaFile } from '../../services/media.js';
import { contentDisposition, dimension, methodOf, queryString, timeoutOf } from '../media.js';
import type { FederationArea } from './index.js';

/** Writes `media` as the two-part multipart answer, streaming the file between the framing. */
function serveMultipart(ctx: ParameterizedContext, media: MediaFile, filename: string | null): void {
  const boundary = randomBytes(16).toString('hex');
  const head = Buffer.from(
    `--${boundary}\r\nContent-Type: application/json\r\n\r\n{}\r\n` +
      `--${boundary}\r\nContent-Type: ${media.contentType}\r\nContent-Disposition: ${contentDisposition(media.contentType, filename)}\r\n\r\n`,
    'utf8',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8');
  async function* body() {
    yield head;
    for await (const chunk of fs.createReadStream(media.file)) yield chunk as Buffer;
    yield tail;
  }
  ctx.status = 200;
  ctx.set('Content-Type', `multipart/mixed; boundary=${boundary}`);
  ctx.body = Readable.from(body(), { objectMode: false });
  ctx.length = head.length + media.size + tail.length;
}

export const mediaArea: FederationArea = (router, { services, config }) => {
  router.get('/v1/media/download/:mediaId', async (ctx) => {
    // Only media of this server: other servers ask the media's own server (the mxc authority).
    const media = await services.media.download(config.serverName, ctx.params.mediaId!, timeoutOf(ctx), false);
    serveMultipart(ctx, media, media.uploadName);
  });

  router.get('/v1/media/thumbnail/:mediaId', async (ctx) => {
    const media = await services.media.thumbnail(config.serverName, ctx.params.mediaId!, {
      width: dimension(ctx, 'width'),
      height: dimension(ctx, 'height'),
      method: methodOf(ctx),
      animated: queryString(ctx, 'animated') === 'true',
      timeoutMs: timeoutOf(ctx),
      allowRemote: false,
    });
    serveMultipart(ctx, media, null);
  });
};
