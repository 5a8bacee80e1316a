import { sql, type Kysely } from "kysely";

// The reconciliation sweep looks, every minute on every replica, for payments `processing` and
// untouched for a while, in id order. Few payments are ever `processing` at once: a partial index
// on them keeps that query independent of the size of the ledger.

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index payments_processing_idx on payments (id) where status = 'processing' and deleted_at is null`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index payments_processing_idx`.execute(db);
}
