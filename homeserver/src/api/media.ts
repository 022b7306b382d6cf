import fs from 'node:fs';
import type { ParameterizedContext } from 'koa';
import type { Middleware } from 'koa';
import type { Area, AppDeps, AppRouter } from '../app.js';
import { invalidParam, missingParam, notFound, tooLarge } from '../core/errors.js';
import { mimeEssence, type MediaFile } from '../services/media.js';
import type { ThumbnailMethod } from '../services/media/thumbnails.js';
import { requireAuth, requesterOf, type AuthState } from './middleware/auth.js';
import { rateLimit } from './middleware/ratelimit.js';

/** Upload paths take raw bytes: the JSON body middleware leaves them alone. */
export const isMediaUploadPath = (path: string) => /^\/_matrix\/media\/v3\/upload(\/|$)/.test(path);

/** Spec "Serving inline content": the only types served with `Content-Disposition: inline`. */
const INLINE_TYPES = new Set([
  'text/css', 'text/plain', 'text/csv', 'application/json', 'application/ld+json',
  'image/jpeg', 'image/gif', 'image/png', 'image/apng', 'image/webp', 'image/avif',
  'video/mp4', 'video/webm', 'video/ogg', 'video/quicktime',
  'audio/mp4', 'audio/webm', 'audio/aac', 'audio/mpeg', 'audio/ogg', 'audio/wave', 'audio/wav',
  'audio/x-wav', 'audio/x-pn-wav', 'audio/flac', 'audio/x-flac',
]);

const CSP =
  "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';";

