import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startTestServer, type TestServer } from './harness.js';

/** Media tests: each server gets its own data dir (the harness default is shared) and no upload rate limit. */
const MEDIA_ENV = { HEARTH_RATELIMIT_MEDIA_UPLOAD: '1000/1000' };

export const newDataDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'hearth-media-'));
export const startMediaServer = (dataDir: string, env: Record<string, string> = {}, databaseUrl?: string) =>
  startTestServer({ ...MEDIA_ENV, HEARTH_DATA_DIR: dataDir, ...env }, databaseUrl ? { databaseUrl } : {});
export const mediaIdOf = (mxc: string) => mxc.replace('mxc://hearth.test/', '');
export const tmpFiles = (dataDir: string) => fs.readdirSync(path.join(dataDir, 'media', 'tmp'));

export async function mediaRows(s: TestServer): Promise<Array<{ media_id: string; sha256: string | null }>> {
  const c = new pg.Client({ connectionString: s.databaseUrl });
  await c.connect();
  try {
    return (await c.query('select media_id, sha256 from media')).rows;
  } finally {
    await c.end();
  }
}

export async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A raw request on a real port, its body sent in chunks (chunked transfer unless Content-Length is given). */
export function rawRequest(
  base: string,
  method: string,
  urlPath: string,
  headers: Record<string, string>,
  chunks: Buffer[],
): Promise<{ status: number; body: any; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${urlPath}`, { method, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode!, body, headers: res.headers });
      });
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

