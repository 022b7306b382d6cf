import type { Migration } from './index.js';

/** Email validation sessions remember where to send the user once the link is followed. */
export const threepidValidations: Migration = {
  version: 2,
  name: 'threepid_validations',
  up: [
    // Spec: request_email_validation `next_link`, honoured when the emailed link is followed.
    `alter table threepid_validations add column next_link text`,
    `create index threepid_validations_expires on threepid_validations(expires_ts)`,
  ],
};
