import { forbidden, invalidParam, notFound } from '../core/errors.js';
import { parseUserId } from '../core/ids.js';
import type { Database } from '../storage/db.js';
import * as users from '../storage/users.js';
import type { Requester } from './auth/sessions.js';
import type { MembershipService } from './rooms/membership.js';
import type { Logger } from '../core/logger.js';

export type ProfileField = 'displayname' | 'avatar_url';

export interface Profile {
  displayname?: string;
  avatar_url?: string;
}

/** Synapse's limits, which clients already live with. */
export const MAX_DISPLAYNAME_LENGTH = 256;
export const MAX_AVATAR_URL_LENGTH = 1000;

/** `mxc://<server-name>/<media-id>`; the media id is `[A-Za-z0-9_-]+` (spec: content repository). */
const MXC_RE = /^mxc:\/\/(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,255})(?::\d{1,5})?\/[A-Za-z0-9_-]+$/;

export interface ProfileServiceDeps {
  db: Database;
  serverName: string;
  /** Carries profile changes into the rooms the user is in. */
  membership: MembershipService;
  logger: Logger;
}

/** Display names and avatars (spec: client-server API, "Profiles"). */
export class ProfileService {
  constructor(private readonly deps: ProfileServiceDeps) {}

  /** The profile of a live local user; absent fields are left out. */
  async get(userId: string): Promise<Profile> {
    this.checkLocal(userId);
    const user = await users.getUser(this.deps.db, userId);
    if (!user || user.deactivated) throw notFound('Profile not found');
    const profile: Profile = {};
    if (user.displayname !== null) profile.displayname = user.displayname;
    if (user.avatar_url !== null) profile.avatar_url = user.avatar_url;
    return profile;
  }

  /** One field of the profile; 404 M_NOT_FOUND when the user has not set it. */
  async getField(userId: string, field: ProfileField): Promise<string> {
    const value = (await this.get(userId))[field];
    if (value === undefined) throw notFound(`This user has no ${field}`);
    return value;
  }

  /** Sets the requester's own field; an empty string removes it. */
  async set(requester: Requester, userId: string, field: ProfileField, value: string): Promise<void> {
    if (!parseUserId(userId)) throw invalidParam('Invalid user id');
    if (requester.userId !== userId) throw forbidden("You cannot change another user's profile");
    if (field === 'displayname' && [...value].length > MAX_DISPLAYNAME_LENGTH) {
      throw invalidParam(`'displayname' may be at most ${MAX_DISPLAYNAME_LENGTH} characters`);
    }
    if (field === 'avatar_url' && value !== '' && (value.length > MAX_AVATAR_URL_LENGTH || !MXC_RE.test(value))) {
      throw invalidParam("'avatar_url' must be an mxc:// URI (mxc://<server-name>/<media-id>)");
    }
    await users.setProfileField(this.deps.db, userId, field, value === '' ? null : value);
    // The spec: the change is also sent as an m.room.member join event into every joined room.
    const failed = await this.deps.membership.refreshProfile(userId);
    if (failed.length > 0) this.deps.logger.warn({ user: userId, rooms: failed.length }, 'profile change not propagated to some rooms');
  }

  /** 400 M_INVALID_PARAM for a malformed id; 404 for users of other servers. */
  private checkLocal(userId: string): void {
    const parsed = parseUserId(userId);
    if (!parsed) throw invalidParam('Invalid user id');
    // Remote profiles need a federation query (GET /_matrix/federation/v1/query/profile), which
    // comes with federation; until then a remote user is answered like an unknown one.
    if (parsed.serverName !== this.deps.serverName) throw notFound('Profile not found');
  }
}
