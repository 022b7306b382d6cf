import type { Area } from '../../app.js';
import { forbidden, notFound } from '../../core/errors.js';
import * as devices from '../../storage/devices.js';
import * as users from '../../storage/users.js';
import { requireAuth, requesterOf } from '../middleware/auth.js';

interface Connection {
  ip?: string;
  last_seen?: number;
}

/**
 * `GET /admin/whois/{userId}` (admin.yaml): a user's devices and where each was last seen. For
 * server admins, and for users asking about themselves. Hearth keeps one session per device and
 * its latest address and time (no user agent), so each device has one session with at most one
 * connection.
 */
export const whoisArea: Area = (router, deps) => {
  const auth = requireAuth(deps.services.sessions);

  router.get('/admin/whois/:userId', auth, async (ctx) => {
    const r = requesterOf(ctx);
    const userId = ctx.params.userId!;
    if (userId !== r.userId && !r.isAdmin) throw forbidden('You are not a server admin');
    if (!(await users.getUser(deps.db, userId))) throw notFound('No such user on this server');
    const out: Record<string, { sessions: { connections: Connection[] }[] }> = {};
    for (const d of await devices.listDevices(deps.db, userId)) {
      const connections: Connection[] =
        d.last_seen_ts !== null ? [{ ...(d.last_seen_ip !== null ? { ip: d.last_seen_ip } : {}), last_seen: Number(d.last_seen_ts) }] : [];
      out[d.device_id] = { sessions: [{ connections }] };
    }
    ctx.body = { user_id: userId, devices: out };
  });
};
