import type { Area } from '../../app.js';
import { requireAuth } from '../middleware/auth.js';
import { SUPPORTED_ROOM_VERSIONS } from '../../services/rooms/pdu.js';

/** Room versions new rooms may use (every version the server implements); `default` is HEARTH_DEFAULT_ROOM_VERSION. */
export const ROOM_VERSIONS: Record<string, 'stable' | 'unstable'> = Object.fromEntries(SUPPORTED_ROOM_VERSIONS.map((v) => [v, 'stable']));

/** `GET /capabilities` (spec: "Capabilities negotiation"). The same for every user for now. */
export const capabilitiesArea: Area = (router, { services, config }) => {
  router.get('/capabilities', requireAuth(services.sessions), (ctx) => {
    ctx.body = {
      capabilities: {
        'm.change_password': { enabled: true },
        'm.room_versions': { default: config.defaultRoomVersion, available: ROOM_VERSIONS },
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
