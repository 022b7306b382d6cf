import type { Readable } from 'node:stream';
import type { Database } from '../storage/db.js';
import type { Logger } from '../core/logger.js';
import type { MediaConfig } from '../core/config.js';
import { MatrixError, forbidden, invalidParam, limitExceeded, notFound } from '../core/errors.js';
import { randomString } from '../core/ids.js';
import * as store from '../storage/media.js';
import { MediaStore } from './media/store.js';
import { THUMBNAIL_FORMATS, makeThumbnail, type ThumbnailMethod } from './media/thumbnails.js';

/** Spec: media ids consist of `A-Za-z0-9`, `_` and `-` only. */
const MEDIA_ID_RE = /^[A-Za-z0-9_-]{1,255}$/;
const MAX_UPLOAD_NAME = 255;
/** Longest a download waits for a `create`d id's content (the spec's `timeout_ms` cap). */
const MAX_WAIT_MS = 20_000;
const WAIT_STEP_MS = 250;
const MAX_THUMBNAIL_SIDE = 2000;

export interface MediaFile {
  file: string;
  size: number;
  contentType: string;
  uploadName: string | null;
}

/** Media of other servers (services/federation/media.ts), fetched and cached locally. */
export interface RemoteMediaSource {
  download(serverName: string, mediaId: string, timeoutMs?: number): Promise<MediaFile>;
}

export const cannotOverwrite = () => new MatrixError(409, 'M_CANNOT_OVERWRITE_MEDIA', 'Media already uploaded');
const notYetUploaded = () => new MatrixError(504, 'M_NOT_YET_UPLOADED', 'Content has not yet been uploaded');

/** The content-type as stored: what the client declared, or the generic binary type. */
function normalizeContentType(ct: string | undefined): string {
  const v = ct?.trim();
  return v ? v : 'application/octet-stream';
}

/** A content type's essence (`image/png; x=y` → `image/png`). */
export const mimeEssence = (ct: string) => ct.split(';')[0]!.trim().toLowerCase();

