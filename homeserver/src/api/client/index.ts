import type { Area } from '../../app.js';
import { loginArea } from './login.js';
import { registerArea, registerV1Area } from './register.js';
import { accountArea } from './account.js';
import { threepidArea } from './threepid.js';
import { devicesArea } from './devices.js';
import { profileArea } from './profile.js';
import { capabilitiesArea } from './capabilities.js';
import { roomsArea } from './rooms.js';
import { roomEventsArea } from './room_events.js';
import { filterArea } from './filter.js';
import { syncArea } from './sync.js';
import { pushRulesArea } from './pushrules.js';
import { notificationsArea } from './notifications.js';
import { pushersArea } from './pushers.js';
import { directoryArea } from './directory.js';
import { relationsArea } from './relations.js';
import { clientMediaArea } from '../media.js';
import { searchArea } from './search.js';
import { reportsArea } from './reports.js';
import { accountDataArea } from './account_data.js';
import { presenceArea, presenceActivityArea } from './presence.js';
import { voipArea } from './voip.js';
import { keysArea } from './keys.js';
import { roomKeysArea } from './room_keys.js';
import { toDeviceArea } from './to_device.js';
import { typingArea } from './typing.js';
import { receiptsArea } from './receipts.js';
import { timestampToEventArea } from './timestamp_to_event.js';
import { roomUpgradeArea } from './room_upgrade.js';
import { hierarchyArea } from './hierarchy.js';
import { openidArea } from './openid.js';
import { whoisArea } from './whois.js';

/** Areas served under /_matrix/client/v3 (and r0). One file per API area. */
// presenceActivityArea first: its middleware wraps the routes of the areas after it.
export const CLIENT_AREAS: Area[] = [presenceActivityArea, loginArea, registerArea, accountArea, threepidArea, devicesArea, profileArea, capabilitiesArea, roomsArea, roomEventsArea, filterArea, syncArea, pushRulesArea, notificationsArea, pushersArea, directoryArea, searchArea, reportsArea, accountDataArea, presenceArea, voipArea, keysArea, toDeviceArea, roomKeysArea, typingArea, receiptsArea, roomUpgradeArea, openidArea, whoisArea];

/** Areas served under /_matrix/client/v1. */
export const CLIENT_V1_AREAS: Area[] = [registerV1Area, clientMediaArea, relationsArea, timestampToEventArea, hierarchyArea];
