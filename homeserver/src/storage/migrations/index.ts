import { accounts } from './0001_accounts.js';
import { threepidValidations } from './0002_threepid_validations.js';
import { rooms } from './0003_rooms.js';
import { media } from './0004_media.js';
import { relations } from './0005_relations.js';
import { pushRules } from './0006_push_rules.js';
import { search } from './0007_search.js';
import { accountData } from './0008_account_data.js';
import { receiptsTyping } from './0009_receipts_typing.js';
import { presence } from './0010_presence.js';
import { pushNotifications } from './0011_push_notifications.js';
import { e2eKeys } from './0012_e2e_keys.js';
import { keyBackup } from './0013_key_backup.js';
import { federationKeys } from './0014_federation_keys.js';
import { federationRooms } from './0015_federation_rooms.js';
import { federationSender } from './0016_federation_sender.js';
import { eventTimestamps } from './0017_event_timestamps.js';
import { openidErasure } from './0018_openid_erasure.js';
import { membershipChangesRoom } from './0019_membership_changes_room.js';

export interface Migration {
  version: number;
  name: string;
  /** Statements run in order, in the one transaction that records the migration. */
  up: string[];
}

/** Every migration, oldest first. Never edit one that has shipped: add a new one. */
export const MIGRATIONS: Migration[] = [accounts, threepidValidations, rooms, media, relations, pushRules, search, accountData, receiptsTyping, presence, pushNotifications, e2eKeys, keyBackup, federationKeys, federationRooms, federationSender, eventTimestamps, openidErasure, membershipChangesRoom];
