import type { Area } from '../../app.js';
import { requireAuth } from '../middleware/auth.js';

/** Room versions new rooms may use; `default` is the one the server creates rooms with. */
export const DEFAULT_ROOM_VERSION = '11';
export const ROOM_VERSIONS: Record<string, 'stable' | 'unstable'> = { '10': 'stable', '11': 'stable' };

/** `GET /capabilities` (spec: "Capabilities negotiation"). The same for every user for now. */
export const capabilitiesArea: Area = (router, { services }) => {
  router.get('/capabilities', requireAuth(services.sessions), (ctx) => {
    ctx.body = {
      capabilities: {
        'm.change_password': { enabled: true },
        'm.room_versions': { default: DEFAULT_ROOM_VERSION, available: ROOM_VERSIONS },
        // Deprecated since v1.16 in favour of m.profile_fields, which must agree with them.
        'm.set_displayname': { enabled: true },
        'm.set_avatar_url': { enabled: true },
        // Only these two fields can be set: PUT /profile/{userId}/{keyName} knows no others.
        'm.profile_fields': { enabled: true, allowed: ['displayname', 'avatar_url'] },
        'm.3pid_changes': { enabled: true },
        'm.get_login_token': { enabled: false },
      },
    };
  });
};
