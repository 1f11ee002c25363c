/**
 * Write-ahead log and replication settings of the PostgreSQL servers. Each default is chosen
 * for a primary with hot-standby replicas fed by physical replication slots.
 */
export interface WalSettings {
  /**
   * `wal_keep_size`: WAL kept for standbys regardless of slots, so a standby that lost its slot,
   * or a former primary running pg_rewind, can still find recent WAL.
   *
   * @default "512MB"
   */
  readonly walKeepSize?: string;

  /**
   * `max_slot_wal_keep_size`: the most WAL a replication slot may hold back. A dead or stuck
   * standby's slot otherwise keeps every WAL segment until the primary's disk is full (the most
   * reported replication failure of comparable systems). Past this bound the slot is invalidated
   * and the standby re-clones itself.
   *
   * @default - a quarter of the PostgreSQL volume size
   */
  readonly maxSlotWalKeepSize?: string;

  /**
   * `max_wal_senders`: concurrent replication connections. A pg_basebackup uses two.
   *
   * @default - max(16, 2 x PostgreSQL pods + 4)
   */
  readonly maxWalSenders?: number;

  /**
   * `max_replication_slots`.
   *
   * @default - max(16, PostgreSQL pods + 8)
   */
  readonly maxReplicationSlots?: number;

  /**
   * `hot_standby_feedback`: standbys tell the primary which rows their queries still read, so
   * long reads on replicas are not cancelled by vacuum (at the cost of some bloat on the primary).
   *
   * @default true
   */
  readonly hotStandbyFeedback?: boolean;

  /**
   * `wal_sender_timeout`: how soon the primary drops a silent standby connection.
   *
   * @default "10s"
   */
  readonly walSenderTimeout?: string;

  /**
   * `wal_receiver_timeout`: how soon a standby drops a silent primary connection and reconnects.
   *
   * @default "10s"
   */
  readonly walReceiverTimeout?: string;
}

/**
 * One postgresql.conf setting and why it has its value.
 */
export interface Setting {
  readonly name: string;
  readonly value: string;
  readonly reason: string;
}

