/**
 * Remote media (spec: server-server API "Content Repository", v1.11): a client of ours asks for
 * `mxc://<other server>/<id>`; we fetch it once with `GET /_matrix/federation/v1/media/download/{id}`
 * (falling back to the deprecated `/_matrix/media/v3/download` with `allow_remote=false` when the
 * remote does not know the new endpoint), keep it in the local content-addressed media store and
 * serve it from there afterwards. Thumbnails of remote media are made locally from the cached file
 * (services/media.ts), so one fetch serves every size.
 */
import { Readable } from 'node:stream';
import type { IncomingHttpHeaders } from 'node:http';
import type { Database } from '../../storage/db.js';
import type { Logger } from '../../core/logger.js';
import { MatrixError, notFound } from '../../core/errors.js';
import { getRemoteMedia, upsertRemoteMedia } from '../../storage/remote_media.js';
import type { MediaStore } from '../media/store.js';
import type { MediaFile, RemoteMediaSource } from '../media.js';
import { FederationError, type FederationClient } from './client.js';
import { parseServerName } from './server_name.js';
import type { TransportResponse } from './transport.js';

const MEDIA_ID_RE = /^[A-Za-z0-9_-]{1,255}$/;
/** Room for the multipart framing and the metadata part on top of the content itself. */
const MULTIPART_OVERHEAD = 64 * 1024;

/** What the remote sent for one media id, before it is stored. */
interface FetchedMedia {
  content: Buffer;
  contentType: string;
  uploadName: string | null;
}

const tooLargeRemote = () => new MatrixError(502, 'M_TOO_LARGE', 'Remote content is too large to serve');
const unavailable = (why: string) => new MatrixError(502, 'M_UNKNOWN', `Cannot fetch remote media: ${why}`);

/** A malformed answer of the remote server (bad multipart, a redirect we do not follow, …). */
class BadRemoteAnswer extends Error {}

export interface RemoteMediaDeps {
  db: Database;
  client: FederationClient;
  files: MediaStore;
  /** HEARTH_FEDERATION_REMOTE_MEDIA_MAX_BYTES: larger remote files are refused (502 M_TOO_LARGE). */
  maxBytes: number;
  logger: Logger;
}

export class RemoteMedia implements RemoteMediaSource {
  /** Fetches in progress per `server\nmediaId`: concurrent requests for the same media share one. */
  private readonly inFlight = new Map<string, Promise<MediaFile>>();

  constructor(private readonly deps: RemoteMediaDeps) {}