function checkUploadName(name: string | undefined): string | null {
  if (name === undefined || name === '') return null;
  if (name.length > MAX_UPLOAD_NAME) throw invalidParam(`filename is longer than ${MAX_UPLOAD_NAME} characters`);
  return name;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The media repository's rules: uploads, `create`d ids, downloads and thumbnails of local media. */
export class MediaService {
  readonly files: MediaStore;
  /** Set when federation is enabled (services/index.ts); unset: media of other servers is 404. */
  remote?: RemoteMediaSource;

  constructor(
    private readonly deps: { db: Database; logger: Logger; serverName: string; config: MediaConfig; dataDir: string },
  ) {
    this.files = new MediaStore(deps.dataDir);
  }

  /** Run once at start: removes temp files of interrupted uploads and expired reservations. */
  async init(): Promise<void> {
    const orphans = await this.files.init();
    const expired = await store.deleteExpiredPendingMedia(this.deps.db, Date.now());
    if (orphans || expired) this.deps.logger.info({ orphans, expired }, 'media: cleaned up interrupted uploads');
  }

  mxc(mediaId: string): string {
    return `mxc://${this.deps.serverName}/${mediaId}`;
  }

  /** The one-step upload: the row is committed only after the file is complete on disk. */
  async upload(userId: string, body: Readable, contentType: string | undefined, filename: string | undefined): Promise<string> {
    const uploadName = checkUploadName(filename);
    const stored = await this.files.write(body, this.deps.config.maxUploadBytes);
    const mediaId = randomString(24);
    await store.insertUploadedMedia(this.deps.db, {
      mediaId,
      serverName: this.deps.serverName,
      userId,
      now: Date.now(),
      contentType: normalizeContentType(contentType),
      uploadName,
      ...stored,
    });
    return this.mxc(mediaId);
  }

  /** `create`: reserves an id for a later upload, at most `maxPendingUploads` per user at once. */
  async create(userId: string): Promise<{ content_uri: string; unused_expires_at: number }> {
    const now = Date.now();
    await store.deleteExpiredPendingMedia(this.deps.db, now);
    if ((await store.countPendingMedia(this.deps.db, userId, now)) >= this.deps.config.maxPendingUploads) {
      throw limitExceeded(60_000);
    }
    const mediaId = randomString(24);
    const expiresTs = now + this.deps.config.unusedExpiryMs;
    await store.insertPendingMedia(this.deps.db, { mediaId, serverName: this.deps.serverName, userId, now, expiresTs });
    return { content_uri: this.mxc(mediaId), unused_expires_at: expiresTs };
  }

  /** Uploads the content of a `create`d id: only its creator, only once, only before it expires. */
  async uploadTo(
    userId: string,
    serverName: string,
    mediaId: string,
    body: Readable,
    contentType: string | undefined,
    filename: string | undefined,
  ): Promise<void> {
    const row = await this.localRow(serverName, mediaId);
    if (row.user_id !== userId) throw forbidden('This media id was created by another user');
    if (row.sha256 !== null) throw cannotOverwrite();
    if (Number(row.unused_expires_ts) <= Date.now()) throw notFound('Media id expired');
    const uploadName = checkUploadName(filename);
    const stored = await this.files.write(body, this.deps.config.maxUploadBytes);
    const done = await store.completePendingMedia(this.deps.db, {
      mediaId,
      userId,
      now: Date.now(),
      contentType: normalizeContentType(contentType),
      uploadName,
      ...stored,
    });
    // A concurrent upload to the same id won the race (its file, identical or not, is the one recorded).
    if (!done) throw cannotOverwrite();
  }

  /**
   * The stored file of local media (waits up to `timeoutMs` for a `create`d id's upload), or of
   * remote media through `remote` unless `allowRemote` is false (legacy `allow_remote=false`).
   */
  async download(serverName: string, mediaId: string, timeoutMs?: number, allowRemote = true): Promise<MediaFile> {
    if (serverName !== this.deps.serverName) {
      if (!this.remote || !allowRemote) throw notFound();
      return this.remote.download(serverName, mediaId, timeoutMs);
    }
    let row = await this.localRow(serverName, mediaId);
    const deadline = Date.now() + Math.min(Math.max(0, timeoutMs ?? MAX_WAIT_MS), MAX_WAIT_MS);
    while (row.sha256 === null) {
      if (Number(row.unused_expires_ts) <= Date.now()) throw notFound();
      if (Date.now() >= deadline) throw notYetUploaded();
      await sleep(Math.min(WAIT_STEP_MS, Math.max(1, deadline - Date.now())));
      row = await this.localRow(serverName, mediaId);
    }
    const file = this.files.contentPath(row.sha256);
    const size = await this.files.sizeOf(file);
    if (size === null) {
      this.deps.logger.error({ mediaId, sha256: row.sha256 }, 'media: file missing for a recorded upload');
      throw notFound();
    }
    return { file, size, contentType: row.content_type ?? 'application/octet-stream', uploadName: row.upload_name };
  }

  /** A thumbnail (cached on disk per media, size and method), or the original when it is small enough. */
  async thumbnail(
    serverName: string,
    mediaId: string,
    opts: { width: number; height: number; method: ThumbnailMethod; animated: boolean; timeoutMs?: number; allowRemote?: boolean },
  ): Promise<MediaFile> {
    const original = await this.download(serverName, mediaId, opts.timeoutMs, opts.allowRemote);
    const local = serverName === this.deps.serverName;
    const format = THUMBNAIL_FORMATS[mimeEssence(original.contentType)];
    if (!format) throw new MatrixError(400, 'M_UNKNOWN', 'Cannot generate thumbnails for this content type');
    if (original.size > this.deps.config.maxUploadBytes) throw new MatrixError(local ? 413 : 502, 'M_TOO_LARGE', 'Content too large to thumbnail');
    const width = Math.min(opts.width, MAX_THUMBNAIL_SIDE);
    const height = Math.min(opts.height, MAX_THUMBNAIL_SIDE);
    const animated = opts.animated && (format === 'gif' || format === 'webp');
    // Remote ids may equal local ones: their thumbnails are kept under the server's name too.
    const origin = local ? '' : `${encodeURIComponent(serverName)}-`;
    const cached = this.files.thumbnailPath(mediaId, `${origin}${width}x${height}-${opts.method}${animated ? '-animated' : ''}`);
    const contentType = `image/${format}`;
    const cachedSize = await this.files.sizeOf(cached);
    if (cachedSize !== null) return { file: cached, size: cachedSize, contentType, uploadName: null };
    let thumb;
    try {
      thumb = await makeThumbnail(original.file, format, width, height, opts.method, animated);
    } catch (err) {
      this.deps.logger.info({ err, mediaId }, 'media: cannot thumbnail');
      throw new MatrixError(400, 'M_UNKNOWN', 'Cannot generate a thumbnail of this content');
    }
    if (thumb.data === null) return { ...original, contentType, uploadName: null };
    await this.files.writeBuffer(cached, thumb.data);
    return { file: cached, size: thumb.data.length, contentType, uploadName: null };
  }

  /** The row of a local media id; anything else (remote servers until federation, bad ids) is 404. */
  private async localRow(serverName: string, mediaId: string): Promise<store.MediaRow> {
    if (serverName !== this.deps.serverName || !MEDIA_ID_RE.test(mediaId)) throw notFound();
    const row = await store.getMedia(this.deps.db, mediaId);
    if (!row || row.server_name !== serverName) throw notFound();
    return row;
  }
}
