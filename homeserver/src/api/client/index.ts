import type { Area } from '../../app.js';
import { loginArea } from './login.js';
import { registerArea, registerV1Area } from './register.js';
import { accountArea } from './account.js';

/** Areas served under /_matrix/client/v3 (and r0). One file per API area. */
export const CLIENT_AREAS: Area[] = [loginArea, registerArea, accountArea];

/** Areas served under /_matrix/client/v1. */
export const CLIENT_V1_AREAS: Area[] = [registerV1Area];
