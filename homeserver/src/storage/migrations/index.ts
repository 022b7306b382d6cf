import { accounts } from './0001_accounts.js';

export interface Migration {
  version: number;
  name: string;
  /** Statements run in order, in the one transaction that records the migration. */
  up: string[];
}

/** Every migration, oldest first. Never edit one that has shipped: add a new one. */
export const MIGRATIONS: Migration[] = [accounts];
