import type { Database, Sql } from '../../storage/db.js';
import type { Notifier } from '../../bus/notifier.js';
import type { Logger } from '../../core/logger.js';
import type { E2eConfig } from '../../core/config.js';
import { DeviceListService } from './device_lists.js';
import { KeysService } from './keys.js';
import { CrossSigningService } from './cross_signing.js';
import { ToDeviceService } from './to_device.js';

export interface E2eServices {
  keys: KeysService;
  crossSigning: CrossSigningService;
  toDevice: ToDeviceService;
  deviceLists: DeviceListService;
  /** Inside the transaction that deletes these devices: their keys and inbox go, a device-list change is recorded. */
  devicesDeleted(tx: Sql, userId: string, deviceIds: string[]): Promise<void>;
  /** After that transaction committed: wakes the syncs that should see the change. */
  devicesDeletedCommitted(userId: string): Promise<void>;
}

/** End-to-end encryption support: keys, cross-signing, send-to-device and device lists. */
export function createE2eServices(deps: { db: Database; notifier: Notifier; serverName: string; config: E2eConfig; logger: Logger }): E2eServices {
  const { db, notifier, config } = deps;
  const deviceLists = new DeviceListService({ db, notifier });
  const keys = new KeysService({ db, serverName: deps.serverName, deviceLists, limits: config });
  const crossSigning = new CrossSigningService({ db, deviceLists });
  const toDevice = new ToDeviceService({
    db,
    notifier,
    serverName: deps.serverName,
    logger: deps.logger,
    limits: { maxMessages: config.maxToDeviceMessages, maxContentBytes: config.maxToDeviceContentBytes, batch: config.toDeviceBatch },
  });
  return {
    keys,
    crossSigning,
    toDevice,
    deviceLists,
    async devicesDeleted(tx, userId, deviceIds) {
      if (deviceIds.length === 0) return;
      await keys.devicesDeleted(tx, userId, deviceIds);
      await toDevice.devicesDeleted(tx, userId, deviceIds);
      await deviceLists.record(tx, [{ userId }]);
    },
    async devicesDeletedCommitted(userId) {
      await deviceLists.notify(await deviceLists.position(db), [{ userId }]);
    },
  };
}
