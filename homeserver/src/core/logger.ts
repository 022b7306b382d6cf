import { unescape } from 'node:querystring';
import { pino, type Logger } from 'pino';

export type { Logger };

/** Paths pino blanks out wherever they appear: secrets never reach the logs. */
const REDACT = [
  'password',
  'new_password',
  'access_token',
  'refresh_token',
  'token',
  'client_secret',
  '*.password',
  '*.new_password',
  '*.access_token',
  '*.refresh_token',
  '*.token',
  '*.client_secret',
  'req.headers.authorization',
  'headers.authorization',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT, censor: '[redacted]' }, base: { service: 'homeserver' } }, destination);
}

const SECRET_PARAMS = new Set(['access_token', 'token', 'client_secret', 'refresh_token']);

/**
 * Strips secrets carried in query strings (`access_token`, `token`, `client_secret`, `refresh_token`)
 * from a URL for logging. Names are decoded as the query parser decodes them, so `access%5Ftoken=`
 * (which authenticates just the same) is blanked too.
 */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = url
    .slice(q + 1)
    .split('&')
    .map((part) => {
      const eq = part.indexOf('=');
      const rawName = eq < 0 ? part : part.slice(0, eq);
      const name = unescape(rawName.replace(/\+/g, ' ')).toLowerCase();
      return SECRET_PARAMS.has(name) ? `${rawName}=[redacted]` : part;
    });
  return `${url.slice(0, q)}?${params.join('&')}`;
}