/** RFC 6266 / RFC 8187: a plain quoted filename when it is safe ASCII, else `filename*=utf-8''…`. */
export function contentDisposition(contentType: string, filename: string | null): string {
  const kind = INLINE_TYPES.has(mimeEssence(contentType)) ? 'inline' : 'attachment';
  if (!filename) return kind;
  if (/^[\x20-\x7e]*$/.test(filename) && !/["\\]/.test(filename)) return `${kind}; filename="${filename}"`;
  const encoded = encodeURIComponent(filename).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${kind}; filename*=utf-8''${encoded}`;
}

function serve(ctx: ParameterizedContext<AuthState>, media: MediaFile, filename: string | null): void {
  ctx.status = 200;
  ctx.set('Content-Type', media.contentType);
  ctx.set('Content-Disposition', contentDisposition(media.contentType, filename));
  ctx.set('Content-Security-Policy', CSP);
  ctx.set('Cross-Origin-Resource-Policy', 'cross-origin');
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('Cache-Control', 'private, max-age=86400, immutable');
  ctx.body = fs.createReadStream(media.file);
  ctx.length = media.size;
}

export function queryString(ctx: ParameterizedContext, name: string): string | undefined {
  const v = ctx.query[name];
  return typeof v === 'string' ? v : undefined;
}

export function timeoutOf(ctx: ParameterizedContext): number | undefined {
  const v = queryString(ctx, 'timeout_ms');
  if (v === undefined) return undefined;
  if (!/^\d{1,12}$/.test(v)) throw invalidParam('timeout_ms must be a whole number');
  return Number(v);
}

export function dimension(ctx: ParameterizedContext, name: 'width' | 'height'): number {
  const v = queryString(ctx, name);
  if (v === undefined) throw missingParam(name);
  if (!/^\d{1,6}$/.test(v) || Number(v) < 1) throw invalidParam(`${name} must be a positive whole number`);
  return Number(v);
}

export function methodOf(ctx: ParameterizedContext): ThumbnailMethod {
  const v = queryString(ctx, 'method') ?? 'scale';
  if (v !== 'crop' && v !== 'scale') throw invalidParam("method must be 'crop' or 'scale'");
  return v;
}

/** The legacy endpoints' `allow_remote` (default true; other servers fall back to them with false). */
const allowRemote = (ctx: ParameterizedContext) => queryString(ctx, 'allow_remote') !== 'false';

/** download, download with file name, thumbnail: shared by the authenticated and the legacy paths. */
function readRoutes(router: AppRouter, { services }: AppDeps, guard: Middleware<AuthState>, prefix: string): void {
  const download = async (ctx: ParameterizedContext<AuthState, { params: Record<string, string | undefined> }>) => {
    const media = await services.media.download(ctx.params.serverName!, ctx.params.mediaId!, timeoutOf(ctx), allowRemote(ctx));
    serve(ctx, media, ctx.params.fileName ?? media.uploadName);
  };
  router.get(`${prefix}/download/:serverName/:mediaId`, guard, download);
  router.get(`${prefix}/download/:serverName/:mediaId/:fileName`, guard, download);
  router.get(`${prefix}/thumbnail/:serverName/:mediaId`, guard, async (ctx) => {
    const media = await services.media.thumbnail(ctx.params.serverName!, ctx.params.mediaId!, {
      width: dimension(ctx, 'width'),
      height: dimension(ctx, 'height'),
      method: methodOf(ctx),
      animated: queryString(ctx, 'animated') === 'true',
      timeoutMs: timeoutOf(ctx),
      allowRemote: allowRemote(ctx),
    });
    serve(ctx, media, null);
  });
}

/** `/_matrix/client/v1/media/*`: the authenticated download endpoints of spec v1.11. */
export const clientMediaArea: Area = (router, deps) => {
  const auth = requireAuth(deps.services.sessions);
  router.get('/media/config', auth, (ctx) => {
    ctx.body = { 'm.upload.size': deps.config.media.maxUploadBytes };
  });
  readRoutes(router, deps, auth, '/media');
};

/** A refused upload's unread rest is not worth reading: the connection closes after the answer. */
const closeUnreadBody: Middleware<AuthState> = async (ctx, next) => {
  try {
    await next();
  } catch (err) {
    if (!ctx.req.complete) ctx.set('Connection', 'close');
    throw err;
  }
};

/** `/_matrix/media/v3/*`: uploads, and the deprecated unauthenticated downloads (off unless configured). */
export const mediaV3Area: Area = (router, deps) => {
  const { services, bus, config } = deps;
  const auth = requireAuth(services.sessions);
  const limit = rateLimit(bus.rateLimiter, 'media_upload', config.rateLimits.mediaUpload);

  router.post('/upload', auth, limit, closeUnreadBody, async (ctx) => {
    const declared = ctx.request.length;
    if (declared !== undefined && declared > config.media.maxUploadBytes) {
      throw tooLargeUpload(config.media.maxUploadBytes);
    }
    const uri = await services.media.upload(requesterOf(ctx).userId, ctx.req, ctx.get('Content-Type') || undefined, queryString(ctx, 'filename'));
    ctx.body = { content_uri: uri };
  });

  router.put('/upload/:serverName/:mediaId', auth, limit, closeUnreadBody, async (ctx) => {
    const declared = ctx.request.length;
    if (declared !== undefined && declared > config.media.maxUploadBytes) {
      throw tooLargeUpload(config.media.maxUploadBytes);
    }
    await services.media.uploadTo(
      requesterOf(ctx).userId,
      ctx.params.serverName!,
      ctx.params.mediaId!,
      ctx.req,
      ctx.get('Content-Type') || undefined,
      queryString(ctx, 'filename'),
    );
    ctx.body = {};
  });

  router.get('/config', auth, (ctx) => {
    ctx.body = { 'm.upload.size': config.media.maxUploadBytes };
  });

  // Spec v1.11: the unauthenticated endpoints are frozen; 404 M_NOT_FOUND unless the operator opts in.
  const legacy: Middleware<AuthState> = async (_ctx, next) => {
    if (!config.media.legacyUnauthenticated) throw notFound('Unauthenticated media access is disabled; use /_matrix/client/v1/media');
    await next();
  };
  readRoutes(router, deps, legacy, '');
};

/** `/_matrix/media/v1/create`: reserves an `mxc://` id for a later upload. */
export const mediaV1Area: Area = (router, { services, bus, config }) => {
  const auth = requireAuth(services.sessions);
  const limit = rateLimit(bus.rateLimiter, 'media_upload', config.rateLimits.mediaUpload);
  router.post('/create', auth, limit, async (ctx) => {
    ctx.body = await services.media.create(requesterOf(ctx).userId);
  });
};

const tooLargeUpload = (max: number) => tooLarge(`Upload exceeds ${max} bytes`);
