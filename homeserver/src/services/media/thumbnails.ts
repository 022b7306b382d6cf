import sharp from 'sharp';

export type ThumbnailMethod = 'crop' | 'scale';

/** The content types thumbnails are made of, with the format the thumbnail keeps. */
export const THUMBNAIL_FORMATS: Record<string, 'png' | 'jpeg' | 'gif' | 'webp'> = {
  'image/png': 'png',
  'image/jpeg': 'jpeg',
  'image/gif': 'gif',
  'image/webp': 'webp',
};

/** Decoding refuses images above this many pixels (decompression bombs). */
const MAX_INPUT_PIXELS = 40_000_000;

export interface Thumbnail {
  /** null: the original is no larger than asked for and is served as is (spec: never upscale). */
  data: Buffer | null;
}

/**
 * Makes a thumbnail of `file` per the spec's rules: "crop" fills exactly width×height (aspect of the
 * request), "scale" keeps the aspect and covers width×height; never smaller than asked unless the
 * original is, and never upscaled. Throws for content sharp cannot decode.
 */
export async function makeThumbnail(
  file: string,
  format: 'png' | 'jpeg' | 'gif' | 'webp',
  width: number,
  height: number,
  method: ThumbnailMethod,
  animated: boolean,
): Promise<Thumbnail> {
  const multiFrame = animated && (format === 'gif' || format === 'webp');
  const input = () => sharp(file, { limitInputPixels: MAX_INPUT_PIXELS, animated: multiFrame, failOn: 'error' });
  const meta = await input().metadata();
  const w = meta.width ?? 0;
  const h = meta.pageHeight ?? meta.height ?? 0;
  if (w <= width && h <= height) return { data: null };
  const pipeline = multiFrame ? input() : input().rotate(); // EXIF orientation (not for animations)
  const data = await pipeline
    .resize(width, height, { fit: method === 'crop' ? 'cover' : 'outside', withoutEnlargement: true })
    .toFormat(format)
    .toBuffer();
  return { data };
}
