import { checkInteger, invalid } from '../private/validation';

/**
 * How the primary acknowledges commits to its standbys.
 */
export class ReplicationMode {
  /**
   * Asynchronous streaming: a commit returns once it is durable on the primary. A standby may
   * lag; a lost primary can lose the last commits that had not reached a standby.
   */
  public static async(): ReplicationMode {
    return new ReplicationMode(0);
  }

  /**
   * Quorum synchronous replication: a commit returns once it is flushed on the primary and on
   * at least `count` standbys (`synchronous_standby_names = 'ANY count (...)'` over every
   * PostgreSQL pod's `application_name`). With fewer than `count` standbys connected, commits wait.
   *
   * @param count how many standbys must confirm each commit (at least 1, at most the replica count)
   */
  public static synchronousQuorum(count: number): ReplicationMode {
    checkInteger('replicationMode (ReplicationMode.synchronousQuorum count)', count, 1);
    return new ReplicationMode(count);
  }

  /**
   * @internal
   */
  public static _check(prop: string, value: unknown): ReplicationMode {
    if (!(value instanceof ReplicationMode)) {
      throw invalid(prop, value, 'ReplicationMode.async() or ReplicationMode.synchronousQuorum(count)');
    }
    return value;
  }

  /**
   * Standbys that must confirm each commit; 0 for asynchronous replication.
   */
  public readonly synchronousStandbys: number;

  private constructor(synchronousStandbys: number) {
    this.synchronousStandbys = synchronousStandbys;
  }

  /**
   * True for quorum synchronous replication.
   */
  public get isSynchronous(): boolean {
    return this.synchronousStandbys > 0;
  }

  /**
   * The `synchronous_standby_names` setting for these application names ('' when asynchronous).
   */
  public synchronousStandbyNames(applicationNames: string[]): string {
    if (!this.isSynchronous) return '';
    return `ANY ${this.synchronousStandbys} (${applicationNames.map((n) => `"${n}"`).join(', ')})`;
  }
}
