import { sql, type Kysely } from "kysely";
import type { DB, DeliveryStatusValue } from "./db/schema.js";

// GetStats: messages created in a time range, counted by status, by template and per period
// (UTC hours or days). One grouped query; the three views are folded from its rows.

export type StatsPeriodUnit = "hour" | "day";

export interface StatsCounts {
  count: number;
  sent: number;
  failed: number;
  /** QUEUED or DEFERRED. */
  pending: number;
}

export interface DeliveryStats {
  total: number;
  byStatus: Map<DeliveryStatusValue, number>;
  byTemplate: Map<string, StatsCounts>;
  byPeriod: Map<number, StatsCounts>;
}

export async function deliveryStats(
  db: Kysely<DB>,
  opts: { start: Date; end: Date; period: StatsPeriodUnit; template?: string },
): Promise<DeliveryStats> {
  const period = sql<Date>`date_trunc(${sql.lit(opts.period)}, created_at, 'UTC')`;
  let q = db
    .selectFrom("deliveries")
    .select([
      sql<string>`coalesce(template, '')`.as("template"),
      "status",
      period.as("period_start"),
      (eb) => eb.fn.countAll<string>().as("count"),
    ])
    .where("created_at", ">=", opts.start)
    .where("created_at", "<", opts.end);
  if (opts.template !== undefined) q = q.where("template", "=", opts.template);
  const rows = await q.groupBy([sql`1`, sql`2`, sql`3`]).execute();

  const stats: DeliveryStats = { total: 0, byStatus: new Map(), byTemplate: new Map(), byPeriod: new Map() };
  const bump = <K>(map: Map<K, StatsCounts>, key: K, status: DeliveryStatusValue, n: number) => {
    const counts = map.get(key) ?? { count: 0, sent: 0, failed: 0, pending: 0 };
    counts.count += n;
    if (status === "sent") counts.sent += n;
    else if (status === "failed") counts.failed += n;
    else counts.pending += n;
    map.set(key, counts);
  };
  for (const row of rows) {
    const n = Number(row.count);
    stats.total += n;
    stats.byStatus.set(row.status, (stats.byStatus.get(row.status) ?? 0) + n);
    bump(stats.byTemplate, row.template, row.status, n);
    bump(stats.byPeriod, row.period_start.getTime(), row.status, n);
  }
  return stats;
}