  async download(serverName: string, mediaId: string, timeoutMs?: number): Promise<MediaFile> {
    if (!MEDIA_ID_RE.test(mediaId) || parseServerName(serverName) === null) throw notFound();
    const cached = await this.cached(serverName, mediaId);
    if (cached) return cached;
    const key = `${serverName}\n${mediaId}`;
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.fetchAndStore(serverName, mediaId, timeoutMs).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  private async cached(serverName: string, mediaId: string): Promise<MediaFile | null> {
    const row = await getRemoteMedia(this.deps.db, serverName, mediaId);
    if (!row) return null;
    const file = this.deps.files.contentPath(row.sha256);
    const size = await this.deps.files.sizeOf(file);
    if (size === null) return null; // the file went away: fetch it again
    return { file, size, contentType: row.content_type ?? 'application/octet-stream', uploadName: row.upload_name };
  }

  private async fetchAndStore(serverName: string, mediaId: string, timeoutMs: number | undefined): Promise<MediaFile> {
    let fetched: FetchedMedia;
    try {
      fetched = await this.fetch(serverName, mediaId, timeoutMs);
    } catch (err) {
      throw this.failure(err, serverName, mediaId);
    }
    if (fetched.content.length > this.deps.maxBytes) throw tooLargeRemote();
    const stored = await this.deps.files.write(Readable.from([fetched.content]), this.deps.maxBytes);
    await upsertRemoteMedia(this.deps.db, { serverName, mediaId, ...stored, contentType: fetched.contentType, uploadName: fetched.uploadName, now: Date.now() });
    return { file: this.deps.files.contentPath(stored.sha256), size: stored.size, contentType: fetched.contentType, uploadName: fetched.uploadName };
  }

  private async fetch(serverName: string, mediaId: string, timeoutMs: number | undefined): Promise<FetchedMedia> {
    const id = encodeURIComponent(mediaId);
    const maxResponseBytes = this.deps.maxBytes + MULTIPART_OVERHEAD;
    const query = timeoutMs === undefined ? undefined : { timeout_ms: timeoutMs };
    try {
      const res = await this.deps.client.requestRaw({ destination: serverName, method: 'GET', path: `/_matrix/federation/v1/media/download/${id}`, query, maxResponseBytes });
      return parseMultipartMedia(res);
    } catch (err) {
      // Spec: servers that do not know the v1.11 endpoint answer 404 M_UNRECOGNIZED; then the
      // deprecated client endpoint, told not to go to other servers itself.
      if (!(err instanceof FederationError && err.kind === 'remote' && err.status === 404 && err.errcode === 'M_UNRECOGNIZED')) throw err;
    }
    const res = await this.deps.client.requestRaw({
      destination: serverName,
      method: 'GET',
      path: `/_matrix/media/v3/download/${encodeURIComponent(serverName)}/${id}`,
      query: { allow_remote: false, ...query },
      maxResponseBytes,
    });
    return { content: res.body, ...describedBy(res.headers) };
  }

  /** The Matrix error a client gets for a failed fetch: 404 for media that is not there, 502/504 otherwise (never 500). */
  private failure(err: unknown, serverName: string, mediaId: string): Error {
    if (err instanceof MatrixError) return err;
    if (err instanceof BadRemoteAnswer) {
      this.deps.logger.info({ serverName, mediaId, reason: err.message }, 'remote media: unusable answer');
      return unavailable(err.message);
    }
    if (!(err instanceof FederationError)) return err as Error;
    this.deps.logger.debug({ serverName, mediaId, kind: err.kind, status: err.status }, 'remote media: fetch failed');
    switch (err.kind) {
      case 'remote':
        if (err.status === 404) return notFound('Remote media not found');
        if (err.errcode === 'M_NOT_YET_UPLOADED') return new MatrixError(504, 'M_NOT_YET_UPLOADED', 'Content has not yet been uploaded');
        if (err.errcode === 'M_TOO_LARGE') return tooLargeRemote();
        return unavailable(`the remote server answered ${err.status}`);
      case 'too_large':
        return tooLargeRemote();
      case 'disabled':
      case 'denied':
      case 'invalid_name':
        return notFound('Remote media not available');
      default:
        return unavailable(err.kind);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// multipart/mixed (RFC 2046 5.1) as the federation media endpoints answer
// ---------------------------------------------------------------------------------------------

interface Part {
  headers: Record<string, string>;
  body: Buffer;
}

/** `multipart/mixed; boundary=…`'s boundary, or null. */
export function boundaryOf(contentType: string | undefined): string | null {
  if (!contentType || !/^\s*multipart\/mixed\s*(;|$)/i.test(contentType)) return null;
  const m = /;\s*boundary\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(contentType);
  const b = m ? (m[1]?.replace(/\\(.)/g, '$1') ?? m[2]!) : '';
  return b.length >= 1 && b.length <= 70 ? b : null;
}

/** The parts of a multipart body (headers names lower-cased); throws BadRemoteAnswer when malformed. */
export function parseMultipart(body: Buffer, boundary: string): Part[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const next = Buffer.from(`\r\n--${boundary}`);
  let pos: number;
  if (body.subarray(0, delimiter.length).equals(delimiter)) pos = 0;
  else {
    const at = body.indexOf(next);
    if (at < 0) throw new BadRemoteAnswer('no multipart boundary in the body');
    pos = at + 2;
  }
  const parts: Part[] = [];
  for (;;) {
    pos += delimiter.length;
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return parts; // the close delimiter
    while (body[pos] === 0x20 || body[pos] === 0x09) pos++; // transport padding
    if (body[pos] !== 0x0d || body[pos + 1] !== 0x0a) throw new BadRemoteAnswer('malformed multipart delimiter line');
    pos += 2;
    const end = body.indexOf(next, pos);
    if (end < 0) throw new BadRemoteAnswer('unterminated multipart body');
    parts.push(splitPart(body.subarray(pos, end)));
    if (parts.length > 10) throw new BadRemoteAnswer('too many multipart parts');
    pos = end + 2;
  }
}

function splitPart(raw: Buffer): Part {
  let headerText = '';
  let body: Buffer;
  if (raw[0] === 0x0d && raw[1] === 0x0a) body = raw.subarray(2);
  else {
    const sep = raw.indexOf('\r\n\r\n');
    if (sep < 0) throw new BadRemoteAnswer('multipart part without a header end');
    headerText = raw.subarray(0, sep).toString('latin1');
    body = raw.subarray(sep + 4);
  }
  const headers: Record<string, string> = {};
  for (const line of headerText.split('\r\n')) {
    if (!line) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new BadRemoteAnswer('malformed multipart part header');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { headers, body };
}

/** The media of a federation download answer: exactly two parts, JSON metadata then the bytes. */
function parseMultipartMedia(res: TransportResponse): FetchedMedia {
  const ct = res.headers['content-type'];
  const boundary = boundaryOf(Array.isArray(ct) ? ct[0] : ct);
  if (!boundary) throw new BadRemoteAnswer('the answer is not multipart/mixed with a boundary');
  const parts = parseMultipart(res.body, boundary);
  if (parts.length !== 2) throw new BadRemoteAnswer(`expected 2 multipart parts, got ${parts.length}`);
  const [meta, media] = parts as [Part, Part];
  if (!/^application\/json\s*(;|$)/i.test(meta.headers['content-type'] ?? '')) throw new BadRemoteAnswer('the first part is not application/json');
  // Following `Location` needs a fetch of an arbitrary URL with the same address vetting as
  // federation requests; not done yet, so such media is unavailable here.
  if (media.headers.location !== undefined) throw new BadRemoteAnswer('redirects (Location) are not followed');
  return { content: media.body, ...describedBy(media.headers) };
}

/** Content type and file name from a response's or part's headers. */
function describedBy(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): { contentType: string; uploadName: string | null } {
  const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
  const contentType = one(headers['content-type'])?.trim() || 'application/octet-stream';
  return { contentType, uploadName: filenameOf(one(headers['content-disposition'])) };
}

/** The file name of a Content-Disposition (RFC 6266: `filename*` of RFC 8187 wins over `filename`). */
export function filenameOf(disposition: string | undefined): string | null {
  if (!disposition) return null;
  const ext = /;\s*filename\*\s*=\s*utf-8'[^']*'([^;\s]+)/i.exec(disposition);
  if (ext) {
    try {
      return cleanName(decodeURIComponent(ext[1]!));
    } catch {
      // a malformed encoding: fall back to the plain parameter
    }
  }
  const plain = /;\s*filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(disposition);
  if (!plain) return null;
  return cleanName(plain[1]?.replace(/\\(.)/g, '$1') ?? plain[2]!);
}

/** Names are kept as our uploads' are (at most 255 characters), without control characters. */
function cleanName(name: string): string | null {
  // eslint-disable-next-line no-control-regex
  const v = name.replace(/[\u0000-\u001f\u007f]/g, '');
  return v && v.length <= 255 ? v : null;
}
