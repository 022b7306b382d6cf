import { invalidParam, notFound } from '../core/errors.js';
import type { Database } from '../storage/db.js';
import * as store from '../storage/devices.js';
import type { SessionService } from './auth/sessions.js';

export type { DeviceRow } from '../storage/devices.js';

/** The same cap POST /login and /register put on `initial_device_display_name`. */
export const MAX_DEVICE_NAME_LENGTH = 512;

export interface DeviceServiceDeps {
  db: Database;
  sessions: SessionService;
  /** After a rename committed (the name is part of the device's published keys: `unsigned.device_display_name`). */
  onRenamed?: (userId: string) => Promise<void>;
}

/** A user's own devices (spec: "Device management"). Another user's device is simply not found. */
export class DeviceService {
  constructor(private readonly deps: DeviceServiceDeps) {}

  list(userId: string): Promise<store.DeviceRow[]> {
    return store.listDevices(this.deps.db, userId);
  }

  /** 404 M_NOT_FOUND when the user has no such device. */
  async get(userId: string, deviceId: string): Promise<store.DeviceRow> {
    const device = await store.getDevice(this.deps.db, userId, deviceId);
    if (!device) throw notFound('Unknown device');
    return device;
  }

  /**
   * Renames a device: `undefined` leaves the name as it is (the device must still exist),
   * an empty string removes it. 404 M_NOT_FOUND when the user has no such device.
   */
  async rename(userId: string, deviceId: string, displayName: string | undefined): Promise<void> {
    if (displayName === undefined) {
      await this.get(userId, deviceId);
      return;
    }
    if (displayName.length > MAX_DEVICE_NAME_LENGTH) {
      throw invalidParam(`'display_name' may be at most ${MAX_DEVICE_NAME_LENGTH} characters`);
    }
    const renamed = await store.renameDevice(this.deps.db, userId, deviceId, displayName === '' ? null : displayName);
    if (!renamed) throw notFound('Unknown device');
    await this.deps.onRenamed?.(userId);
  }

  /**
   * Deletes the devices and ends their sessions in one transaction, so their access and refresh
   * tokens stop working at once. Ids the user has no device for are ignored (spec: "or had been
   * removed previously").
   */
  async delete(userId: string, deviceIds: string[]): Promise<void> {
    const ids = [...new Set(deviceIds)];
    if (ids.length === 0) return;
    await this.deps.db.transaction((tx) => this.deps.sessions.revokeDevices(tx, userId, ids));
    this.deps.sessions.revoked(userId);
  }
}
