"""The SQLite schema of the reference cloud: its migrations, and which table serves each stream.

Every table of the cloud is made here (applied by `db.migrate` when a `SqliteStorage` opens), none by
the module that uses it: a PostgreSQL `Storage` translates this one list (see ARCHITECTURE).

Change sequence
    A single global counter (`seq_counter`, one row) is bumped inside every write transaction; each
    replicated row (members, tags, templates, coupons) carries the seq of its last write, and a
    deletion replaces the row by a tombstone `(stream, key, site_id, seq)` with a fresh seq.
    `changes()` merges rows and tombstones of one stream in seq order, scoped to one site (tags,
    templates and coupons through their member's site), which is what `Sync.Pull` serves.
"""

from __future__ import annotations

from cloud_stub.storage.base import (
    STREAM_COUPONS,
    STREAM_MEMBERS,
    STREAM_TAGS,
    STREAM_TEMPLATES,
)

# Ordered migrations: (version, statements). Append only; never edit an applied one.
MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE seq_counter (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            value INTEGER NOT NULL
        );
        INSERT INTO seq_counter (id, value) VALUES (1, 0);
        CREATE TABLE sites (
            site_id TEXT PRIMARY KEY,
            name TEXT NOT NULL
        );
        CREATE TABLE stores (
            store_id TEXT PRIMARY KEY,
            site_id TEXT NOT NULL,
            name TEXT NOT NULL
        );
        CREATE TABLE members (
            member_id TEXT PRIMARY KEY,
            site_id TEXT NOT NULL,
            name TEXT NOT NULL,
            tier TEXT NOT NULL,
            points INTEGER NOT NULL,
            tier_keep_points INTEGER NOT NULL,
            phone_hash TEXT NOT NULL,
            phone_last4 TEXT NOT NULL,
            gender TEXT NOT NULL,
            birthday TEXT NOT NULL,
            updated_at_ms INTEGER NOT NULL,
            seq INTEGER NOT NULL
        );
        CREATE INDEX members_site_seq ON members (site_id, seq);
        CREATE TABLE tags (
            tag_id TEXT PRIMARY KEY,
            member_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            score REAL NOT NULL,
            computed_at_ms INTEGER NOT NULL,
            valid_until_ms INTEGER NOT NULL,
            seq INTEGER NOT NULL
        );
        CREATE INDEX tags_seq ON tags (seq);
        CREATE INDEX tags_member ON tags (member_id);
        CREATE TABLE consents (
            consent_id TEXT PRIMARY KEY,
            member_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            text_version TEXT NOT NULL,
            agreed_at_ms INTEGER NOT NULL,
            withdrawn_at_ms INTEGER
        );
        CREATE INDEX consents_member ON consents (member_id);
        CREATE TABLE templates (
            template_id TEXT PRIMARY KEY,
            member_id TEXT NOT NULL,
            model TEXT NOT NULL,
            vector BLOB NOT NULL,
            consent_id TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL,
            weight REAL NOT NULL,
            seq INTEGER NOT NULL
        );
        CREATE INDEX templates_seq ON templates (seq);
        CREATE INDEX templates_member ON templates (member_id);
        CREATE TABLE coupons (
            coupon_id TEXT PRIMARY KEY,
            member_id TEXT NOT NULL,
            title TEXT NOT NULL,
            kind INTEGER NOT NULL,
            value_cents INTEGER NOT NULL,
            threshold_cents INTEGER NOT NULL,
            store_ids TEXT NOT NULL,
            valid_from_ms INTEGER NOT NULL,
            valid_until_ms INTEGER NOT NULL,
            usage_hint TEXT NOT NULL,
            status INTEGER NOT NULL,
            seq INTEGER NOT NULL
        );
        CREATE INDEX coupons_seq ON coupons (seq);
        CREATE INDEX coupons_member ON coupons (member_id);
        CREATE TABLE tombstones (
            stream INTEGER NOT NULL,
            key TEXT NOT NULL,
            site_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (stream, key, site_id)
        );
        CREATE INDEX tombstones_scope ON tombstones (stream, site_id, seq);
        """,
    ),
    (
        2,
        # Domains beyond replication: transactions and points, tag runs, campaigns and redemptions,
        # credit events, the identity graph, plates and parking, payments, devices and claim tokens.
        """
        ALTER TABLE stores ADD COLUMN brand TEXT NOT NULL DEFAULT '';
        ALTER TABLE coupons ADD COLUMN campaign_id TEXT NOT NULL DEFAULT '';
        CREATE INDEX coupons_campaign ON coupons (campaign_id, member_id);
        CREATE TABLE transactions (
            txn_id TEXT PRIMARY KEY,
            member_id TEXT NOT NULL,
            store_id TEXT NOT NULL,
            brand TEXT NOT NULL,
            amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
            at_ms INTEGER NOT NULL,
            kind INTEGER NOT NULL
        );
        CREATE INDEX transactions_member ON transactions (member_id, kind, at_ms, amount_cents);
        CREATE TABLE points_ledger (
            entry_id TEXT PRIMARY KEY,
            member_id TEXT NOT NULL,
            delta INTEGER NOT NULL,
            balance_after INTEGER NOT NULL CHECK (balance_after >= 0),
            tier_after TEXT NOT NULL,
            reason TEXT NOT NULL,
            at_ms INTEGER NOT NULL
        );
        CREATE INDEX points_member ON points_ledger (member_id, at_ms);
        CREATE TABLE tag_runs (
            run_id INTEGER PRIMARY KEY AUTOINCREMENT,
            as_of_ms INTEGER NOT NULL,
            finished_at_ms INTEGER NOT NULL,
            members INTEGER NOT NULL,
            transactions INTEGER NOT NULL,
            tags_written INTEGER NOT NULL,
            summary TEXT NOT NULL
        );
        CREATE TABLE campaigns (
            campaign_id TEXT PRIMARY KEY,
            site_id TEXT NOT NULL,
            name TEXT NOT NULL,
            expression TEXT NOT NULL,
            title TEXT NOT NULL,
            kind INTEGER NOT NULL,
            value_cents INTEGER NOT NULL,
            threshold_cents INTEGER NOT NULL,
            store_ids TEXT NOT NULL,
            valid_from_ms INTEGER NOT NULL,
            valid_until_ms INTEGER NOT NULL,
            per_member_limit INTEGER NOT NULL,
            usage_hint TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL
        );
        CREATE TABLE redemptions (
            redemption_id TEXT PRIMARY KEY,
            coupon_id TEXT NOT NULL,
            member_id TEXT NOT NULL,
            store_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            order_amount_cents INTEGER NOT NULL,
            discount_cents INTEGER NOT NULL,
            redeemed_at_ms INTEGER NOT NULL,
            received_at_ms INTEGER NOT NULL,
            channel TEXT NOT NULL,
            status INTEGER NOT NULL,
            compensation_id TEXT NOT NULL
        );
        CREATE INDEX redemptions_coupon ON redemptions (coupon_id);
        CREATE TABLE compensations (
            event_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            device_id TEXT NOT NULL,
            coupon_id TEXT NOT NULL,
            redemption_id TEXT NOT NULL,
            member_id TEXT NOT NULL,
            amount_cents INTEGER NOT NULL,
            message TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL
        );
        CREATE TABLE credit_events (
            event_id TEXT PRIMARY KEY,
            member_id TEXT NOT NULL,
            kind INTEGER NOT NULL,
            amount_cents INTEGER NOT NULL,
            at_ms INTEGER NOT NULL
        );
        CREATE INDEX credit_events_member ON credit_events (member_id);
        CREATE TABLE identities (
            id_type INTEGER NOT NULL,
            id_value TEXT NOT NULL,
            member_id TEXT NOT NULL,
            origin_member_id TEXT NOT NULL,
            evidence TEXT NOT NULL,
            confidence REAL NOT NULL,
            observed_at_ms INTEGER NOT NULL,
            PRIMARY KEY (id_type, id_value)
        );
        CREATE INDEX identities_member ON identities (member_id);
        CREATE TABLE member_merges (
            absorbed_id TEXT PRIMARY KEY,
            kept_id TEXT NOT NULL,
            evidence TEXT NOT NULL,
            merged_at_ms INTEGER NOT NULL
        );
        CREATE TABLE plates (
            plate TEXT PRIMARY KEY,
            member_id TEXT NOT NULL,
            evidence TEXT NOT NULL,
            observed_at_ms INTEGER NOT NULL
        );
        CREATE INDEX plates_member ON plates (member_id);
        CREATE TABLE parking (
            plate TEXT PRIMARY KEY,
            site_id TEXT NOT NULL,
            bay TEXT NOT NULL,
            entered_at_ms INTEGER NOT NULL
        );
        CREATE TABLE payments (
            payment_id TEXT PRIMARY KEY,
            idempotency_key TEXT NOT NULL UNIQUE,
            request_hash TEXT NOT NULL,
            member_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            store_id TEXT NOT NULL,
            amount_cents INTEGER NOT NULL,
            status INTEGER NOT NULL,
            decline_code TEXT NOT NULL,
            decline_reason TEXT NOT NULL,
            match_score REAL NOT NULL,
            liveness_passed INTEGER NOT NULL,
            captured_cents INTEGER NOT NULL,
            refunded_cents INTEGER NOT NULL,
            created_at_ms INTEGER NOT NULL
        );
        CREATE INDEX payments_member ON payments (member_id, created_at_ms);
        CREATE INDEX payments_device ON payments (device_id, created_at_ms);
        CREATE TABLE refunds (
            refund_id TEXT PRIMARY KEY,
            payment_id TEXT NOT NULL,
            amount_cents INTEGER NOT NULL,
            created_at_ms INTEGER NOT NULL
        );
        CREATE TABLE devices (
            device_id TEXT PRIMARY KEY,
            site_id TEXT NOT NULL,
            store_id TEXT NOT NULL,
            profile TEXT NOT NULL,
            name TEXT NOT NULL,
            claimed_at_ms INTEGER NOT NULL,
            last_seen_at_ms INTEGER NOT NULL,
            software_version TEXT NOT NULL
        );
        CREATE TABLE claim_tokens (
            token_hash TEXT PRIMARY KEY,
            site_id TEXT NOT NULL,
            store_id TEXT NOT NULL,
            profile TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL,
            expires_at_ms INTEGER NOT NULL,
            used_by TEXT NOT NULL,
            used_at_ms INTEGER NOT NULL
        )
        """,
    ),
    (
        3,
        # Certificates the CA issued (enrollment, rotation) and the revocation list: a row with
        # revoked_at_ms > 0 is refused by the mTLS gate. serial is the lowercase hex serial number.
        """
        CREATE TABLE certificates (
            serial TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            site_id TEXT NOT NULL,
            store_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            name TEXT NOT NULL,
            public_key_sha256 TEXT NOT NULL,
            certificate_pem TEXT NOT NULL,
            not_after_ms INTEGER NOT NULL,
            issued_at_ms INTEGER NOT NULL,
            replaces TEXT NOT NULL,
            revoked_at_ms INTEGER NOT NULL,
            revoke_reason TEXT NOT NULL
        );
        CREATE INDEX certificates_device ON certificates (device_id, issued_at_ms)
        """,
    ),
    (
        4,
        # Sync.Push (issue 6): every device event by its UUID (the de-duplication key and the stored
        # ack), and the events that no other domain module records: visits, "not me" feedback and
        # anonymous traffic counts.
        """
        CREATE TABLE device_events (
            event_id TEXT PRIMARY KEY,
            device_id TEXT NOT NULL,
            site_id TEXT NOT NULL,
            stream TEXT NOT NULL,
            stream_seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            occurred_at_ms INTEGER NOT NULL,
            received_at_ms INTEGER NOT NULL,
            status INTEGER NOT NULL,
            reason TEXT NOT NULL,
            compensation_id TEXT NOT NULL
        );
        CREATE INDEX device_events_stream ON device_events (device_id, stream, stream_seq);
        CREATE TABLE visits (
            event_id TEXT PRIMARY KEY,
            device_id TEXT NOT NULL,
            member_id TEXT NOT NULL,
            store_id TEXT NOT NULL,
            score REAL NOT NULL,
            at_ms INTEGER NOT NULL
        );
        CREATE INDEX visits_member ON visits (member_id, at_ms);
        CREATE TABLE face_feedback (
            event_id TEXT PRIMARY KEY,
            device_id TEXT NOT NULL,
            member_id TEXT NOT NULL,
            template_id TEXT NOT NULL,
            score REAL NOT NULL,
            at_ms INTEGER NOT NULL
        );
        CREATE TABLE traffic (
            event_id TEXT PRIMARY KEY,
            device_id TEXT NOT NULL,
            store_id TEXT NOT NULL,
            window_start_ms INTEGER NOT NULL,
            window_ms INTEGER NOT NULL,
            counts TEXT NOT NULL
        )
        """,
    ),
    (
        5,
        # Field service (issue 8): one-time technician login tokens (stored as a hash) and the audit
        # trail of device admin actions (pushed by devices as AdminActionEvent).
        """
        CREATE TABLE technician_tokens (
            token_hash TEXT PRIMARY KEY,
            site_id TEXT NOT NULL,
            name TEXT NOT NULL,
            cert_hours REAL NOT NULL,
            created_at_ms INTEGER NOT NULL,
            expires_at_ms INTEGER NOT NULL,
            used_serial TEXT NOT NULL,
            used_at_ms INTEGER NOT NULL
        );
        CREATE TABLE admin_audit (
            event_id TEXT PRIMARY KEY,
            device_id TEXT NOT NULL,
            actor TEXT NOT NULL,
            actor_serial TEXT NOT NULL,
            action TEXT NOT NULL,
            detail TEXT NOT NULL,
            outcome TEXT NOT NULL,
            at_ms INTEGER NOT NULL
        );
        CREATE INDEX admin_audit_device ON admin_audit (device_id, at_ms)
        """,
    ),
    (
        6,
        # Tables that earlier releases created on first use in their own modules: the member-QR ledgers
        # (spent nonces, refused enrollments, the per-site legacy policy; cloud_stub/member_qr.py), coupons
        # given back on a refund (marketing/unredeem.py) and the operator's closed flagged sales
        # (cli_reconcile.py). IF NOT EXISTS, in exactly the shape those modules created, so a database that
        # already has some of them from first use upgrades in place and keeps their rows.
        """
        CREATE TABLE IF NOT EXISTS member_qr_spent (
            key_id BLOB NOT NULL,
            nonce BLOB NOT NULL,
            event_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            member_id TEXT NOT NULL,
            spent_at_ms INTEGER NOT NULL,
            until_ms INTEGER NOT NULL,
            PRIMARY KEY (key_id, nonce)
        );
        CREATE INDEX IF NOT EXISTS member_qr_spent_until ON member_qr_spent (until_ms);
        CREATE TABLE IF NOT EXISTS member_qr_refusals (
            event_id TEXT PRIMARY KEY,
            device_id TEXT NOT NULL,
            site_id TEXT NOT NULL,
            member_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL,
            occurred_at_ms INTEGER NOT NULL,
            received_at_ms INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS member_qr_site_policy (
            site_id TEXT PRIMARY KEY,
            allow_legacy INTEGER NOT NULL,
            changed_at_ms INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS coupon_unredemptions (
            redemption_id TEXT PRIMARY KEY,
            unredeem_id TEXT NOT NULL,
            coupon_id TEXT NOT NULL,
            member_id TEXT NOT NULL,
            state TEXT NOT NULL,
            reason TEXT NOT NULL,
            asked_at_ms INTEGER NOT NULL,
            done_at_ms INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS reconcile_closures (
            compensation_id TEXT PRIMARY KEY,
            note TEXT NOT NULL,
            closed_at_ms INTEGER NOT NULL
        )
        """,
    ),
]

# Per stream: table, key column, and how a row is scoped to a site.
STREAM_TABLES: dict[int, tuple[str, str]] = {
    STREAM_MEMBERS: ("members", "member_id"),
    STREAM_TAGS: ("tags", "tag_id"),
    STREAM_TEMPLATES: ("templates", "template_id"),
    STREAM_COUPONS: ("coupons", "coupon_id"),
}

