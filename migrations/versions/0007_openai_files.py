"""openai compatibility: request fingerprints for Idempotency-Key, OpenAI files and batches

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))

    op.create_table(
        "openai_files",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("openai_files", schema=None) as batch_op:
        batch_op.create_index("ix_openai_files_tenant_id_id", ["tenant_id", "id"], unique=False)

    op.create_table(
        "openai_batches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("input_file_id", sa.String(length=40), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("completion_window", sa.String(length=16), nullable=False),
        sa.Column("custom_ids", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelling_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"]),
        sa.ForeignKeyConstraint(["input_file_id"], ["openai_files.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("openai_batches", schema=None) as batch_op:
        batch_op.create_index("ix_openai_batches_tenant_id_id", ["tenant_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("openai_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_openai_batches_tenant_id_id")
    op.drop_table("openai_batches")
    with op.batch_alter_table("openai_files", schema=None) as batch_op:
        batch_op.drop_index("ix_openai_files_tenant_id_id")
    op.drop_table("openai_files")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("request_hash")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("request_hash")
