import type { Mail } from './mailer.js';
import type { ThreepidPurpose } from './threepids.js';

/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const WHY: Record<ThreepidPurpose, { subject: string; intro: string; action: string }> = {
  register: {
    subject: 'Confirm your email address',
    intro: 'Someone (hopefully you) is creating an account on %s with this email address.',
    action: 'confirm this address and continue creating the account',
  },
  bind: {
    subject: 'Confirm adding this email address',
    intro: 'Someone (hopefully you) asked to add this email address to their account on %s.',
    action: 'confirm this address',
  },
  password_reset: {
    subject: 'Reset your password',
    intro: 'Someone (hopefully you) asked to reset the password of the account on %s that uses this email address.',
    action: 'allow the password to be reset',
  },
};

function duration(ms: number): string {
  const m = Math.max(1, Math.round(ms / 60_000));
  if (m % 60 === 0) return m === 60 ? '1 hour' : `${m / 60} hours`;
  return m === 1 ? '1 minute' : `${m} minutes`;
}

/** The validation email: a link to follow and the same token as a short code to type in. */
export function validationMail(m: {
  to: string;
  purpose: ThreepidPurpose;
  serverName: string;
  link: string;
  code: string;
  lifetimeMs: number;
}): Mail {
  const why = WHY[m.purpose];
  const intro = why.intro.replace('%s', m.serverName);
  const expiry = `The link and the code expire in ${duration(m.lifetimeMs)}.`;
  const ignore = 'If this was not you, ignore this email: nothing happens unless you follow the link or enter the code.';
  const text = [
    intro,
    '',
    `To ${why.action}, open this link:`,
    m.link,
    '',
    `Or enter this code in the app: ${m.code}`,
    '',
    expiry,
    ignore,
  ].join('\n');
  const html = `<!doctype html>
<html><body style="font-family:sans-serif;line-height:1.5">
<p>${escapeHtml(intro)}</p>
<p>To ${escapeHtml(why.action)}, <a href="${escapeHtml(m.link)}">open this link</a>.</p>
<p>Or enter this code in the app: <strong style="font-size:1.3em;letter-spacing:0.1em">${escapeHtml(m.code)}</strong></p>
<p>${escapeHtml(expiry)}<br>${escapeHtml(ignore)}</p>
</body></html>`;
  return { to: m.to, subject: `${why.subject} (${m.serverName})`, text, html };
}
