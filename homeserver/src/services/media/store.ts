import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { tooLarge } from '../../core/errors.js';
import { isProcessAlive } from '../../core/process.js';

/** A temp file untouched this long belongs to no upload in progress (on whatever host). */
const STALE_TEMP_MS = 3600_000;


export interface StoredFile {
  sha256: string;
  size: number;
}

/**
 * Media bytes on local disk under `<dataDir>/media`: content-addressed files `<aa>/<bb>/<sha256>`,
 * written to `tmp/` first and renamed into place only once complete and fsynced, so a file that
 * exists under its hash is always whole. `thumbnails/` caches generated thumbnails the same way.
 */
export class MediaStore {
  readonly root: string;
  readonly tmpDir: string;

  constructor(dataDir: string) {
    this.root = path.join(dataDir, 'media');
    this.tmpDir = path.join(this.root, 'tmp');
  }

  /**
   * Creates the directories and removes temp files a crashed process left behind; returns how many.
   * Other live processes may share the data dir: a temp file is an orphan when the process named in
   * it (`<host>.<pid>.…`) is gone from this host, or when nobody has written it for a long time.
   */
  async init(): Promise<number> {
    await fsp.mkdir(this.tmpDir, { recursive: true });
    const now = Date.now();
    let removed = 0;
    for (const name of await fsp.readdir(this.tmpDir)) {
      const file = path.join(this.tmpDir, name);
      const stat = await fsp.stat(file).catch(() => null);
      if (!stat) continue;
      const m = /^(.+)\.(\d+)\./.exec(name);
      const ownerGone = m !== null && m[1] === os.hostname() && Number(m[2]) !== process.pid && !isProcessAlive(Number(m[2]));
      if (ownerGone || m === null || now - stat.mtimeMs > STALE_TEMP_MS) {
        await fsp.rm(file, { force: true, recursive: true });
        removed++;
      }
    }
    return removed;
  }

  contentPath(sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return path.join(this.root, sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  /** The cache file of a thumbnail; `key` must be path-safe (the caller builds it from validated parts). */
  thumbnailPath(mediaId: string, key: string): string {
    return path.join(this.root, 'thumbnails', mediaId.slice(0, 2), mediaId, key);
  }

  private tempPath(): string {
    return path.join(this.tmpDir, `${os.hostname()}.${process.pid}.${Date.now()}-${randomBytes(8).toString('hex')}`);
  }

  /**
   * Streams `body` into the store with a byte limit (M_TOO_LARGE), hashing as it goes. On any
   * failure (limit, aborted request, disk error) the temp file is removed and nothing is stored.
   */
  async write(body: Readable, maxBytes: number): Promise<StoredFile> {
    const tmp = this.tempPath();
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > maxBytes) return done(tooLarge(`Upload exceeds ${maxBytes} bytes`));
        hash.update(chunk);
        done(null, chunk);
      },
    });
    // Not piped directly: a failed pipeline would destroy the request and with it the socket the
    // 413 answer must go out on. The rest of a refused body is discarded instead.
    const source = body.iterator({ destroyOnReturn: false });
    // Opened before streaming: a stream that opens lazily could create the file after a quick
    // failure's cleanup below had already run, leaving an orphan.
    const fh = await fsp.open(tmp, 'wx');
    try {
      try {
        await pipeline(source, meter, fh.createWriteStream());
      } catch (err) {
        if (!body.destroyed) body.resume();
        throw err;
      }
      const sha256 = hash.digest('hex');
      await this.commit(tmp, this.contentPath(sha256));
      return { sha256, size };
    } finally {
      await fsp.rm(tmp, { force: true });
    }
  }

  /** Writes a generated file (a thumbnail) atomically to `dest`. */
  async writeBuffer(dest: string, data: Buffer): Promise<void> {
    const tmp = this.tempPath();
    try {
      await fsp.writeFile(tmp, data, { flag: 'wx' });
      await this.commit(tmp, dest);
    } finally {
      await fsp.rm(tmp, { force: true });
    }
  }

  /** fsyncs `tmp` and renames it to `dest` (a no-op keep when identical content is already there). */
  private async commit(tmp: string, dest: string): Promise<void> {
    const fh = await fsp.open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    const dir = path.dirname(dest);
    await fsp.mkdir(dir, { recursive: true });
    await fsp.rename(tmp, dest);
    // Make the rename itself durable before the database row points at the file.
    const dh = await fsp.open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }

  /** The file's size, or null when it is missing. */
  async sizeOf(file: string): Promise<number | null> {
    try {
      return (await fsp.stat(file)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }
}
