"""CSV imports: jobs, the uploaded file's rows in parts, and the rows that failed

`imports` holds each job (its mapping, status, counters, the next part to read, and the lease of
the worker running it), `import_parts` the file's data rows in parts of one chunk each (deleted as
they are written), `import_errors` each failed row's line, cells and reason, and
`import_dry_records` / `import_dry_keys` what a dry run would have written so far.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status IN ('queued', 'running')")


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("object_type", sa.String(length=20), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("match_key", sa.String(length=20), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("delimiter", sa.String(length=20), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column(
            "headers",
            sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total_rows", sa.Integer(), nullable=False),
        sa.Column("total_parts", sa.Integer(), nullable=False),
        sa.Column("next_part", sa.Integer(), nullable=False),
        sa.Column("processed", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("leased_by", sa.Uuid(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "object_type IN ('contact', 'company', 'deal')", name=op.f("ck_imports_object_type")
        ),
        sa.CheckConstraint("mode IN ('create', 'upsert')", name=op.f("ck_imports_mode")),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'completed', 'cancelled', 'failed')",
            name=op.f("ck_imports_status"),
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_imports_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imports")),
    )
    op.create_index("ix_imports_created", "imports", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_imports_created_by", "imports", ["created_by", "created_at", "id"], unique=False
    )
    op.create_index(
        "ix_imports_pending",
        "imports",
        ["created_at"],
        unique=False,
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_table(
        "import_parts",
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["imports.id"],
            name=op.f("fk_import_parts_import_id_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("import_id", "number", name=op.f("pk_import_parts")),
    )
    op.create_table(
        "import_errors",
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("cells", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["imports.id"],
            name=op.f("fk_import_errors_import_id_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("import_id", "line", name=op.f("pk_import_errors")),
    )

    op.create_table(
        "import_dry_records",
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("sent", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["imports.id"],
            name=op.f("fk_import_dry_records_import_id_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("import_id", "id", name=op.f("pk_import_dry_records")),
    )
    op.create_table(
        "import_dry_keys",
        sa.Column("import_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=400), nullable=False),
        sa.Column("record_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["imports.id"],
            name=op.f("fk_import_dry_keys_import_id_imports"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("import_id", "name", "value", name=op.f("pk_import_dry_keys")),
    )


def downgrade() -> None:
    op.drop_table("import_dry_keys")
    op.drop_table("import_dry_records")
    op.drop_table("import_errors")
    op.drop_table("import_parts")
    op.drop_index("ix_imports_pending", table_name="imports", postgresql_where=PENDING,
                  sqlite_where=PENDING)  # fmt: skip
    op.drop_index("ix_imports_created_by", table_name="imports")
    op.drop_index("ix_imports_created", table_name="imports")
    op.drop_table("imports")
